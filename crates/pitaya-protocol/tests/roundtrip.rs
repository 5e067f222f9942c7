//! Property tests: messages survive encode -> packet -> stream decoder -> decode,
//! and arbitrary bytes never make a decoder panic.

use bytes::BytesMut;
use pitaya_protocol::{
    inflate, ErrorPayload, HandshakeRequest, HandshakeResponse, Message, MessageType, Packet,
    PacketDecoder, PacketType, RouteDict,
};
use proptest::prelude::*;

/// Routes of up to 255 UTF-8 bytes (60 chars of at most 4 bytes), or exactly 255 ASCII bytes.
fn route() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,60}", "[a-z.]{255}", "(chat|room)\\.[a-z]{1,8}"]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (any::<u8>(), 0..4096usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        Just(MessageType::Request),
        Just(MessageType::Notify),
        Just(MessageType::Response),
        Just(MessageType::Push),
    ];
    (kind, any::<u64>(), route(), body(), any::<bool>()).prop_map(
        |(kind, id, route, data, error)| {
            // Fields a type does not carry are not encoded, so they cannot come back.
            let id = if kind.has_id() { id } else { 0 };
            let route = if kind.has_route() {
                route
            } else {
                String::new()
            };
            Message {
                kind,
                id,
                route,
                data: data.into(),
                error,
            }
        },
    )
}

/// A dictionary holding some of the messages' routes, or none.
fn dict_for(msgs: &[Message], use_dict: bool) -> RouteDict {
    if !use_dict {
        return RouteDict::empty();
    }
    let mut entries: Vec<(String, u16)> = vec![("chat.join".into(), 1), ("room.say".into(), 2)];
    for (i, m) in msgs.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let trimmed = m.route.trim();
        if !trimmed.is_empty() && entries.iter().all(|(r, _)| r != trimmed) {
            entries.push((trimmed.to_owned(), 100 + i as u16));
        }
    }
    RouteDict::new(entries).unwrap()
}

fn feed_in_chunks(bytes: &[u8], chunks: &[usize], dec: &mut PacketDecoder) -> Vec<Packet> {
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).min(rest.len());
        src.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(p) = dec.decode(&mut src).unwrap() {
            out.push(p);
        }
    }
    assert!(src.is_empty());
    out
}

proptest! {
    #[test]
    fn messages_round_trip_through_a_chunked_stream(
        msgs in prop::collection::vec(message(), 1..5),
        use_dict in any::<bool>(),
        compress in any::<bool>(),
        chunks in prop::collection::vec(1..64usize, 1..8),
    ) {
        let dict = dict_for(&msgs, use_dict);
        let mut stream = BytesMut::new();
        for m in &msgs {
            let body = m.to_bytes(&dict, compress).unwrap();
            Packet::new(PacketType::Data, body).encode(&mut stream).unwrap();
        }

        let packets = feed_in_chunks(&stream, &chunks, &mut PacketDecoder::new());
        prop_assert_eq!(packets.len(), msgs.len());
        for (p, m) in packets.iter().zip(&msgs) {
            prop_assert_eq!(p.kind, PacketType::Data);
            let decoded = Message::decode(&p.body, &dict, m.data.len()).unwrap();
            prop_assert_eq!(&decoded, m);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_packet_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        chunk in 1..16usize,
    ) {
        let mut dec = PacketDecoder::with_max_body_len(1024);
        let mut src = BytesMut::new();
        'feed: for piece in bytes.chunks(chunk) {
            src.extend_from_slice(piece);
            loop {
                match dec.decode(&mut src) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let _ = Packet::decode_exact(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_payload_decoders(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let dict = RouteDict::new([("a".to_owned(), 1), ("b.c".to_owned(), 0x0102)]).unwrap();
        let _ = Message::decode(&bytes, &dict, 4096);
        let _ = HandshakeRequest::parse(&bytes);
        let _ = HandshakeResponse::decode(&bytes);
        let _ = ErrorPayload::from_json(&bytes);
        let _ = inflate(&bytes, 4096);
    }

    #[test]
    fn arbitrary_json_text_never_panics_the_handshake_parser(text in "\\PC{0,80}") {
        let _ = HandshakeRequest::parse(text.as_bytes());
        let json = format!(r#"{{"sys":{{"platform":{text}}},"user":{text}}}"#);
        let _ = HandshakeRequest::parse(json.as_bytes());
    }
}
