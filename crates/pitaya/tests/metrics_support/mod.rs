//! Reading `/metrics` as Prometheus does: scrape, parse, check with `promtool`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use pitaya_test_support::http_get;
use tokio::net::UdpSocket;

/// Longest wait for a metric to reach a value; generous for a loaded CI machine.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone)]
pub(crate) struct Scrape {
    pub(crate) text: String,
    pub(crate) samples: Vec<Sample>,
}

impl Scrape {
    /// Returns the samples of `name` whose labels include every pair of `labels`.
    pub(crate) fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// Returns the sum of the values of [`find`](Self::find).
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|s| s.value).sum()
    }

    /// Returns the value of the one sample [`find`](Self::find) gives, if exactly one.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels)[..] {
            [one] => Some(one.value),
            _ => None,
        }
    }

    /// Returns the values label `label` takes across the samples of `name`.
    pub(crate) fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.find(name, &[])
            .iter()
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

/// Returns the StatsD datagrams `receiver` gets until `done` holds for them all;
/// panics after [`WAIT`] without one.
pub(crate) async fn statsd_until(
    receiver: &UdpSocket,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    while !done(&lines) {
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(WAIT, receiver.recv(&mut buf))
            .await
            .expect("a statsd datagram")
            .unwrap();
        lines.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    lines
}

/// Returns the `route` tags of StatsD `lines`, such as `pitaya.x:1|g|#route:a,k:v`.
pub(crate) fn statsd_routes(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once("|#"))
        .flat_map(|(_, tags)| tags.split(','))
        .filter_map(|tag| tag.strip_prefix("route:"))
        .map(str::to_owned)
        .collect()
}

/// Returns `/metrics` of `addr`, parsed.
pub(crate) async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text) = http_get(local(addr), "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{text}");
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(parse_line)
        .collect();
    Scrape { text, samples }
}

/// Returns the scrape once `check` holds for it; panics after [`WAIT`] with the last one.
pub(crate) async fn scrape_until(
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = scrape(addr).await;
        if check(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns once `check` is true, polling; panics after [`WAIT`] naming `what`.
pub(crate) async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns `addr` with the unspecified IP the listeners bind replaced by loopback.
pub(crate) fn local(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

fn parse_line(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("sample has a value");
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.trim_end_matches('}')),
        None => (series, ""),
    };
    let mut map = BTreeMap::new();
    // Our label values hold no `",` sequence, so splitting on it is enough here.
    for pair in labels.split("\",").filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once("=\"").expect("label is k=\"v\"");
        map.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
    }
    let value = match value {
        "+Inf" => f64::INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels: map,
        value,
    }
}

/// Lint findings `promtool check metrics` reports for names that are Go Pitaya's and
/// must stay as they are for its dashboards.
const PITAYA_NAME_LINTS: &[&str] = &[
    // Pitaya's only counter has no `_total` suffix (spec 13.2).
    "pitaya_acceptor_exceeded_rate_limiting counter metrics should have \"_total\" suffix",
    // Pitaya's summaries are in nanoseconds and say so in their names.
    "pitaya_handler_handler_delay_ns metric names should not contain abbreviated units",
    "pitaya_handler_response_time_ns metric names should not contain abbreviated units",
];

/// The end of the finding each family gets for Pitaya's constant label `serverType`.
const SERVER_TYPE_LINT: &str = "label names should be written in 'snake_case' not 'camelCase'";

/// Runs `promtool check metrics` on `text`: panics on a parse error, or on any lint
/// finding other than those Pitaya's own names cause.
///
/// promtool must be installed (`scripts/test.sh` installs Debian's `prometheus`).
pub(crate) fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus; scripts/test.sh does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 1 when it cannot parse, 3 when it only has lint findings.
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "promtool failed ({code:?}):\n{report}\n{text}"
    );
    let unexpected: Vec<&str> = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !PITAYA_NAME_LINTS.contains(l))
        .filter(|l| !l.ends_with(SERVER_TYPE_LINT))
        .collect();
    assert!(unexpected.is_empty(), "promtool findings: {unexpected:#?}");
}
