//! Packets: the framing unit on a client connection (spec section 1).
//!
//! ```text
//! +--------+--------+--------+--------+----------------------+
//! |  type  |  body length (u24, BE)   |  body (length bytes) |
//! +--------+--------+--------+--------+----------------------+
//!  0        1                 3        4
//! ```
//!
//! [`Packet::decode_exact`] takes one whole buffer, as a WebSocket message
//! delivers it; [`PacketDecoder`] takes a byte stream, as TCP delivers it.

mod decoder;

use bytes::{BufMut, Bytes, BytesMut};

pub use decoder::PacketDecoder;

use crate::{DecodeError, EncodeError};

/// Length of the packet header in bytes: one type byte and a 3-byte length.
pub const HEADER_LEN: usize = 4;

/// Largest body the 3-byte length field can announce: 16,777,215 bytes.
pub const MAX_BODY_LEN: usize = 0xFF_FFFF;

/// Kind of a packet, carried in its first byte (spec 1.2).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Handshake request (client) or response (server), JSON body.
    Handshake = 1,
    /// Client's acknowledgement of the handshake response, empty body.
    HandshakeAck = 2,
    /// Keep-alive in both directions, empty body.
    Heartbeat = 3,
    /// One message (see [`Message`](crate::Message)) in both directions.
    Data = 4,
    /// Server tells the client it is being disconnected, empty body.
    Kick = 5,
}

impl TryFrom<u8> for PacketType {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::Handshake,
            2 => Self::HandshakeAck,
            3 => Self::Heartbeat,
            4 => Self::Data,
            5 => Self::Kick,
            other => return Err(DecodeError::UnknownPacketType(other)),
        })
    }
}

/// One packet: its type and its raw body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Packet type.
    pub kind: PacketType,
    /// Body bytes, without the header.
    pub body: Bytes,
}

// ===== impl Packet =====

impl Packet {
    /// Returns a packet of the given type and body.
    pub fn new(kind: PacketType, body: impl Into<Bytes>) -> Self {
        Self {
            kind,
            body: body.into(),
        }
    }

    /// Returns an empty-bodied heartbeat packet (`03 00 00 00`).
    pub fn heartbeat() -> Self {
        Self::new(PacketType::Heartbeat, Bytes::new())
    }

    /// Returns an empty-bodied handshake ack packet (`02 00 00 00`).
    pub fn handshake_ack() -> Self {
        Self::new(PacketType::HandshakeAck, Bytes::new())
    }

    /// Returns an empty-bodied kick packet (`05 00 00 00`).
    pub fn kick() -> Self {
        Self::new(PacketType::Kick, Bytes::new())
    }

    /// Appends the header and body to `dst`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::BodyTooLarge`] when the body is over [`MAX_BODY_LEN`];
    /// `dst` is then left unchanged.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_packet(self.kind, &self.body, dst)
    }

    /// Returns the packet encoded into a new buffer.
    ///
    /// # Errors
    ///
    /// [`EncodeError::BodyTooLarge`] when the body is over [`MAX_BODY_LEN`].
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut dst = BytesMut::with_capacity(HEADER_LEN + self.body.len());
        self.encode(&mut dst)?;
        Ok(dst.freeze())
    }

    /// Returns the one packet that fills `buf` exactly.
    ///
    /// This is the WebSocket rule (spec 1.6): one message holds one packet, and
    /// both missing and extra bytes are errors.
    ///
    /// # Errors
    ///
    /// [`DecodeError::PacketTooShort`] under 4 bytes,
    /// [`DecodeError::UnknownPacketType`] for a bad type byte, and
    /// [`DecodeError::PacketLengthMismatch`] when the body is shorter or longer
    /// than the header says.
    pub fn decode_exact(buf: &[u8]) -> Result<Packet, DecodeError> {
        let Some((head, body)) = buf.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::PacketTooShort(buf.len()));
        };
        let (kind, len) = parse_header(head)?;
        if len != body.len() {
            return Err(DecodeError::PacketLengthMismatch {
                header: len,
                actual: body.len(),
            });
        }
        Ok(Packet::new(kind, Bytes::copy_from_slice(body)))
    }
}

/// Appends a packet of type `kind` with `body` to `dst` without building a [`Packet`].
///
/// # Errors
///
/// [`EncodeError::BodyTooLarge`] when `body` is over [`MAX_BODY_LEN`]; `dst`
/// is then left unchanged.
pub fn encode_packet(kind: PacketType, body: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    if body.len() > MAX_BODY_LEN {
        return Err(EncodeError::BodyTooLarge {
            len: body.len(),
            max: MAX_BODY_LEN,
        });
    }
    dst.reserve(HEADER_LEN + body.len());
    dst.put_u8(kind as u8);
    dst.put_uint(body.len() as u64, 3);
    dst.put_slice(body);
    Ok(())
}

/// Returns the type and body length from a 4-byte header.
fn parse_header(head: &[u8; HEADER_LEN]) -> Result<(PacketType, usize), DecodeError> {
    let kind = PacketType::try_from(head[0])?;
    let len = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
    Ok((kind, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_packets_are_four_bytes() {
        assert_eq!(&Packet::heartbeat().to_bytes().unwrap()[..], &[3, 0, 0, 0]);
        assert_eq!(
            &Packet::handshake_ack().to_bytes().unwrap()[..],
            &[2, 0, 0, 0]
        );
        assert_eq!(&Packet::kick().to_bytes().unwrap()[..], &[5, 0, 0, 0]);
    }

    #[test]
    fn length_is_big_endian_24_bit() {
        let body = vec![7u8; 0x01_02_03];
        let bytes = Packet::new(PacketType::Data, body.clone())
            .to_bytes()
            .unwrap();
        assert_eq!(&bytes[..4], &[4, 0x01, 0x02, 0x03]);
        assert_eq!(&bytes[4..], &body[..]);
    }

    #[test]
    fn encode_accepts_max_body_and_rejects_one_more() {
        let mut dst = BytesMut::new();
        encode_packet(PacketType::Data, &vec![0; MAX_BODY_LEN], &mut dst).unwrap();
        assert_eq!(&dst[..4], &[4, 0xFF, 0xFF, 0xFF]);

        let mut dst = BytesMut::new();
        let err = encode_packet(PacketType::Data, &vec![0; MAX_BODY_LEN + 1], &mut dst);
        assert!(matches!(
            err,
            Err(EncodeError::BodyTooLarge { len, max: MAX_BODY_LEN }) if len == MAX_BODY_LEN + 1
        ));
        assert!(dst.is_empty());
    }

    #[test]
    fn packet_types_map_to_their_bytes() {
        for b in 1..=5u8 {
            assert_eq!(PacketType::try_from(b).unwrap() as u8, b);
        }
        for b in [0u8, 6, 0x7F, 0xFF] {
            assert!(
                matches!(PacketType::try_from(b), Err(DecodeError::UnknownPacketType(x)) if x == b)
            );
        }
    }

    #[test]
    fn decode_exact_round_trips() {
        let p = Packet::new(PacketType::Handshake, &b"{}"[..]);
        assert_eq!(Packet::decode_exact(&p.to_bytes().unwrap()).unwrap(), p);
        assert_eq!(
            Packet::decode_exact(&[3, 0, 0, 0]).unwrap(),
            Packet::heartbeat()
        );
    }

    #[test]
    fn decode_exact_rejects_short_header() {
        assert!(matches!(
            Packet::decode_exact(&[]),
            Err(DecodeError::PacketTooShort(0))
        ));
        assert!(matches!(
            Packet::decode_exact(&[4, 0, 0]),
            Err(DecodeError::PacketTooShort(3))
        ));
    }

    #[test]
    fn decode_exact_rejects_unknown_type() {
        let err = Packet::decode_exact(&[9, 0, 0, 0]);
        assert!(matches!(err, Err(DecodeError::UnknownPacketType(9))));
    }

    #[test]
    fn decode_exact_rejects_short_body() {
        let err = Packet::decode_exact(&[4, 0, 0, 3, 1, 2]);
        assert!(matches!(
            err,
            Err(DecodeError::PacketLengthMismatch {
                header: 3,
                actual: 2
            })
        ));
    }

    #[test]
    fn decode_exact_rejects_trailing_bytes_and_coalesced_packets() {
        let err = Packet::decode_exact(&[4, 0, 0, 1, 1, 2]);
        assert!(matches!(
            err,
            Err(DecodeError::PacketLengthMismatch {
                header: 1,
                actual: 2
            })
        ));
        let err = Packet::decode_exact(&[3, 0, 0, 0, 3, 0, 0, 0]);
        assert!(matches!(
            err,
            Err(DecodeError::PacketLengthMismatch {
                header: 0,
                actual: 4
            })
        ));
    }
}
