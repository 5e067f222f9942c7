//! Acceptors: where client connections come from.
//!
//! An [`Acceptor`] hands out accepted connections as [`Incoming`] futures. The accept
//! loop only accepts; the per-connection work that may be slow or hostile (a TLS
//! handshake, a WebSocket upgrade) runs inside [`Incoming`], on the connection's own
//! task and under the handshake timeout, so one stalled peer never blocks the others.
//!
//! Every transport ends up as a [`PacketConn`]: a stream of decoded Pitaya packets and
//! a sink of already-encoded packet bytes. The agent never sees sockets.
//!
//! | type | transport |
//! |---|---|
//! | [`TcpAcceptor`] | raw TCP, packets framed by their 4-byte header |
//! | [`WsAcceptor`] | WebSocket, exactly one packet per message (feature `ws`) |
//! | [`TlsConfig`] | TLS for either of them (feature `tls`) |
//! | [`RateLimitingAcceptor`] | wrapper dropping packets over a per-connection rate |
//!
//! A TCP acceptor can also expect a PROXY protocol header on every connection
//! ([`TcpAcceptor::with_proxy_protocol`], config `pitaya.acceptor.proxyprotocol`); the
//! session then sees the client's address from the header.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use pitaya_protocol::Packet;

mod conn_limit;
mod framed;
mod listener;
mod proxy_protocol;
mod rate_limit;
mod tcp;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "ws")]
mod ws;

pub(crate) use conn_limit::{ConnectionLimit, ConnectionSlot};
#[cfg(feature = "tls")]
pub(crate) use framed::framed_conn;
pub(crate) use proxy_protocol::is_proxy_header_error;
pub use proxy_protocol::ProxyHeaderError;
pub(crate) use rate_limit::rate_limited;
pub use rate_limit::{ExceededCounter, RateLimitingAcceptor};
pub use tcp::TcpAcceptor;
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};
#[cfg(feature = "ws")]
pub use ws::WsAcceptor;

/// A stream of packets read from one client.
///
/// Decode failures come out as `io::Error`s of kind `InvalidData` whose inner error is a
/// [`pitaya_protocol::DecodeError`]; the stream ends when the peer closes.
pub type PacketStream = Pin<Box<dyn Stream<Item = io::Result<Packet>> + Send>>;

/// A sink of encoded packets (header included) written to one client.
pub type PacketSink = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// A connection in the middle of its transport handshake (TLS, WebSocket upgrade).
pub type Incoming = Pin<Box<dyn Future<Output = io::Result<PacketConn>> + Send>>;

/// One client connection, reduced to packets in and bytes out.
pub struct PacketConn {
    pub(crate) stream: PacketStream,
    pub(crate) sink: PacketSink,
    /// The client's address when the transport learnt it from a proxy (spec 1.7).
    pub(crate) remote_addr: Option<SocketAddr>,
}

impl PacketConn {
    /// Returns a connection made of a packet stream and a packet sink.
    pub fn new(stream: PacketStream, sink: PacketSink) -> Self {
        PacketConn {
            stream,
            sink,
            remote_addr: None,
        }
    }

    /// Returns this connection with the client address a proxy reported for it.
    ///
    /// The session reports this address instead of the socket's peer address.
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// Returns this connection with its packet stream passed through `f`.
    pub(crate) fn map_stream(mut self, f: impl FnOnce(PacketStream) -> PacketStream) -> Self {
        self.stream = f(self.stream);
        self
    }
}

impl fmt::Debug for PacketConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketConn")
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// A source of client connections.
///
/// Implement it to add a transport; the app runs one accept loop per acceptor.
#[async_trait::async_trait]
pub trait Acceptor: Send + Sync + fmt::Debug + 'static {
    /// Returns the address this acceptor listens on.
    fn local_addr(&self) -> SocketAddr;

    /// Returns a short name of the transport for logs (`tcp`, `ws`, `tls`, `wss`).
    fn transport(&self) -> &'static str;

    /// Returns the next accepted connection and its remote address.
    ///
    /// `max_packet_size` is the largest packet body the connection may accept from the
    /// client (config `pitaya.conn.maxpacketsize`); a larger one is a decode error.
    ///
    /// # Errors
    ///
    /// An error here is logged by the accept loop, which goes on accepting; it never
    /// stops the server.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel safe: the accept loop drops it at shutdown.
    async fn accept(&self, max_packet_size: usize) -> io::Result<(Incoming, SocketAddr)>;

    /// Returns whether connections accepted from now on must open with a PROXY
    /// protocol header (spec 1.7), after asking for it.
    ///
    /// The app calls this on every acceptor when `pitaya.acceptor.proxyprotocol` is
    /// on. The default, for transports without PROXY protocol support (WebSocket, as
    /// in Pitaya), changes nothing and returns false.
    fn enable_proxy_protocol(&self) -> bool {
        false
    }

    /// Returns the count of packets this acceptor dropped over a rate limit, reported
    /// as Pitaya's `exceeded_rate_limiting`; `None`, the default, when it has no limit.
    fn rate_limit_drops(&self) -> Option<ExceededCounter> {
        None
    }
}

/// Returns an `InvalidData` I/O error carrying a protocol decode error.
pub(crate) fn invalid_data(e: pitaya_protocol::DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
