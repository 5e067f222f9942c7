//! The main flows over WebSocket: handshake, requests, pushes, kick, heartbeats.

mod common;

use std::time::Duration;

use common::flows::{self, Via};
use common::{builder, call_ok, Server};
use pitaya::protocol::PacketType;
use pitaya_test_support::RawClient;
use serde_json::json;

#[tokio::test]
async fn ws_handshake_and_requests() {
    let server = Server::start(builder()).await;
    flows::handshake_and_requests(&server, Via::Ws, "").await;
}

#[tokio::test]
async fn ws_notify_and_push() {
    let server = Server::start(builder()).await;
    flows::notify_and_push(&server, Via::Ws, "").await;
}

#[tokio::test]
async fn ws_kick() {
    let server = Server::start(builder()).await;
    flows::kick(&server, Via::Ws, "").await;
}

#[tokio::test]
async fn ws_heartbeats_and_idle_close() {
    let interval = Duration::from_millis(200);
    let mut config = common::config();
    config.heartbeat.interval = interval;
    let server = Server::start(builder().config(config)).await;
    flows::heartbeats(&server, Via::Ws, "", interval).await;
}

#[tokio::test]
async fn ws_and_tcp_clients_share_sessions_and_pushes() {
    let server = Server::start(builder()).await;
    let mut ws = RawClient::ws(server.ws).await.unwrap();
    ws.handshake().await.unwrap();
    let mut tcp = server.client().await;
    common::bind(&mut ws, 1, "web").await;

    let failed = server
        .handle
        .push_to_users("news", json!("hi"), &["web".to_string()], "")
        .await
        .unwrap();
    assert!(failed.is_empty());
    let push = ws.recv_push("news").await.unwrap();
    assert_eq!(pitaya_test_support::json(&push), json!("hi"));
    assert_eq!(
        call_ok(&mut tcp, 1, "svc.echo", json!("tcp")).await,
        json!("tcp")
    );
}

#[tokio::test]
async fn ws_handshake_before_anything_else_is_required() {
    let server = Server::start(builder()).await;
    let mut ws = RawClient::ws(server.ws).await.unwrap();

    ws.request(1, "svc.echo", b"1").await.unwrap();
    let seen = ws.expect_closed().await.unwrap();
    assert!(
        seen.iter().all(|p| p.kind == PacketType::Heartbeat),
        "{seen:?}"
    );
}
