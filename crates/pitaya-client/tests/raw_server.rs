//! Against a raw scripted server: what the server sends right after the handshake, and
//! handshake answers no sane server sends.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::PATIENCE;
use pitaya::protocol::{Packet, PacketDecoder, PacketType};
use pitaya_client::{
    Client, ClientError, ConnectOptions, DisconnectReason, Event, HandshakeError, MIN_HEARTBEAT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// What the scripted server does once it has written what it was given.
#[derive(Clone, Copy, PartialEq)]
enum After {
    Close,
    /// Reads (and ignores) whatever comes until the client closes.
    StaySilent,
}

/// Returns the URL of a one-connection server that answers the handshake with
/// `hello` (raw JSON), waits for the ack, writes `then`, and then does `after`.
async fn scripted_server(hello: &str, then: Vec<u8>, after: After) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let hello = packet(PacketType::Handshake, hello.as_bytes());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut reader = PacketReader::default();
        assert_eq!(
            reader.next(&mut socket).await.unwrap().kind,
            PacketType::Handshake
        );
        socket.write_all(&hello).await.unwrap();
        // A client that refused the handshake sends no ack; that is fine here too.
        if reader.next(&mut socket).await.is_some() {
            let _ = socket.write_all(&then).await;
        }
        if after == After::StaySilent {
            while reader.next(&mut socket).await.is_some() {}
        }
    });
    url
}

fn packet(kind: PacketType, body: &[u8]) -> Vec<u8> {
    Packet::new(kind, body.to_vec())
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// Returns a Data packet with a push on `route` (uncompressed, route as text).
fn push(route: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![3 << 1, route.len() as u8];
    msg.extend_from_slice(route.as_bytes());
    msg.extend_from_slice(body);
    packet(PacketType::Data, &msg)
}

fn hello(heartbeat: &str) -> String {
    format!(r#"{{"code":200,"sys":{{"heartbeat":{heartbeat},"dict":{{}},"serializer":"json"}}}}"#)
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
async fn first_stream_sees_a_push_sent_right_after_the_handshake() {
    let url = scripted_server(
        &hello("30"),
        push("onWelcome", br#"{"hello":1}"#),
        After::Close,
    )
    .await;
    let client = Client::connect(&url).await.unwrap();
    // The push, and the close after it, are handled before anyone asks for events.
    timeout(PATIENCE, client.closed()).await.unwrap();

    let mut welcome = client.pushes("onWelcome");
    let push = timeout(PATIENCE, welcome.recv()).await.unwrap();
    assert_eq!(
        push.expect("the early push").body().as_ref(),
        br#"{"hello":1}"#
    );
    // Only the first stream starts at the handshake.
    assert!(client.events().recv().await.is_none());
}

#[tokio::test]
async fn first_stream_sees_why_the_connection_ended_before_connect_returned() {
    // A push whose route length (200) runs past the end of the message.
    let overrun = packet(PacketType::Data, &[3 << 1, 200, b'a', b'b']);
    let url = scripted_server(&hello("30"), overrun, After::Close).await;
    let client = Client::connect(&url).await.unwrap();
    timeout(PATIENCE, client.closed()).await.unwrap();

    let mut events = client.events();
    match timeout(PATIENCE, events.recv()).await.unwrap() {
        Some(Event::Disconnected(DisconnectReason::Error(e))) => {
            assert!(matches!(*e, ClientError::Protocol(_)), "{e:?}");
        }
        other => panic!("expected the disconnect, got {other:?}"),
    }
    assert!(events.recv().await.is_none());
}

#[tokio::test]
async fn absurdly_long_heartbeat_is_a_handshake_error() {
    for heartbeat in ["1e20", "86401"] {
        let url = scripted_server(&hello(heartbeat), Vec::new(), After::Close).await;
        let err = Client::connect(&url).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Handshake(HandshakeError::InvalidHeartbeat(_))
            ),
            "{heartbeat}: {err:?}"
        );
        assert!(err.to_string().contains("heartbeat"), "{err}");
    }
}

#[tokio::test]
async fn tiny_heartbeat_is_raised_to_the_minimum_for_heartbeats_and_watchdog() {
    // The server goes silent after the handshake, so only the watchdog ends it.
    let url = scripted_server(&hello("1e-9"), Vec::new(), After::StaySilent).await;
    let client = ConnectOptions::new()
        .watchdog_factor(2)
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(client.session().unwrap().heartbeat(), MIN_HEARTBEAT);

    let mut events = client.events();
    match timeout(PATIENCE, events.recv()).await.unwrap() {
        // Two minimum intervals of silence, not two nanoseconds.
        Some(Event::Disconnected(DisconnectReason::HeartbeatTimeout { silent_for })) => {
            assert!(silent_for >= MIN_HEARTBEAT * 2, "{silent_for:?}");
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
}

#[tokio::test]
async fn zero_heartbeat_turns_heartbeats_off() {
    let url = scripted_server(&hello("0"), Vec::new(), After::StaySilent).await;
    let client = Client::connect(&url).await.unwrap();
    assert_eq!(
        client.session().map(|s| s.heartbeat()),
        Some(Duration::ZERO)
    );
}
