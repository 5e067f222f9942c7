//! The summary: medians, spreads and paired ratios per point, as Markdown, JSON and SVG.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::scenarios::{PointSpec, Scenario};
use super::servers::Kind;
use crate::load::Mode;

/// Returns the JSON line of a point that could not run.
pub(crate) fn failed(scenario: &Scenario, spec: &PointSpec, kind: Kind, why: &str) -> Value {
    json!({
        "scenario": scenario.id, "server": kind.label(), "point": spec.label,
        "errors": 1, "first_error": why, "rate": 0.0, "p99_us": 0.0,
    })
}

/// Returns a one-line account of a point for the progress log.
pub(crate) fn brief(v: &Value) -> String {
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let mut s = format!(
        "{:<26} {:>10.0} {}/s  p99 {:>8.0} µs  cpu {:>6.1} µs/op  errors {}",
        v["point"].as_str().unwrap_or(""),
        num("rate"),
        v["unit"].as_str().unwrap_or(""),
        num("p99_us"),
        num("server_cpu_us"),
        v["errors"]
    );
    if num("mem_per_conn") > 0.0 {
        let _ = write!(s, "  {:.0} B/conn", num("mem_per_conn"));
    }
    if let Some(e) = v["first_error"].as_str() {
        let _ = write!(s, "  ({e})");
    }
    s
}

/// The samples of one server at one point, in run order.
#[derive(Debug, Default)]
struct Samples {
    value: Vec<f64>,
    p99: Vec<f64>,
    cpu: Vec<f64>,
    errors: u64,
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    }
}

/// Returns (max - min) / median, as a fraction.
fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    if v.len() < 2 || median(v) <= 0.0 {
        0.0
    } else {
        (hi - lo) / median(v)
    }
}

/// Returns the median of the ratios of samples taken in the same position of each
/// round, so that drifting machine load cancels out.
fn paired(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    median(&ratios)
}

/// The summary line of one point.
#[derive(Debug)]
struct Row {
    scenario: String,
    point: String,
    /// What the value is: a rate, or bytes per connection for idle points.
    metric: &'static str,
    by_kind: Vec<(Kind, Samples)>,
}

fn rows(scenarios: &[Scenario], kinds: &[Kind], results: &[Value]) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in scenarios {
        for spec in &s.points {
            let idle = spec.mode == Mode::Idle;
            let mut by_kind = Vec::new();
            for &kind in kinds {
                let mut samples = Samples::default();
                let mine = results.iter().filter(|r| {
                    r["scenario"] == s.id
                        && r["point"] == spec.label.as_str()
                        && r["server"] == kind.label()
                });
                for r in mine {
                    let num = |k: &str| r[k].as_f64().unwrap_or(0.0);
                    samples.value.push(if idle {
                        num("mem_per_conn")
                    } else {
                        num("rate")
                    });
                    samples.p99.push(num("p99_us"));
                    samples.cpu.push(num("server_cpu_us"));
                    samples.errors += r["errors"].as_u64().unwrap_or(0);
                }
                by_kind.push((kind, samples));
            }
            let metric = if idle { "B/conn" } else { unit(spec.mode) };
            rows.push(Row {
                scenario: s.id.into(),
                point: spec.label.clone(),
                metric,
                by_kind,
            });
        }
    }
    rows
}

fn unit(mode: Mode) -> &'static str {
    match mode {
        Mode::Rr => "req/s",
        Mode::Notify => "notify/s",
        Mode::Bcast => "deliv/s",
        Mode::Idle => "B/conn",
        Mode::Connect => "conn/s",
    }
}

impl Row {
    fn samples(&self, kind: Kind) -> Option<&Samples> {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s)
    }

    fn ratio(&self, a: Kind, b: Kind, pick: fn(&Samples) -> &Vec<f64>) -> f64 {
        match (self.samples(a), self.samples(b)) {
            (Some(x), Some(y)) => paired(pick(x), pick(y)),
            _ => f64::NAN,
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_ratio(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.2}x")
    }
}

/// Writes `summary.md`, `summary.json`, `results.jsonl` and `chart.svg` into `out`.
pub(crate) fn write(
    out: &Path,
    scenarios: &[Scenario],
    kinds: &[Kind],
    results: &[Value],
    took: Duration,
) -> io::Result<()> {
    let mut jsonl = String::new();
    for r in results {
        jsonl.push_str(&r.to_string());
        jsonl.push('\n');
    }
    std::fs::write(out.join("results.jsonl"), jsonl)?;
    let rows = rows(scenarios, kinds, results);
    let mut md = String::new();
    for s in scenarios {
        let _ = writeln!(md, "- {}: {}", s.id, s.title);
    }
    md.push('\n');
    md.push_str(&markdown(&rows, kinds, took));
    std::fs::write(out.join("summary.md"), md)?;
    let summary: Vec<Value> = rows.iter().map(row_json).collect();
    let text = serde_json::to_string_pretty(&summary).map_err(io::Error::other)?;
    std::fs::write(out.join("summary.json"), text)?;
    std::fs::write(
        out.join("chart.svg"),
        super::report_svg::chart(&rows_for_chart(&rows)),
    )?;
    Ok(())
}

fn row_json(row: &Row) -> Value {
    let mut servers = serde_json::Map::new();
    for (kind, s) in &row.by_kind {
        servers.insert(
            kind.label().into(),
            json!({
                "median": median(&s.value), "spread": spread(&s.value),
                "p99_us": median(&s.p99), "server_cpu_us": median(&s.cpu),
                "samples": s.value, "errors": s.errors,
            }),
        );
    }
    json!({
        "scenario": row.scenario, "point": row.point, "metric": row.metric,
        "servers": servers,
        "rs_over_baseline": row.ratio(Kind::Rs, Kind::Baseline, |s| &s.value),
        "rs_over_go": row.ratio(Kind::Rs, Kind::Go, |s| &s.value),
        "p99_rs_over_go": row.ratio(Kind::Rs, Kind::Go, |s| &s.p99),
    })
}

fn markdown(rows: &[Row], kinds: &[Kind], took: Duration) -> String {
    let mut md = String::new();
    let names: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
    let _ = writeln!(
        md,
        "Values are medians; ± is (max - min) / median; ratios are medians of paired \
         samples. p99 in µs, server CPU in µs per operation (all server processes). \
         Run took {:.0} s.\n",
        took.as_secs_f64()
    );
    let _ = write!(md, "| scenario | point | metric |");
    for n in &names {
        let _ = write!(md, " {n} |");
    }
    let _ = write!(md, " rs/baseline | rs/go |");
    for n in &names {
        let _ = write!(md, " p99 {n} |");
    }
    for n in &names {
        let _ = write!(md, " cpu {n} |");
    }
    let _ = writeln!(md, " errors |");
    let cols = 5 + 3 * names.len() + 1;
    let _ = writeln!(md, "|{}", "---|".repeat(cols));
    for row in rows {
        let _ = write!(md, "| {} | {} | {} |", row.scenario, row.point, row.metric);
        for (_, s) in &row.by_kind {
            let _ = write!(
                md,
                " {} ±{:.0}% |",
                fmt_num(median(&s.value)),
                spread(&s.value) * 100.0
            );
        }
        let _ = write!(
            md,
            " {} | {} |",
            fmt_ratio(row.ratio(Kind::Rs, Kind::Baseline, |s| &s.value)),
            fmt_ratio(row.ratio(Kind::Rs, Kind::Go, |s| &s.value))
        );
        for (_, s) in &row.by_kind {
            let _ = write!(md, " {} |", fmt_num(median(&s.p99)));
        }
        for (_, s) in &row.by_kind {
            let _ = write!(md, " {} |", fmt_num(median(&s.cpu)));
        }
        let errors: u64 = row.by_kind.iter().map(|(_, s)| s.errors).sum();
        let _ = writeln!(md, " {errors} |");
    }
    md
}

/// Returns the chart's data: for each rate point, each server's median rate and p99.
fn rows_for_chart(rows: &[Row]) -> Vec<super::report_svg::Group> {
    rows.iter()
        .filter(|r| r.metric != "B/conn")
        .map(|r| super::report_svg::Group {
            label: format!("{} {}", r.scenario, r.point),
            bars: r
                .by_kind
                .iter()
                .map(|(k, s)| (k.label(), median(&s.value), median(&s.p99)))
                .collect(),
        })
        .collect()
}
