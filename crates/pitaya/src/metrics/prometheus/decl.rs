//! Go Pitaya's metric families (spec 13.2): kind, subsystem, name and labels.

use crate::config::CustomMetric;
use crate::metrics::{
    BUSY_WORKERS, CHANNEL_CAPACITY, CONNECTED_CLIENTS, COUNT_SERVERS, DROPPED_MESSAGES,
    EXCEEDED_RATE_LIMITING, GOROUTINES, HANDLER_DELAY, HEAP_OBJECTS, HEAP_SIZE, RESPONSE_TIME,
    TOTAL_WORKERS, WORKER_JOBS_RETRY, WORKER_JOBS_TOTAL, WORKER_QUEUE_SIZE,
};

/// What a family is; histograms carry their default buckets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram(&'static [f64]),
}

/// One family as declared in code.
#[derive(Debug)]
pub(super) struct Decl {
    pub(super) kind: Kind,
    pub(super) subsystem: &'static str,
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) labels: &'static [&'static str],
}

impl Decl {
    /// Returns the declaration in the shape of a configured one.
    pub(super) fn spec(&self) -> CustomMetric {
        let buckets = match self.kind {
            Kind::Histogram(buckets) => buckets.to_vec(),
            _ => Vec::new(),
        };
        CustomMetric {
            subsystem: self.subsystem.into(),
            name: self.name.into(),
            help: self.help.into(),
            labels: self.labels.iter().map(|l| (*l).to_owned()).collect(),
            buckets,
            ..CustomMetric::default()
        }
    }
}

/// Bounds of the response-time histogram, in seconds: Pitaya's 1 to 10000 read as ms.
pub(super) const RESPONSE_TIME_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 5.0, 10.0];

/// Bounds of the channel-capacity histogram, free slots (Pitaya's).
const CHANNEL_BUCKETS: &[f64] = &[
    0.0, 1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0,
    5000.0,
];

const fn decl(
    kind: Kind,
    subsystem: &'static str,
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Decl {
    Decl {
        kind,
        subsystem,
        name,
        help,
        labels,
    }
}

use Kind::{Counter, Gauge, Histogram, Summary};

/// Every family Go Pitaya declares, under its name.
pub(super) const BUILT_IN: &[Decl] = &[
    decl(
        Summary,
        "handler",
        RESPONSE_TIME,
        "Time from a message's arrival to its answer, or of a call, in nanoseconds.",
        &["route", "status", "type", "code"],
    ),
    decl(
        Summary,
        "handler",
        HANDLER_DELAY,
        "Time a client message waited before its handling started, in nanoseconds.",
        &["route", "type"],
    ),
    decl(
        Gauge,
        "acceptor",
        CONNECTED_CLIENTS,
        "Clients connected to this server.",
        &[],
    ),
    decl(
        Counter,
        "acceptor",
        EXCEEDED_RATE_LIMITING,
        "Client packets dropped for going over the rate limit.",
        &[],
    ),
    decl(
        Gauge,
        "service_discovery",
        COUNT_SERVERS,
        "Servers known to service discovery, by type.",
        &["type"],
    ),
    decl(
        Histogram(CHANNEL_BUCKETS),
        "channel",
        CHANNEL_CAPACITY,
        "Free slots of a queue when it is used.",
        &["channel"],
    ),
    decl(
        Gauge,
        "rpc_server",
        DROPPED_MESSAGES,
        "Messages the RPC server dropped because a queue was full.",
        &[],
    ),
    decl(
        Gauge,
        "worker_pool",
        BUSY_WORKERS,
        "Workers of a pool busy now.",
        &["pool"],
    ),
    decl(
        Gauge,
        "worker_pool",
        TOTAL_WORKERS,
        "Workers of a pool.",
        &["pool"],
    ),
    decl(
        Gauge,
        "sys",
        GOROUTINES,
        "Tasks alive in the async runtime.",
        &[],
    ),
    decl(
        Gauge,
        "sys",
        HEAP_SIZE,
        "Bytes allocated on the heap (not measured by pitaya-rs).",
        &[],
    ),
    decl(
        Gauge,
        "sys",
        HEAP_OBJECTS,
        "Objects allocated on the heap (not measured by pitaya-rs).",
        &[],
    ),
    decl(
        Gauge,
        "worker",
        WORKER_JOBS_TOTAL,
        "Jobs run by the worker (pitaya-rs has no worker).",
        &["status"],
    ),
    decl(
        Gauge,
        "worker",
        WORKER_JOBS_RETRY,
        "Jobs retried by the worker (pitaya-rs has no worker).",
        &[],
    ),
    decl(
        Gauge,
        "worker",
        WORKER_QUEUE_SIZE,
        "Jobs waiting in a worker queue (pitaya-rs has no worker).",
        &["queue"],
    ),
];
