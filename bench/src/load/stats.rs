//! What a point measures: latency histograms, server CPU and memory from `/proc`, and
//! the JSON line printed for it.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Kernel clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: u64 = 100;

/// Returns an empty latency histogram in nanoseconds, 1 µs to 60 s, 3 digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's limits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `d` into `h`, clamping to the histogram's range.
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    h.saturating_record(ns.max(1_000));
}

/// Returns user + system CPU time of process `pid` so far, or 0 when it is gone.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name in parentheses may hold spaces; fields count from after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)
}

/// Returns the summed CPU time of `pids`.
pub(crate) fn cpu_total(pids: &[u32]) -> Duration {
    pids.iter().map(|&p| cpu_time(p)).sum()
}

/// Returns the resident set of process `pid` in bytes, or 0 when it is gone.
pub(crate) fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Returns the summed resident set of `pids` in bytes.
pub(crate) fn rss_total(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| rss_bytes(p)).sum()
}

/// CPU use of the servers and of this process over a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    servers: Duration,
    client: Duration,
}

impl CpuMark {
    /// Returns the CPU used so far by `pids` and by this process.
    pub(crate) fn now(pids: &[u32]) -> CpuMark {
        CpuMark {
            servers: cpu_total(pids),
            client: cpu_time(std::process::id()),
        }
    }

    /// Returns (server, client) CPU microseconds per op since `self`.
    pub(crate) fn per_op(&self, pids: &[u32], ops: u64) -> (f64, f64) {
        let now = CpuMark::now(pids);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / ops.max(1) as f64;
        (
            per(now.servers - self.servers),
            per(now.client - self.client),
        )
    }
}

/// One measured point: the JSON line the load generator prints.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Point {
    /// Scenario label given by the runner, such as `S1`.
    pub(crate) scenario: String,
    /// Server label: `baseline`, `rs` or `go`.
    pub(crate) server: String,
    /// Point label within the scenario, such as `tcp c=100`.
    pub(crate) point: String,
    /// What `rate` counts: requests, notifies, deliveries, heartbeats or connects.
    pub(crate) unit: String,
    /// Connections used.
    pub(crate) conns: usize,
    /// Operations completed in the measured window.
    pub(crate) ops: u64,
    /// Length of the measured window, seconds.
    pub(crate) secs: f64,
    /// Operations per second.
    pub(crate) rate: f64,
    /// Latency percentiles, microseconds (0 when the mode has none).
    pub(crate) p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub(crate) p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub(crate) p999_us: f64,
    /// Largest latency, microseconds.
    pub(crate) max_us: f64,
    /// Wrong ids, bodies or counts, errors, kicks and lost connections.
    pub(crate) errors: u64,
    /// Server CPU per operation, microseconds, summed over every server process.
    pub(crate) server_cpu_us: f64,
    /// Load generator CPU per operation, microseconds.
    pub(crate) client_cpu_us: f64,
    /// Server memory per connection, bytes (idle scenario only).
    pub(crate) mem_per_conn: f64,
    /// First error seen, for the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
}

impl Point {
    /// Fills the latency fields from `h`.
    pub(crate) fn latency(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        self.p50_us = us(h.value_at_quantile(0.50));
        self.p99_us = us(h.value_at_quantile(0.99));
        self.p999_us = us(h.value_at_quantile(0.999));
        self.max_us = us(h.max());
    }
}
