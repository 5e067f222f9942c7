//! The reader task of a connection: packets off the socket, heartbeats answered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use pitaya_protocol::{Packet, PacketDecoder, PacketType};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{Event, Writer, Ws};

const HEARTBEAT: [u8; 4] = [PacketType::Heartbeat as u8, 0, 0, 0];

/// The reader's way to answer heartbeats through the shared writer.
pub(super) struct HeartbeatAnswer {
    pub(super) writer: Arc<Mutex<Writer>>,
    pub(super) enabled: Arc<AtomicBool>,
}

impl HeartbeatAnswer {
    /// Forwards `p`, answering it first if it is a heartbeat; false once nobody listens.
    async fn deliver(&self, p: Packet, tx: &mpsc::UnboundedSender<Event>) -> bool {
        if p.kind == PacketType::Heartbeat && self.enabled.load(Ordering::SeqCst) {
            // A failed answer shows up as a close on the read side soon enough.
            let _ = self.writer.lock().await.write(&HEARTBEAT).await;
        }
        tx.send(Event::Packet(p)).is_ok()
    }
}

/// Reads packets off a TCP stream until it ends or carries something that is no packet.
pub(super) async fn read_tcp(
    mut read: OwnedReadHalf,
    tx: mpsc::UnboundedSender<Event>,
    hb: HeartbeatAnswer,
) {
    let mut decoder = PacketDecoder::new();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(p)) => {
                    if !hb.deliver(p, &tx).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Event::Invalid(format!("the server sent a bad packet: {e}")));
                    return;
                }
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            // A reset is how many servers close a connection they gave up on.
            _ => {
                let _ = tx.send(Event::Closed);
                return;
            }
        }
    }
}

/// Reads one packet per WebSocket message until the socket closes or breaks the rule.
pub(super) async fn read_ws(
    mut stream: SplitStream<Ws>,
    tx: mpsc::UnboundedSender<Event>,
    hb: HeartbeatAnswer,
) {
    while let Some(msg) = stream.next().await {
        let event = match msg {
            Ok(WsMessage::Binary(b)) => match Packet::decode_exact(&b) {
                Ok(p) => {
                    if !hb.deliver(p, &tx).await {
                        return;
                    }
                    continue;
                }
                Err(e) => Event::Invalid(format!(
                    "a WebSocket message is not exactly one packet (spec 1.6): {e}"
                )),
            },
            Ok(WsMessage::Text(_)) => {
                Event::Invalid("the server sent a text message; packets go as binary".into())
            }
            Ok(WsMessage::Close(_)) | Err(_) => Event::Closed,
            Ok(_) => continue,
        };
        let _ = tx.send(event);
        return;
    }
    let _ = tx.send(Event::Closed);
}
