//! Servers for the suite to check: the chat example on ephemeral ports, and a small
//! server that gets two things wrong on purpose.

#![allow(dead_code)] // Each test file uses its own part of this.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use pitaya::acceptor::{TcpAcceptor, WsAcceptor};
use pitaya::protocol::{
    ErrorPayload, HandshakeResponse, HandshakeResponseSys, Message, MessageType, Packet,
    PacketDecoder, PacketType, RouteDict,
};
use pitaya::{AppHandle, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Heartbeat interval of the chat under test: short, so idle checks end quickly.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long the suite waits for one event; generous, since only failures wait it out.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// A chat app on 127.0.0.1 with a TCP and a WebSocket acceptor; shut down on drop.
pub(crate) struct Chat {
    pub(crate) tcp: String,
    pub(crate) ws: String,
    app: AppHandle,
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.app.shutdown();
    }
}

impl Chat {
    /// Returns the chat example running with `config`.
    pub(crate) async fn start(config: Config) -> Chat {
        let tcp = TcpAcceptor::bind("127.0.0.1:0").await.expect("bind tcp");
        let ws = WsAcceptor::bind("127.0.0.1:0").await.expect("bind ws");
        let builder = chat::builder(config).acceptor(tcp).acceptor(ws);
        let app = chat::build(builder).await.expect("chat app builds");
        let addr = |name: &str| {
            app.local_addrs()
                .into_iter()
                .find(|(t, _)| *t == name)
                .map(|(_, a)| a.to_string())
                .expect("acceptor is listening")
        };
        let (tcp, ws) = (addr("tcp"), addr("ws"));
        let handle = app.handle();
        tokio::spawn(app.run_until(std::future::pending()));
        Chat {
            tcp,
            ws,
            app: handle,
        }
    }

    /// Returns a suite config aimed at both acceptors.
    pub(crate) fn suite(&self) -> pitaya_conformance::Config {
        pitaya_conformance::Config {
            tcp: Some(self.tcp.clone()),
            ws: Some(self.ws.clone()),
            timeout: TIMEOUT,
            ..Default::default()
        }
    }
}

/// Returns the chat's config with a 1 s heartbeat and everything else at its default.
pub(crate) fn chat_config() -> Config {
    let mut config = Config::default();
    config.heartbeat.interval = HEARTBEAT;
    config
}

/// Returns a dictionary with the chat's routes and enough others that the handshake
/// answer is longer as JSON than compressed, so the server sends it compressed.
pub(crate) fn dictionary() -> BTreeMap<String, u16> {
    let chat = [
        "room.room.join",
        "room.room.message",
        "onMembers",
        "onNewUser",
        "onMessage",
    ];
    let mut dict: BTreeMap<String, u16> = (1..).zip(chat).map(|(c, r)| (r.into(), c)).collect();
    for n in 0..40u16 {
        dict.insert(format!("room.inventory.item{n}"), 100 + n);
    }
    dict
}

/// A TCP server that handshakes correctly, then answers every request with the id
/// after the right one and never sends a heartbeat.
pub(crate) struct WrongServer {
    pub(crate) addr: String,
}

impl WrongServer {
    /// Returns the server, listening on an ephemeral port; it stops with the runtime.
    pub(crate) async fn start() -> WrongServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_wrongly(stream));
            }
        });
        WrongServer { addr }
    }
}

async fn serve_wrongly(mut stream: TcpStream) {
    let mut decoder = PacketDecoder::new();
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(packet)) = decoder.decode(&mut buf) {
            let Some(reply) = wrong_reply(&packet) else {
                continue;
            };
            if stream.write_all(&reply).await.is_err() {
                return;
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Returns the bytes the wrong server sends back for `packet`, if any.
fn wrong_reply(packet: &Packet) -> Option<Vec<u8>> {
    let body = match packet.kind {
        PacketType::Handshake => {
            let sys = HandshakeResponseSys {
                dict: BTreeMap::new(),
                heartbeat: HEARTBEAT,
                serializer: "json".into(),
            };
            let answer = HandshakeResponse::accepted(sys).encode(false);
            return Some(
                Packet::new(PacketType::Handshake, answer)
                    .to_bytes()
                    .ok()?
                    .to_vec(),
            );
        }
        PacketType::Data => Message::decode(&packet.body, &RouteDict::empty(), 1 << 20).ok()?,
        _ => return None,
    };
    if body.kind != MessageType::Request {
        return None;
    }
    let error = ErrorPayload::new("PIT-404", "nothing here").to_json();
    // The deliberate mistake: the id of the next request, not of this one.
    let reply = Message::error_response(body.id + 1, error);
    let bytes = reply.to_bytes(&RouteDict::empty(), false).ok()?;
    Some(
        Packet::new(PacketType::Data, bytes)
            .to_bytes()
            .ok()?
            .to_vec(),
    )
}
