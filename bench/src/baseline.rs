//! The raw baseline: the smallest tokio server speaking the same Pitaya packets.
//!
//! One reader task and one writer task per connection, a bounded queue between them,
//! one socket write per queued packet. Routes are matched by string, bodies echoed as
//! bytes, the group is a list of queues, and the relay route forwards the body to a
//! NATS responder with a plain request. Whatever pitaya-rs does beyond this is the
//! framework's overhead.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Args;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{HandshakeResponse, HandshakeResponseSys, Packet, PacketDecoder, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::load::{BROADCAST, COUNT, ECHO, JOIN, NOTIFY, ON_BCAST, REMOTE_ECHO};
use crate::wire::{self, KIND_NOTIFY, KIND_REQUEST};

/// NATS subject of the relay's responder.
pub(crate) const RELAY_SUBJECT: &str = "bench.echo";

/// Packets queued per connection, as `pitaya.buffer.agent.messages` defaults to.
const QUEUE: usize = 100;

/// Command line of `pitaya-bench baseline`.
#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// TCP listen address.
    #[arg(long)]
    tcp: SocketAddr,
    /// WebSocket listen address.
    #[arg(long)]
    ws: SocketAddr,
    /// Heartbeat interval, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat: u64,
    /// NATS server for the relay route.
    #[arg(long)]
    nats: Option<String>,
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    handshake: Bytes,
    heartbeat: Duration,
    notifies: AtomicU64,
    group: Mutex<Vec<mpsc::Sender<Bytes>>>,
    nats: Option<async_nats::Client>,
}

/// Runs the baseline server until killed.
pub(crate) async fn run(args: BaselineArgs) -> io::Result<()> {
    let heartbeat = Duration::from_secs(args.heartbeat);
    let sys = HandshakeResponseSys {
        dict: Default::default(),
        heartbeat,
        serializer: "json".into(),
    };
    let body = HandshakeResponse::accepted(sys).encode(false);
    let nats = match &args.nats {
        Some(url) => Some(async_nats::connect(url).await.map_err(io::Error::other)?),
        None => None,
    };
    let shared = Arc::new(Shared {
        handshake: Bytes::from(wire::packet(PacketType::Handshake, &body)),
        heartbeat,
        notifies: AtomicU64::new(0),
        group: Mutex::new(Vec::new()),
        nats,
    });
    let tcp = TcpListener::bind(args.tcp).await?;
    let ws = TcpListener::bind(args.ws).await?;
    let ws_shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = ws.accept().await else {
                continue;
            };
            let shared = ws_shared.clone();
            tokio::spawn(async move {
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(0);
                let _ = stream.set_nodelay(true);
                let accepted = tokio_tungstenite::accept_async_with_config(stream, Some(config));
                if let Ok(ws) = accepted.await {
                    let (sink, stream) = ws.split();
                    serve(Reader::Ws(stream), Writer::Ws(sink), shared).await;
                }
            });
        }
    });
    loop {
        let Ok((stream, _)) = tcp.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let reader = Reader::Tcp(r, BytesMut::with_capacity(4096), PacketDecoder::new());
        tokio::spawn(serve(reader, Writer::Tcp(w), shared.clone()));
    }
}

/// Read side of a connection.
enum Reader {
    Tcp(OwnedReadHalf, BytesMut, PacketDecoder),
    Ws(SplitStream<WebSocketStream<TcpStream>>),
}

impl Reader {
    /// Returns the next packet; cancel safe.
    async fn next(&mut self) -> Option<Packet> {
        match self {
            Reader::Tcp(r, buf, decoder) => loop {
                if let Some(p) = decoder.decode(buf).ok()? {
                    return Some(p);
                }
                if r.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            },
            Reader::Ws(s) => loop {
                match s.next().await? {
                    Ok(WsMessage::Binary(data)) => return Packet::decode_exact(&data).ok(),
                    Ok(WsMessage::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            },
        }
    }
}

/// Write side of a connection.
enum Writer {
    Tcp(OwnedWriteHalf),
    Ws(SplitSink<WebSocketStream<TcpStream>, WsMessage>),
}

impl Writer {
    /// Writes each queued packet with one write of its own.
    async fn drain(mut self, mut queue: mpsc::Receiver<Bytes>) {
        while let Some(packet) = queue.recv().await {
            let sent = match &mut self {
                Writer::Tcp(w) => w.write_all(&packet).await.is_ok(),
                Writer::Ws(s) => s.send(WsMessage::Binary(packet)).await.is_ok(),
            };
            if !sent {
                return;
            }
        }
    }
}

/// Serves one connection: handshake, heartbeats, routes.
async fn serve(mut reader: Reader, writer: Writer, shared: Arc<Shared>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(writer.drain(rx));
    let mut ticks = tokio::time::interval(shared.heartbeat);
    ticks.tick().await;
    let mut last_seen = Instant::now();
    loop {
        let packet = tokio::select! {
            p = reader.next() => p,
            _ = ticks.tick() => {
                if last_seen.elapsed() > shared.heartbeat * 2 {
                    return;
                }
                let hb = Bytes::from(wire::packet(PacketType::Heartbeat, &[]));
                if tx.send(hb).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Some(packet) = packet else { return };
        last_seen = Instant::now();
        let reply = match packet.kind {
            PacketType::Handshake => Some(shared.handshake.clone()),
            PacketType::Data => route(&packet.body, &tx, &shared),
            _ => None,
        };
        if let Some(reply) = reply {
            if tx.send(reply).await.is_err() {
                return;
            }
        }
    }
}

/// Handles one Data packet; returns the reply to queue, if any.
fn route(body: &[u8], tx: &mpsc::Sender<Bytes>, shared: &Arc<Shared>) -> Option<Bytes> {
    let msg = wire::parse(body)?;
    let mut out = BytesMut::new();
    match (msg.kind, msg.route) {
        (KIND_REQUEST, r) if r == ECHO.as_bytes() => wire::put_response(&mut out, msg.id, msg.body),
        (KIND_NOTIFY, r) if r == NOTIFY.as_bytes() => {
            shared.notifies.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        (KIND_REQUEST, r) if r == COUNT.as_bytes() => {
            let count = shared.notifies.load(Ordering::Relaxed);
            wire::put_response(
                &mut out,
                msg.id,
                format!(r#"{{"count":{count}}}"#).as_bytes(),
            );
        }
        (KIND_REQUEST, r) if r == JOIN.as_bytes() => {
            lock(&shared.group).push(tx.clone());
            wire::put_response(&mut out, msg.id, br#"{"code":0}"#);
        }
        (KIND_REQUEST, r) if r == BROADCAST.as_bytes() => {
            let mut push = BytesMut::new();
            wire::put_push(&mut push, ON_BCAST.as_bytes(), msg.body);
            let push = push.freeze();
            lock(&shared.group).retain(|member| member.try_send(push.clone()).is_ok());
            wire::put_response(&mut out, msg.id, br#"{"code":0}"#);
        }
        (KIND_REQUEST, r) if r == REMOTE_ECHO.as_bytes() => {
            relay(
                msg.id,
                Bytes::copy_from_slice(msg.body),
                tx.clone(),
                shared.clone(),
            );
            return None;
        }
        _ => return None,
    }
    Some(out.freeze())
}

/// Forwards a request body to the NATS responder and queues its answer.
fn relay(id: u64, body: Bytes, tx: mpsc::Sender<Bytes>, shared: Arc<Shared>) {
    tokio::spawn(async move {
        let Some(nats) = &shared.nats else { return };
        let Ok(answer) = nats.request(RELAY_SUBJECT, body).await else {
            return;
        };
        let mut out = BytesMut::new();
        wire::put_response(&mut out, id, &answer.payload);
        let _ = tx.send(out.freeze()).await;
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Answers every request on [`RELAY_SUBJECT`] with its own payload, until killed.
pub(crate) async fn nats_echo(url: &str) -> io::Result<()> {
    let client = async_nats::connect(url).await.map_err(io::Error::other)?;
    let mut sub = client
        .subscribe(RELAY_SUBJECT)
        .await
        .map_err(io::Error::other)?;
    while let Some(msg) = sub.next().await {
        if let Some(reply) = msg.reply {
            let _ = client.publish(reply, msg.payload).await;
        }
    }
    Ok(())
}
