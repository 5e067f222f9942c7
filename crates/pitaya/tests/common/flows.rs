//! The main client flows, run over each transport by `ws.rs` and `tls.rs`.

use std::time::{Duration, Instant};

use pitaya::protocol::{MessageType, Packet, PacketType};
use pitaya_test_support::{json, RawClient};
use serde_json::json;

use super::{call, call_ok, error_of, Server};

/// A client transport.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Via {
    Ws,
    Tls,
    Wss,
}

/// Returns a connected client, not yet handshaken; `ca_pem` is trusted for TLS.
pub(crate) async fn connect(server: &Server, via: Via, ca_pem: &str) -> RawClient {
    let ca = ca_pem.as_bytes();
    match via {
        Via::Ws => RawClient::ws(server.ws).await,
        Via::Tls => RawClient::tls(server.tls.expect("tls acceptor"), "localhost", ca).await,
        Via::Wss => RawClient::wss(server.wss.expect("wss acceptor"), "localhost", ca).await,
    }
    .unwrap()
}

/// Handshake answered 200, requests answered by id, errors answered with their code.
pub(crate) async fn handshake_and_requests(server: &Server, via: Via, ca_pem: &str) {
    let mut c = connect(server, via, ca_pem).await;
    let hs = c.handshake().await.unwrap();
    assert_eq!((hs.code, hs.sys.serializer.as_str()), (200, "json"));

    assert_eq!(
        call_ok(&mut c, 1, "svc.echo", json!({"a": 1})).await,
        json!({"a": 1})
    );
    assert_eq!(
        call_ok(&mut c, 300, "svc.typed", json!({"name": "x"})).await,
        json!("hello, x")
    );
    let big = call_ok(&mut c, 20_000, "svc.big", json!(2000)).await;
    assert_eq!(big, json!("abc".repeat(2000)));
    let resp = call(&mut c, 2, "svc.nope", json!(null)).await;
    assert_eq!(error_of(&resp).code, "PIT-404");
    assert_eq!(
        call_ok(&mut c, 3, "svc.get", json!("ipversion")).await,
        json!("ipv4")
    );
}

/// A notify's handler pushes back; a request's handler pushes before it answers.
pub(crate) async fn notify_and_push(server: &Server, via: Via, ca_pem: &str) {
    let mut c = connect(server, via, ca_pem).await;
    c.handshake().await.unwrap();

    c.notify("svc.notify", b"[1,2]").await.unwrap();
    let push = c.recv_message().await.unwrap();
    assert_eq!(
        (push.kind, push.route.as_str()),
        (MessageType::Push, "svc.pushed")
    );
    assert_eq!(json(&push), json!([1, 2]));

    c.request(4, "svc.push", b"").await.unwrap();
    let push = c.recv_message().await.unwrap();
    assert_eq!(
        (push.kind, json(&push)),
        (MessageType::Push, json!({"hello": "world"}))
    );
    let resp = c.recv_message().await.unwrap();
    assert_eq!((resp.kind, resp.id), (MessageType::Response, 4));
}

/// A kick is the kick packet, then the close.
pub(crate) async fn kick(server: &Server, via: Via, ca_pem: &str) {
    let mut c = connect(server, via, ca_pem).await;
    c.handshake().await.unwrap();

    c.notify("svc.kick", b"").await.unwrap();
    let seen: Vec<Packet> = c
        .expect_closed()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.kind != PacketType::Heartbeat)
        .collect();
    assert_eq!(seen, vec![Packet::kick()]);
}

/// Heartbeats arrive every interval while we answer them; a silent client is closed.
///
/// The server must run with a heartbeat interval of `interval`.
pub(crate) async fn heartbeats(server: &Server, via: Via, ca_pem: &str, interval: Duration) {
    let mut alive = connect(server, via, ca_pem).await;
    assert_eq!(alive.handshake().await.unwrap().sys.heartbeat, interval);
    let mut silent = connect(server, via, ca_pem).await;
    // Taken before the ack leaves, so the server saw our last packet after this instant.
    let silent_since = Instant::now();
    silent.handshake().await.unwrap();

    for _ in 0..4 {
        let p = alive.recv_packet().await.unwrap().expect("open");
        assert_eq!(p.kind, PacketType::Heartbeat);
        alive.send_packet(PacketType::Heartbeat, &[]).await.unwrap();
    }
    let seen = silent.expect_closed().await.unwrap();
    assert!(
        seen.iter().all(|p| p.kind == PacketType::Heartbeat),
        "{seen:?}"
    );
    // A lower bound only: the server may not drop us before two silent intervals.
    assert!(silent_since.elapsed() > interval * 2);
    assert_eq!(call_ok(&mut alive, 1, "svc.echo", json!(1)).await, json!(1));
}
