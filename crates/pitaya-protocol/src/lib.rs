//! The Pitaya client wire protocol: packets, messages and handshake payloads.
//!
//! This crate is pure: it turns bytes into values and values into bytes, with
//! no sockets, no async runtime and no clock. Connections, heartbeat timers and
//! sessions live in the `pitaya` framework crate; the client, fuzzers and
//! benches share this codec. Section numbers below refer to the wire spec in
//! `docs/pitaya-wire.md`.
//!
//! # Layout
//!
//! * [`packet`]: [`Packet`] and [`PacketType`], the framing unit; [`PacketDecoder`]
//!   for byte streams (TCP) and [`Packet::decode_exact`] for whole buffers
//!   (one WebSocket message).
//! * [`message`]: [`Message`], the content of a Data packet, and the route
//!   dictionary [`RouteDict`].
//! * [`handshake`]: the JSON the client and the server exchange first.
//! * [`error_payload`]: the JSON body of an error Response.
//! * [`compression`]: zlib for message bodies and the handshake response.
//! * [`error`]: [`DecodeError`] and [`EncodeError`].
//!
//! # Packet (spec 1.1)
//!
//! ```text
//!  0        1        2        3        4
//! +--------+--------+--------+--------+---------------------------+
//! |  type  |    body length, u24 BE   |  body (0..=16,777,215 B)  |
//! +--------+--------+--------+--------+---------------------------+
//!  1 Handshake  2 HandshakeAck  3 Heartbeat  4 Data  5 Kick
//! ```
//!
//! # Message, the body of a Data packet (spec 4.1)
//!
//! ```text
//! +------+-------------+-----------------------------------+--------+
//! | flag | id (varint) | route: len u8 + bytes | code u16  |  body  |
//! +------+-------------+-----------------------------------+--------+
//!          Request and   Request, Notify and Push only
//!          Response only (code, big-endian, when flag & 0x01)
//!
//! flag bits:  0x01 route is a code      0x0E type << 1 (0 Request,
//!             0x10 body is zlib         1 Notify, 2 Response, 3 Push)
//!             0x20 body is an error payload
//! ```
//!
//! # Examples
//!
//! ```
//! use pitaya_protocol::{Message, Packet, PacketType, RouteDict};
//!
//! let dict = RouteDict::empty();
//! let body = Message::push("chat.msg", &br#"{"x":1}"#[..]).to_bytes(&dict, false)?;
//! let wire = Packet::new(PacketType::Data, body).to_bytes()?;
//! assert_eq!(&wire[..6], &[0x04, 0x00, 0x00, 0x11, 0x06, 0x08]);
//!
//! let packet = Packet::decode_exact(&wire)?;
//! let msg = Message::decode(&packet.body, &dict, 1 << 20)?;
//! assert_eq!(msg.route, "chat.msg");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod compression;
pub mod error;
pub mod error_payload;
pub mod handshake;
pub mod message;
pub mod packet;
mod route_dict;
mod varint;

pub use compression::{deflate, inflate, is_compressed};
pub use error::{DecodeError, EncodeError};
pub use error_payload::ErrorPayload;
pub use handshake::{HandshakeRequest, HandshakeResponse, HandshakeResponseSys, HandshakeSys};
pub use message::{DictError, Message, MessageType, RouteDict};
pub use packet::{encode_packet, Packet, PacketDecoder, PacketType, HEADER_LEN, MAX_BODY_LEN};
