//! Error types returned by the encoders and decoders.

use std::io;

/// Returned when bytes from the peer do not form a valid packet, message or payload.
///
/// Every variant means the input is malformed; Pitaya closes the connection on
/// each of them, and so should callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet type byte is outside `1..=5` (spec 1.2).
    #[error("unknown packet type {0:#04x}")]
    UnknownPacketType(u8),
    /// The announced body length is over the decoder's maximum.
    #[error("packet body of {len} bytes is over the maximum of {max} bytes")]
    BodyTooLarge {
        /// Announced body length in bytes.
        len: usize,
        /// Maximum accepted body length in bytes.
        max: usize,
    },
    /// A whole-buffer packet is shorter than the 4-byte header.
    #[error("packet of {0} bytes is shorter than the 4-byte header")]
    PacketTooShort(usize),
    /// A whole-buffer packet carries fewer or more body bytes than its header says.
    #[error("packet header announces {header} body bytes but {actual} are present")]
    PacketLengthMismatch {
        /// Body length from the header.
        header: usize,
        /// Body bytes actually present.
        actual: usize,
    },
    /// A message is shorter than the 2-byte minimum (spec 4.6).
    #[error("message of {0} bytes is shorter than the 2-byte minimum")]
    MessageTooShort(usize),
    /// The message type bits hold a value in `4..=7` (spec 4.3).
    #[error("invalid message type {0}")]
    InvalidMessageType(u8),
    /// The message id varint runs past the end of the message.
    #[error("message id varint is not terminated")]
    UnterminatedId,
    /// The message id varint is longer than 10 bytes or does not fit in a `u64`.
    #[error("message id varint overflows 64 bits")]
    IdOverflow,
    /// The route length or route code runs past the end of the message.
    #[error("route runs past the end of the message")]
    RouteOutOfBounds,
    /// The route string is not valid UTF-8.
    #[error("route is not valid utf-8")]
    InvalidRouteUtf8,
    /// A compressed route code is not in the route dictionary.
    #[error("unknown route code {0}")]
    UnknownRouteCode(u16),
    /// A compressed body could not be inflated.
    #[error("cannot inflate compressed body")]
    Inflate(#[source] io::Error),
    /// A compressed body inflates to more than the allowed number of bytes.
    #[error("inflated body is over the limit of {limit} bytes")]
    InflatedTooLarge {
        /// Maximum inflated size in bytes.
        limit: usize,
    },
    /// The client's handshake JSON does not parse (spec 2.1).
    #[error("invalid handshake request")]
    InvalidHandshake(#[source] serde_json::Error),
    /// The server's handshake response JSON does not parse (spec 2.2).
    #[error("invalid handshake response")]
    InvalidHandshakeResponse(#[source] serde_json::Error),
    /// An error payload's JSON does not parse (spec 4.7).
    #[error("invalid error payload")]
    InvalidErrorPayload(#[source] serde_json::Error),
}

/// Returned when a packet or message cannot be represented on the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The packet body does not fit in the 3-byte length field.
    #[error("packet body of {len} bytes is over the maximum of {max} bytes")]
    BodyTooLarge {
        /// Body length in bytes.
        len: usize,
        /// Maximum body length in bytes.
        max: usize,
    },
    /// An uncompressed route is longer than the 255 bytes its length byte can hold.
    #[error("route of {0} bytes is over the maximum of 255 bytes")]
    RouteTooLong(usize),
}

// Codec adapters (such as tokio-util's `Decoder`) require errors convertible from
// `io::Error`; converting the other way lets callers surface ours through io paths.
impl From<DecodeError> for io::Error {
    fn from(e: DecodeError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

impl From<EncodeError> for io::Error {
    fn from(e: EncodeError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}
