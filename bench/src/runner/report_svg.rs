//! The chart: throughput and p99 of the three servers per point, as SVG.
//!
//! Each point gets one row of bars per server in two panels. Bars are scaled to the
//! largest of the point's servers, since the points' rates differ by orders of magnitude;
//! the numbers printed on the bars are absolute.

use std::fmt::Write as _;

/// One point of the chart.
#[derive(Debug)]
pub(crate) struct Group {
    /// Scenario and point.
    pub(crate) label: String,
    /// Per server: label, rate, p99 in µs.
    pub(crate) bars: Vec<(&'static str, f64, f64)>,
}

const LABEL_W: f64 = 230.0;
const PANEL_W: f64 = 330.0;
const BAR_H: f64 = 11.0;
const GAP: f64 = 9.0;
const TOP: f64 = 46.0;

fn color(server: &str) -> &'static str {
    match server {
        "baseline" => "#9e9e9e",
        "rs" => "#d2691e",
        _ => "#00add8",
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// Returns the SVG document for `groups`.
pub(crate) fn chart(groups: &[Group]) -> String {
    let servers = groups.first().map_or(0, |g| g.bars.len());
    let group_h = servers as f64 * BAR_H + GAP;
    let height = TOP + groups.len() as f64 * group_h + 20.0;
    let width = LABEL_W + 2.0 * PANEL_W + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let x1 = LABEL_W;
    let x2 = LABEL_W + PANEL_W + 20.0;
    let _ = writeln!(
        svg,
        r#"<text x="{x1}" y="16" font-size="12" font-weight="bold">throughput (longer is better)</text>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{x2}" y="16" font-size="12" font-weight="bold">p99 latency, µs (shorter is better)</text>"#
    );
    if let Some(first) = groups.first() {
        for (i, (name, _, _)) in first.bars.iter().enumerate() {
            let x = 10.0 + i as f64 * 80.0;
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="26" width="10" height="10" fill="{}"/><text x="{}" y="35">{name}</text>"#,
                color(name),
                x + 14.0
            );
        }
    }
    for (g, group) in groups.iter().enumerate() {
        let y0 = TOP + g as f64 * group_h;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y0 + group_h / 2.0,
            escape(&group.label)
        );
        let max_rate = group
            .bars
            .iter()
            .map(|b| b.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let max_p99 = group
            .bars
            .iter()
            .map(|b| b.2)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        for (i, (name, rate, p99)) in group.bars.iter().enumerate() {
            let y = y0 + i as f64 * BAR_H;
            bar(&mut svg, x1, y, *rate, max_rate, color(name));
            bar(&mut svg, x2, y, *p99, max_p99, color(name));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn bar(svg: &mut String, x: f64, y: f64, value: f64, max: f64, fill: &str) {
    let w = if max > 0.0 && value.is_finite() {
        (PANEL_W - 50.0) * value / max
    } else {
        0.0
    };
    let _ = writeln!(
        svg,
        r#"<rect x="{x}" y="{y}" width="{w:.1}" height="{}" fill="{fill}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
        BAR_H - 2.0,
        x + w + 3.0,
        y + BAR_H - 3.0,
        num(value)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
