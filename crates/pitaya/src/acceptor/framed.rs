//! Byte streams (TCP, TLS over TCP) cut into packets by their header.
//!
//! A client may split a packet over many reads or put many packets in one (spec 1.4),
//! so reads go through a [`PacketReader`] with the protocol's [`PacketDecoder`]. Writes
//! go through a [`PacketWriter`]: packets fed without a flush share one buffer and leave
//! in as few writes as the socket allows.
//!
//! Neither keeps a buffer while the connection is idle. Most of a game server's
//! connections are idle at any moment, and buffers kept for them were two thirds of the
//! memory of an idle session (benchmark S6 in `docs/benchmarks.md`): reads land on the
//! stack and only the bytes that came are copied to the heap, and the write buffer is
//! dropped once flushed.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use pitaya_protocol::{Packet, PacketDecoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Decoder;

use super::{invalid_data, PacketConn};

/// Largest single read, in bytes; Go Pitaya reads with 4 KiB buffers too.
const READ_CHUNK: usize = 4 * 1024;

/// Buffered bytes past which the writer flushes before taking more, as tokio-util's
/// `FramedWrite` does.
const WRITE_HIGH_WATER: usize = 8 * 1024;

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
    let stream = PacketReader {
        io: read,
        buf: BytesMut::new(),
        codec: PacketCodec::new(max_packet_size),
        done: false,
    };
    // The payloads are already encoded packets: the sink only buffers their bytes.
    let sink = PacketWriter {
        io: write,
        buf: BytesMut::new(),
    };
    PacketConn::new(Box::pin(stream), Box::pin(sink))
}

/// Packets read from a byte stream, with no buffer kept between bursts.
struct PacketReader<R> {
    io: R,
    /// Bytes read and not yet decoded; unallocated while none are pending.
    buf: BytesMut,
    codec: PacketCodec,
    /// Set once EOF or an error ended the stream.
    done: bool,
}

// ===== impl PacketReader =====

impl<R: AsyncRead + Unpin> Stream for PacketReader<R> {
    type Item = io::Result<Packet>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.codec.decode(&mut this.buf) {
                Ok(Some(packet)) => return Poll::Ready(Some(Ok(packet))),
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            // Everything read is decoded: let the allocation go with the packets that
            // still point into it, so an idle connection holds no buffer.
            if this.buf.is_empty() && this.buf.capacity() > 0 {
                this.buf = BytesMut::new();
            }

            // Left uninitialized: zeroing 4 KiB on every read would cost more than the
            // copy of what arrives.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            if let Err(e) = ready!(Pin::new(&mut this.io).poll_read(cx, &mut read)) {
                this.done = true;
                return Poll::Ready(Some(Err(e)));
            }
            if read.filled().is_empty() {
                this.done = true;
                return Poll::Ready(this.codec.decode_eof(&mut this.buf).transpose());
            }
            this.buf.extend_from_slice(read.filled());
        }
    }
}

/// Encoded packets written to a byte stream, buffered until flushed.
struct PacketWriter<W> {
    io: W,
    /// Bytes not yet written; unallocated while none are pending.
    buf: BytesMut,
}

// ===== impl PacketWriter =====

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    /// Writes out the whole buffer, then lets its allocation go.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.buf.advance(n);
        }
        if self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> Sink<Bytes> for PacketWriter<W> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.len() >= WRITE_HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> io::Result<()> {
        self.get_mut().buf.extend_from_slice(&item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
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
    async fn idle_reader_and_writer_hold_no_buffer() {
        use futures_util::FutureExt;

        let (client, server) = tokio::io::duplex(64);
        let (read, write) = tokio::io::split(server);
        let mut reader = PacketReader {
            io: read,
            buf: BytesMut::new(),
            codec: PacketCodec::new(1024),
            done: false,
        };
        let mut writer = PacketWriter {
            io: write,
            buf: BytesMut::new(),
        };
        let (mut client_read, mut client_write) = tokio::io::split(client);

        // Two packets and half of a third arrive; the half stays buffered.
        client_write
            .write_all(&[4, 0, 0, 1, b'a', 3, 0, 0, 0, 4, 0])
            .await
            .unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap().body, &b"a"[..]);
        assert_eq!(reader.next().await.unwrap().unwrap(), Packet::heartbeat());
        assert!(reader.next().now_or_never().is_none());
        assert!(reader.buf.capacity() > 0, "the cut packet must be kept");

        // Its rest arrives: once decoded and with nothing more to read, no buffer is left.
        client_write.write_all(&[0, 1, b'b']).await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap().body, &b"b"[..]);
        assert!(reader.next().now_or_never().is_none());
        assert_eq!(reader.buf.capacity(), 0);

        writer
            .feed(Packet::heartbeat().to_bytes().unwrap())
            .await
            .unwrap();
        assert!(writer.buf.capacity() > 0);
        writer.flush().await.unwrap();
        assert_eq!(writer.buf.capacity(), 0);
        let mut got = [0u8; 4];
        client_read.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [3, 0, 0, 0]);
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
