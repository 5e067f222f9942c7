//! Byte-boundary tests for `PacketDecoder`, in the manner of tokio-util's
//! `length_delimited` tests: whole, split, coalesced, incomplete and oversized input.

use bytes::{BufMut, BytesMut};
use pitaya_protocol::{DecodeError, Packet, PacketDecoder, PacketType, MAX_BODY_LEN};

fn data(body: &[u8]) -> Packet {
    Packet::new(PacketType::Data, body.to_vec())
}

fn wire(packets: &[Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.encode(&mut buf).unwrap();
    }
    buf
}

#[test]
fn read_one_packet_in_one_call() {
    let mut dec = PacketDecoder::new();
    let mut src = wire(&[data(b"hello")]);
    assert_eq!(dec.decode(&mut src).unwrap(), Some(data(b"hello")));
    assert!(src.is_empty());
    assert_eq!(dec.decode(&mut src).unwrap(), None);
}

#[test]
fn read_one_packet_one_byte_at_a_time() {
    let bytes = wire(&[data(b"split everywhere")]);
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::new();
    for (i, b) in bytes.iter().enumerate() {
        src.put_u8(*b);
        let got = dec.decode(&mut src).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(got, None, "packet returned early at byte {i}");
        } else {
            assert_eq!(got, Some(data(b"split everywhere")));
        }
    }
    assert!(src.is_empty());
}

#[test]
fn read_many_packets_coalesced_in_one_buffer() {
    let packets = [
        Packet::heartbeat(),
        data(b"one"),
        Packet::kick(),
        data(b""),
        data(b"two"),
    ];
    let mut dec = PacketDecoder::new();
    let mut src = wire(&packets);
    for expected in &packets {
        assert_eq!(dec.decode(&mut src).unwrap().as_ref(), Some(expected));
    }
    assert_eq!(dec.decode(&mut src).unwrap(), None);
}

#[test]
fn read_packets_split_across_a_boundary() {
    let bytes = wire(&[data(b"first"), data(b"second")]);
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::from(&bytes[..7]);
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    src.extend_from_slice(&bytes[7..13]);
    assert_eq!(dec.decode(&mut src).unwrap(), Some(data(b"first")));
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    src.extend_from_slice(&bytes[13..]);
    assert_eq!(dec.decode(&mut src).unwrap(), Some(data(b"second")));
}

#[test]
fn read_incomplete_head() {
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::from(&[4u8, 0, 0][..]);
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    assert_eq!(src.len(), 3, "a partial head is not consumed");
}

#[test]
fn read_incomplete_body() {
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::from(&[4u8, 0, 0, 5, b'a', b'b'][..]);
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    src.extend_from_slice(b"cde");
    assert_eq!(dec.decode(&mut src).unwrap(), Some(data(b"abcde")));
}

#[test]
fn read_over_the_maximum() {
    let mut dec = PacketDecoder::with_max_body_len(10);
    assert_eq!(dec.max_body_len(), 10);
    let mut ok = wire(&[data(&[0; 10])]);
    assert!(dec.decode(&mut ok).unwrap().is_some());

    let mut src = BytesMut::from(&[4u8, 0, 0, 11][..]);
    let err = dec.decode(&mut src).unwrap_err();
    assert!(
        matches!(err, DecodeError::BodyTooLarge { len: 11, max: 10 }),
        "{err:?}"
    );
}

#[test]
fn max_body_len_is_capped_by_the_wire_format() {
    assert_eq!(
        PacketDecoder::with_max_body_len(usize::MAX).max_body_len(),
        MAX_BODY_LEN
    );
    assert_eq!(PacketDecoder::default().max_body_len(), MAX_BODY_LEN);
}

#[test]
fn unknown_type_is_detected_from_the_header_alone() {
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::from(&[0x06u8, 0xFF, 0xFF, 0xFF][..]);
    assert!(matches!(
        dec.decode(&mut src),
        Err(DecodeError::UnknownPacketType(6))
    ));

    // The type byte alone is enough: no need to wait for the length.
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::from(&[0x00u8][..]);
    assert!(matches!(
        dec.decode(&mut src),
        Err(DecodeError::UnknownPacketType(0))
    ));
}

#[test]
fn unknown_type_after_a_good_packet_is_detected() {
    let mut dec = PacketDecoder::new();
    let mut src = wire(&[Packet::heartbeat()]);
    src.put_u8(0x47);
    assert_eq!(dec.decode(&mut src).unwrap(), Some(Packet::heartbeat()));
    assert!(matches!(
        dec.decode(&mut src),
        Err(DecodeError::UnknownPacketType(0x47))
    ));
}

#[test]
fn announced_max_body_does_not_grow_the_buffer() {
    let mut dec = PacketDecoder::new();
    let mut src = BytesMut::with_capacity(64);
    src.extend_from_slice(&[4, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    assert_eq!(dec.decode(&mut src).unwrap(), None);
    assert!(src.capacity() < 4096, "capacity grew to {}", src.capacity());
    assert_eq!(
        src.len(),
        3,
        "body bytes stay in src until the whole body is there"
    );
}
