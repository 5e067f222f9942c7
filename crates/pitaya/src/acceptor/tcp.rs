//! Raw TCP acceptor, optionally with TLS and a PROXY protocol header (spec 1.4, 1.5, 1.7).

use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, ToSocketAddrs};

use super::framed::framed_halves;
use super::listener::Listener;
use super::proxy_protocol::read_header;
#[cfg(feature = "tls")]
use super::{framed_conn, TlsConfig};
use super::{Acceptor, Incoming};

/// Acceptor for Pitaya clients over plain TCP, or TLS over TCP.
///
/// Packets are framed by their 4-byte header; clients may split or coalesce them freely.
///
/// Behind a load balancer, [`with_proxy_protocol`](Self::with_proxy_protocol) makes every
/// connection open with a PROXY protocol header, read before any TLS handshake; the
/// session then reports the client address from the header.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use pitaya::acceptor::TcpAcceptor;
///
/// let acceptor = TcpAcceptor::bind("0.0.0.0:3250").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TcpAcceptor {
    inner: Listener,
    /// Whether connections must open with a PROXY protocol header.
    proxy_protocol: AtomicBool,
}

// ===== impl TcpAcceptor =====

impl TcpAcceptor {
    /// Returns an acceptor listening on `addr`.
    ///
    /// Port 0 picks a free port; [`Acceptor::local_addr`] tells which.
    ///
    /// # Errors
    ///
    /// Fails when the address does not resolve or cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(TcpAcceptor {
            inner: Listener::bind(addr).await?,
            proxy_protocol: AtomicBool::new(false),
        })
    }

    /// Returns this acceptor requiring a PROXY protocol header, v1 or v2, first on
    /// every connection.
    ///
    /// A connection whose header is missing, malformed or names no client address
    /// (`LOCAL`, `UNKNOWN`) is closed, with a warning naming why. The app turns this
    /// on for every TCP acceptor when `pitaya.acceptor.proxyprotocol` is true.
    pub fn with_proxy_protocol(self) -> Self {
        self.proxy_protocol.store(true, Ordering::Relaxed);
        self
    }

    /// Returns this acceptor serving TLS with `tls`; its transport becomes `tls`.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.inner.tls = Some(tls);
        self
    }

    /// Returns the future that turns an accepted socket into a packet connection.
    fn incoming(&self, stream: TcpStream, max_packet_size: usize) -> Incoming {
        if self.proxy_protocol.load(Ordering::Relaxed) {
            return self.incoming_proxied(stream, max_packet_size);
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.inner.tls {
            let tls = tls.clone();
            return Box::pin(async move {
                let stream = tls.acceptor().accept(stream).await?;
                Ok(framed_conn(stream, max_packet_size))
            });
        }
        let (read, write) = stream.into_split();
        let conn = framed_halves(read, write, max_packet_size);
        Box::pin(std::future::ready(Ok(conn)))
    }

    /// Returns the future that reads the PROXY header, then does what `incoming` does.
    fn incoming_proxied(&self, stream: TcpStream, max_packet_size: usize) -> Incoming {
        #[cfg(feature = "tls")]
        let tls = self.inner.tls.clone();
        Box::pin(async move {
            let (mut read, write) = stream.into_split();
            let (client, rest) = read_header(&mut read).await?;
            // Whatever was read past the header belongs to the stream that follows.
            let read = Cursor::new(rest).chain(read);

            #[cfg(feature = "tls")]
            if let Some(tls) = tls {
                let stream = tls.acceptor().accept(tokio::io::join(read, write)).await?;
                return Ok(framed_conn(stream, max_packet_size).with_remote_addr(client));
            }
            Ok(framed_halves(read, write, max_packet_size).with_remote_addr(client))
        })
    }
}

#[async_trait::async_trait]
impl Acceptor for TcpAcceptor {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    fn transport(&self) -> &'static str {
        if self.inner.is_tls() {
            "tls"
        } else {
            "tcp"
        }
    }

    async fn accept(&self, max_packet_size: usize) -> io::Result<(Incoming, SocketAddr)> {
        let (stream, addr) = self.inner.accept().await?;
        Ok((self.incoming(stream, max_packet_size), addr))
    }

    fn enable_proxy_protocol(&self) -> bool {
        self.proxy_protocol.store(true, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use pitaya_protocol::{DecodeError, Packet, PacketType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::acceptor::PacketConn;

    /// Returns a connected client socket and the server's packet connection.
    async fn connect(max_packet_size: usize) -> (TcpStream, PacketConn) {
        let acceptor = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(acceptor.local_addr()).await.unwrap();
        let (incoming, addr) = acceptor.accept(max_packet_size).await.unwrap();
        assert_eq!(addr, client.local_addr().unwrap());
        (client, incoming.await.unwrap())
    }

    #[tokio::test]
    async fn proxy_header_and_first_packet_in_one_write_are_both_read() {
        let acceptor = TcpAcceptor::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_proxy_protocol();
        let mut client = TcpStream::connect(acceptor.local_addr()).await.unwrap();
        let mut bytes = b"PROXY TCP6 2001:db8::5 2001:db8::1 50000 3250\r\n".to_vec();
        bytes.extend_from_slice(&[4, 0, 0, 2, b'h', b'i']);
        client.write_all(&bytes).await.unwrap();

        let (incoming, socket_peer) = acceptor.accept(1024).await.unwrap();
        assert_eq!(socket_peer, client.local_addr().unwrap());
        let mut conn = incoming.await.unwrap();
        assert_eq!(
            conn.remote_addr,
            Some("[2001:db8::5]:50000".parse().unwrap())
        );
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::new(PacketType::Data, &b"hi"[..]));
    }

    #[tokio::test]
    async fn without_proxy_protocol_the_connection_has_no_reported_address() {
        let (_client, conn) = connect(1024).await;
        assert_eq!(conn.remote_addr, None);
    }

    #[tokio::test]
    async fn transport_is_tcp_without_tls() {
        let acceptor = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(acceptor.transport(), "tcp");
        assert_ne!(acceptor.local_addr().port(), 0);
    }

    #[tokio::test]
    async fn packet_split_across_writes_arrives_whole() {
        let (mut client, mut conn) = connect(1024).await;
        let bytes = Packet::new(PacketType::Data, &b"hello"[..])
            .to_bytes()
            .unwrap();

        // Each piece is flushed on its own so the server sees several reads.
        for piece in [&bytes[..1], &bytes[1..3], &bytes[3..6], &bytes[6..]] {
            client.write_all(piece).await.unwrap();
            client.flush().await.unwrap();
        }
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::new(PacketType::Data, &b"hello"[..]));
    }

    #[tokio::test]
    async fn packets_coalesced_in_one_write_arrive_one_by_one() {
        let (mut client, conn) = connect(1024).await;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(
            &Packet::new(PacketType::Handshake, &b"{}"[..])
                .to_bytes()
                .unwrap(),
        );
        bytes.extend_from_slice(&Packet::handshake_ack().to_bytes().unwrap());
        bytes.extend_from_slice(&Packet::heartbeat().to_bytes().unwrap());

        client.write_all(&bytes).await.unwrap();
        drop(client);
        let got: Vec<Packet> = conn.stream.map(|p| p.unwrap()).collect().await;
        let want = vec![
            Packet::new(PacketType::Handshake, &b"{}"[..]),
            Packet::handshake_ack(),
            Packet::heartbeat(),
        ];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn unknown_type_byte_is_invalid_data() {
        let (mut client, mut conn) = connect(1024).await;

        client.write_all(&[9, 0, 0, 0]).await.unwrap();
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let inner = err.into_inner().unwrap().downcast::<DecodeError>().unwrap();
        assert!(matches!(*inner, DecodeError::UnknownPacketType(9)));
        assert!(conn.stream.next().await.is_none());
    }

    #[tokio::test]
    async fn eof_in_the_middle_of_a_body_is_an_error() {
        let (mut client, mut conn) = connect(1024).await;

        client.write_all(&[4, 0, 0, 10, 1, 2, 3]).await.unwrap();
        drop(client);
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn eof_between_packets_ends_the_stream() {
        let (mut client, mut conn) = connect(1024).await;

        client.write_all(&[3, 0, 0, 0]).await.unwrap();
        drop(client);
        assert_eq!(
            conn.stream.next().await.unwrap().unwrap(),
            Packet::heartbeat()
        );
        assert!(conn.stream.next().await.is_none());
    }

    #[tokio::test]
    async fn fed_packets_reach_the_client_in_order() {
        let (mut client, mut conn) = connect(1024).await;
        let data = Packet::new(PacketType::Data, &b"push"[..])
            .to_bytes()
            .unwrap();

        conn.sink
            .feed(Packet::heartbeat().to_bytes().unwrap())
            .await
            .unwrap();
        conn.sink.feed(data.clone()).await.unwrap();
        conn.sink.close().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let mut want = vec![3, 0, 0, 0];
        want.extend_from_slice(&data);
        assert_eq!(got, want);
    }
}
