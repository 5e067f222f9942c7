//! zlib compression of message bodies and handshake responses (spec 2.2 and 4.6).
//!
//! Pitaya compresses with a zlib wrapper (RFC 1950) at the default level and marks
//! nothing but the message flag bit `0x10`; the handshake response has no flag at
//! all, so clients sniff the first two bytes with [`is_compressed`].

use std::io::{Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::DecodeError;

/// Returns `data` compressed as a zlib stream at the default level.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2 + 16),
        Compression::default(),
    );
    // Writing into a Vec cannot fail, so neither can the encoder around it.
    enc.write_all(data).expect("writing to a Vec is infallible");
    enc.finish().expect("writing to a Vec is infallible")
}

/// Returns `data` inflated, failing once the output would exceed `limit` bytes.
///
/// The input is zlib, or gzip when it starts with the gzip magic `1F 8B`. Go
/// Pitaya accepts only zlib on incoming messages (spec 4.6); we also take gzip
/// because libpitaya's own inflater does and being lenient on input costs nothing.
///
/// # Errors
///
/// [`DecodeError::Inflate`] when the stream is corrupt or truncated, and
/// [`DecodeError::InflatedTooLarge`] when it inflates past `limit` (the guard
/// against zip bombs: at most `limit + 1` bytes are ever produced).
pub fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    // The first guess at the size is small on purpose: the input is untrusted.
    let mut out = Vec::with_capacity(data.len().saturating_mul(2).min(limit).min(64 * 1024));
    let read = if data.starts_with(&[0x1F, 0x8B]) {
        GzDecoder::new(data).take(cap).read_to_end(&mut out)
    } else {
        ZlibDecoder::new(data).take(cap).read_to_end(&mut out)
    };
    read.map_err(DecodeError::Inflate)?;
    if out.len() > limit {
        return Err(DecodeError::InflatedTooLarge { limit });
    }
    Ok(out)
}

/// Returns whether `data` starts with a zlib (`78 01/5E/9C/DA`) or gzip (`1F 8B`) magic.
pub fn is_compressed(data: &[u8]) -> bool {
    matches!(
        data,
        [0x78, 0x01 | 0x5E | 0x9C | 0xDA, ..] | [0x1F, 0x8B, ..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    #[test]
    fn deflate_output_is_zlib_and_inflates_back() {
        let data = b"hello hello hello hello".repeat(10);
        let z = deflate(&data);
        assert_eq!(&z[..2], &[0x78, 0x9C]);
        assert!(is_compressed(&z));
        assert_eq!(inflate(&z, data.len()).unwrap(), data);
    }

    #[test]
    fn inflate_accepts_gzip() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"gzip body").unwrap();
        let gz = enc.finish().unwrap();
        assert!(is_compressed(&gz));
        assert_eq!(inflate(&gz, 100).unwrap(), b"gzip body");
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        let bomb = deflate(&vec![0u8; 1 << 20]);
        let err = inflate(&bomb, 1000).unwrap_err();
        assert!(
            matches!(err, DecodeError::InflatedTooLarge { limit: 1000 }),
            "{err:?}"
        );
        assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
    }

    #[test]
    fn inflate_rejects_garbage_and_truncated_streams() {
        assert!(matches!(
            inflate(b"not zlib", 100),
            Err(DecodeError::Inflate(_))
        ));
        let z = deflate(b"some body that is long enough");
        assert!(matches!(
            inflate(&z[..z.len() - 6], 100),
            Err(DecodeError::Inflate(_))
        ));
        assert!(matches!(inflate(&[], 100), Err(DecodeError::Inflate(_))));
    }

    #[test]
    fn sniffs_only_known_magics() {
        for second in [0x01, 0x5E, 0x9C, 0xDA] {
            assert!(is_compressed(&[0x78, second]));
        }
        assert!(is_compressed(&[0x1F, 0x8B, 0x08]));
        assert!(!is_compressed(b"{\"code\":200}"));
        assert!(!is_compressed(&[0x78]));
        assert!(!is_compressed(&[0x78, 0x00]));
        assert!(!is_compressed(&[]));
    }
}
