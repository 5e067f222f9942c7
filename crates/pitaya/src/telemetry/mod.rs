//! Tracing: a span per request, exported over OpenTelemetry with the `otel` feature.
//!
//! Every client message handled or forwarded is a `request` span with the fields
//! `route`, `session_id`, `uid` and `server_id`; a backend handling a forwarded
//! message opens a `request` span of its own (with `frontend_id` too), a call to a
//! remote a `remote` span, and the caller an `rpc` span around each call. They are
//! ordinary `tracing` spans at INFO, there with or without the feature.
//!
//! With `otel`, [`init`] can also export them to an OTLP/gRPC collector, and the
//! trace context travels in the metadata of cluster requests under `otel-span`
//! (W3C `traceparent`, `tracestate` and `baggage`, as Go Pitaya v3 writes it; spec
//! 6.3), so that a client request forwarded from a frontend to a backend is one
//! trace. A call without a carrier, or with one that does not parse, starts a new
//! trace; it never fails.
//!
//! | file | what it does |
//! |---|---|
//! | `client.rs` | the `rpc` span of every outgoing call, and its carrier |
//! | `config.rs` | [`TracingConfig`] (`pitaya.tracing`) and the `OTEL_*` variables |
//! | `init.rs` | [`init`]: the process's subscriber; [`Telemetry`], its guard |
//! | `span.rs` | the request, remote and rpc spans |
//! | `propagate.rs` | the `otel-span` carrier in request metadata |
//! | `otel.rs` | the W3C propagator, the OTLP exporter and its layer (feature `otel`) |
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 turns export on, as does
//! // `pitaya.tracing.enabled = true` in the config.
//! let config = pitaya::Config::load()?;
//! let telemetry = pitaya::telemetry::init(&config.tracing, "room")?;
//! let app = pitaya::App::builder("room").config(config).build()?;
//! app.run().await?;
//! telemetry.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod init;
#[cfg(feature = "otel")]
mod otel;
mod propagate;
pub(crate) mod span;

pub(crate) use client::TracedClient;
pub use config::TracingConfig;
pub use init::{init, Telemetry, TelemetryError};
