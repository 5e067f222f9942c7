//! Byte-level checks of field numbers and wire types against spec 6.2.
//!
//! Expected bytes are written out by hand from the protobuf encoding rules: a
//! tag byte is `field_number << 3 | wire_type` (0 varint, 2 length-delimited).

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

use super::*;

fn encoded(m: &impl Message) -> Vec<u8> {
    m.encode_to_vec()
}

#[test]
fn user_request_with_route_encodes_to_known_bytes() {
    let request = Request {
        r#type: RpcType::User.into(),
        msg: Some(Msg {
            route: "a.b.c".into(),
            ..Msg::default()
        }),
        ..Request::default()
    };
    // type (1, varint) = 1; msg (3, len 7) { route (2, len 5) "a.b.c" }
    let mut want = vec![0x08, 0x01, 0x1a, 0x07, 0x12, 0x05];
    want.extend_from_slice(b"a.b.c");
    assert_eq!(encoded(&request), want);
}

#[test]
fn sys_request_uses_spec_field_numbers_and_omits_zero_type() {
    let request = Request {
        r#type: RpcType::Sys.into(),
        session: Some(Session {
            id: 5,
            uid: "u".into(),
            data: Bytes::from_static(b"{}"),
        }),
        msg: Some(Msg {
            id: 3,
            route: "c.s.m".into(),
            data: Bytes::from_static(b"x"),
            reply: "r".into(),
            r#type: MsgType::MsgNotify.into(),
        }),
        frontend_id: "f".into(),
        metadata: Bytes::from_static(b"{}"),
    };
    let mut want = Vec::new();
    // session (2, len 9) { id (1) = 5; uid (2) "u"; data (3) "{}" }
    want.extend_from_slice(&[
        0x12, 0x09, 0x08, 0x05, 0x12, 0x01, b'u', 0x1a, 0x02, b'{', b'}',
    ]);
    // msg (3, len 17) { id (1) = 3; route (2); data (3); reply (4); type (5) = 1 }
    want.extend_from_slice(&[0x1a, 0x11, 0x08, 0x03, 0x12, 0x05]);
    want.extend_from_slice(b"c.s.m");
    want.extend_from_slice(&[0x1a, 0x01, b'x', 0x22, 0x01, b'r', 0x28, 0x01]);
    // frontendID (4) "f"; metadata (5) "{}"
    want.extend_from_slice(&[0x22, 0x01, b'f', 0x2a, 0x02, b'{', b'}']);
    assert_eq!(encoded(&request), want);
}

#[test]
fn error_response_encodes_code_msg_and_metadata_map() {
    let response = Response {
        data: Bytes::new(),
        error: Some(Error {
            code: "PIT-404".into(),
            msg: "m".into(),
            metadata: HashMap::from([("k".to_owned(), "v".to_owned())]),
        }),
    };
    // error (2, len 20) { code (1) "PIT-404"; msg (2) "m";
    //   metadata (3, len 6) { key (1) "k"; value (2) "v" } }
    let mut want = vec![0x12, 0x14, 0x0a, 0x07];
    want.extend_from_slice(b"PIT-404");
    want.extend_from_slice(&[
        0x12, 0x01, b'm', 0x1a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v',
    ]);
    assert_eq!(encoded(&response), want);

    let ok = Response {
        data: Bytes::from_static(b"ack"),
        error: None,
    };
    assert_eq!(encoded(&ok), [0x0a, 0x03, b'a', b'c', b'k']);
}

#[test]
fn push_kick_and_bind_messages_use_spec_field_numbers() {
    let push = Push {
        route: "r".into(),
        uid: "u".into(),
        data: Bytes::from_static(b"d"),
    };
    assert_eq!(
        encoded(&push),
        [0x0a, 0x01, b'r', 0x12, 0x01, b'u', 0x1a, 0x01, b'd']
    );

    let kick = KickMsg {
        user_id: "u".into(),
    };
    assert_eq!(encoded(&kick), [0x0a, 0x01, b'u']);
    assert_eq!(encoded(&KickAnswer { kicked: true }), [0x08, 0x01]);

    let bind = BindMsg {
        uid: "u".into(),
        fid: "f".into(),
    };
    assert_eq!(encoded(&bind), [0x0a, 0x01, b'u', 0x12, 0x01, b'f']);
}

#[test]
fn documentation_messages_use_field_one() {
    assert_eq!(encoded(&Doc { doc: "d".into() }), [0x0a, 0x01, b'd']);
    assert_eq!(encoded(&DocMsg { get_protos: true }), [0x08, 0x01]);
    let desc = ProtoDescriptor {
        desc: Bytes::from_static(b"x"),
    };
    assert_eq!(encoded(&desc), [0x0a, 0x01, b'x']);
    assert_eq!(encoded(&ProtoName { name: "n".into() }), [0x0a, 0x01, b'n']);

    // Repeated fields repeat the tag once per element.
    let descs = ProtoDescriptors {
        desc: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
    };
    assert_eq!(encoded(&descs), [0x0a, 0x01, b'a', 0x0a, 0x01, b'b']);
    let names = ProtoNames {
        name: vec!["a".into(), "b".into()],
    };
    assert_eq!(encoded(&names), [0x0a, 0x01, b'a', 0x0a, 0x01, b'b']);
}

#[test]
fn enums_have_spec_values_and_names() {
    assert_eq!(RpcType::Sys as i32, 0);
    assert_eq!(RpcType::User as i32, 1);
    assert_eq!(MsgType::MsgRequest as i32, 0);
    assert_eq!(MsgType::MsgNotify as i32, 1);
    assert_eq!(MsgType::MsgResponse as i32, 2);
    assert_eq!(MsgType::MsgPush as i32, 3);
    assert_eq!(RpcType::User.as_str_name(), "User");
    assert_eq!(MsgType::from_str_name("MsgPush"), Some(MsgType::MsgPush));
}

#[test]
fn full_request_and_response_round_trip() {
    let request = Request {
        r#type: RpcType::Sys.into(),
        session: Some(Session {
            id: -7,
            uid: "player-1".into(),
            data: Bytes::from_static(br#"{"ipversion":"ipv4"}"#),
        }),
        msg: Some(Msg {
            id: u64::MAX,
            route: "room.room.join".into(),
            data: Bytes::from_static(&[0, 1, 2, 255]),
            reply: "_INBOX.x".into(),
            r#type: MsgType::MsgRequest.into(),
        }),
        frontend_id: "connector-1".into(),
        metadata: Bytes::from_static(br#"{"peer.id":"connector-1"}"#),
    };
    let decoded = Request::decode(encoded(&request).as_slice()).unwrap();
    assert_eq!(decoded, request);
    assert_eq!(decoded.msg.unwrap().r#type(), MsgType::MsgRequest);

    let response = Response {
        data: Bytes::from_static(b"payload"),
        error: Some(Error {
            code: "PIT-500".into(),
            msg: "boom".into(),
            metadata: HashMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
        }),
    };
    assert_eq!(
        Response::decode(encoded(&response).as_slice()).unwrap(),
        response
    );
}

#[test]
fn unknown_fields_are_skipped_when_decoding() {
    // A newer peer may add fields; field 9 (varint 42) must not break us.
    let mut bytes = vec![0x08, 0x01, 0x48, 0x2a];
    bytes.extend_from_slice(&[0x22, 0x01, b'f']);
    let request = Request::decode(bytes.as_slice()).unwrap();
    assert_eq!(request.r#type(), RpcType::User);
    assert_eq!(request.frontend_id, "f");
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    // msg (3) announces 7 bytes but only 2 follow.
    let bytes = [0x1a, 0x07, 0x12, 0x05];
    assert!(Request::decode(&bytes[..]).is_err());
}

#[test]
fn unknown_enum_value_is_kept_as_its_number() {
    // proto3 keeps unknown enum numbers; the typed getter refuses them.
    let request = Request::decode(&[0x08, 0x07][..]).unwrap();
    assert_eq!(request.r#type, 7);
    assert!(RpcType::try_from(request.r#type).is_err());
}
