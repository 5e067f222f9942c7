//! Incremental packet decoder for byte streams.

use bytes::{Buf, BytesMut};

use super::{parse_header, Packet, PacketType, HEADER_LEN, MAX_BODY_LEN};
use crate::DecodeError;

/// Incremental decoder that cuts packets out of a byte stream such as TCP.
///
/// Packets may be split across reads or coalesced into one (spec 1.4); feed
/// whatever arrived into one `BytesMut` and call [`decode`](Self::decode)
/// until it returns `Ok(None)`.
///
/// The decoder never reserves room for an announced body: memory grows only
/// with bytes that actually arrived, so a peer cannot make us allocate 16 MiB
/// by sending a 4-byte header. After an error the stream is unusable and the
/// connection should be closed, as Pitaya does.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use pitaya_protocol::{PacketDecoder, PacketType};
///
/// let mut dec = PacketDecoder::new();
/// let mut src = BytesMut::from(&[3, 0, 0, 0, 4, 0][..]);
/// assert_eq!(dec.decode(&mut src).unwrap().unwrap().kind, PacketType::Heartbeat);
/// assert!(dec.decode(&mut src).unwrap().is_none());
/// ```
#[derive(Debug)]
pub struct PacketDecoder {
    state: State,
    max_body_len: usize,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    Body { kind: PacketType, len: usize },
}

// ===== impl PacketDecoder =====

impl PacketDecoder {
    /// Returns a decoder accepting bodies up to [`MAX_BODY_LEN`].
    pub fn new() -> Self {
        Self::with_max_body_len(MAX_BODY_LEN)
    }

    /// Returns a decoder accepting bodies up to `max` bytes (capped at [`MAX_BODY_LEN`]).
    pub fn with_max_body_len(max: usize) -> Self {
        Self {
            state: State::Head,
            max_body_len: max.min(MAX_BODY_LEN),
        }
    }

    /// Returns the largest body length this decoder accepts, in bytes.
    pub fn max_body_len(&self) -> usize {
        self.max_body_len
    }

    /// Returns the next whole packet from `src`, or `Ok(None)` when more bytes are needed.
    ///
    /// Consumed bytes are removed from `src`. The type byte is checked as soon
    /// as it arrives and the length as soon as the header is complete, so a bad
    /// header fails without waiting for its body.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownPacketType`] for a type byte outside `1..=5`, and
    /// [`DecodeError::BodyTooLarge`] for a length over the maximum.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let (kind, len) = match self.state {
            State::Body { kind, len } => (kind, len),
            State::Head => match self.decode_head(src)? {
                Some(head) => head,
                None => return Ok(None),
            },
        };

        // Wait for the body without reserving room for it: see the type docs.
        if src.len() < len {
            self.state = State::Body { kind, len };
            return Ok(None);
        }
        self.state = State::Head;
        Ok(Some(Packet::new(kind, src.split_to(len).freeze())))
    }

    fn decode_head(&self, src: &mut BytesMut) -> Result<Option<(PacketType, usize)>, DecodeError> {
        // A bad type byte is fatal whatever follows, so we need not wait for the rest.
        if let Some(&first) = src.first() {
            PacketType::try_from(first)?;
        }
        let Some(head) = src.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let (kind, len) = parse_header(head)?;
        if len > self.max_body_len {
            return Err(DecodeError::BodyTooLarge {
                len,
                max: self.max_body_len,
            });
        }
        src.advance(HEADER_LEN);
        Ok(Some((kind, len)))
    }
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self::new()
    }
}
