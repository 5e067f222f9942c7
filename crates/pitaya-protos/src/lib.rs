//! Protobuf types of the messages Pitaya servers exchange (package `protos`).
//!
//! These are the cluster messages of wire spec section 6.2: a frontend wraps a
//! client message in a [`Request`] and gets a [`Response`] back; [`Push`],
//! [`KickMsg`] and [`BindMsg`] travel between frontends and backends. Field
//! numbers match Go Pitaya's, so Rust and Go servers share one cluster.
//!
//! The Rust code in `src/generated/` is produced by prost from
//! `proto/pitaya.proto` and checked in, so building this crate needs no
//! `protoc`. Never edit it by hand: change the `.proto` and run `regen.sh`.
//! Byte fields are [`bytes::Bytes`], so payloads pass through without copies.
//!
//! With the `grpc` feature, `pitaya_client` and `pitaya_server` hold the tonic
//! client and server of service `protos.Pitaya` (spec section 8), generated the
//! same way into `src/generated/grpc/`.
//!
//! # Examples
//!
//! ```
//! use pitaya_protos::{Msg, Request, RpcType};
//! use prost::Message;
//!
//! let request = Request {
//!     r#type: RpcType::User.into(),
//!     msg: Some(Msg { route: "room.room.join".into(), ..Msg::default() }),
//!     ..Request::default()
//! };
//! let bytes = request.encode_to_vec();
//! assert_eq!(Request::decode(bytes.as_slice()).unwrap(), request);
//! ```

#[path = "generated/protos.rs"]
mod protos;

pub use protos::*;

#[cfg(feature = "grpc")]
#[path = "generated/grpc/protos.rs"]
mod service;

#[cfg(feature = "grpc")]
pub use service::{pitaya_client, pitaya_server};

#[cfg(test)]
mod tests;
