#![doc = include_str!("docs.md")]

mod app;
mod collect;
mod handle;
mod health;
#[cfg(feature = "_http")]
mod http;
#[cfg(feature = "prometheus")]
mod prometheus;
mod routes;
#[cfg(feature = "_http")]
mod serve;
#[cfg(feature = "statsd")]
mod statsd;

use std::fmt;

pub use app::MetricsError;
pub use handle::Metrics;
pub use health::Health;
#[cfg(feature = "prometheus")]
pub use prometheus::PrometheusReporter;
#[cfg(feature = "statsd")]
pub use statsd::StatsdReporter;

pub(crate) use app::AppMetrics;
pub(crate) use collect::spawn_periodic;
pub(crate) use handle::{Lifecycle, ResponseKind};
#[cfg(feature = "_http")]
pub(crate) use http::OpsServer;
pub(crate) use routes::RouteLabels;

/// Time from a client message's arrival to its answer, or of an outgoing RPC, in ns.
pub const RESPONSE_TIME: &str = "response_time_ns";
/// Time from a client message's arrival to the start of its handling, in ns.
pub const HANDLER_DELAY: &str = "handler_delay_ns";
/// Clients connected to this frontend.
pub const CONNECTED_CLIENTS: &str = "connected_clients";
/// Servers known to service discovery, label `type`.
pub const COUNT_SERVERS: &str = "count_servers";
/// Free slots of a queue when it is used, label `channel`.
pub const CHANNEL_CAPACITY: &str = "channel_capacity";
/// Messages the RPC server dropped because a queue was full.
pub const DROPPED_MESSAGES: &str = "dropped_messages";
/// Workers of a pool busy now, label `pool`.
pub const BUSY_WORKERS: &str = "busy_workers";
/// Workers of a pool, label `pool`.
pub const TOTAL_WORKERS: &str = "total_workers";
/// Tasks alive in the runtime (Go Pitaya: goroutines).
pub const GOROUTINES: &str = "goroutines";
/// Go Pitaya's bytes allocated on the heap; declared, never reported here.
pub const HEAP_SIZE: &str = "heapsize";
/// Go Pitaya's live heap objects; declared, never reported here.
pub const HEAP_OBJECTS: &str = "heapobjects";
/// Go Pitaya's executed worker jobs, label `status`; declared, never reported here.
pub const WORKER_JOBS_TOTAL: &str = "worker_jobs_total";
/// Go Pitaya's retried worker jobs; declared, never reported here.
pub const WORKER_JOBS_RETRY: &str = "worker_jobs_retry_total";
/// Go Pitaya's worker queue size, label `queue`; declared, never reported here.
pub const WORKER_QUEUE_SIZE: &str = "worker_queue_size";
/// Packets dropped by rate-limited acceptors.
pub const EXCEEDED_RATE_LIMITING: &str = "exceeded_rate_limiting";

/// The `route` label of messages and calls whose route no server knew, so that
/// clients cannot add label values at will.
pub const UNKNOWN_ROUTE: &str = "unknown";

/// A label of one report: name, value.
pub type Label<'a> = (&'a str, &'a str);

/// Returned when a reporter cannot take a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The reporter declares no metric of this name and kind.
    #[error("unknown metric {0}")]
    UnknownMetric(String),
    /// A label is not one the metric declares, or a value is not valid.
    #[error("metric {metric}: {reason}")]
    Invalid {
        /// The metric reported.
        metric: String,
        /// What was wrong.
        reason: String,
    },
    /// The report could not be sent.
    #[error("metric {metric} not sent: {source}")]
    Send {
        /// The metric reported.
        metric: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A destination for metrics, as Go Pitaya's `metrics.Reporter`.
///
/// The framework calls it from many tasks at once and on hot paths (every request,
/// every packet written): a call must not block. Labels come in no particular order;
/// constant labels (`game`, `serverType`, `pitaya.metrics.constlabels`) are the
/// reporter's to add.
///
/// # Examples
///
/// ```
/// use pitaya::metrics::{Label, ReportError, Reporter};
///
/// /// Logs every report.
/// #[derive(Debug)]
/// struct LogReporter;
///
/// impl Reporter for LogReporter {
///     fn report_count(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
///         tracing::info!(metric = m, labels = ?l, value = v, "count");
///         Ok(())
///     }
///     fn report_gauge(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
///         tracing::info!(metric = m, labels = ?l, value = v, "gauge");
///         Ok(())
///     }
///     fn report_summary(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
///         tracing::info!(metric = m, labels = ?l, value = v, "summary");
///         Ok(())
///     }
///     fn report_histogram(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
///         tracing::info!(metric = m, labels = ?l, value = v, "histogram");
///         Ok(())
///     }
/// }
/// ```
pub trait Reporter: Send + Sync + fmt::Debug + 'static {
    /// Adds `value` to counter `metric`.
    ///
    /// # Errors
    ///
    /// When the reporter does not know the metric, refuses a label, or cannot send.
    fn report_count(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError>;

    /// Sets gauge `metric` to `value`.
    ///
    /// # Errors
    ///
    /// As [`report_count`](Self::report_count).
    fn report_gauge(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError>;

    /// Adds an observation to summary `metric`.
    ///
    /// # Errors
    ///
    /// As [`report_count`](Self::report_count).
    fn report_summary(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError>;

    /// Adds an observation to histogram `metric`.
    ///
    /// # Errors
    ///
    /// As [`report_count`](Self::report_count).
    fn report_histogram(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError>;
}
