//! Test helpers shared by the workspace's integration tests.
//!
//! [`RawClient`] speaks the Pitaya packet format over TCP or WebSocket, plain or on
//! TLS, with no opinion
//! of its own: it sends whatever bytes a test gives it, well-formed or not, and reads
//! back packets and messages. Every read is bounded by [`RawClient::timeout`], so a
//! test that waits for something that never comes fails instead of hanging.
//!
//! [`NatsServer`] and [`EtcdServer`] run the real `nats-server` and `etcd`
//! binaries on free loopback ports for cluster tests and kill them on drop.
//! `scripts/test.sh` installs both.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{
    HandshakeRequest, HandshakeResponse, HandshakeSys, Message, MessageType, Packet, PacketDecoder,
    PacketType, RouteDict,
};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

mod daemon;
mod etcd;
mod http;
mod nats;

pub use etcd::EtcdServer;
pub use http::http_get;
pub use nats::NatsServer;

/// Installs a test tracing subscriber once (honours `RUST_LOG`), so failures come with logs.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

enum Transport {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
    Tls(Box<TlsStream<TcpStream>>),
    Wss(Box<WebSocketStream<TlsStream<TcpStream>>>),
}

/// A client that sends raw packets and reads what the server answers.
pub struct RawClient {
    transport: Transport,
    decoder: PacketDecoder,
    buf: BytesMut,
    dict: RouteDict,
    /// How long any single read may wait (default 10 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient").finish_non_exhaustive()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "nothing arrived in time")
}

impl RawClient {
    /// Returns a client connected over TCP.
    pub async fn tcp(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::with(Transport::Tcp(stream)))
    }

    /// Returns a TCP client whose socket receive buffer is fixed at about `bytes`.
    ///
    /// Fixing it turns off the kernel's buffer autotuning (up to 32 MiB on loopback
    /// here), so a client that stops reading backs up into the server quickly.
    pub async fn tcp_with_recv_buffer(addr: SocketAddr, bytes: u32) -> io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::with(Transport::Tcp(stream)))
    }

    /// Returns a client connected over WebSocket (path `/`).
    pub async fn ws(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let url = format!("ws://{addr}/");
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(io::Error::other)?;
        Ok(Self::with(Transport::Ws(Box::new(ws))))
    }

    /// Returns a client connected over TLS, trusting only the PEM certificates in
    /// `ca_pem` and checking the server's certificate against `server_name`.
    pub async fn tls(addr: SocketAddr, server_name: &str, ca_pem: &[u8]) -> io::Result<Self> {
        let stream = tls_connect(addr, server_name, ca_pem).await?;
        Ok(Self::with(Transport::Tls(Box::new(stream))))
    }

    /// Returns a client connected over WebSocket on TLS (`wss://<server_name>/`), trusting
    /// only the PEM certificates in `ca_pem`.
    pub async fn wss(addr: SocketAddr, server_name: &str, ca_pem: &[u8]) -> io::Result<Self> {
        let stream = tls_connect(addr, server_name, ca_pem).await?;
        let url = format!("wss://{server_name}:{}/", addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(io::Error::other)?;
        Ok(Self::with(Transport::Wss(Box::new(ws))))
    }

    fn with(transport: Transport) -> Self {
        RawClient {
            transport,
            decoder: PacketDecoder::new(),
            buf: BytesMut::new(),
            dict: RouteDict::empty(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Returns the client's own address: the remote address the server sees.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.transport {
            Transport::Tcp(s) => s.local_addr(),
            Transport::Ws(ws) => ws.get_ref().local_addr(),
            Transport::Tls(s) => s.get_ref().0.local_addr(),
            Transport::Wss(ws) => ws.get_ref().get_ref().0.local_addr(),
        }
    }

    /// Writes `bytes` as they are: one write on TCP, one binary message on WebSocket.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.transport {
            Transport::Tcp(s) => s.write_all(bytes).await,
            Transport::Ws(ws) => ws_send(ws, bytes).await,
            Transport::Tls(s) => {
                // TLS buffers records: flush so the bytes leave now, as on plain TCP.
                s.write_all(bytes).await?;
                s.flush().await
            }
            Transport::Wss(ws) => ws_send(ws, bytes).await,
        }
    }

    /// Writes one packet.
    pub async fn send_packet(&mut self, kind: PacketType, body: &[u8]) -> io::Result<()> {
        let bytes = Packet::new(kind, Bytes::copy_from_slice(body))
            .to_bytes()
            .map_err(io::Error::other)?;
        self.send_raw(&bytes).await
    }

    /// Returns the encoded Data packet for `msg` (for tests that batch or split writes).
    pub fn data_packet(&self, msg: &Message, compress: bool) -> Bytes {
        let body = msg
            .to_bytes(&self.dict, compress)
            .expect("test message encodes");
        Packet::new(PacketType::Data, body)
            .to_bytes()
            .expect("test packet encodes")
    }

    /// Sends a libpitaya-style handshake, checks the 200 answer, sends the ack.
    pub async fn handshake(&mut self) -> io::Result<HandshakeResponse> {
        let resp = self.handshake_only(&default_handshake()).await?;
        if resp.code != 200 {
            return Err(io::Error::other(format!(
                "handshake refused: {}",
                resp.code
            )));
        }
        self.dict = RouteDict::new(resp.sys.dict.clone()).map_err(io::Error::other)?;
        self.send_packet(PacketType::HandshakeAck, &[]).await?;
        Ok(resp)
    }

    /// Sends `req` as a handshake and returns the server's answer, without acking.
    pub async fn handshake_only(
        &mut self,
        req: &HandshakeRequest,
    ) -> io::Result<HandshakeResponse> {
        self.send_packet(PacketType::Handshake, &req.to_json())
            .await?;
        let packet = self.recv_packet_skipping_heartbeats().await?;
        if packet.kind != PacketType::Handshake {
            return Err(io::Error::other(format!(
                "expected handshake, got {:?}",
                packet.kind
            )));
        }
        HandshakeResponse::decode(&packet.body).map_err(io::Error::other)
    }

    /// Sends a request.
    pub async fn request(&mut self, id: u64, route: &str, body: &[u8]) -> io::Result<()> {
        let msg = Message::request(id, route, Bytes::copy_from_slice(body));
        let bytes = self.data_packet(&msg, false);
        self.send_raw(&bytes).await
    }

    /// Sends a notify.
    pub async fn notify(&mut self, route: &str, body: &[u8]) -> io::Result<()> {
        let msg = Message::notify(route, Bytes::copy_from_slice(body));
        let bytes = self.data_packet(&msg, false);
        self.send_raw(&bytes).await
    }

    /// Returns the next packet; `Ok(None)` when the server closed the connection.
    pub async fn recv_packet(&mut self) -> io::Result<Option<Packet>> {
        tokio::time::timeout(self.timeout, self.read_packet())
            .await
            .map_err(|_| timed_out())?
    }

    async fn read_packet(&mut self) -> io::Result<Option<Packet>> {
        loop {
            if let Some(p) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(io::Error::other)?
            {
                return Ok(Some(p));
            }
            match &mut self.transport {
                Transport::Tcp(s) => {
                    if s.read_buf(&mut self.buf).await? == 0 {
                        return Ok(None);
                    }
                }
                Transport::Ws(ws) => return ws_recv(ws).await,
                Transport::Tls(s) => {
                    if s.read_buf(&mut self.buf).await? == 0 {
                        return Ok(None);
                    }
                }
                Transport::Wss(ws) => return ws_recv(ws).await,
            }
        }
    }

    /// Returns the next packet that is not a heartbeat; an error if the server closed.
    pub async fn recv_packet_skipping_heartbeats(&mut self) -> io::Result<Packet> {
        loop {
            match self.recv_packet().await? {
                Some(p) if p.kind == PacketType::Heartbeat => continue,
                Some(p) => return Ok(p),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Returns the next Data message, skipping heartbeats.
    pub async fn recv_message(&mut self) -> io::Result<Message> {
        let packet = self.recv_packet_skipping_heartbeats().await?;
        if packet.kind != PacketType::Data {
            return Err(io::Error::other(format!(
                "expected data, got {:?}",
                packet.kind
            )));
        }
        Message::decode(&packet.body, &self.dict, 1 << 24).map_err(io::Error::other)
    }

    /// Returns the next Response message, skipping pushes and heartbeats.
    pub async fn recv_response(&mut self) -> io::Result<Message> {
        loop {
            let msg = self.recv_message().await?;
            if msg.kind == MessageType::Response {
                return Ok(msg);
            }
        }
    }

    /// Returns the next Push on `route`, skipping other messages and heartbeats.
    pub async fn recv_push(&mut self, route: &str) -> io::Result<Message> {
        loop {
            let msg = self.recv_message().await?;
            if msg.kind == MessageType::Push && msg.route == route {
                return Ok(msg);
            }
        }
    }

    /// Returns the packets received until the server closes; an error if it does not
    /// close within the timeout.
    pub async fn expect_closed(&mut self) -> io::Result<Vec<Packet>> {
        let mut seen = Vec::new();
        loop {
            match self.recv_packet().await {
                Ok(Some(p)) => seen.push(p),
                Ok(None) => return Ok(seen),
                // A reset or a decode error after the server closed is a close too.
                Err(e) if e.kind() != io::ErrorKind::TimedOut => return Ok(seen),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends `bytes` as one binary WebSocket message.
async fn ws_send<S>(ws: &mut WebSocketStream<S>, bytes: &[u8]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(WsMessage::Binary(Bytes::copy_from_slice(bytes)))
        .await
        .map_err(io::Error::other)
}

/// Returns the packet in the next binary WebSocket message; `None` once closed.
async fn ws_recv<S>(ws: &mut WebSocketStream<S>) -> io::Result<Option<Packet>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            None | Some(Ok(WsMessage::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(WsMessage::Binary(b))) => {
                return Packet::decode_exact(&b).map(Some).map_err(io::Error::other)
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Returns a TLS stream to `addr` trusting only the certificates in `ca_pem`.
async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &[u8],
) -> io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).map_err(io::Error::other)?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Returns the handshake libpitaya sends by default.
pub fn default_handshake() -> HandshakeRequest {
    HandshakeRequest {
        sys: HandshakeSys {
            platform: "desktop".into(),
            lib_version: "0.3.5-test".into(),
            client_build_number: "1".into(),
            client_version: "0.1".into(),
        },
        user: None,
    }
}

/// Returns the JSON value of a message body.
pub fn json(msg: &Message) -> serde_json::Value {
    serde_json::from_slice(&msg.data).unwrap_or(serde_json::Value::Null)
}
