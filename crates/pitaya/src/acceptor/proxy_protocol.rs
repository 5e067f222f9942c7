//! The PROXY protocol header a load balancer puts in front of a TCP stream (spec 1.7).
//!
//! With `pitaya.acceptor.proxyprotocol` on, every connection must open with a version 1
//! (text) or version 2 (binary) header naming the client the balancer accepted; the
//! session then reports that client's address instead of the balancer's. The header is
//! read in clear, before any TLS handshake, as HAProxy sends it.
//!
//! ```text
//! v1: "PROXY TCP4 203.0.113.7 192.0.2.1 51234 3250\r\n"      (at most 107 bytes)
//!
//! v2: +----------------------------+-----+-----+--------+---------------------+
//!     | \r\n\r\n\0\r\nQUIT\n (12)  | ver | fam | len(2) | addresses, TLVs ... |
//!     +----------------------------+-----+-----+--------+---------------------+
//! ```
//!
//! Parsing is [`ppp`]'s; this module reads until a whole header is there, takes the
//! source address out of it, and keeps the bytes that came after it for the framing.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest header: v2's 16 fixed bytes plus the largest length its 16 bits can give.
const MAX_HEADER_LEN: usize = 16 + u16::MAX as usize;

/// First read buffer; a v1 header or a v2 header with a few TLVs fits.
const INITIAL_CAPACITY: usize = 256;

/// Why a connection's PROXY protocol header was refused; the connection is closed.
///
/// It reaches the accept path as the inner error of an `io::Error` of kind
/// `InvalidData`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The peer closed the connection before a whole header arrived.
    #[error("connection closed before a complete PROXY header")]
    Eof,
    /// The bytes are not a PROXY header (no header at all, or a broken one).
    #[error("malformed PROXY v{version} header: {detail}")]
    Malformed {
        /// Protocol version the bytes were read as, 1 or 2.
        version: u8,
        /// What the parser found wrong.
        detail: String,
    },
    /// The header is well formed but names no client address (a `LOCAL` command,
    /// an `UNKNOWN` or unspecified protocol, or a Unix socket).
    #[error("PROXY header carries no source address ({0})")]
    NoSourceAddress(&'static str),
}

impl From<ProxyHeaderError> for io::Error {
    fn from(e: ProxyHeaderError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Returns whether `e` is a refused PROXY header rather than a transport failure.
pub(crate) fn is_proxy_header_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<ProxyHeaderError>())
}

/// Reads a PROXY header from `io`; returns the client address and the bytes read past it.
///
/// Reads may run past the header into the client's first packets; those bytes come
/// back so the caller can put them in front of the rest of the stream.
///
/// # Errors
///
/// Returns an `InvalidData` error carrying a [`ProxyHeaderError`] for a missing,
/// malformed or address-less header, and the read error when reading fails.
///
/// # Cancel safety
///
/// Not cancel safe: bytes read before cancellation are lost with the connection.
pub(crate) async fn read_header<R>(io: &mut R) -> io::Result<(SocketAddr, BytesMut)>
where
    R: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(INITIAL_CAPACITY);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(ProxyHeaderError::Eof.into());
        }
        let header = parse(&buf);
        if header.is_complete() {
            let (source, len) = source_of(header)?;
            return Ok((source, buf.split_off(len)));
        }
        // The parser bounds both versions itself; this guards against it not doing so.
        if buf.len() > MAX_HEADER_LEN {
            let detail = "header longer than any valid one".to_owned();
            return Err(ProxyHeaderError::Malformed { version: 2, detail }.into());
        }
    }
}

/// Returns `buf` parsed as a v2 header if it starts with v2's signature, else as v1.
///
/// ppp's own `HeaderResult::parse` retries any broken v2 header as v1, so a bad v2
/// version byte or length would be reported as a v1 header lacking its `PROXY` word.
fn parse(buf: &[u8]) -> HeaderResult<'_> {
    if buf.starts_with(v2::PROTOCOL_PREFIX) {
        HeaderResult::V2(v2::Header::try_from(buf))
    } else {
        HeaderResult::parse(buf)
    }
}

/// Returns the source address of a complete header and the header's length in bytes.
fn source_of(header: HeaderResult<'_>) -> Result<(SocketAddr, usize), ProxyHeaderError> {
    match header {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)
                }
                v1::Addresses::Tcp6(a) => {
                    SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)
                }
                v1::Addresses::Unknown => {
                    return Err(ProxyHeaderError::NoSourceAddress("protocol UNKNOWN"))
                }
            };
            Ok((source, h.header.len()))
        }
        HeaderResult::V2(Ok(h)) => {
            if h.command == v2::Command::Local {
                return Err(ProxyHeaderError::NoSourceAddress("LOCAL command"));
            }
            let source = match h.addresses {
                v2::Addresses::IPv4(a) => {
                    SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)
                }
                v2::Addresses::IPv6(a) => {
                    SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)
                }
                v2::Addresses::Unspecified => {
                    return Err(ProxyHeaderError::NoSourceAddress(
                        "unspecified address family",
                    ))
                }
                v2::Addresses::Unix(_) => {
                    return Err(ProxyHeaderError::NoSourceAddress("unix socket address"))
                }
            };
            Ok((source, h.len()))
        }
        HeaderResult::V1(Err(e)) => Err(malformed(1, &e)),
        HeaderResult::V2(Err(e)) => Err(malformed_v2(&e)),
    }
}

/// Returns a malformed v2 header error, in our words where ppp's are unclear.
fn malformed_v2(e: &v2::ParseError) -> ProxyHeaderError {
    let detail = match *e {
        // The version is the high nibble of the 13th byte; ppp shows it unshifted.
        v2::ParseError::Version(v) => {
            format!("version {} in the 13th byte, expected 2", v >> 4)
        }
        v2::ParseError::InvalidAddresses(len, needed) => format!(
            "length field of {len} bytes is too short for the {needed} address bytes \
             of its address family"
        ),
        _ => return malformed(2, e),
    };
    ProxyHeaderError::Malformed { version: 2, detail }
}

/// Returns a malformed-header error with the parser's message in our style.
fn malformed(version: u8, e: &dyn std::error::Error) -> ProxyHeaderError {
    // ppp writes sentences ("Header must start with 'PROXY'."); our messages are
    // lower-case fragments without a final period.
    let text = e.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    let detail = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    ProxyHeaderError::Malformed { version, detail }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// The v2 signature, then version 2 with command PROXY.
    const V2_PROXY: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x21";

    /// Returns a v2 header for TCP over IPv4 from 203.0.113.7:51234 to 192.0.2.1:3250.
    fn v2_tcp4() -> Vec<u8> {
        let mut h = V2_PROXY.to_vec();
        h.extend_from_slice(&[0x11, 0, 12]);
        h.extend_from_slice(&[203, 0, 113, 7, 192, 0, 2, 1]);
        h.extend_from_slice(&51234u16.to_be_bytes());
        h.extend_from_slice(&3250u16.to_be_bytes());
        h
    }

    /// Returns the result of reading `bytes`, written in pieces of `chunk` bytes.
    async fn read_in_chunks(bytes: &[u8], chunk: usize) -> io::Result<(SocketAddr, BytesMut)> {
        let (mut client, mut server) = tokio::io::duplex(1 << 17);
        for piece in bytes.chunks(chunk) {
            client.write_all(piece).await.unwrap();
        }
        drop(client);
        read_header(&mut server).await
    }

    fn refusal(e: io::Error) -> ProxyHeaderError {
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        *e.into_inner()
            .unwrap()
            .downcast::<ProxyHeaderError>()
            .unwrap()
    }

    #[tokio::test]
    async fn v1_tcp4_header_gives_its_source_and_keeps_what_follows() {
        let bytes = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 3250\r\n\x01\x00\x00\x02{}";
        let (source, rest) = read_in_chunks(bytes, bytes.len()).await.unwrap();
        assert_eq!(source, "203.0.113.7:51234".parse().unwrap());
        assert_eq!(&rest[..], b"\x01\x00\x00\x02{}");
    }

    #[tokio::test]
    async fn v1_tcp6_header_read_one_byte_at_a_time() {
        let bytes = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 3250\r\n";
        let (source, rest) = read_in_chunks(bytes, 1).await.unwrap();
        assert_eq!(source, "[2001:db8::7]:40000".parse().unwrap());
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn v2_tcp4_header_split_anywhere_gives_its_source() {
        let mut bytes = v2_tcp4();
        bytes.extend_from_slice(&[3, 0, 0, 0]);
        for chunk in [1, 5, 13, 16, bytes.len()] {
            let (source, rest) = read_in_chunks(&bytes, chunk).await.unwrap();
            assert_eq!(
                source,
                "203.0.113.7:51234".parse().unwrap(),
                "chunk {chunk}"
            );
            assert_eq!(&rest[..], [3, 0, 0, 0], "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn v2_local_command_has_no_source() {
        let mut bytes = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&[3, 0, 0, 0]);
        let err = read_in_chunks(&bytes, bytes.len()).await.unwrap_err();
        assert!(matches!(
            refusal(err),
            ProxyHeaderError::NoSourceAddress("LOCAL command")
        ));
    }

    #[tokio::test]
    async fn v1_unknown_has_no_source() {
        let err = read_in_chunks(b"PROXY UNKNOWN\r\n", 64).await.unwrap_err();
        assert!(matches!(
            refusal(err),
            ProxyHeaderError::NoSourceAddress("protocol UNKNOWN")
        ));
    }

    #[tokio::test]
    async fn a_pitaya_packet_instead_of_a_header_is_malformed() {
        let err = read_in_chunks(b"\x01\x00\x00\x02{}", 64).await.unwrap_err();
        let refusal = refusal(err);
        assert!(
            matches!(refusal, ProxyHeaderError::Malformed { version: 1, .. }),
            "{refusal:?}"
        );
        let text = refusal.to_string();
        assert!(
            text.starts_with("malformed PROXY v1 header: header"),
            "{text}"
        );
        assert!(!text.ends_with('.'), "{text}");
    }

    #[tokio::test]
    async fn v1_header_without_an_end_is_malformed_once_too_long() {
        let bytes = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        let err = read_in_chunks(&bytes, 7).await.unwrap_err();
        assert!(matches!(
            refusal(err),
            ProxyHeaderError::Malformed { version: 1, .. }
        ));
    }

    #[tokio::test]
    async fn v2_header_with_a_bad_version_is_a_malformed_v2_header() {
        let mut bytes = v2_tcp4();
        bytes[12] = 0x11;
        let refusal = refusal(read_in_chunks(&bytes, bytes.len()).await.unwrap_err());
        assert!(
            matches!(refusal, ProxyHeaderError::Malformed { version: 2, .. }),
            "{refusal:?}"
        );
        assert_eq!(
            refusal.to_string(),
            "malformed PROXY v2 header: version 1 in the 13th byte, expected 2"
        );
    }

    #[tokio::test]
    async fn v2_header_too_short_for_its_addresses_is_a_malformed_v2_header() {
        let mut bytes = v2_tcp4();
        // TCP over IPv4 needs 12 address bytes; claim 4.
        bytes[14..16].copy_from_slice(&4u16.to_be_bytes());
        let refusal = refusal(read_in_chunks(&bytes, 1).await.unwrap_err());
        assert!(
            matches!(refusal, ProxyHeaderError::Malformed { version: 2, .. }),
            "{refusal:?}"
        );
        let text = refusal.to_string();
        assert!(
            text.starts_with("malformed PROXY v2 header: length field of 4 bytes is too short"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn eof_inside_a_header_is_reported_as_such() {
        let err = read_in_chunks(b"PROXY TCP4 203.0.1", 64).await.unwrap_err();
        assert!(matches!(refusal(err), ProxyHeaderError::Eof));
    }

    #[test]
    fn only_header_refusals_count_as_proxy_header_errors() {
        assert!(is_proxy_header_error(&ProxyHeaderError::Eof.into()));
        assert!(!is_proxy_header_error(&io::Error::other("reset")));
    }
}
