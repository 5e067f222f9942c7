//! Golden vectors from spec 4.9 and one test per malformed-input error.

use super::*;
use crate::{Packet, PacketType};

const NO_LIMIT: usize = usize::MAX;

fn dict() -> RouteDict {
    RouteDict::new([("a".to_owned(), 1)]).unwrap()
}

fn encode(msg: &Message, dict: &RouteDict) -> Vec<u8> {
    msg.to_bytes(dict, false).unwrap().to_vec()
}

/// Asserts `bytes` is both the encoding of `msg` and decodes back to it.
fn golden(msg: Message, dict: &RouteDict, bytes: &[u8]) {
    assert_eq!(encode(&msg, dict), bytes, "encoding {msg:?}");
    assert_eq!(Message::decode(bytes, dict, NO_LIMIT).unwrap(), msg);
}

#[test]
fn golden_vectors_with_string_routes() {
    let empty = RouteDict::empty();
    golden(
        Message::request(0, "a", Bytes::new()),
        &empty,
        &[0x00, 0x00, 0x01, 0x61],
    );
    golden(
        Message::notify("a", Bytes::new()),
        &empty,
        &[0x02, 0x01, 0x61],
    );
    golden(
        Message::push("a", Bytes::new()),
        &empty,
        &[0x06, 0x01, 0x61],
    );
}

#[test]
fn golden_vectors_with_route_codes() {
    let d = dict();
    golden(
        Message::request(0, "a", Bytes::new()),
        &d,
        &[0x01, 0x00, 0x00, 0x01],
    );
    golden(Message::notify("a", Bytes::new()), &d, &[0x03, 0x00, 0x01]);
    golden(Message::push("a", Bytes::new()), &d, &[0x07, 0x00, 0x01]);
}

#[test]
fn golden_vectors_for_responses() {
    let d = dict();
    golden(Message::response(0, Bytes::new()), &d, &[0x04, 0x00]);
    golden(Message::response(0, vec![0x01]), &d, &[0x04, 0x00, 0x01]);
    golden(
        Message::response(129, Bytes::new()),
        &d,
        &[0x04, 0x81, 0x01],
    );
    golden(
        Message::error_response(0, vec![0x01]),
        &d,
        &[0x24, 0x00, 0x01],
    );
}

#[test]
fn golden_error_response_with_compressed_body() {
    let body = br#"{"code":"PIT-500","msg":"internal error, internal error, internal error"}"#;
    let msg = Message::error_response(0, &body[..]);
    let bytes = msg.to_bytes(&RouteDict::empty(), true).unwrap();
    assert_eq!(&bytes[..4], &[0x34, 0x00, 0x78, 0x9C]);
    assert!(bytes.len() < 2 + body.len());
    assert_eq!(
        Message::decode(&bytes, &RouteDict::empty(), NO_LIMIT).unwrap(),
        msg
    );
}

#[test]
fn golden_full_push_packet() {
    let msg = Message::push("chat.msg", &br#"{"x":1}"#[..]);
    let body = msg.to_bytes(&RouteDict::empty(), false).unwrap();
    let packet = Packet::new(PacketType::Data, body).to_bytes().unwrap();
    let expected = [
        0x04, 0x00, 0x00, 0x11, 0x06, 0x08, 0x63, 0x68, 0x61, 0x74, 0x2e, 0x6d, 0x73, 0x67, 0x7b,
        0x22, 0x78, 0x22, 0x3a, 0x31, 0x7d,
    ];
    assert_eq!(&packet[..], &expected);

    let decoded = Packet::decode_exact(&expected).unwrap();
    assert_eq!(
        Message::decode(&decoded.body, &RouteDict::empty(), NO_LIMIT).unwrap(),
        msg
    );
}

#[test]
fn ids_round_trip_at_varint_boundaries() {
    let cases: [(u64, &[u8]); 6] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (129, &[0x81, 0x01]),
        (16383, &[0xFF, 0x7F]),
        (16384, &[0x80, 0x80, 0x01]),
    ];
    for (id, varint) in cases {
        let mut expected = vec![0x04];
        expected.extend_from_slice(varint);
        golden(
            Message::response(id, Bytes::new()),
            &RouteDict::empty(),
            &expected,
        );
    }
    let max = Message::request(u64::MAX, "r", vec![9]);
    let bytes = encode(&max, &RouteDict::empty());
    assert_eq!(bytes.len(), 1 + 10 + 2 + 1);
    assert_eq!(
        Message::decode(&bytes, &RouteDict::empty(), NO_LIMIT).unwrap(),
        max
    );
}

#[test]
fn ids_and_routes_not_carried_by_the_type_are_not_written() {
    let notify = Message {
        id: 77,
        ..Message::notify("a", Bytes::new())
    };
    assert_eq!(encode(&notify, &RouteDict::empty()), [0x02, 0x01, 0x61]);
    let response = Message {
        route: "a".into(),
        ..Message::response(1, Bytes::new())
    };
    assert_eq!(encode(&response, &dict()), [0x04, 0x01]);
}

#[test]
fn compression_is_used_only_when_strictly_shorter() {
    let small = Message::push("a", vec![1, 2, 3]);
    let bytes = small.to_bytes(&RouteDict::empty(), true).unwrap();
    assert_eq!(&bytes[..], &[0x06, 0x01, 0x61, 1, 2, 3]);

    let big = Message::push("a", vec![b'x'; 200]);
    let bytes = big.to_bytes(&RouteDict::empty(), true).unwrap();
    assert_eq!(bytes[0], 0x16);
    assert!(bytes.len() < 203);
    assert_eq!(
        Message::decode(&bytes, &RouteDict::empty(), NO_LIMIT).unwrap(),
        big
    );
}

#[test]
fn route_of_255_bytes_encodes_and_256_is_refused() {
    let route = "r".repeat(255);
    let msg = Message::notify(route.clone(), Bytes::new());
    let bytes = encode(&msg, &RouteDict::empty());
    assert_eq!(bytes[1], 255);
    assert_eq!(
        Message::decode(&bytes, &RouteDict::empty(), NO_LIMIT)
            .unwrap()
            .route,
        route
    );

    let mut dst = BytesMut::new();
    let err =
        Message::notify("r".repeat(256), Bytes::new()).encode(&RouteDict::empty(), false, &mut dst);
    assert!(matches!(err, Err(EncodeError::RouteTooLong(256))));
    assert!(dst.is_empty());
}

#[test]
fn long_route_in_dictionary_is_sent_as_code() {
    let route = "r".repeat(300);
    let d = RouteDict::new([(route.clone(), 5)]).unwrap();
    assert_eq!(
        encode(&Message::push(route, Bytes::new()), &d),
        [0x07, 0x00, 0x05]
    );
}

#[test]
fn rejects_messages_under_two_bytes() {
    let d = RouteDict::empty();
    assert!(matches!(
        Message::decode(&[], &d, NO_LIMIT),
        Err(DecodeError::MessageTooShort(0))
    ));
    assert!(matches!(
        Message::decode(&[0x04], &d, NO_LIMIT),
        Err(DecodeError::MessageTooShort(1))
    ));
}

#[test]
fn rejects_message_types_four_to_seven() {
    for t in 4u8..=7 {
        let err = Message::decode(&[t << 1, 0x00], &RouteDict::empty(), NO_LIMIT);
        assert!(
            matches!(err, Err(DecodeError::InvalidMessageType(x)) if x == t),
            "type {t}"
        );
    }
}

#[test]
fn rejects_unterminated_id() {
    let err = Message::decode(&[0x04, 0x80, 0x80], &RouteDict::empty(), NO_LIMIT);
    assert!(matches!(err, Err(DecodeError::UnterminatedId)));
}

#[test]
fn rejects_overlong_id() {
    let mut buf = vec![0x04];
    buf.extend_from_slice(&[0xFF; 10]);
    buf.push(0x01);
    let err = Message::decode(&buf, &RouteDict::empty(), NO_LIMIT);
    assert!(matches!(err, Err(DecodeError::IdOverflow)));
}

#[test]
fn rejects_route_length_past_the_end() {
    let d = RouteDict::empty();
    let err = Message::decode(&[0x02, 0x05, b'a', b'b'], &d, NO_LIMIT);
    assert!(matches!(err, Err(DecodeError::RouteOutOfBounds)));
    let err = Message::decode(&[0x00, 0x01], &d, NO_LIMIT);
    assert!(
        matches!(err, Err(DecodeError::RouteOutOfBounds)),
        "no length byte"
    );
    let err = Message::decode(&[0x03, 0x00], &dict(), NO_LIMIT);
    assert!(
        matches!(err, Err(DecodeError::RouteOutOfBounds)),
        "half a route code"
    );
}

#[test]
fn rejects_invalid_utf8_route() {
    let err = Message::decode(&[0x02, 0x02, 0xC3, 0x28], &RouteDict::empty(), NO_LIMIT);
    assert!(matches!(err, Err(DecodeError::InvalidRouteUtf8)));
}

#[test]
fn rejects_unknown_route_code() {
    let err = Message::decode(&[0x03, 0x01, 0x02], &dict(), NO_LIMIT);
    assert!(matches!(err, Err(DecodeError::UnknownRouteCode(0x0102))));
}

#[test]
fn rejects_corrupt_compressed_body() {
    let err = Message::decode(
        &[0x16, 0x01, b'a', 0x78, 0x9C, 0xFF],
        &RouteDict::empty(),
        NO_LIMIT,
    );
    assert!(matches!(err, Err(DecodeError::Inflate(_))));
}

#[test]
fn rejects_compressed_body_inflating_past_the_limit() {
    let mut buf = vec![0x16, 0x01, b'a'];
    buf.extend_from_slice(&compression::deflate(&[0; 10_000]));
    let err = Message::decode(&buf, &RouteDict::empty(), 9_999);
    assert!(matches!(
        err,
        Err(DecodeError::InflatedTooLarge { limit: 9_999 })
    ));
    assert_eq!(
        Message::decode(&buf, &RouteDict::empty(), 10_000)
            .unwrap()
            .data
            .len(),
        10_000
    );
}

#[test]
fn accepts_gzip_compressed_body() {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(b"{}").unwrap();
    let mut buf = vec![0x12, 0x01, b'a'];
    buf.extend_from_slice(&enc.finish().unwrap());
    assert_eq!(
        Message::decode(&buf, &RouteDict::empty(), NO_LIMIT)
            .unwrap()
            .data,
        &b"{}"[..]
    );
}

#[test]
fn message_type_reports_id_and_route_presence() {
    use MessageType::*;
    assert_eq!(
        [Request, Notify, Response, Push].map(MessageType::has_id),
        [true, false, true, false]
    );
    assert_eq!(
        [Request, Notify, Response, Push].map(MessageType::has_route),
        [true, true, false, true]
    );
    assert_eq!(Message::default().kind, Request);
}
