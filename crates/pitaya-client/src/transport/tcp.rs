//! Byte-stream framing for TCP and TLS (spec 1.4): packets may be split across reads
//! or share one.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use pitaya_protocol::{Packet, PacketDecoder};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::Transport;
use crate::ClientError;

/// tokio-util codec around the protocol crate's incremental decoder.
struct PacketCodec(PacketDecoder);

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = ClientError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, ClientError> {
        Ok(self.0.decode(src)?)
    }
}

impl Encoder<Bytes> for PacketCodec {
    type Error = ClientError;

    fn encode(&mut self, packet: Bytes, dst: &mut BytesMut) -> Result<(), ClientError> {
        dst.put_slice(&packet);
        Ok(())
    }
}

/// Returns the transport over a connected byte stream.
pub(super) fn framed<T>(io: T, max_body_len: usize) -> Transport
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let codec = PacketCodec(PacketDecoder::with_max_body_len(max_body_len));
    let (sink, stream) = Framed::new(io, codec).split();
    Transport {
        stream: Box::pin(stream),
        sink: Box::pin(sink),
    }
}
