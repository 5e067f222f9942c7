//! Byte streams (TCP, TLS over TCP) cut into packets by their header.
//!
//! A client may split a packet over many reads or put many packets in one (spec 1.4),
//! so reads go through a [`FramedRead`] with the protocol's [`PacketDecoder`]. Writes go
//! through a [`FramedWrite`]: packets fed without a flush share one buffer and leave in
//! as few writes as the socket allows.

use std::io;

use bytes::BytesMut;
use pitaya_protocol::{Packet, PacketDecoder};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{BytesCodec, Decoder, FramedRead, FramedWrite};

use super::{invalid_data, PacketConn};

/// Initial read buffer per connection, in bytes; Go Pitaya reads with 4 KiB buffers too.
const READ_CAPACITY: usize = 4 * 1024;

/// Returns a packet connection over any byte stream, split into two halves.
// Plain TCP splits without a lock through `framed_halves`, so only TLS needs this one.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn framed_conn<S>(io: S, max_packet_size: usize) -> PacketConn
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read, write) = tokio::io::split(io);
    framed_halves(read, write, max_packet_size)
}

/// Returns a packet connection over a stream already split in a read and a write half.
///
/// TCP uses this with `into_split`, which needs no lock between the halves.
pub(crate) fn framed_halves<R, W>(read: R, write: W, max_packet_size: usize) -> PacketConn
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let codec = PacketCodec::new(max_packet_size);
    let stream = FramedRead::with_capacity(read, codec, READ_CAPACITY);
    // The payloads are already encoded packets: the sink only buffers their bytes.
    let sink = FramedWrite::new(write, BytesCodec::new());
    PacketConn::new(Box::pin(stream), Box::pin(sink))
}

/// Decoder adapting [`PacketDecoder`] to tokio-util and telling a clean EOF from a cut one.
#[derive(Debug)]
struct PacketCodec {
    inner: PacketDecoder,
    /// Whether a header was consumed and its body is still awaited.
    in_body: bool,
}

// ===== impl PacketCodec =====

impl PacketCodec {
    fn new(max_body_len: usize) -> Self {
        PacketCodec {
            inner: PacketDecoder::with_max_body_len(max_body_len),
            in_body: false,
        }
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Packet>> {
        let before = src.len();
        match self.inner.decode(src).map_err(invalid_data)? {
            Some(packet) => {
                self.in_body = false;
                Ok(Some(packet))
            }
            None => {
                // The decoder takes the header off the buffer before the body is there,
                // so an empty buffer at EOF may still be a cut packet.
                if src.len() < before {
                    self.in_body = true;
                }
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Packet>> {
        if let Some(packet) = self.decode(src)? {
            return Ok(Some(packet));
        }
        if self.in_body || !src.is_empty() {
            // Spec 1.4: EOF on a header boundary is a clean close, anywhere else an error.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a packet",
            ));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use pitaya_protocol::{DecodeError, PacketType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn packets_pass_through_an_in_memory_pipe() {
        let (client, server) = tokio::io::duplex(64);
        let mut conn = framed_conn(server, 1024);
        let (mut client_read, mut client_write) = tokio::io::split(client);

        client_write
            .write_all(&[4, 0, 0, 2, b'h', b'i', 3, 0, 0, 0])
            .await
            .unwrap();
        let first = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(first, Packet::new(PacketType::Data, &b"hi"[..]));
        let second = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(second, Packet::heartbeat());

        conn.sink
            .send(Packet::kick().to_bytes().unwrap())
            .await
            .unwrap();
        let mut got = [0u8; 4];
        client_read.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [5, 0, 0, 0]);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_invalid_data() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = framed_conn(server, 3);

        client.write_all(&[4, 0, 0, 4]).await.unwrap();
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let inner = err.into_inner().unwrap().downcast::<DecodeError>().unwrap();
        assert!(matches!(
            *inner,
            DecodeError::BodyTooLarge { len: 4, max: 3 }
        ));
    }

    #[tokio::test]
    async fn eof_after_a_header_with_no_body_bytes_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = framed_conn(server, 1024);

        client.write_all(&[4, 0, 0, 5]).await.unwrap();
        drop(client);
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn eof_inside_a_header_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = framed_conn(server, 1024);

        client.write_all(&[4, 0]).await.unwrap();
        drop(client);
        let err = conn.stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
