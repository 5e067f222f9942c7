//! Pitaya packets and messages as the load generator and the baseline write them.
//!
//! Requests are encoded by hand into a reused buffer, and responses and pushes are
//! parsed in place, so the client spends as little as it can of the two shared cores.
//! Only the handshake goes through `pitaya-protocol`'s JSON types.

use bytes::{BufMut, BytesMut};
use pitaya_protocol::{HandshakeRequest, HandshakeSys, PacketType, HEADER_LEN};

/// Message type of a Request, in bits 1-3 of the flag byte.
pub(crate) const KIND_REQUEST: u8 = 0;
/// Message type of a Notify.
pub(crate) const KIND_NOTIFY: u8 = 1;
/// Message type of a Response.
pub(crate) const KIND_RESPONSE: u8 = 2;
/// Message type of a Push.
pub(crate) const KIND_PUSH: u8 = 3;
/// Flag bit of an error Response.
const FLAG_ERROR: u8 = 0x20;
/// Flag bit of a zlib-compressed body.
const FLAG_COMPRESSED: u8 = 0x10;
/// Flag bit of a route sent as a dictionary code.
const FLAG_ROUTE_CODE: u8 = 0x01;

/// Returns the handshake packet a bench client sends first.
pub(crate) fn handshake_packet() -> Vec<u8> {
    let req = HandshakeRequest {
        sys: HandshakeSys {
            platform: "bench".into(),
            lib_version: "0.1".into(),
            client_build_number: "1".into(),
            client_version: "0.1".into(),
        },
        user: None,
    };
    packet(PacketType::Handshake, &req.to_json())
}

/// Returns one whole packet of `kind` around `body`.
pub(crate) fn packet(kind: PacketType, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    put_header(&mut out, kind, body.len());
    out.put_slice(body);
    out.to_vec()
}

/// Appends a packet header for a body of `len` bytes.
pub(crate) fn put_header(dst: &mut BytesMut, kind: PacketType, len: usize) {
    dst.put_u8(kind as u8);
    dst.put_uint(len as u64, 3);
}

/// Appends a Request (or, with id 0 and `KIND_NOTIFY`, a Notify) Data packet.
pub(crate) fn put_routed(dst: &mut BytesMut, kind: u8, id: u64, route: &[u8], body: &[u8]) {
    let mut varint = [0u8; 10];
    let id_len = if kind == KIND_REQUEST {
        encode_varint(id, &mut varint)
    } else {
        0
    };
    let len = 1 + id_len + 1 + route.len() + body.len();
    put_header(dst, PacketType::Data, len);
    dst.put_u8(kind << 1);
    dst.put_slice(&varint[..id_len]);
    dst.put_u8(route.len() as u8);
    dst.put_slice(route);
    dst.put_slice(body);
}

/// Appends a Response Data packet.
pub(crate) fn put_response(dst: &mut BytesMut, id: u64, body: &[u8]) {
    let mut varint = [0u8; 10];
    let id_len = encode_varint(id, &mut varint);
    put_header(dst, PacketType::Data, 1 + id_len + body.len());
    dst.put_u8(KIND_RESPONSE << 1);
    dst.put_slice(&varint[..id_len]);
    dst.put_slice(body);
}

/// Appends a Push Data packet with an uncoded route.
pub(crate) fn put_push(dst: &mut BytesMut, route: &[u8], body: &[u8]) {
    put_header(dst, PacketType::Data, 2 + route.len() + body.len());
    dst.put_u8(KIND_PUSH << 1);
    dst.put_u8(route.len() as u8);
    dst.put_slice(route);
    dst.put_slice(body);
}

/// Writes `value` as a protobuf varint into `out`; returns its length.
fn encode_varint(mut value: u64, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Returns the varint at the start of `buf` and its length.
fn decode_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A Data packet's message, borrowed from the packet body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct View<'a> {
    /// Message type (`KIND_*`).
    pub(crate) kind: u8,
    /// Request id; 0 for Notify and Push.
    pub(crate) id: u64,
    /// Route; empty for a Response, the decimal code for a coded route.
    pub(crate) route: &'a [u8],
    /// Body.
    pub(crate) body: &'a [u8],
    /// Whether an error Response.
    pub(crate) error: bool,
    /// Whether the body is zlib-compressed.
    pub(crate) compressed: bool,
}

impl View<'_> {
    /// Returns whether the body is `want`, inflating a compressed body first.
    pub(crate) fn body_is(&self, want: &[u8]) -> bool {
        if !self.compressed {
            return self.body == want;
        }
        pitaya_protocol::inflate(self.body, want.len() + 1).is_ok_and(|b| b[..] == *want)
    }
}

/// Returns the message in a Data packet body, or `None` when it is malformed.
pub(crate) fn parse(buf: &[u8]) -> Option<View<'_>> {
    let flag = *buf.first()?;
    let kind = (flag >> 1) & 0x07;
    let mut rest = &buf[1..];
    let mut id = 0;
    if kind == KIND_REQUEST || kind == KIND_RESPONSE {
        let (value, used) = decode_varint(rest)?;
        id = value;
        rest = &rest[used..];
    }
    let mut route: &[u8] = &[];
    if kind != KIND_RESPONSE {
        if flag & FLAG_ROUTE_CODE != 0 {
            route = rest.get(..2)?;
            rest = &rest[2..];
        } else {
            let len = usize::from(*rest.first()?);
            route = rest.get(1..1 + len)?;
            rest = &rest[1 + len..];
        }
    }
    Some(View {
        kind,
        id,
        route,
        body: rest,
        error: flag & FLAG_ERROR != 0,
        compressed: flag & FLAG_COMPRESSED != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pitaya_protocol::{Message, Packet, RouteDict};

    #[test]
    fn request_matches_the_protocol_crate() {
        let mut ours = BytesMut::new();
        put_routed(&mut ours, KIND_REQUEST, 300, b"a.b.c", b"{}");
        let msg = Message::request(300, "a.b.c", Bytes::from_static(b"{}"));
        let body = msg.to_bytes(&RouteDict::empty(), false).unwrap();
        let theirs = Packet::new(PacketType::Data, body).to_bytes().unwrap();
        assert_eq!(&ours[..], &theirs[..]);
    }

    #[test]
    fn parses_response_and_push() {
        let mut buf = BytesMut::new();
        put_response(&mut buf, 129, b"xyz");
        let view = parse(&buf[HEADER_LEN..]).unwrap();
        assert_eq!(
            (view.kind, view.id, view.body),
            (KIND_RESPONSE, 129, &b"xyz"[..])
        );
        buf.clear();
        put_push(&mut buf, b"onX", b"{}");
        let view = parse(&buf[HEADER_LEN..]).unwrap();
        assert_eq!(
            (view.kind, view.route, view.body),
            (KIND_PUSH, &b"onX"[..], &b"{}"[..])
        );
    }

    #[test]
    fn truncated_message_is_rejected() {
        assert!(parse(&[KIND_RESPONSE << 1, 0x80]).is_none());
        assert!(parse(&[KIND_PUSH << 1, 9, b'a']).is_none());
    }
}
