//! Raw TCP acceptor, optionally with TLS (spec 1.4, 1.5).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpStream, ToSocketAddrs};

use super::framed::framed_halves;
use super::listener::Listener;
#[cfg(feature = "tls")]
use super::{framed_conn, TlsConfig};
use super::{Acceptor, Incoming};

/// Acceptor for Pitaya clients over plain TCP, or TLS over TCP.
///
/// Packets are framed by their 4-byte header; clients may split or coalesce them freely.
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
        })
    }

    /// Returns this acceptor serving TLS with `tls`; its transport becomes `tls`.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.inner.tls = Some(tls);
        self
    }

    /// Returns the future that turns an accepted socket into a packet connection.
    fn incoming(&self, stream: TcpStream, max_packet_size: usize) -> Incoming {
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
