//! Metrics and health of a standalone server, read by real receivers: `/metrics`
//! scraped over HTTP and checked with `promtool`, StatsD datagrams over UDP, and the
//! health endpoint through a shutdown.
#![cfg(all(feature = "prometheus", feature = "statsd", feature = "health"))]

mod common;
mod metrics_support;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, call, call_ok, error_of, Server};
use metrics_support::{eventually, local, promtool_check, scrape, scrape_until};
use metrics_support::{statsd_routes, statsd_until};
use pitaya::acceptor::{Acceptor, RateLimitingAcceptor, TcpAcceptor};
use pitaya::{BuildError, Component, Config, Context, Error};
use pitaya_test_support::{http_get, RawClient};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

const RESPONSE_COUNT: &str = "pitaya_handler_response_time_seconds_count";
const CLIENTS: &str = "pitaya_acceptor_connected_clients";

/// Returns the test config with `/metrics` on a free port and quick periodic reports.
fn prometheus_config() -> Config {
    let mut c = common::config();
    c.metrics.prometheus.enabled = true;
    c.metrics.prometheus.port = 0;
    c.metrics.period = Duration::from_millis(50);
    c.metrics.game = "chess".into();
    c
}

#[tokio::test]
async fn scrape_passes_promtool_and_counts_clients_and_every_request() {
    let server = Server::start(builder().config(prometheus_config())).await;
    let addr = server.handle.metrics_addr().expect("metrics served");

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(server.client().await);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        call_ok(c, 1, "connector.svc.echo", json!({ "n": i })).await;
        call_ok(c, 2, "svc.echo", json!("two-part route")).await;
        assert_eq!(
            error_of(&call(c, 3, "svc.fail", Value::Null).await).code,
            "GAME-7"
        );
        c.notify("svc.notify", b"{}").await.unwrap();
        c.recv_push("svc.pushed").await.unwrap();
    }
    // A route nobody serves is counted under `unknown`, whatever the client wrote.
    let nope = call(&mut clients[0], 4, "connector.nope.x", Value::Null).await;
    assert_eq!(error_of(&nope).code, "PIT-404");

    // 3 clients x (2 echo + 1 fail + 1 notify) + 1 unknown: 13 answers, reported
    // right after each is queued, so we wait for the last ones.
    let handler = [("type", "handler")];
    let s = scrape_until(addr, "13 handler responses", |s| {
        s.sum(RESPONSE_COUNT, &handler) == 13.0
    })
    .await;
    promtool_check(&s.text);

    let echo = [
        ("route", "connector.svc.echo"),
        ("status", "ok"),
        ("code", ""),
    ];
    assert_eq!(s.value(RESPONSE_COUNT, &echo), Some(6.0));
    let summary = [("route", "connector.svc.echo"), ("type", "handler")];
    assert_eq!(
        s.value("pitaya_handler_response_time_ns_count", &summary),
        Some(6.0)
    );
    let fail = [
        ("route", "connector.svc.fail"),
        ("status", "failed"),
        ("code", "GAME-7"),
    ];
    assert_eq!(s.value(RESPONSE_COUNT, &fail), Some(3.0));
    let notify = [("route", "connector.svc.notify"), ("status", "ok")];
    assert_eq!(s.value(RESPONSE_COUNT, &notify), Some(3.0));
    let unknown = [("route", "unknown"), ("code", "PIT-404")];
    assert_eq!(s.value(RESPONSE_COUNT, &unknown), Some(1.0));
    let delays = s.sum(
        "pitaya_handler_handler_delay_ns_count",
        &[("type", "local")],
    );
    assert_eq!(delays, 13.0);

    // Constant labels are on every family, the configured game included.
    let labels = &s.find(CLIENTS, &[])[0].labels;
    assert_eq!(
        (labels["game"].as_str(), labels["serverType"].as_str()),
        ("chess", "connector")
    );
    assert_eq!(
        s.value(CLIENTS, &[]),
        Some(server.handle.session_count() as f64)
    );
    assert_eq!(s.value(CLIENTS, &[]), Some(3.0));
    assert!(
        s.sum(
            "pitaya_channel_channel_capacity_count",
            &[("channel", "agent_chsend")]
        ) > 0.0
    );
    for periodic in [
        "pitaya_sys_goroutines",
        "pitaya_acceptor_exceeded_rate_limiting",
    ] {
        let s = scrape_until(addr, periodic, |s| !s.find(periodic, &[]).is_empty()).await;
        assert!(s.value(periodic, &[]).is_some(), "{periodic}");
    }
    if cfg!(target_os = "linux") {
        assert_eq!(
            s.find("process_resident_memory_bytes", &[]).len(),
            1,
            "process metrics"
        );
    }

    drop(clients.pop());
    let s = scrape_until(addr, "2 clients left", |s| {
        s.value(CLIENTS, &[]) == Some(2.0)
    })
    .await;
    assert_eq!(
        s.value(CLIENTS, &[]),
        Some(server.handle.session_count() as f64)
    );
    server.stop().await;
}

#[tokio::test]
async fn many_random_unknown_routes_make_one_label_value_in_both_reporters() {
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = prometheus_config();
    config.metrics.statsd.enabled = true;
    config.metrics.statsd.host = receiver.local_addr().unwrap().to_string();
    let server = Server::start(builder().config(config)).await;
    let addr = server.handle.metrics_addr().unwrap();

    // Every shape a client can make up: an unknown handler of this server (three
    // and two parts), an unknown server type, and no route at all.
    let mut client = server.client().await;
    let mut sent = 0;
    for _ in 0..10 {
        let n = fastrand::u64(..);
        for route in [
            format!("connector.h{n}.m{n}"),
            format!("h{n}.m{n}"),
            format!("type{n}.h.m"),
            format!("x{n}"),
        ] {
            sent += 1;
            assert!(call(&mut client, sent, &route, Value::Null).await.error);
        }
    }

    let s = scrape_until(addr, "every answer", |s| {
        s.sum(RESPONSE_COUNT, &[]) == sent as f64
    })
    .await;
    let unknown = std::collections::BTreeSet::from(["unknown".to_owned()]);
    for family in [
        RESPONSE_COUNT,
        "pitaya_handler_response_time_ns_count",
        "pitaya_handler_handler_delay_ns_count",
    ] {
        assert_eq!(s.label_values(family, "route"), unknown, "{family}");
    }

    let lines = statsd_until(&receiver, |lines| {
        let answers = lines
            .iter()
            .filter(|l| l.starts_with("pitaya.response_time_ns:"));
        answers.count() == sent as usize
    })
    .await;
    assert_eq!(statsd_routes(&lines), unknown, "{lines:#?}");
    server.stop().await;
}

#[tokio::test]
async fn http_listeners_bind_the_configured_host() {
    let mut config = prometheus_config();
    config.metrics.prometheus.host = "127.0.0.1".into();
    config.health.enabled = true;
    config.health.host = "127.0.0.1".into();
    config.health.port = 0;
    let server = Server::start(builder().config(config)).await;
    let metrics = server.handle.metrics_addr().unwrap();
    let health = server.handle.health_addr().unwrap();
    assert_ne!(metrics, health, "two listeners");
    for addr in [metrics, health] {
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST, "{addr}");
    }
    assert!(!scrape(metrics).await.text.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn packets_over_the_rate_limit_are_counted() {
    let mut config = prometheus_config();
    config.conn.rate_limiting.limit = 2;
    config.conn.rate_limiting.interval = Duration::from_secs(3600);
    let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let limited = RateLimitingAcceptor::new(tcp, &config.conn.rate_limiting);
    let (tcp_addr, drops) = (limited.local_addr(), limited.exceeded());
    let app = builder().config(config).acceptor(limited).build().unwrap();
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    // Handshake and ack use the two packets of the hour; the requests are dropped.
    let mut client = RawClient::tcp(tcp_addr).await.unwrap();
    client.handshake().await.unwrap();
    for id in 1..=4 {
        client.request(id, "svc.echo", b"1").await.unwrap();
    }
    let metric = "pitaya_acceptor_exceeded_rate_limiting";
    let addr = handle.metrics_addr().unwrap();
    eventually("4 drops", || async { drops.get() == 4 }).await;
    let s = scrape_until(addr, "4 drops reported", |s| {
        s.value(metric, &[]) == Some(4.0)
    })
    .await;
    assert_eq!(s.value(metric, &[]), Some(drops.get() as f64));

    handle.shutdown();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn rate_limit_enabled_in_config_alone_covers_every_acceptor() {
    let mut config = prometheus_config();
    config.conn.rate_limiting.enabled = true;
    config.conn.rate_limiting.limit = 3;
    config.conn.rate_limiting.interval = Duration::from_secs(3600);
    let server = Server::start(builder().config(config)).await;
    let addr = server.handle.metrics_addr().unwrap();

    // Handshake, ack and one request use the three packets of the hour on each
    // transport; two more requests on each are dropped, the connections stay open.
    let mut tcp = RawClient::tcp(server.tcp).await.unwrap();
    let mut ws = RawClient::ws(server.ws).await.unwrap();
    for client in [&mut tcp, &mut ws] {
        client.handshake().await.unwrap();
        assert_eq!(call_ok(client, 1, "svc.echo", json!(1)).await, json!(1));
        for id in 2..=3 {
            client.request(id, "svc.echo", b"2").await.unwrap();
        }
    }
    let metric = "pitaya_acceptor_exceeded_rate_limiting";
    let s = scrape_until(addr, "4 drops reported", |s| {
        s.value(metric, &[]) == Some(4.0)
    })
    .await;
    assert_eq!(s.value(metric, &[]), Some(4.0));
    assert_eq!(server.handle.session_count(), 2);
    server.stop().await;
}

#[tokio::test]
async fn statsd_datagrams_carry_pitaya_names_values_and_tags() {
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = common::config();
    config.metrics.statsd.enabled = true;
    config.metrics.statsd.host = receiver.local_addr().unwrap().to_string();
    config
        .metrics
        .const_labels
        .insert("region".into(), "eu".into());
    let server = Server::start(builder().config(config)).await;

    let mut client = server.client().await;
    call_ok(&mut client, 1, "svc.echo", json!("hi")).await;

    // Datagrams come in report order: the connect's gauge, then the request's.
    let tags = "serverType:connector,region:eu";
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("pitaya.response_time_ns:"))
    {
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(metrics_support::WAIT, receiver.recv(&mut buf))
            .await
            .expect("a statsd datagram")
            .unwrap();
        lines.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert!(
        lines.contains(&format!("pitaya.connected_clients:1|g|#{tags}")),
        "{lines:#?}"
    );
    let delay = lines
        .iter()
        .find(|l| l.starts_with("pitaya.handler_delay_ns:"))
        .unwrap();
    assert!(
        delay.ends_with(&format!("|ms|#{tags},route:connector.svc.echo,type:local")),
        "{delay}"
    );
    let response = lines.last().unwrap();
    let (value, rest) = response["pitaya.response_time_ns:".len()..]
        .split_once('|')
        .unwrap();
    let nanos: u64 = value.parse().expect("a whole number of nanoseconds");
    assert!(nanos > 0, "{response}");
    assert_eq!(
        rest,
        format!("ms|#{tags},route:connector.svc.echo,status:ok,type:handler,code:")
    );
    server.stop().await;
}

#[tokio::test]
async fn readiness_follows_the_app_from_serving_through_shutdown() {
    let mut config = common::config();
    config.health.enabled = true;
    config.health.port = 0;
    // One request that holds the app in its shutdown grace period while we look.
    let (gate, entered) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let (held, enter) = (gate.clone(), entered.clone());
    let slow = Component::new("slow").request("wait", move |_: Context, _: Value| {
        let (held, enter) = (held.clone(), enter.clone());
        async move {
            enter.add_permits(1);
            let _permit = held.acquire().await;
            Ok::<_, Error>("released")
        }
    });
    let server = Server::start(builder().config(config).register(slow)).await;
    assert_eq!(
        server.handle.metrics_addr(),
        None,
        "no /metrics without prometheus"
    );
    let addr = local(server.handle.health_addr().expect("health served"));

    let ready = || async move { http_get(addr, "/readyz").await.map(|(code, _)| code).ok() };
    eventually("ready", || async { ready().await == Some(200) }).await;
    let (code, body) = http_get(addr, "/readyz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(
        (body["serving"].as_bool(), body["cluster"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(body["server_type"], "connector");

    let mut client = server.client().await;
    client.request(1, "slow.wait", b"{}").await.unwrap();
    let _started = entered.acquire().await.unwrap();
    server.handle.shutdown();
    eventually("not ready", || async { ready().await == Some(503) }).await;
    let (code, body) = http_get(addr, "/healthz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200, "still alive while shutting down: {body}");
    assert_eq!(
        (body["shutting_down"].as_bool(), body["serving"].as_bool()),
        (Some(true), Some(false))
    );

    gate.add_permits(1);
    assert_eq!(
        client.recv_response().await.unwrap().data.as_ref(),
        b"\"released\""
    );
    server.stop().await;
    assert!(
        http_get(addr, "/healthz").await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn a_taken_metrics_port_fails_the_build() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let mut config = prometheus_config();
    config.metrics.prometheus.port = taken.local_addr().unwrap().port();
    let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let err = builder().config(config).acceptor(tcp).build().unwrap_err();
    assert!(matches!(err, BuildError::Metrics(_)), "{err}");
    assert!(err.to_string().contains("for metrics"), "{err}");
}

#[tokio::test]
async fn health_on_the_metrics_port_shares_its_listener() {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = prometheus_config();
    config.metrics.prometheus.port = port;
    config.health.enabled = true;
    config.health.port = port;
    let server = Server::start(builder().config(config)).await;
    let addr = server.handle.metrics_addr().unwrap();
    assert_eq!(server.handle.health_addr(), Some(addr));
    eventually("ready", || async {
        http_get(local(addr), "/readyz").await.map(|r| r.0).ok() == Some(200)
    })
    .await;
    assert!(!scrape(addr).await.text.is_empty());
    server.stop().await;
}
