//! Feeds arbitrary bytes through every decoder a server runs on client input.
//!
//! The first byte picks the chunk size, so the fuzzer also explores how packets
//! split across reads. Any panic is a bug: network input must only produce errors.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pitaya_protocol::{
    HandshakeRequest, HandshakeResponse, Message, Packet, PacketDecoder, PacketType, RouteDict,
};

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let dict = RouteDict::new([("a".to_owned(), 1), ("room.join".to_owned(), 0x0102)])
        .expect("fixed dictionary is valid");

    let _ = Packet::decode_exact(stream);

    let mut decoder = PacketDecoder::with_max_body_len(64 * 1024);
    let mut src = BytesMut::new();
    for piece in stream.chunks(chunk) {
        src.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(packet)) => handle(&packet, &dict),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn handle(packet: &Packet, dict: &RouteDict) {
    match packet.kind {
        PacketType::Data => {
            let _ = Message::decode(&packet.body, dict, 1 << 20);
        }
        PacketType::Handshake => {
            let _ = HandshakeRequest::parse(&packet.body);
            let _ = HandshakeResponse::decode(&packet.body);
        }
        _ => {}
    }
}
