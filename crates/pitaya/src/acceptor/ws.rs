//! WebSocket acceptor, optionally over TLS (spec 1.6).
//!
//! Every WebSocket message carries exactly one packet, header included: a message with
//! a short or a second packet is an error, not a split or a batch. The upgrade is
//! accepted on any path and with no subprotocol, as Go Pitaya does.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use pitaya_protocol::{Packet, HEADER_LEN, MAX_BODY_LEN};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::listener::Listener;
#[cfg(feature = "tls")]
use super::TlsConfig;
use super::{invalid_data, Acceptor, Incoming, PacketConn};

/// Read buffer per connection, in bytes, and the most read from the socket at once.
///
/// tungstenite allocates it up front and keeps it for the life of the connection, 128
/// KiB by default: too much for a server holding many idle clients. Game messages are
/// mostly far below 1 KiB; a larger one still arrives whole, the buffer grows to hold
/// it, only in more reads.
const READ_BUFFER_SIZE: usize = 1024;

/// Bytes of queued frames past which tungstenite writes without waiting for a flush.
///
/// Not an allocation: the write buffer grows with what is queued.
const WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// Acceptor for Pitaya clients over WebSocket (`ws`), or WebSocket over TLS (`wss`).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use pitaya::acceptor::WsAcceptor;
///
/// let acceptor = WsAcceptor::bind("0.0.0.0:3251").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WsAcceptor {
    inner: Listener,
}

// ===== impl WsAcceptor =====

impl WsAcceptor {
    /// Returns an acceptor listening on `addr`.
    ///
    /// Port 0 picks a free port; [`Acceptor::local_addr`] tells which.
    ///
    /// # Errors
    ///
    /// Fails when the address does not resolve or cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(WsAcceptor {
            inner: Listener::bind(addr).await?,
        })
    }

    /// Returns this acceptor serving WebSocket over TLS; its transport becomes `wss`.
    ///
    /// Like Go Pitaya's `wss` acceptor, it then refuses an upgrade whose `Origin` header
    /// names another host than the `Host` header.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.inner.tls = Some(tls);
        self
    }

    /// Returns the future that runs the TLS handshake if any, then the upgrade.
    fn incoming(&self, stream: TcpStream, max_packet_size: usize) -> Incoming {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.inner.tls {
            let tls = tls.clone();
            return Box::pin(async move {
                let stream = tls.acceptor().accept(stream).await?;
                upgrade(stream, max_packet_size, true).await
            });
        }
        Box::pin(upgrade(stream, max_packet_size, false))
    }
}

#[async_trait::async_trait]
impl Acceptor for WsAcceptor {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    fn transport(&self) -> &'static str {
        if self.inner.is_tls() {
            "wss"
        } else {
            "ws"
        }
    }

    async fn accept(&self, max_packet_size: usize) -> io::Result<(Incoming, SocketAddr)> {
        let (stream, addr) = self.inner.accept().await?;
        Ok((self.incoming(stream, max_packet_size), addr))
    }
}

/// Returns a packet connection once the client's WebSocket upgrade has been accepted.
async fn upgrade<S>(io: S, max_packet_size: usize, check_origin: bool) -> io::Result<PacketConn>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // A message is one packet, so the largest message is the largest packet.
    let max_message = max_packet_size.min(MAX_BODY_LEN) + HEADER_LEN;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let ws = if check_origin {
        tokio_tungstenite::accept_hdr_async_with_config(io, same_origin_only, Some(config)).await
    } else {
        tokio_tungstenite::accept_async_with_config(io, Some(config)).await
    };
    let (sink, stream) = ws.map_err(ws_error)?.split();

    let sink = WsSink { inner: sink };
    let stream = WsPackets {
        inner: stream,
        done: false,
    };
    Ok(PacketConn::new(Box::pin(stream), Box::pin(sink)))
}

/// Upgrade callback refusing a cross-origin request, as gorilla's default check does.
// The signature is tungstenite's `Callback`; the large error is its HTTP response.
#[allow(clippy::result_large_err)]
fn same_origin_only(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return Ok(response);
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match (origin.to_str(), host) {
        (Ok(origin), Some(host)) if origin_host(origin).eq_ignore_ascii_case(host) => Ok(response),
        _ => {
            let mut refusal = ErrorResponse::new(Some("origin not allowed".to_owned()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            Err(refusal)
        }
    }
}

/// Returns the `host[:port]` part of an origin such as `https://example.com:8443`.
///
/// An origin without a scheme (`null`, for one) has no host and matches nothing.
fn origin_host(origin: &str) -> &str {
    match origin.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?', '#']).next().unwrap_or_default(),
        None => "",
    }
}

/// Returns the I/O error for a WebSocket failure; a misbehaving peer gives `InvalidData`.
fn ws_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, e)
        }
        // A peer that vanished without a close frame is gone, not misbehaving.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            io::Error::new(io::ErrorKind::ConnectionReset, e)
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

/// Sink writing each encoded packet as one binary message.
///
/// Written by hand rather than with `sink_map_err`, whose mapping function runs once:
/// a second error from the same sink (a failed write, then the close after it)
/// would panic there.
struct WsSink<S> {
    inner: SplitSink<WebSocketStream<S>, Message>,
}

impl<S> Sink<Bytes> for WsSink<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready_unpin(cx).map_err(ws_error)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> io::Result<()> {
        self.inner
            .start_send_unpin(Message::Binary(item))
            .map_err(ws_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_flush_unpin(cx).map_err(ws_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_close_unpin(cx).map_err(ws_error)
    }
}

/// Stream of packets read from WebSocket messages, one packet per message.
struct WsPackets<S> {
    inner: SplitStream<WebSocketStream<S>>,
    /// Set after a close, an end or an error: the connection is over.
    done: bool,
}

impl<S> Stream for WsPackets<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = io::Result<Packet>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        while !self.done {
            let packet = match ready!(self.inner.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(bytes))) => Packet::decode_exact(&bytes),
                // Spec 1.6: the opcode is not checked, a text message is read the same way.
                Some(Ok(Message::Text(text))) => Packet::decode_exact(text.as_bytes()),
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(ws_error(e))));
                }
            };
            self.done = packet.is_err();
            return Poll::Ready(Some(packet.map_err(invalid_data)));
        }
        self.done = true;
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use pitaya_protocol::{DecodeError, PacketType};
    use tokio_tungstenite::client_async;

    use super::*;

    type Client = WebSocketStream<TcpStream>;

    /// Returns a client connected on `path` and the server's packet connection.
    async fn connect(path: &str, max_packet_size: usize) -> (Client, PacketConn) {
        let acceptor = WsAcceptor::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(acceptor.local_addr()).await.unwrap();
        let (incoming, _) = acceptor.accept(max_packet_size).await.unwrap();
        // The upgrade needs both sides at once, so the server side runs in a task.
        let server = tokio::spawn(incoming);
        let (client, _) = client_async(format!("ws://localhost{path}"), tcp)
            .await
            .unwrap();
        (client, server.await.unwrap().unwrap())
    }

    fn decode_error(err: io::Error) -> DecodeError {
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        *err.into_inner().unwrap().downcast::<DecodeError>().unwrap()
    }

    #[tokio::test]
    async fn transport_is_ws_without_tls() {
        let acceptor = WsAcceptor::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(acceptor.transport(), "ws");
    }

    #[tokio::test]
    async fn binary_message_with_one_packet_arrives_on_any_path() {
        let (mut client, mut conn) = connect("/any/path?x=1", 1024).await;

        client
            .send(Message::binary(vec![4, 0, 0, 2, b'h', b'i']))
            .await
            .unwrap();
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::new(PacketType::Data, &b"hi"[..]));
    }

    #[tokio::test]
    async fn text_message_is_read_as_a_packet() {
        let (mut client, mut conn) = connect("/", 1024).await;

        client
            .send(Message::text("\u{4}\0\0\u{2}hi"))
            .await
            .unwrap();
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::new(PacketType::Data, &b"hi"[..]));
    }

    #[tokio::test]
    async fn pings_are_skipped() {
        let (mut client, mut conn) = connect("/", 1024).await;

        client
            .send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        client
            .send(Message::binary(vec![3, 0, 0, 0]))
            .await
            .unwrap();
        assert_eq!(
            conn.stream.next().await.unwrap().unwrap(),
            Packet::heartbeat()
        );
    }

    #[tokio::test]
    async fn two_packets_in_one_message_are_an_error() {
        let (mut client, mut conn) = connect("/", 1024).await;

        client
            .send(Message::binary(vec![3, 0, 0, 0, 3, 0, 0, 0]))
            .await
            .unwrap();
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert!(matches!(
            decode_error(err),
            DecodeError::PacketLengthMismatch {
                header: 0,
                actual: 4
            }
        ));
        assert!(conn.stream.next().await.is_none());
    }

    #[tokio::test]
    async fn truncated_packet_is_an_error() {
        let (mut client, mut conn) = connect("/", 1024).await;

        client
            .send(Message::binary(vec![4, 0, 0, 5, 1, 2]))
            .await
            .unwrap();
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert!(matches!(
            decode_error(err),
            DecodeError::PacketLengthMismatch {
                header: 5,
                actual: 2
            }
        ));
    }

    #[tokio::test]
    async fn message_over_the_packet_limit_is_invalid_data() {
        let (mut client, mut conn) = connect("/", 8).await;

        let mut bytes = vec![4, 0, 0, 9];
        bytes.extend_from_slice(&[0; 9]);
        client.send(Message::binary(bytes)).await.unwrap();
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let inner = err.into_inner().unwrap().downcast::<WsError>().unwrap();
        assert!(matches!(*inner, WsError::Capacity(_)));
    }

    #[tokio::test]
    async fn close_message_ends_the_stream() {
        let (mut client, mut conn) = connect("/", 1024).await;

        client.close(None).await.unwrap();
        assert!(conn.stream.next().await.is_none());
    }

    #[tokio::test]
    async fn each_sent_packet_is_one_binary_message() {
        let (mut client, mut conn) = connect("/", 1024).await;
        let data = Packet::new(PacketType::Data, &b"push"[..])
            .to_bytes()
            .unwrap();

        conn.sink
            .feed(Packet::heartbeat().to_bytes().unwrap())
            .await
            .unwrap();
        conn.sink.feed(data.clone()).await.unwrap();
        conn.sink.flush().await.unwrap();
        let first = client.next().await.unwrap().unwrap();
        assert_eq!(first, Message::Binary(Bytes::from_static(&[3, 0, 0, 0])));
        let second = client.next().await.unwrap().unwrap();
        assert_eq!(second, Message::Binary(data));
    }

    #[tokio::test]
    async fn sink_keeps_failing_without_panicking_after_the_peer_vanished() {
        let (client, mut conn) = connect("/", 1024).await;
        drop(client);

        // Write until the vanished peer shows as an error, then keep using the sink as
        // the agent does on its way out: every call fails, none panics.
        let packet = Packet::heartbeat().to_bytes().unwrap();
        let mut failures = 0;
        for _ in 0..10_000 {
            if conn.sink.send(packet.clone()).await.is_err() {
                failures += 1;
                if failures == 3 {
                    break;
                }
            }
        }
        assert_eq!(failures, 3, "writes to a closed peer never failed");
        let _ = conn.sink.close().await;
    }

    #[test]
    fn origin_host_takes_the_authority() {
        assert_eq!(origin_host("https://example.com:8443"), "example.com:8443");
        assert_eq!(origin_host("http://example.com/path?q"), "example.com");
        assert_eq!(origin_host("null"), "");
    }

    #[test]
    fn cross_origin_upgrade_is_refused() {
        let request = |origin: Option<&str>| {
            let mut builder = Request::builder()
                .uri("/")
                .header(header::HOST, "game.example:443");
            if let Some(origin) = origin {
                builder = builder.header(header::ORIGIN, origin);
            }
            builder.body(()).unwrap()
        };
        let ok = |origin| same_origin_only(&request(origin), Response::new(())).is_ok();

        assert!(ok(None));
        assert!(ok(Some("https://GAME.example:443")));
        assert!(!ok(Some("https://evil.example")));
        assert!(!ok(Some("null")));
        let refusal = same_origin_only(&request(Some("https://evil.example")), Response::new(()));
        assert_eq!(refusal.unwrap_err().status(), StatusCode::FORBIDDEN);
    }
}
