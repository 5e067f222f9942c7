//! [`Metrics`]: the app's reporters behind one handle, and the framework's report points.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Label, ReportError, Reporter};
use super::{CHANNEL_CAPACITY, CONNECTED_CLIENTS, HANDLER_DELAY, RESPONSE_TIME, UNKNOWN_ROUTE};
use crate::{codes, Error};

/// Every reporter of an app, called in turn for each report.
///
/// Cheap to clone. A reporter's error is logged at `debug` and goes no further: a
/// metric that cannot be reported never fails the request that produced it.
///
/// # Examples
///
/// ```no_run
/// # fn f(app: pitaya::AppHandle) {
/// // Declared in config under pitaya.metrics.custom.counters, labels ["mode"].
/// app.metrics().count("matches_started", &[("mode", "ranked")], 1.0);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Metrics {
    reporters: Arc<[Arc<dyn Reporter>]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.reporters.iter()).finish()
    }
}

/// Who answered a client message or call, the `type` label of [`RESPONSE_TIME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseKind {
    /// A client message answered by this frontend, here or through a backend.
    Handler,
    /// A call this server made to another.
    Rpc,
}

impl ResponseKind {
    fn label(self) -> &'static str {
        match self {
            ResponseKind::Handler => "handler",
            ResponseKind::Rpc => "rpc",
        }
    }
}

impl Metrics {
    pub(crate) fn new(reporters: Vec<Arc<dyn Reporter>>) -> Metrics {
        Metrics {
            reporters: reporters.into(),
        }
    }

    /// Returns whether any reporter is installed.
    pub fn is_enabled(&self) -> bool {
        !self.reporters.is_empty()
    }

    /// Returns the reporters, built-in ones first.
    pub fn reporters(&self) -> &[Arc<dyn Reporter>] {
        &self.reporters
    }

    /// Adds `value` to counter `metric` in every reporter.
    pub fn count(&self, metric: &str, labels: &[Label<'_>], value: f64) {
        self.each(metric, |r| r.report_count(metric, labels, value));
    }

    /// Sets gauge `metric` to `value` in every reporter.
    pub fn gauge(&self, metric: &str, labels: &[Label<'_>], value: f64) {
        self.each(metric, |r| r.report_gauge(metric, labels, value));
    }

    /// Adds an observation to summary `metric` in every reporter.
    pub fn summary(&self, metric: &str, labels: &[Label<'_>], value: f64) {
        self.each(metric, |r| r.report_summary(metric, labels, value));
    }

    /// Adds an observation to histogram `metric` in every reporter.
    pub fn histogram(&self, metric: &str, labels: &[Label<'_>], value: f64) {
        self.each(metric, |r| r.report_histogram(metric, labels, value));
    }

    fn each(&self, metric: &str, report: impl Fn(&dyn Reporter) -> Result<(), ReportError>) {
        for r in self.reporters.iter() {
            if let Err(e) = report(&**r) {
                tracing::debug!(metric, reporter = ?r, error = %e, "metric not reported");
            }
        }
    }

    // ===== the framework's report points =====

    /// Reports how long the message or call of `route` took since `start`.
    pub(crate) fn response_time(
        &self,
        kind: ResponseKind,
        route: &str,
        start: Instant,
        error: Option<&Error>,
    ) {
        if !self.is_enabled() {
            return;
        }
        let (status, code) = match error {
            None => ("ok", ""),
            Some(e) => ("failed", e.code()),
        };
        // A route the answering server did not know is the caller's choice, as above.
        let route = if code == codes::NOT_FOUND {
            UNKNOWN_ROUTE
        } else {
            route
        };
        let labels = [
            ("route", route),
            ("status", status),
            ("type", kind.label()),
            ("code", code),
        ];
        self.summary(RESPONSE_TIME, &labels, nanos_since(start));
    }

    /// Reports that the message of `route` waited `delay` before its handling started.
    pub(crate) fn handler_delay(&self, route: &str, forwarded: bool, delay: Duration) {
        if !self.is_enabled() {
            return;
        }
        let kind = if forwarded { "remote" } else { "local" };
        let labels = [("route", route), ("type", kind)];
        self.summary(HANDLER_DELAY, &labels, delay.as_nanos() as f64);
    }

    /// Reports the number of clients connected now.
    pub(crate) fn connected_clients(&self, count: usize) {
        self.gauge(CONNECTED_CLIENTS, &[], count as f64);
    }

    /// Reports the free slots of queue `channel`.
    pub(crate) fn channel_capacity(&self, channel: &str, free: usize) {
        if self.is_enabled() {
            self.histogram(CHANNEL_CAPACITY, &[("channel", channel)], free as f64);
        }
    }
}

fn nanos_since(start: Instant) -> f64 {
    start.elapsed().as_nanos() as f64
}

/// Where the app is in its life, as the health endpoint tells it.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    serving: AtomicBool,
    registered: AtomicBool,
    draining: AtomicBool,
}

impl Lifecycle {
    /// Records whether the app takes connections and calls.
    pub(crate) fn set_serving(&self, on: bool) {
        self.serving.store(on, Ordering::Release);
    }

    /// Records whether the app is published in service discovery.
    pub(crate) fn set_registered(&self, on: bool) {
        self.registered.store(on, Ordering::Release);
    }

    /// Records that the app stopped accepting clients and waits for its sessions to end.
    pub(crate) fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Release);
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    pub(crate) fn registered(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps every report as one line: kind, metric, sorted labels, value.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn push(&self, kind: &str, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
            let mut l = l.to_vec();
            l.sort();
            self.0.lock().unwrap().push(format!("{kind} {m} {l:?} {v}"));
            Ok(())
        }
    }

    impl Reporter for Recorder {
        fn report_count(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
            self.push("count", m, l, v)
        }
        fn report_gauge(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
            self.push("gauge", m, l, v)
        }
        fn report_summary(&self, m: &str, l: &[Label<'_>], _: f64) -> Result<(), ReportError> {
            // Durations vary; the kind, name and labels are what we check.
            self.push("summary", m, l, 0.0)
        }
        fn report_histogram(&self, m: &str, l: &[Label<'_>], v: f64) -> Result<(), ReportError> {
            self.push("histogram", m, l, v)
        }
    }

    #[derive(Debug)]
    struct Failing;

    impl Reporter for Failing {
        fn report_count(&self, m: &str, _: &[Label<'_>], _: f64) -> Result<(), ReportError> {
            Err(ReportError::UnknownMetric(m.into()))
        }
        fn report_gauge(&self, m: &str, _: &[Label<'_>], _: f64) -> Result<(), ReportError> {
            Err(ReportError::UnknownMetric(m.into()))
        }
        fn report_summary(&self, m: &str, _: &[Label<'_>], _: f64) -> Result<(), ReportError> {
            Err(ReportError::UnknownMetric(m.into()))
        }
        fn report_histogram(&self, m: &str, _: &[Label<'_>], _: f64) -> Result<(), ReportError> {
            Err(ReportError::UnknownMetric(m.into()))
        }
    }

    #[test]
    fn every_reporter_gets_each_report_even_after_one_fails() {
        let rec = Arc::new(Recorder::default());
        let metrics = Metrics::new(vec![Arc::new(Failing), rec.clone()]);
        metrics.count("c", &[("k", "v")], 2.0);
        metrics.gauge("g", &[], 3.0);
        assert_eq!(
            *rec.0.lock().unwrap(),
            [r#"count c [("k", "v")] 2"#, "gauge g [] 3"]
        );
    }

    #[test]
    fn response_time_carries_pitaya_labels_for_success_and_failure() {
        let rec = Arc::new(Recorder::default());
        let metrics = Metrics::new(vec![rec.clone()]);
        let start = Instant::now();
        metrics.response_time(ResponseKind::Handler, "room.room.join", start, None);
        let err = Error::bad_request("no");
        metrics.response_time(ResponseKind::Rpc, "room.r.m", start, Some(&err));
        let lines = rec.0.lock().unwrap();
        assert_eq!(
            lines[0],
            concat!(
                r#"summary response_time_ns [("code", ""), ("route", "room.room.join"), "#,
                r#"("status", "ok"), ("type", "handler")] 0"#
            )
        );
        assert_eq!(
            lines[1],
            concat!(
                r#"summary response_time_ns [("code", "PIT-400"), ("route", "room.r.m"), "#,
                r#"("status", "failed"), ("type", "rpc")] 0"#
            )
        );
    }

    #[test]
    fn delay_and_queue_reports_use_pitaya_names_and_labels() {
        let rec = Arc::new(Recorder::default());
        let metrics = Metrics::new(vec![rec.clone()]);
        metrics.handler_delay("room.room.join", true, Duration::ZERO);
        metrics.channel_capacity("agent_chsend", 99);
        metrics.connected_clients(4);
        assert_eq!(
            *rec.0.lock().unwrap(),
            [
                r#"summary handler_delay_ns [("route", "room.room.join"), ("type", "remote")] 0"#,
                r#"histogram channel_capacity [("channel", "agent_chsend")] 99"#,
                "gauge connected_clients [] 4",
            ]
        );
    }
}
