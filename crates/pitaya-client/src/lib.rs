//! An async client for servers that speak Pitaya's client protocol: pitaya-rs, Go
//! Pitaya, or anything else on the same wire.
//!
//! Connect over TCP, TLS or WebSocket, handshake (with optional user data), send
//! requests that return the typed reply or the server's Pitaya error, send notifies,
//! and read pushes, kicks and disconnects as events. Heartbeats follow the interval the
//! server announces, and a watchdog reports a server gone silent. Compressed routes and
//! bodies are understood. Reconnection with backoff is optional.
//!
//! # Layout
//!
//! | item | what it does |
//! |---|---|
//! | [`Client`] | cheap handle: `request`, `notify`, `pushes`, `events`, `close` |
//! | [`ConnectOptions`] | timeouts, watchdog, handshake data, TLS, [`ReconnectConfig`] |
//! | [`Events`], [`Pushes`] | what the connection reports: [`Event`], [`Push`] |
//! | [`ClientError`] | every failure, with the server's code for Pitaya errors |
//! | [`ServerUrl`] | `tcp://`, `tls://`, `ws://`, `wss://` addresses |
//!
//! Behind the handle one task owns the socket, in the shape of async-nats: handles send
//! commands over a bounded channel, requests get their responses through oneshot
//! channels matched by message id, and events go out on a broadcast channel that never
//! makes the connection wait for a slow reader.
//!
//! # Events from the handshake on
//!
//! Servers often push as soon as the session is up (a welcome message, the room's
//! members), sometimes before [`Client::connect`] has even returned. None of it is
//! lost: the connection keeps every event from the handshake on until the first call
//! to [`Client::events`] or [`Client::pushes`] (on any handle of the client) takes
//! them, so that first stream sees the early pushes, and a kick or a disconnect that
//! came before it was asked for. Until then the events wait in a buffer of
//! [`event_capacity`](ConnectOptions::event_capacity) entries; past that the oldest
//! give way and the stream starts with [`Event::Lagged`]. Streams asked for later
//! start at the moment they are asked for.
//!
//! ```no_run
//! # async fn run() -> Result<(), pitaya_client::ClientError> {
//! use pitaya_client::{Client, Event};
//!
//! let client = Client::connect("tcp://127.0.0.1:3250").await?;
//! // Sees the server's welcome push even if it came before `connect` returned.
//! let mut events = client.events();
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::Push(push) => println!("{}", push.route()),
//!         Event::Disconnected(reason) => println!("gone: {reason:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `ws` | yes | `ws://` (and `wss://` with `tls`) |
//! | `tls` | yes | `tls://` (and `wss://` with `ws`) |
//! | `protobuf` | yes | `request_proto`, `notify_proto`, [`Push::proto`], protobuf errors |
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), pitaya_client::ClientError> {
//! use pitaya_client::{ClientError, ConnectOptions};
//! use serde_json::{json, Value};
//!
//! let client = ConnectOptions::new().connect("ws://127.0.0.1:3251/").await?;
//! match client.request::<_, Value>("room.room.join", &json!({ "name": "" })).await {
//!     Err(ClientError::Server { code, message, .. }) => eprintln!("{code}: {message}"),
//!     other => println!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod body;
mod client;
mod connection;
mod error;
mod event;
mod options;
mod transport;
mod url;

pub use body::Serializer;
pub use client::Client;
pub use connection::{SessionInfo, MAX_HEARTBEAT, MIN_HEARTBEAT};
pub use error::{BoxError, ClientError, HandshakeError, CLIENT_TIMEOUT_CODE};
pub use event::{DisconnectReason, Event, Events, Push, Pushes};
pub use options::{
    ConnectOptions, ReconnectConfig, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WATCHDOG_FACTOR,
};
pub use pitaya_protocol::{HandshakeSys, RouteDict};
pub use url::{Scheme, ServerUrl};
