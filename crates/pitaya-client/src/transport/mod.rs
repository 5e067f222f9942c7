//! Transports: each turns a [`ServerUrl`] into a stream of packets and a sink of
//! encoded packets.
//!
//! | scheme | module | framing |
//! |---|---|---|
//! | `tcp` | `tcp` | packets cut from the byte stream (spec 1.4) |
//! | `tls` | `tcp` over `tls` | the same, inside rustls |
//! | `ws` | `ws` | one packet per binary message (spec 1.6) |
//! | `wss` | `ws` over `tls` | the same, inside rustls |

mod tcp;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "ws")]
mod ws;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use pitaya_protocol::Packet;
use tokio::net::TcpStream;

use crate::options::ConnectOptions;
use crate::url::{Scheme, ServerUrl};
use crate::ClientError;

/// Packets from the server, in order; ends when the server closes the connection.
pub(crate) type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, ClientError>> + Send>>;

/// Takes whole encoded packets (header included) to the server.
pub(crate) type PacketSink = Pin<Box<dyn Sink<Bytes, Error = ClientError> + Send>>;

/// One open connection, split into its read and write halves.
pub(crate) struct Transport {
    pub(crate) stream: PacketStream,
    pub(crate) sink: PacketSink,
}

/// Opens connections to one URL; built once and reused by reconnects.
pub(crate) struct Connector {
    url: ServerUrl,
    max_body_len: usize,
    #[cfg(feature = "tls")]
    tls: Option<tls::TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

// ===== impl Connector =====

impl Connector {
    /// Returns a connector for `url`, with TLS settings loaded when the scheme needs them.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] for a transport left out of this build, and
    /// [`ClientError::Tls`] when a CA file cannot be used.
    pub(crate) fn new(url: ServerUrl, opts: &ConnectOptions) -> Result<Self, ClientError> {
        let missing = |reason| ClientError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        if matches!(url.scheme(), Scheme::Ws | Scheme::Wss) && !cfg!(feature = "ws") {
            return Err(missing(
                "websocket support (feature `ws`) is not compiled in",
            ));
        }
        if url.scheme().is_tls() && !cfg!(feature = "tls") {
            return Err(missing("tls support (feature `tls`) is not compiled in"));
        }
        Ok(Self {
            #[cfg(feature = "tls")]
            tls: match url.scheme().is_tls() {
                true => Some(tls::TlsConnector::new(&url, &opts.tls)?),
                false => None,
            },
            url,
            max_body_len: opts.max_body_len,
        })
    }

    /// Returns the URL this connector opens.
    pub(crate) fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// Opens a new connection.
    ///
    /// # Errors
    ///
    /// When the TCP connection, the TLS handshake or the WebSocket upgrade fails.
    pub(crate) async fn connect(&self) -> Result<Transport, ClientError> {
        let tcp = TcpStream::connect(self.url.authority()).await?;
        // Pitaya messages are small and latency-bound; do not let Nagle hold them back.
        tcp.set_nodelay(true)?;
        match self.url.scheme() {
            Scheme::Tcp => Ok(tcp::framed(tcp, self.max_body_len)),
            #[cfg(feature = "tls")]
            Scheme::Tls => {
                let io = self.tls_connector().connect(tcp).await?;
                Ok(tcp::framed(io, self.max_body_len))
            }
            #[cfg(feature = "ws")]
            Scheme::Ws => ws::upgrade(tcp, &self.url, self.max_body_len).await,
            #[cfg(all(feature = "ws", feature = "tls"))]
            Scheme::Wss => {
                let io = self.tls_connector().connect(tcp).await?;
                ws::upgrade(io, &self.url, self.max_body_len).await
            }
            // `new` refuses schemes whose transport is not compiled in.
            #[allow(unreachable_patterns)]
            _ => unreachable!("scheme checked in Connector::new"),
        }
    }

    #[cfg(feature = "tls")]
    fn tls_connector(&self) -> &tls::TlsConnector {
        // `new` builds the TLS connector for every TLS scheme.
        self.tls
            .as_ref()
            .expect("tls connector exists for tls schemes")
    }
}
