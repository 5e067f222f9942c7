//! Connection life: kick, request timeout, heartbeats and the watchdog, close, reconnect.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{next_event, Server, PATIENCE};
use pitaya::protocol::{
    HandshakeResponse, HandshakeResponseSys, Packet, PacketDecoder, PacketType,
};
use pitaya_client::{
    Client, ClientError, ConnectOptions, DisconnectReason, Event, HandshakeError, ReconnectConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

#[tokio::test]
async fn kick_is_reported_as_its_own_event_then_disconnect() {
    let server = Server::start().await;
    let client = Client::connect(&server.url("tcp")).await.unwrap();
    let mut events = client.events();

    client.notify("room.test.kick", &json!({})).await.unwrap();

    assert!(matches!(next_event(&mut events).await, Event::Kicked));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected(DisconnectReason::Kicked)
    ));
    // A kick never reconnects, so the stream ends.
    assert!(timeout(PATIENCE, events.recv()).await.unwrap().is_none());
    assert!(!client.is_connected());
    let err = client
        .request::<_, Value>("room.test.echo", &1)
        .await
        .unwrap_err();
    assert!(err.is_disconnected(), "{err:?}");
}

#[tokio::test]
async fn slow_request_times_out_with_the_client_code_and_the_late_answer_is_ignored() {
    let mut server = Server::start().await;
    let client = Client::connect(&server.url("tcp")).await.unwrap();

    let impatient = client.with_timeout(Duration::from_millis(200));
    let err = impatient
        .request::<_, Value>("room.test.slow", &json!("late"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.code(), Some("PIT-504"));
    match &err {
        ClientError::Timeout { route, timeout } => {
            assert_eq!(route, "room.test.slow");
            assert_eq!(*timeout, Duration::from_millis(200));
        }
        other => panic!("unexpected {other:?}"),
    }

    // The handler did run; let it answer now, after the client gave up.
    timeout(PATIENCE, server.started.recv())
        .await
        .unwrap()
        .unwrap();
    server.release.notify_waiters();

    let echo: Value = client
        .request("room.test.echo", &json!("next"))
        .await
        .unwrap();
    assert_eq!(echo, json!("next"));
}

/// A server that handshakes with heartbeat 1 s, reports each packet the client sends
/// after the ack, and never sends anything itself.
async fn silent_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<PacketType>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut reader = PacketReader::default();
        assert_eq!(
            reader.next(&mut socket).await.unwrap().kind,
            PacketType::Handshake
        );
        let sys = HandshakeResponseSys {
            dict: Default::default(),
            heartbeat: Duration::from_secs(1),
            serializer: "json".into(),
        };
        let body = HandshakeResponse::accepted(sys).encode(false);
        let hello = Packet::new(PacketType::Handshake, body).to_bytes().unwrap();
        socket.write_all(&hello).await.unwrap();
        while let Some(packet) = reader.next(&mut socket).await {
            if tx.send(packet.kind).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

/// Reads whole packets from a socket.
#[derive(Default)]
struct PacketReader {
    decoder: PacketDecoder,
    buf: BytesMut,
}

impl PacketReader {
    async fn next(&mut self, socket: &mut TcpStream) -> Option<Packet> {
        loop {
            if let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            if socket.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn client_heartbeats_and_its_watchdog_reports_a_silent_server() {
    common::init_tracing();
    let (url, mut sent) = silent_server().await;
    let client = ConnectOptions::new()
        .watchdog_factor(2)
        .connect(&url)
        .await
        .unwrap();
    let mut events = client.events();

    let mut next_sent = async || timeout(PATIENCE, sent.recv()).await.unwrap().unwrap();
    assert_eq!(next_sent().await, PacketType::HandshakeAck);
    assert_eq!(next_sent().await, PacketType::Heartbeat);

    match next_event(&mut events).await {
        Event::Disconnected(DisconnectReason::HeartbeatTimeout { silent_for }) => {
            assert!(silent_for >= Duration::from_secs(2), "{silent_for:?}");
        }
        other => panic!("expected a heartbeat timeout, got {other:?}"),
    }
    assert!(!client.is_connected());
}

#[tokio::test]
async fn refused_handshake_is_a_handshake_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        PacketReader::default().next(&mut socket).await.unwrap();
        let sys = HandshakeResponseSys {
            dict: Default::default(),
            heartbeat: Duration::from_secs(30),
            serializer: "json".into(),
        };
        let body = HandshakeResponse::rejected(sys).encode(false);
        let no = Packet::new(PacketType::Handshake, body).to_bytes().unwrap();
        socket.write_all(&no).await.unwrap();
    });

    let err = Client::connect(&url).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Handshake(HandshakeError::Rejected(400))),
        "{err:?}"
    );
}

#[tokio::test]
async fn close_fails_pending_requests_and_ends_the_events() {
    let mut server = Server::start().await;
    let client = Client::connect(&server.url("ws")).await.unwrap();
    let mut events = client.events();
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.request::<_, Value>("room.test.slow", &1).await })
    };
    timeout(PATIENCE, server.started.recv())
        .await
        .unwrap()
        .unwrap();

    client.close().await;

    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected(DisconnectReason::ClientClosed)
    ));
    assert!(timeout(PATIENCE, events.recv()).await.unwrap().is_none());
    timeout(PATIENCE, client.closed()).await.unwrap();
}

#[tokio::test]
async fn reconnects_with_backoff_after_the_server_drops_the_connection() {
    let mut server = Server::start().await;
    let client = ConnectOptions::new()
        .reconnect(ReconnectConfig::default())
        .connect(&server.url("tcp"))
        .await
        .unwrap();
    let mut events = client.events();
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.request::<_, Value>("room.test.slow", &1).await })
    };
    timeout(PATIENCE, server.started.recv())
        .await
        .unwrap()
        .unwrap();

    client.notify("room.test.close", &json!({})).await.unwrap();

    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected(DisconnectReason::ServerClosed)
    ));
    let err = in_flight.await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
    match next_event(&mut events).await {
        Event::Reconnecting { attempt, delay } => {
            assert_eq!((attempt, delay), (1, Duration::from_millis(100)));
        }
        other => panic!("expected a reconnect attempt, got {other:?}"),
    }
    assert!(matches!(next_event(&mut events).await, Event::Reconnected));
    assert!(client.is_connected());

    // The new session works, and is a new session: the nick can join again.
    let reply: Value = client
        .request("room.room.join", &json!({ "name": "again" }))
        .await
        .unwrap();
    assert_eq!(reply, json!({ "code": 0, "result": "success" }));
}

#[tokio::test]
async fn reconnect_gives_up_after_its_attempts() {
    let server = Server::start().await;
    let mut cfg = ReconnectConfig::default();
    cfg.initial_delay = Duration::from_millis(10);
    cfg.max_attempts = Some(2);
    let client = ConnectOptions::new()
        .reconnect(cfg)
        .connect(&server.url("tcp"))
        .await
        .unwrap();
    let mut events = client.events();
    // With the server gone, every attempt fails.
    drop(server);

    let mut attempts = Vec::new();
    while let Some(event) = timeout(PATIENCE, events.recv()).await.unwrap() {
        if let Event::Reconnecting { attempt, .. } = event {
            attempts.push(attempt);
        }
    }
    assert_eq!(attempts, [1, 2]);
    assert!(!client.is_connected());
}
