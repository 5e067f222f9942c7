//! Metrics of a cluster over a real NATS and etcd: servers by type from discovery,
//! forwarded requests seen as handler and RPC times, no NATS message dropped by a
//! full queue, and readiness with a `registered` that follows etcd.
#![cfg(all(feature = "nats", feature = "etcd", feature = "prometheus"))]

mod cluster_support;
mod metrics_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_support::{Infra, Node};
use futures_util::future::join_all;
use metrics_support::{local, promtool_check, scrape, scrape_until};
use metrics_support::{statsd_routes, statsd_until};
use pitaya::cluster::rpc::protos::Push;
use pitaya::{App, Builder, Component, Config, Context, Error, Remote, RemoteContext};
use pitaya_test_support::http_get;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

const SERVERS: &str = "pitaya_service_discovery_count_servers";
const DROPPED: &str = "pitaya_rpc_server_dropped_messages";
const RESPONSES: &str = "pitaya_handler_response_time_seconds_count";

fn config(infra: &Infra) -> Config {
    let mut c = infra.config();
    c.metrics.prometheus.enabled = true;
    c.metrics.prometheus.port = 0;
    c.metrics.period = Duration::from_millis(50);
    c
}

/// A room whose `slow.wait` remote never answers; `entered` counts the calls it got.
fn room(entered: Arc<AtomicUsize>) -> Builder {
    let echo =
        Component::new("room").request(
            "echo",
            |_: Context, v: Value| async move { Ok::<_, Error>(v) },
        );
    let slow = Remote::new("slow").method("wait", move |_: RemoteContext, _: Push| {
        entered.fetch_add(1, Ordering::SeqCst);
        async move {
            std::future::pending::<()>().await;
            Ok::<_, Error>(Push::default())
        }
    });
    App::builder("room").register(echo).register_remote(slow)
}

#[tokio::test]
async fn cluster_metrics_count_servers_forwarded_requests_and_dropped_messages() {
    let infra = Infra::start();
    let mut front_config = config(&infra);
    front_config.cluster.rpc.client.nats.request_timeout = Duration::from_secs(1);
    let front = Node::frontend(App::builder("connector"), front_config).await;

    // One worker and a queue of one: a burst of calls overflows it.
    let mut tight = config(&infra);
    tight.cluster.rpc.server.nats.services = 1;
    tight.cluster.rpc.server.nats.buffer.messages = 1;
    let entered = Arc::new(AtomicUsize::new(0));
    let tight_room = Node::backend(room(entered.clone()), tight).await;
    let other_room = Node::backend(room(Arc::default()), config(&infra)).await;
    front.sees("room", 2).await;

    let front_addr = front.handle.metrics_addr().unwrap();
    let s = scrape_until(front_addr, "servers by type", |s| {
        s.value(SERVERS, &[("type", "room")]) == Some(2.0)
            && s.value(SERVERS, &[("type", "connector")]) == Some(1.0)
    })
    .await;
    assert_eq!(s.find(SERVERS, &[]).len(), 2, "one series per type");

    // Readiness comes from the /metrics listener too, and says registered.
    let (code, body) = http_get(local(front_addr), "/readyz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["cluster"].as_bool(), body["registered"].as_bool()),
        (Some(true), Some(true))
    );

    // Each forwarded request is one client answer and one outgoing call.
    let mut client = front.client().await;
    for id in 1..=4 {
        client
            .request(
                id,
                "room.room.echo",
                json!({ "id": id }).to_string().as_bytes(),
            )
            .await
            .unwrap();
        assert!(!client.recv_response().await.unwrap().error);
    }
    let route = ("route", "room.room.echo");
    let s = scrape_until(front_addr, "4 forwarded answers", |s| {
        s.sum(RESPONSES, &[route, ("type", "handler")]) == 4.0
    })
    .await;
    assert_eq!(
        s.sum(RESPONSES, &[route, ("type", "rpc"), ("status", "ok")]),
        4.0
    );
    assert_eq!(
        s.sum(
            "pitaya_handler_handler_delay_ns_count",
            &[route, ("type", "remote")]
        ),
        4.0
    );
    promtool_check(&s.text);

    // Ten calls at once at the tight room (one worker, a queue of one, a remote that
    // never answers): the full queue holds the rest back in NATS instead of dropping
    // them, so the dropped-messages metric stays at zero and all ten time out.
    let calls = (0..10).map(|_| {
        let h = front.handle.clone();
        let id = tight_room.id();
        async move { h.rpc_raw(Some(&id), "room.slow.wait", Bytes::new()).await }
    });
    let results = join_all(calls).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_err_and(|e| e.code() == "PIT-408")));
    let room_addr = tight_room.handle.metrics_addr().unwrap();
    let s = scrape_until(room_addr, "a call served", |_| {
        entered.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(s.value(DROPPED, &[]), Some(0.0), "nothing dropped");
    let pool = [("pool", "rpc_server_remote")];
    assert_eq!(
        s.value("pitaya_worker_pool_total_workers", &pool),
        Some(1.0)
    );
    let queue = [("channel", "rpc_server_subchan")];
    assert!(s.sum("pitaya_channel_channel_capacity_count", &queue) > 0.0);
    let timeouts = [
        ("route", "room.slow.wait"),
        ("type", "rpc"),
        ("code", "PIT-408"),
    ];
    let s = scrape(front_addr).await;
    assert_eq!(s.sum(RESPONSES, &timeouts), 10.0);

    // A room that leaves is counted out.
    other_room.stop().await;
    scrape_until(front_addr, "one room left", |s| {
        s.value(SERVERS, &[("type", "room")]) == Some(1.0)
    })
    .await;
    tight_room.stop().await;
    front.stop().await;
}

#[tokio::test]
async fn forwarded_routes_no_server_serves_make_one_label_value() {
    let infra = Infra::start();
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut front_config = config(&infra);
    front_config.metrics.statsd.enabled = true;
    front_config.metrics.statsd.host = receiver.local_addr().unwrap().to_string();
    let front = Node::frontend(App::builder("connector"), front_config).await;
    let room = Node::backend(room(Arc::default()), config(&infra)).await;
    front.sees("room", 1).await;

    // The room type exists, so each of these goes to a room, which has no such
    // handler; one real route besides, which keeps its name.
    let mut client = front.client().await;
    let mut sent = 0;
    for _ in 0..20 {
        sent += 1;
        let n = fastrand::u64(..);
        let route = format!("room.h{n}.m{n}");
        client.request(sent, &route, b"{}").await.unwrap();
        let answer = client.recv_response().await.unwrap();
        assert!(answer.error, "{route} answered");
    }
    sent += 1;
    client.request(sent, "room.room.echo", b"{}").await.unwrap();
    assert!(!client.recv_response().await.unwrap().error);

    let front_addr = front.handle.metrics_addr().unwrap();
    let s = scrape_until(front_addr, "every answer", |s| {
        s.sum(RESPONSES, &[("type", "handler")]) == sent as f64
    })
    .await;
    let expected: std::collections::BTreeSet<String> =
        ["room.room.echo", "unknown"].map(str::to_owned).into();
    for family in [
        RESPONSES,
        "pitaya_handler_response_time_ns_count",
        "pitaya_handler_handler_delay_ns_count",
    ] {
        assert_eq!(s.label_values(family, "route"), expected, "{family}");
    }
    let unknown = [("route", "unknown"), ("type", "remote")];
    let delays = s.sum("pitaya_handler_handler_delay_ns_count", &unknown);
    assert_eq!(delays, (sent - 1) as f64);

    let lines = statsd_until(&receiver, |lines| {
        let answers = lines
            .iter()
            .filter(|l| l.starts_with("pitaya.response_time_ns:") && l.contains("type:handler"));
        answers.count() == sent as usize
    })
    .await;
    assert_eq!(statsd_routes(&lines), expected, "{lines:#?}");
    room.stop().await;
    front.stop().await;
}

/// Returns `/readyz`'s status code and its `registered` field.
async fn readiness(addr: std::net::SocketAddr) -> (u16, Option<bool>) {
    let (code, body) = http_get(local(addr), "/readyz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    (code, body["registered"].as_bool())
}

#[tokio::test]
async fn readiness_reports_registered_as_discovery_loses_and_regains_etcd() {
    let mut infra = Infra::start();
    let front = Node::frontend(App::builder("connector"), config(&infra)).await;
    let addr = front.handle.metrics_addr().unwrap();
    assert_eq!(readiness(addr).await, (200, Some(true)));

    // Clients are still served from the cached list, so the server stays ready.
    infra.etcd.stop();
    cluster_support::wait_for("registered false", || async {
        readiness(addr).await.1 == Some(false)
    })
    .await;
    assert_eq!(readiness(addr).await, (200, Some(false)));
    assert!(!front.handle.health().registered);

    infra.etcd.restart().unwrap();
    cluster_support::wait_for("registered again", || async {
        readiness(addr).await == (200, Some(true))
    })
    .await;
}
