//! One load-generator connection over TCP or WebSocket, handshaken.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{HandshakeResponse, Packet, PacketDecoder, PacketType, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::wire;

/// Which transport the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    /// Packets over a TCP stream.
    Tcp,
    /// One packet per binary WebSocket message.
    Ws,
}

/// A handshaken client connection.
#[derive(Debug)]
pub(crate) enum Conn {
    /// TCP, with its read buffer and packet decoder.
    Tcp {
        /// The socket.
        stream: TcpStream,
        /// Bytes read and not decoded yet.
        rbuf: BytesMut,
        /// Packet framing.
        decoder: PacketDecoder,
    },
    /// WebSocket over TCP.
    Ws(Box<WebSocketStream<TcpStream>>),
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

// ===== impl Conn =====

impl Conn {
    /// Returns a connection that has completed the handshake and sent its ack, and the
    /// heartbeat interval the server announced.
    pub(crate) async fn open(
        transport: Transport,
        addr: SocketAddr,
    ) -> io::Result<(Conn, Duration)> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        // A reset on close leaves no TIME_WAIT behind, so connect-rate runs and 10,000
        // idle connections do not use up the client's ephemeral ports. The deprecation
        // warns of a drop blocking while data drains; a zero linger never waits.
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO))?;
        let mut conn = match transport {
            Transport::Tcp => Conn::Tcp {
                stream,
                rbuf: BytesMut::with_capacity(4096),
                decoder: PacketDecoder::new(),
            },
            Transport::Ws => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(0);
                let url = format!("ws://{addr}/");
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                        .await
                        .map_err(other)?;
                Conn::Ws(Box::new(ws))
            }
        };
        conn.send(&wire::handshake_packet()).await?;
        let reply = conn.recv().await?;
        if reply.kind != PacketType::Handshake {
            return Err(other(format!("expected a handshake, got {:?}", reply.kind)));
        }
        let hs = HandshakeResponse::decode(&reply.body).map_err(other)?;
        if hs.code != 200 {
            return Err(other(format!("handshake refused with code {}", hs.code)));
        }
        conn.send(&wire::packet(PacketType::HandshakeAck, &[]))
            .await?;
        Ok((conn, hs.sys.heartbeat))
    }

    /// Writes whole packets, back to back in `buf`.
    pub(crate) async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp { stream, .. } => stream.write_all(buf).await,
            Conn::Ws(ws) => {
                let mut rest = buf;
                while rest.len() >= HEADER_LEN {
                    let len = HEADER_LEN
                        + (usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8)
                        + usize::from(rest[3]);
                    let (one, tail) = rest.split_at(len.min(rest.len()));
                    ws.feed(WsMessage::binary(one.to_vec()))
                        .await
                        .map_err(other)?;
                    rest = tail;
                }
                ws.flush().await.map_err(other)
            }
        }
    }

    /// Returns the next packet.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a packet is either returned or left for the next call.
    pub(crate) async fn recv(&mut self) -> io::Result<Packet> {
        match self {
            Conn::Tcp {
                stream,
                rbuf,
                decoder,
            } => loop {
                if let Some(p) = decoder.decode(rbuf).map_err(other)? {
                    return Ok(p);
                }
                if stream.read_buf(rbuf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            },
            Conn::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Binary(data))) => {
                        return Packet::decode_exact(&data).map_err(other);
                    }
                    Some(Ok(WsMessage::Close(_))) | None => {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(other(e)),
                }
            },
        }
    }

    /// Returns whether a whole packet is already buffered, so the next `recv` will
    /// not wait on the socket; the caller then holds its writes to batch them.
    pub(crate) fn has_buffered(&self) -> bool {
        match self {
            Conn::Tcp { rbuf, .. } if rbuf.remaining() >= HEADER_LEN => {
                let len = usize::from(rbuf[1]) << 16 | usize::from(rbuf[2]) << 8;
                rbuf.remaining() >= HEADER_LEN + len + usize::from(rbuf[3])
            }
            _ => false,
        }
    }
}
