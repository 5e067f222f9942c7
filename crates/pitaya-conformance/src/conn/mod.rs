//! A raw client connection: bytes go out exactly as a check writes them, packets come in.
//!
//! One task per connection reads from the socket, so the server's packets are taken
//! off the wire even while a check is busy elsewhere, and it answers the server's
//! heartbeats unless the check asked for silence, as a real client would (spec 3).
//! Writes share one lock, so a heartbeat answer never lands inside a packet that a
//! check is writing in pieces.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{
    HandshakeRequest, HandshakeResponse, HandshakeSys, Message, Packet, PacketType, RouteDict,
    MAX_BODY_LEN,
};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::ctx::{fail, Failure};

mod read;

use read::{read_tcp, read_ws, HeartbeatAnswer};

type Ws = WebSocketStream<TcpStream>;

/// Which of the server's listeners a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Tcp,
    Ws,
}

impl Via {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Via::Tcp => "TCP",
            Via::Ws => "WebSocket",
        }
    }
}

/// What the reader task saw on the connection.
#[derive(Debug)]
pub(crate) enum Event {
    Packet(Packet),
    /// The server closed the connection: end of stream, reset or WebSocket close.
    Closed,
    /// The server sent something that is not a packet; nothing more is read.
    Invalid(String),
}

enum Writer {
    Tcp(OwnedWriteHalf),
    Ws(SplitSink<Ws, WsMessage>),
}

impl Writer {
    /// Writes `bytes` in one write (TCP) or as one binary message (WebSocket).
    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Writer::Tcp(w) => w.write_all(bytes).await.map_err(|e| e.to_string()),
            Writer::Ws(w) => w
                .send(WsMessage::Binary(Bytes::copy_from_slice(bytes)))
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// One connection to the server under test; closed when dropped.
pub(crate) struct Conn {
    via: Via,
    writer: Arc<Mutex<Writer>>,
    events: mpsc::UnboundedReceiver<Event>,
    reader: JoinHandle<()>,
    answer_heartbeats: Arc<AtomicBool>,
    dict: RouteDict,
    wait: Duration,
    hello: Option<HandshakeResponse>,
    ended: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("via", &self.via).finish()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

// ===== impl Conn =====

impl Conn {
    /// Returns a TCP connection to `addr` (`host:port`).
    pub(crate) async fn tcp(addr: &str, wait: Duration) -> Result<Conn, Failure> {
        let stream = match timeout_at(deadline_in(wait), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => fail!("cannot connect to {addr} over TCP: {e}"),
            Err(_) => fail!("cannot connect to {addr} over TCP within {}", show(wait)),
        };
        // Each write a check makes should leave as it is, split or not.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Ok(Self::start(Via::Tcp, Writer::Tcp(write), wait, |tx, hb| {
            read_tcp(read, tx, hb)
        }))
    }

    /// Returns a WebSocket connection to `url` (`ws://host:port/path`) through `addr`.
    pub(crate) async fn ws(addr: &str, url: &str, wait: Duration) -> Result<Conn, Failure> {
        let connect = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (ws, _) = tokio_tungstenite::client_async(url, stream)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(ws)
        };
        let ws = match timeout_at(deadline_in(wait), connect).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => fail!("cannot open a WebSocket to {url}: {e}"),
            Err(_) => fail!("cannot open a WebSocket to {url} within {}", show(wait)),
        };
        let (sink, stream) = ws.split();
        Ok(Self::start(Via::Ws, Writer::Ws(sink), wait, |tx, hb| {
            read_ws(stream, tx, hb)
        }))
    }

    fn start<F, Fut>(via: Via, writer: Writer, wait: Duration, read: F) -> Conn
    where
        F: FnOnce(mpsc::UnboundedSender<Event>, HeartbeatAnswer) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let writer = Arc::new(Mutex::new(writer));
        let answer_heartbeats = Arc::new(AtomicBool::new(true));
        let (tx, events) = mpsc::unbounded_channel();
        let hb = HeartbeatAnswer {
            writer: writer.clone(),
            enabled: answer_heartbeats.clone(),
        };
        let reader = tokio::spawn(read(tx, hb));
        Conn {
            via,
            writer,
            events,
            reader,
            answer_heartbeats,
            dict: RouteDict::empty(),
            wait,
            hello: None,
            ended: false,
        }
    }

    /// Returns how long one expected event may take.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Returns the route dictionary the server sent in its handshake (empty before).
    pub(crate) fn dict(&self) -> &RouteDict {
        &self.dict
    }

    /// Returns the server's accepted handshake answer, once there is one.
    pub(crate) fn hello(&self) -> Option<&HandshakeResponse> {
        self.hello.as_ref()
    }

    /// Sets whether the reader answers each server heartbeat with one of ours.
    pub(crate) fn answer_heartbeats(&self, on: bool) {
        self.answer_heartbeats.store(on, Ordering::SeqCst);
    }

    // ----- writing -----

    /// Writes `bytes` as they are: one TCP write, or one binary WebSocket message.
    pub(crate) async fn send(&self, bytes: &[u8]) -> Result<(), Failure> {
        let mut writer = self.writer.lock().await;
        match writer.write(bytes).await {
            Ok(()) => Ok(()),
            Err(e) => fail!("write failed: {e}"),
        }
    }

    /// Writes `bytes` over TCP in pieces of `piece` bytes, one write each.
    pub(crate) async fn send_in_pieces(&self, bytes: &[u8], piece: usize) -> Result<(), Failure> {
        let mut writer = self.writer.lock().await;
        for chunk in bytes.chunks(piece.max(1)) {
            if let Err(e) = writer.write(chunk).await {
                fail!("write failed: {e}");
            }
        }
        Ok(())
    }

    /// Writes one packet.
    pub(crate) async fn send_packet(&self, kind: PacketType, body: &[u8]) -> Result<(), Failure> {
        self.send(&packet(kind, body)?).await
    }

    /// Returns the Data packet carrying `msg`, its route coded when the dictionary has it.
    pub(crate) fn data(&self, msg: &Message) -> Result<Bytes, Failure> {
        data_packet(msg, &self.dict)
    }

    /// Sends a Request.
    pub(crate) async fn request(&self, id: u64, route: &str, body: &[u8]) -> Result<(), Failure> {
        let msg = Message::request(id, route, Bytes::copy_from_slice(body));
        self.send(&self.data(&msg)?).await
    }

    /// Sends a Notify.
    pub(crate) async fn notify(&self, route: &str, body: &[u8]) -> Result<(), Failure> {
        let msg = Message::notify(route, Bytes::copy_from_slice(body));
        self.send(&self.data(&msg)?).await
    }

    // ----- reading -----

    /// Returns the next event before `deadline`, or `None` when nothing came in time.
    ///
    /// After the connection ended, every call returns [`Event::Closed`] at once.
    pub(crate) async fn event_by(&mut self, deadline: Instant) -> Option<Event> {
        if self.ended {
            return Some(Event::Closed);
        }
        let event = match timeout_at(deadline, self.events.recv()).await {
            Ok(Some(event)) => event,
            // The reader only stops after reporting why; a vanished reader is a close.
            Ok(None) => Event::Closed,
            Err(_) => return None,
        };
        if matches!(event, Event::Closed | Event::Invalid(_)) {
            self.ended = true;
        }
        Some(event)
    }

    /// Returns the next packet other than a heartbeat, arriving before `deadline`.
    pub(crate) async fn packet_by(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<Packet, Failure> {
        loop {
            match self.event_by(deadline).await {
                Some(Event::Packet(p)) if p.kind == PacketType::Heartbeat => continue,
                Some(Event::Packet(p)) => return Ok(p),
                Some(Event::Closed) => fail!("{what}: the server closed the connection"),
                Some(Event::Invalid(e)) => fail!("{what}: {e}"),
                None => fail!("{what}: nothing arrived within {}", show(self.wait)),
            }
        }
    }

    /// Returns the next Data message and whether its body came compressed.
    pub(crate) async fn message_by(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<(Message, bool), Failure> {
        let p = self.packet_by(deadline, what).await?;
        match p.kind {
            PacketType::Data => {}
            PacketType::Kick => fail!("{what}: the server kicked the client"),
            other => fail!("{what}: got a {other:?} packet"),
        }
        let compressed = p.body.first().is_some_and(|flag| flag & 0x10 != 0);
        match Message::decode(&p.body, &self.dict, MAX_BODY_LEN) {
            Ok(msg) => Ok((msg, compressed)),
            Err(e) => fail!("{what}: the server sent an invalid message: {e}"),
        }
    }

    /// Waits until the server closes the connection; returns what it sent until then,
    /// heartbeats left out.
    pub(crate) async fn closed_by(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<Vec<Packet>, Failure> {
        let mut seen = Vec::new();
        loop {
            match self.event_by(deadline).await {
                Some(Event::Packet(p)) if p.kind == PacketType::Heartbeat => {}
                Some(Event::Packet(p)) => seen.push(p),
                Some(Event::Closed) => return Ok(seen),
                Some(Event::Invalid(e)) => fail!("{what}: {e}"),
                None => fail!("{what}: the connection is still open"),
            }
        }
    }

    /// Waits (the usual time) until the server closes; see [`closed_by`](Self::closed_by).
    pub(crate) async fn closed(&mut self, what: &str) -> Result<Vec<Packet>, Failure> {
        let deadline = deadline_in(self.wait);
        self.closed_by(deadline, what).await
    }

    // ----- handshake -----

    /// Sends `body` as a handshake and returns the server's Handshake packet.
    pub(crate) async fn handshake_raw(&mut self, body: &[u8]) -> Result<Packet, Failure> {
        self.send_packet(PacketType::Handshake, body).await?;
        let deadline = deadline_in(self.wait);
        let p = self.packet_by(deadline, "handshake answer").await?;
        if p.kind != PacketType::Handshake {
            fail!("handshake answer: got a {:?} packet", p.kind);
        }
        Ok(p)
    }

    /// Sends the default handshake and returns the answer, which must accept (code 200).
    ///
    /// Does not send the ack.
    pub(crate) async fn handshake_only(&mut self) -> Result<HandshakeResponse, Failure> {
        let p = self.handshake_raw(&default_handshake()).await?;
        self.take_hello(&p)
    }

    /// Returns the handshake answer in `p`, which must accept (code 200), and keeps its
    /// dictionary for the messages that follow.
    pub(crate) fn take_hello(&mut self, p: &Packet) -> Result<HandshakeResponse, Failure> {
        let hello = match HandshakeResponse::decode(&p.body) {
            Ok(h) => h,
            Err(e) => fail!("handshake answer does not decode: {e}"),
        };
        if hello.code != 200 {
            fail!("handshake refused with code {}", hello.code);
        }
        self.dict = match RouteDict::new(hello.sys.dict.clone()) {
            Ok(d) => d,
            Err(e) => fail!("handshake dictionary is unusable: {e}"),
        };
        self.hello = Some(hello.clone());
        Ok(hello)
    }

    /// Completes the handshake: default request, code 200, then the ack.
    pub(crate) async fn handshake(&mut self) -> Result<HandshakeResponse, Failure> {
        let hello = self.handshake_only().await?;
        self.send_packet(PacketType::HandshakeAck, &[]).await?;
        Ok(hello)
    }
}

/// Returns the packet of type `kind` around `body`.
pub(crate) fn packet(kind: PacketType, body: &[u8]) -> Result<Bytes, Failure> {
    match Packet::new(kind, Bytes::copy_from_slice(body)).to_bytes() {
        Ok(b) => Ok(b),
        Err(e) => fail!("cannot encode the packet: {e}"),
    }
}

/// Returns the Data packet carrying `msg`, uncompressed, its route coded if `dict` has it.
pub(crate) fn data_packet(msg: &Message, dict: &RouteDict) -> Result<Bytes, Failure> {
    match msg.to_bytes(dict, false) {
        Ok(body) => packet(PacketType::Data, &body),
        Err(e) => fail!("cannot encode the message: {e}"),
    }
}

/// Returns the handshake JSON a libpitaya client sends by default (spec 2.1).
pub(crate) fn default_handshake() -> Vec<u8> {
    HandshakeRequest {
        sys: HandshakeSys {
            platform: "desktop".into(),
            lib_version: concat!("pitaya-conformance/", env!("CARGO_PKG_VERSION")).into(),
            client_build_number: "1".into(),
            client_version: "0.1".into(),
        },
        user: None,
    }
    .to_json()
}

/// Returns the instant `d` from now, or one decades away when `d` is past what the
/// clock can count (a `Config::timeout` of `u64::MAX` seconds must not panic).
pub(crate) fn deadline_in(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 60 * 60))
}

/// Returns `d` in the short human form used in reports (`5s`, `500ms`).
pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
