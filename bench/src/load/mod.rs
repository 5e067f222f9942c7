//! The load generator: opens clients against one server and prints one JSON line.
//!
//! Modes:
//!
//! - `rr`: requests to an echo route, closed loop (C connections, K in flight each) or,
//!   with `--rate`, open loop at a fixed total rate, latency counted from each request's
//!   scheduled send time so a slow server cannot hide its queueing.
//! - `notify`: notifies as fast as the connections take them, then the server's notify
//!   counter is read until it holds every one sent.
//! - `bcast`: M members join a group; a controller asks for broadcasts, either with a
//!   window of undelivered broadcasts (saturation) or at a fixed rate (delivery latency).
//! - `idle`: N handshaken connections that only answer heartbeats; server memory per
//!   connection and CPU per heartbeat.
//! - `connect`: connect + handshake + ack, then reset, by C workers.
//!
//! Every mode checks what it gets: response ids must match a request in flight, bodies
//! must equal what was sent, counts must be exact. Each mismatch is an error in the
//! point, so a fast but wrong server fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::conn::Transport;

mod bcast;
mod idle;
mod rr;
pub(crate) mod stats;

/// Route of the echo request handler.
pub(crate) const ECHO: &str = "bench.bench.echo";
/// Route of the echo handler behind a frontend, on the backend server type.
pub(crate) const REMOTE_ECHO: &str = "backend.bench.echo";
/// Route of the notify handler that counts.
pub(crate) const NOTIFY: &str = "bench.bench.notify";
/// Route answering `{"count":N}`, the notifies counted so far.
pub(crate) const COUNT: &str = "bench.bench.count";
/// Route binding the session to `{"uid":...}` and adding it to the group.
pub(crate) const JOIN: &str = "bench.bench.join";
/// Route broadcasting its body to the group.
pub(crate) const BROADCAST: &str = "bench.bench.broadcast";
/// Push route of the broadcasts.
pub(crate) const ON_BCAST: &str = "onBcast";

/// What the load generator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Request/response.
    Rr,
    /// Notify throughput.
    Notify,
    /// Group broadcast.
    Bcast,
    /// Idle handshaken connections.
    Idle,
    /// Connect + handshake rate.
    Connect,
}

/// Command line of `pitaya-bench load`.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    /// What to measure.
    #[arg(long, value_enum)]
    pub(crate) mode: Mode,
    /// Server address.
    #[arg(long)]
    pub(crate) addr: SocketAddr,
    /// Transport.
    #[arg(long, value_enum, default_value = "tcp")]
    pub(crate) transport: Transport,
    /// Connections (members in `bcast`, workers in `connect`).
    #[arg(long, default_value_t = 100)]
    pub(crate) conns: usize,
    /// Requests in flight per connection (closed loop), broadcasts in flight (bcast).
    #[arg(long, default_value_t = 1)]
    pub(crate) inflight: usize,
    /// Total rate per second: open-loop requests, or broadcasts; 0 for closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Request route in `rr` mode.
    #[arg(long, default_value = ECHO)]
    pub(crate) route: String,
    /// Size of the JSON body, bytes.
    #[arg(long, default_value_t = 128)]
    pub(crate) body: usize,
    /// Warm-up before the measured window, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) secs: f64,
    /// Server process ids whose CPU (and memory) is read from /proc.
    #[arg(long = "pid")]
    pub(crate) pids: Vec<u32>,
    /// Scenario label for the JSON line.
    #[arg(long, default_value = "")]
    pub(crate) scenario: String,
    /// Server label for the JSON line.
    #[arg(long, default_value = "")]
    pub(crate) server: String,
    /// Point label for the JSON line.
    #[arg(long, default_value = "")]
    pub(crate) point: String,
}

/// Returns a JSON body of exactly `size` bytes: `{"data":"xxx..."}`.
pub(crate) fn echo_body(size: usize) -> Vec<u8> {
    let pad = size.saturating_sub(r#"{"data":""}"#.len());
    format!(r#"{{"data":"{}"}}"#, "x".repeat(pad)).into_bytes()
}

/// State shared by the connections of one point.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Set during the measured window; only then are ops and latencies recorded.
    measuring: AtomicBool,
    /// Cancelled when the connections must finish what is in flight and stop.
    stop: CancellationToken,
}

impl Control {
    /// Returns whether the measured window is open.
    pub(crate) fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// Returns whether the connections must stop sending.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Completes when the connections must stop sending.
    pub(crate) async fn stopping(&self) {
        self.stop.cancelled().await;
    }
}

/// The measured window: its length and the CPU mark at its start.
#[derive(Debug)]
pub(crate) struct Window {
    /// Window length.
    pub(crate) secs: f64,
    /// CPU at the window's start.
    pub(crate) cpu: stats::CpuMark,
}

/// Runs warm-up and the measured window, then tells the connections to stop.
pub(crate) async fn run_window(args: &LoadArgs, ctl: &Control) -> Window {
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let cpu = stats::CpuMark::now(&args.pids);
    let start = Instant::now();
    ctl.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    ctl.measuring.store(false, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    ctl.stop.cancel();
    Window { secs, cpu }
}

/// Runs the load described by `args` and prints its JSON line.
pub(crate) async fn run(args: LoadArgs) -> Result<(), Box<dyn std::error::Error>> {
    let ctl = Arc::new(Control::default());
    let mut point = match args.mode {
        Mode::Rr if args.rate > 0.0 => rr::open_loop(&args, ctl).await?,
        Mode::Rr => rr::closed_loop(&args, ctl).await?,
        Mode::Notify => rr::notify(&args, ctl).await?,
        Mode::Bcast => bcast::run(&args, ctl).await?,
        Mode::Idle => idle::idle(&args).await?,
        Mode::Connect => idle::connect(&args, ctl).await?,
    };
    point.scenario.clone_from(&args.scenario);
    point.server.clone_from(&args.server);
    point.point.clone_from(&args.point);
    point.conns = args.conns;
    println!("{}", serde_json::to_string(&point)?);
    Ok(())
}
