//! pitaya-rs: a game-server framework that speaks Pitaya's wire protocol.
//!
//! Existing Pitaya clients (libpitaya, the Go client, Pomelo-protocol clients) connect
//! over TCP or WebSocket, handshake, and call handlers by route
//! `serverType.component.method`; the server answers, pushes and kicks.
//!
//! # Layout
//!
//! | module | what it does |
//! |---|---|
//! | [`app`] | [`App`], its [`Builder`], run and graceful shutdown; [`AppHandle`] |
//! | [`acceptor`] | where connections come from: TCP, WebSocket, TLS, PROXY protocol, rate limit |
//! | `agent` | the task owning each connection: state machine, heartbeats, writes |
//! | [`session`] | [`Session`]: uid binding, data, push, kick, close callbacks |
//! | [`handler`] | [`Component`]s of request and notify handlers, [`Context`]; [`Remote`]s |
//! | [`module`] | [`module::Module`]s started and stopped with the app; the binary module |
//! | [`pipeline`] | hooks before and after every handler |
//! | [`serialize`] | [`Serializer`] trait, JSON and Protobuf |
//! | [`cluster`] | cluster mode: [`cluster::ServerInfo`], service discovery, RPC |
//! | [`groups`] | [`GroupStore`] trait, in memory and in etcd |
//! | [`config`] | typed [`Config`]: defaults, file, `PITAYA_*` environment |
//! | [`metrics`] | [`metrics::Reporter`] trait, Prometheus and StatsD reporters, health endpoint |
//! | [`route`] | route parsing |
//! | [`telemetry`] | request spans, [`telemetry::init`], OpenTelemetry export |
//!
//! The packet and message codec lives in the `pitaya-protocol` crate, re-exported as
//! [`protocol`].
//!
//! # Features
//!
//! The JSON serializer, Pitaya's default, is always compiled in.
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `ws` | yes | [`acceptor::WsAcceptor`] |
//! | `tls` | yes | [`acceptor::TlsConfig`] for TCP and WebSocket |
//! | `protobuf` | yes | [`serialize::ProtobufSerializer`] and [`serialize::Proto`] |
//! | `etcd` | no | `cluster::EtcdDiscovery`, `groups::EtcdGroupStore`; building it needs `protoc` |
//! | `nats` | no | `cluster::rpc::NatsRpcClient` and `NatsRpcServer`, cluster RPC over NATS |
//! | `grpc` | no | `cluster::GrpcRpc`, cluster RPC over gRPC, with `etcd` for its binding storage |
//! | `prometheus` | no | `metrics::PrometheusReporter`, `/metrics` over HTTP |
//! | `statsd` | no | `metrics::StatsdReporter`, StatsD over UDP |
//! | `health` | no | `/healthz` and `/readyz` on a port of their own |
//! | `otel` | no | span export over OTLP/gRPC, trace context in cluster requests |
//!
//! # Examples
//!
//! ```no_run
//! use pitaya::acceptor::TcpAcceptor;
//! use pitaya::{App, Component, Context, Error};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let echo = Component::new("echo").request("say", |_ctx: Context, text: String| async move {
//!     Ok::<_, Error>(text)
//! });
//! let app = App::builder("chat")
//!     .acceptor(TcpAcceptor::bind("127.0.0.1:3250").await?)
//!     .register(echo)
//!     .build()?;
//! app.run().await;
//! # Ok(())
//! # }
//! ```

pub use pitaya_protocol as protocol;

pub mod acceptor;
mod agent;
pub mod app;
pub mod cluster;
pub mod config;
mod error;
pub mod groups;
pub mod handler;
pub mod metrics;
pub mod module;
pub mod pipeline;
pub mod route;
pub mod serialize;
pub mod session;
pub mod telemetry;

pub use app::{App, AppHandle, BuildError, Builder, StartError};
pub use config::Config;
pub use error::{codes, Error};
pub use groups::{GroupError, GroupStore, MemoryGroupStore};
pub use handler::{Component, Context, Remote, RemoteContext};
pub use serialize::{FromBody, IntoBody, Raw, Serializer};
pub use session::{Session, SessionError};
