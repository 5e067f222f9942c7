//! Messages: the content of Data packets (spec section 4).
//!
//! ```text
//! +------+------------------+--------------------------------+---------------+
//! | flag | id (varint)      | route                          | body          |
//! +------+------------------+--------------------------------+---------------+
//!          Request/Response   Request/Notify/Push:             rest of the
//!          only               len(u8) + UTF-8 bytes,           message
//!                             or code (u16, BE) if flag & 0x01
//!
//! flag:  bit 7 6 5     4          3 2 1   0
//!            0 0 error compressed type    route code
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use crate::route_dict::{DictError, RouteDict};
use crate::{compression, varint, DecodeError, EncodeError};

const ROUTE_CODE_FLAG: u8 = 0x01;
const TYPE_MASK: u8 = 0x07;
const COMPRESSED_FLAG: u8 = 0x10;
const ERROR_FLAG: u8 = 0x20;

/// Longest route that fits behind the 1-byte length.
const MAX_ROUTE_LEN: usize = u8::MAX as usize;

/// Kind of a message, carried in bits 1-3 of the flag byte (spec 4.3).
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Client call expecting a Response; has an id and a route.
    #[default]
    Request = 0,
    /// Client call without a reply; has a route.
    Notify = 1,
    /// Server answer to a Request; has an id.
    Response = 2,
    /// Server-initiated message; has a route.
    Push = 3,
}

impl MessageType {
    /// Returns whether messages of this type carry an id.
    pub fn has_id(self) -> bool {
        matches!(self, Self::Request | Self::Response)
    }

    /// Returns whether messages of this type carry a route.
    pub fn has_route(self) -> bool {
        !matches!(self, Self::Response)
    }
}

impl TryFrom<u8> for MessageType {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => Self::Request,
            1 => Self::Notify,
            2 => Self::Response,
            3 => Self::Push,
            other => return Err(DecodeError::InvalidMessageType(other)),
        })
    }
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    /// Message type.
    pub kind: MessageType,
    /// Request id; only encoded for Request and Response.
    pub id: u64,
    /// Route such as `room.join`; only encoded for Request, Notify and Push.
    pub route: String,
    /// Body, always uncompressed.
    pub data: Bytes,
    /// Whether the body is an error payload (flag bit `0x20`).
    pub error: bool,
}

// ===== impl Message =====

impl Message {
    /// Returns a Request with the given id, route and body.
    pub fn request(id: u64, route: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self::routed(MessageType::Request, id, route.into(), data.into())
    }

    /// Returns a Notify with the given route and body.
    pub fn notify(route: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self::routed(MessageType::Notify, 0, route.into(), data.into())
    }

    /// Returns a successful Response to request `id`.
    pub fn response(id: u64, data: impl Into<Bytes>) -> Self {
        Self::routed(MessageType::Response, id, String::new(), data.into())
    }

    /// Returns an error Response to request `id`; `data` is an error payload (spec 4.7).
    pub fn error_response(id: u64, data: impl Into<Bytes>) -> Self {
        Self {
            error: true,
            ..Self::response(id, data)
        }
    }

    /// Returns a Push with the given route and body.
    pub fn push(route: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self::routed(MessageType::Push, 0, route.into(), data.into())
    }

    fn routed(kind: MessageType, id: u64, route: String, data: Bytes) -> Self {
        Self {
            kind,
            id,
            route,
            data,
            error: false,
        }
    }

    /// Appends the encoded message to `dst`.
    ///
    /// The route goes out as its 2-byte code when `dict` has it, else as a
    /// length-prefixed string. With `compress`, the body is zlib-deflated and
    /// the compressed form (flag `0x10`) is used only when strictly shorter, as
    /// Go Pitaya does (spec 4.6). Fields the type does not carry (the id of a
    /// Notify or Push, the route of a Response) are not written.
    ///
    /// # Errors
    ///
    /// [`EncodeError::RouteTooLong`] for an uncoded route over 255 bytes; `dst`
    /// is then left unchanged.
    pub fn encode(
        &self,
        dict: &RouteDict,
        compress: bool,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let mut flag = (self.kind as u8) << 1;
        let code = if self.kind.has_route() {
            dict.code(&self.route)
        } else {
            None
        };
        if self.kind.has_route() && code.is_none() && self.route.len() > MAX_ROUTE_LEN {
            return Err(EncodeError::RouteTooLong(self.route.len()));
        }
        if code.is_some() {
            flag |= ROUTE_CODE_FLAG;
        }
        if self.error {
            flag |= ERROR_FLAG;
        }

        let deflated = compress.then(|| compression::deflate(&self.data));
        let body = match &deflated {
            Some(z) if z.len() < self.data.len() => {
                flag |= COMPRESSED_FLAG;
                &z[..]
            }
            _ => &self.data[..],
        };

        dst.reserve(1 + 10 + 1 + self.route.len() + body.len());
        dst.put_u8(flag);
        if self.kind.has_id() {
            varint::put(self.id, dst);
        }
        match code {
            Some(code) => dst.put_u16(code),
            None if self.kind.has_route() => {
                // Checked against MAX_ROUTE_LEN above, so the cast is lossless.
                dst.put_u8(self.route.len() as u8);
                dst.put_slice(self.route.as_bytes());
            }
            None => {}
        }
        dst.put_slice(body);
        Ok(())
    }

    /// Returns the message encoded into a new buffer; see [`encode`](Self::encode).
    ///
    /// # Errors
    ///
    /// [`EncodeError::RouteTooLong`] for an uncoded route over 255 bytes.
    pub fn to_bytes(&self, dict: &RouteDict, compress: bool) -> Result<Bytes, EncodeError> {
        let mut dst = BytesMut::new();
        self.encode(dict, compress, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Returns the message decoded from a Data packet body.
    ///
    /// Route codes are resolved through `dict`. A compressed body is inflated
    /// (zlib, or gzip as a leniency) to at most `max_inflated` bytes. Bits 6-7
    /// of the flag are ignored, and so is the route-code bit of a Response.
    ///
    /// # Errors
    ///
    /// [`DecodeError::MessageTooShort`], [`DecodeError::InvalidMessageType`],
    /// [`DecodeError::UnterminatedId`], [`DecodeError::IdOverflow`],
    /// [`DecodeError::RouteOutOfBounds`], [`DecodeError::InvalidRouteUtf8`],
    /// [`DecodeError::UnknownRouteCode`], [`DecodeError::Inflate`] and
    /// [`DecodeError::InflatedTooLarge`], each named for what is wrong.
    pub fn decode(
        buf: &[u8],
        dict: &RouteDict,
        max_inflated: usize,
    ) -> Result<Message, DecodeError> {
        if buf.len() < 2 {
            return Err(DecodeError::MessageTooShort(buf.len()));
        }
        let flag = buf[0];
        let kind = MessageType::try_from((flag >> 1) & TYPE_MASK)?;
        let mut rest = &buf[1..];

        let mut id = 0;
        if kind.has_id() {
            let (value, used) = varint::get(rest)?;
            id = value;
            rest = &rest[used..];
        }

        let mut route = String::new();
        if kind.has_route() {
            route = if flag & ROUTE_CODE_FLAG != 0 {
                decode_route_code(&mut rest, dict)?
            } else {
                decode_route_string(&mut rest)?
            };
        }

        let data = if flag & COMPRESSED_FLAG != 0 {
            Bytes::from(compression::inflate(rest, max_inflated)?)
        } else {
            Bytes::copy_from_slice(rest)
        };
        Ok(Message {
            kind,
            id,
            route,
            data,
            error: flag & ERROR_FLAG != 0,
        })
    }
}

fn decode_route_code(rest: &mut &[u8], dict: &RouteDict) -> Result<String, DecodeError> {
    if rest.len() < 2 {
        return Err(DecodeError::RouteOutOfBounds);
    }
    let code = rest.get_u16();
    dict.route(code)
        .map(str::to_owned)
        .ok_or(DecodeError::UnknownRouteCode(code))
}

fn decode_route_string(rest: &mut &[u8]) -> Result<String, DecodeError> {
    let Some((&len, tail)) = rest.split_first() else {
        return Err(DecodeError::RouteOutOfBounds);
    };
    let Some((bytes, tail)) = tail.split_at_checked(usize::from(len)) else {
        return Err(DecodeError::RouteOutOfBounds);
    };
    *rest = tail;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidRouteUtf8)
}

#[cfg(test)]
mod tests;
