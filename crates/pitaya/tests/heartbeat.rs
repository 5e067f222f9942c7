//! Heartbeats and timeouts (spec 3 and 2.5): server heartbeats, dropping silent
//! clients, the handshake timeout.

mod common;

use std::time::{Duration, Instant};

use common::{builder, call_ok, Server};
use pitaya::protocol::{MessageType, PacketType};
use pitaya_test_support::RawClient;
use serde_json::json;

const INTERVAL: Duration = Duration::from_millis(200);

async fn server_with_heartbeat() -> Server {
    let mut config = common::config();
    config.heartbeat.interval = INTERVAL;
    Server::start(builder().config(config)).await
}

async fn server_with_handshake_timeout() -> Server {
    let mut config = common::config();
    config.conn.handshake_timeout = Duration::from_millis(300);
    Server::start(builder().config(config)).await
}

#[tokio::test]
async fn server_sends_a_heartbeat_every_interval() {
    let server = server_with_heartbeat().await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    let hs = client.handshake().await.unwrap();
    assert_eq!(hs.sys.heartbeat, INTERVAL);

    for _ in 0..5 {
        let packet = client.recv_packet().await.unwrap().expect("still open");
        assert_eq!(packet.kind, PacketType::Heartbeat);
        assert!(packet.body.is_empty());
        // Answering keeps us alive, as libpitaya's own heartbeat would.
        client
            .send_packet(PacketType::Heartbeat, &[])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn silent_client_is_closed_after_two_intervals_without_a_kick() {
    let server = server_with_heartbeat().await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    // Taken before the ack leaves, so the server saw our last packet after this instant.
    let last_sent = Instant::now();
    client.handshake().await.unwrap();

    let seen = client.expect_closed().await.unwrap();
    assert!(
        seen.iter().all(|p| p.kind == PacketType::Heartbeat),
        "only heartbeats, no kick: {seen:?}"
    );
    // A lower bound only, which slowness cannot break: the server may not give up on
    // us before two whole intervals passed since our last packet.
    assert!(last_sent.elapsed() > INTERVAL * 2);
}

#[tokio::test]
async fn client_sending_only_requests_is_not_closed() {
    let server = server_with_heartbeat().await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    client.handshake().await.unwrap();

    // Paced by the server's own heartbeats: one request per interval, never a heartbeat,
    // for eight intervals, four times the idle limit.
    let mut next_id = 1;
    let mut heartbeats = 0;
    let mut answered = 0;
    while heartbeats < 8 {
        let packet = client.recv_packet().await.unwrap().expect("not closed");
        match packet.kind {
            PacketType::Heartbeat => {
                heartbeats += 1;
                client.request(next_id, "svc.echo", b"1").await.unwrap();
                next_id += 1;
            }
            PacketType::Data => answered += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    while answered < next_id - 1 {
        client.recv_response().await.unwrap();
        answered += 1;
    }
    let resp = call_ok(&mut client, 1000, "svc.echo", json!("alive")).await;
    assert_eq!(resp, json!("alive"));
}

#[tokio::test]
async fn heartbeats_alone_keep_a_client_open() {
    let server = server_with_heartbeat().await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    client.handshake().await.unwrap();

    for _ in 0..8 {
        let packet = client.recv_packet().await.unwrap().expect("not closed");
        assert_eq!(packet.kind, PacketType::Heartbeat);
        client
            .send_packet(PacketType::Heartbeat, &[])
            .await
            .unwrap();
    }
    let msg = common::call(&mut client, 1, "svc.echo", json!(1)).await;
    assert_eq!(msg.kind, MessageType::Response);
}

#[tokio::test]
async fn client_that_never_handshakes_is_closed_by_the_handshake_timeout() {
    let server = server_with_handshake_timeout().await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();

    // The heartbeat interval is 30 s: only the handshake timeout can close us this soon.
    let seen = client.expect_closed().await.unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn client_that_never_acks_is_closed_by_the_handshake_timeout() {
    let server = server_with_handshake_timeout().await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    let resp = client
        .handshake_only(&pitaya_test_support::default_handshake())
        .await
        .unwrap();
    assert_eq!(resp.code, 200);

    let seen = client.expect_closed().await.unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn handshake_timeout_spares_a_client_that_completed_the_handshake() {
    let server = server_with_handshake_timeout().await;
    let mut done = server.client().await;

    // Connected later, so timed out later: once it is closed, `done` has outlived
    // its own handshake deadline.
    let mut idle = RawClient::tcp(server.tcp).await.unwrap();
    idle.expect_closed().await.unwrap();

    let resp = call_ok(&mut done, 1, "svc.echo", json!("still here")).await;
    assert_eq!(resp, json!("still here"));
}
