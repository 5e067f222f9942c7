//! Base-128 varints for message ids (spec 4.4): low 7 bits first, `0x80` = more follows.

use bytes::{BufMut, BytesMut};

use crate::DecodeError;

/// Longest varint a `u64` needs: ceil(64 / 7) bytes.
const MAX_LEN: usize = 10;

/// Appends `value` to `dst` as a varint.
pub(crate) fn put(mut value: u64, dst: &mut BytesMut) {
    while value >= 0x80 {
        dst.put_u8((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Returns the varint at the start of `buf` and the number of bytes it used.
///
/// Non-minimal encodings (such as `80 00` for 0) are accepted, as Go Pitaya does.
pub(crate) fn get(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate() {
        let bits = u64::from(byte & 0x7F);
        // The tenth byte may only carry bit 63 and must be the last one.
        if i == MAX_LEN - 1 && (bits > 1 || byte & 0x80 != 0) {
            return Err(DecodeError::IdOverflow);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(DecodeError::UnterminatedId)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: u64) -> Vec<u8> {
        let mut dst = BytesMut::new();
        put(v, &mut dst);
        dst.to_vec()
    }

    #[test]
    fn encodes_group_boundaries() {
        assert_eq!(encode(0), [0x00]);
        assert_eq!(encode(127), [0x7F]);
        assert_eq!(encode(128), [0x80, 0x01]);
        assert_eq!(encode(129), [0x81, 0x01]);
        assert_eq!(encode(16383), [0xFF, 0x7F]);
        assert_eq!(encode(16384), [0x80, 0x80, 0x01]);
        let max = encode(u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(max[9], 0x01);
    }

    #[test]
    fn decodes_what_it_encodes() {
        for v in [
            0,
            1,
            127,
            128,
            129,
            16383,
            16384,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut bytes = encode(v);
            let len = bytes.len();
            bytes.extend_from_slice(b"tail");
            assert_eq!(get(&bytes).unwrap(), (v, len), "value {v}");
        }
    }

    #[test]
    fn accepts_non_minimal_encoding() {
        assert_eq!(get(&[0x80, 0x00]).unwrap(), (0, 2));
    }

    #[test]
    fn rejects_unterminated() {
        assert!(matches!(get(&[]), Err(DecodeError::UnterminatedId)));
        assert!(matches!(
            get(&[0x80, 0xFF]),
            Err(DecodeError::UnterminatedId)
        ));
    }

    #[test]
    fn rejects_overflow_and_overlong() {
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x02);
        assert!(matches!(get(&too_big), Err(DecodeError::IdOverflow)));
        let mut too_long = vec![0x80; 10];
        too_long.push(0x00);
        assert!(matches!(get(&too_long), Err(DecodeError::IdOverflow)));
    }
}
