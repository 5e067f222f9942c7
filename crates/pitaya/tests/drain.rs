//! Session draining on a real app (spec 14.6): once a drain starts, new clients are
//! refused and `/readyz` answers 503, the connected clients are served until they
//! leave, those left at `pitaya.session.drain.timeout` are closed, and the app exits.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{builder, call_ok, config, Server};
use pitaya::Config;
use pitaya_test_support::RawClient;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(10);

/// Returns the test config with draining on, up to `timeout`, and the health endpoint
/// on a free port.
fn draining(timeout: Duration) -> Config {
    let mut cfg = config();
    cfg.session.drain.enabled = true;
    cfg.session.drain.timeout = timeout;
    cfg.health.enabled = true;
    cfg.health.port = 0;
    cfg
}

/// Returns once the app reports the drain, listeners closed.
async fn wait_draining(server: &Server) {
    let polled = async {
        while !server.handle.health().draining {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(LIMIT, polled)
        .await
        .expect("the drain starts");
}

/// Asserts that a connection to `addr` is refused: its listener is closed.
async fn refused(addr: SocketAddr) {
    assert!(
        RawClient::tcp(addr).await.is_err(),
        "{addr} still listens while draining"
    );
}

#[tokio::test]
async fn a_drain_refuses_new_clients_and_waits_for_the_connected_ones() {
    let mut server = Server::start(builder().config(draining(Duration::from_secs(3600)))).await;
    let mut tcp = server.client().await;
    let mut ws = RawClient::ws(server.ws).await.unwrap();
    ws.handshake().await.unwrap();
    let run = server.take_run();

    server.handle.drain();
    wait_draining(&server).await;
    assert!(server.handle.is_draining());
    refused(server.tcp).await;
    refused(server.ws).await;

    // Whoever is connected is still served, and the app waits for them.
    assert_eq!(call_ok(&mut tcp, 1, "svc.echo", json!(1)).await, json!(1));
    assert_eq!(call_ok(&mut ws, 1, "svc.echo", json!(2)).await, json!(2));
    drop(tcp);
    assert_eq!(call_ok(&mut ws, 2, "svc.echo", json!(3)).await, json!(3));
    assert!(
        !run.is_finished(),
        "the app left with a client still connected"
    );
    assert!(!server.handle.is_shutting_down());

    drop(ws);
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("the app exits once the last client left")
        .unwrap();
    assert_eq!(server.handle.session_count(), 0);
}

#[tokio::test]
async fn clients_left_at_the_drain_timeout_are_closed() {
    let mut server = Server::start(builder().config(draining(Duration::from_millis(300)))).await;
    let mut client = server.client().await;
    let run = server.take_run();

    server.handle.drain();
    client.expect_closed().await.unwrap();
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("the app exits after the drain timeout")
        .unwrap();
}

#[tokio::test]
async fn shutdown_during_a_drain_cuts_it_short() {
    let mut server = Server::start(builder().config(draining(Duration::from_secs(3600)))).await;
    let mut client = server.client().await;
    let run = server.take_run();

    server.handle.drain();
    wait_draining(&server).await;
    server.handle.shutdown();
    client.expect_closed().await.unwrap();
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("shutdown ends the drain")
        .unwrap();
}

#[tokio::test]
async fn without_draining_enabled_a_drain_is_a_shutdown() {
    let mut server = Server::start(builder()).await;
    let mut client = server.client().await;
    let run = server.take_run();

    server.handle.drain();
    assert!(server.handle.is_shutting_down());
    client.expect_closed().await.unwrap();
    tokio::time::timeout(LIMIT, run).await.unwrap().unwrap();
}

#[cfg(feature = "health")]
#[tokio::test]
async fn readiness_answers_503_while_draining_and_liveness_200() {
    use pitaya_test_support::http_get;
    use serde_json::Value;

    let server = Server::start(builder().config(draining(Duration::from_secs(3600)))).await;
    let addr = server.handle.health_addr().expect("health served");
    let addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let _client = server.client().await;
    let ready = async {
        while http_get(addr, "/readyz").await.map(|r| r.0).ok() != Some(200) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(LIMIT, ready).await.expect("ready");

    server.handle.drain();
    wait_draining(&server).await;
    let (code, body) = http_get(addr, "/readyz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["draining"], true);
    assert_eq!(body["shutting_down"], false);
    let (code, body) = http_get(addr, "/healthz").await.unwrap();
    assert_eq!(code, 200, "alive while draining: {body}");
}
