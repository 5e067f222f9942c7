//! Prometheus summaries, which the `prometheus` crate does not offer.
//!
//! Go Pitaya's summaries (spec 13.2) come from the Go client: quantiles over a sliding
//! window of ten minutes, kept as five age buckets, plus a count and a sum over the whole
//! life of the process. We keep the same shape: each series holds [`AGE_BUCKETS`]
//! DDSketches, one per two minutes; an observation goes into the newest, a scrape merges
//! them, and the oldest is emptied when its time is up. DDSketch bounds the relative error
//! of each quantile's value (1%), where Go's objectives bound the error of its rank;
//! dashboards read the same `quantile` labels either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

/// How many sketches make up a window, as Go's default `AgeBuckets`.
const AGE_BUCKETS: usize = 5;
/// How long observations count toward the quantiles, as Go's default `MaxAge`.
const MAX_AGE: Duration = Duration::from_secs(600);

/// A summary with variable labels, registered like the crate's own `*Vec` collectors.
#[derive(Debug)]
pub(super) struct SummaryVec {
    desc: Desc,
    quantiles: Vec<f64>,
    label_names: Vec<String>,
    series: RwLock<HashMap<Vec<String>, Arc<Mutex<Series>>>>,
}

/// One label combination: lifetime count and sum, windowed sketches.
struct Series {
    count: u64,
    sum: f64,
    buckets: Vec<DDSketch>,
    /// Index of the bucket observations go into.
    head: usize,
    /// When `head` became the newest bucket.
    head_since: Instant,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .finish_non_exhaustive()
    }
}

impl SummaryVec {
    /// Returns a summary described by `desc`, reporting `quantiles` (each in 0..1).
    pub(super) fn new(desc: Desc, quantiles: Vec<f64>) -> SummaryVec {
        let label_names = desc.variable_labels.clone();
        SummaryVec {
            desc,
            quantiles,
            label_names,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Adds `value` to the series of `values`, given in the order of the label names.
    pub(super) fn observe(&self, values: Vec<String>, value: f64) {
        let existing = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&values)
            .cloned();
        let series = match existing {
            Some(s) => s,
            None => self
                .series
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(values)
                .or_insert_with(|| Arc::new(Mutex::new(Series::new())))
                .clone(),
        };
        let mut series = series.lock().unwrap_or_else(PoisonError::into_inner);
        series.observe(value, Instant::now());
    }

    fn metric(&self, values: &[String], series: &Mutex<Series>) -> Metric {
        let mut series = series.lock().unwrap_or_else(PoisonError::into_inner);
        let window = series.window(Instant::now());
        let quantiles = self
            .quantiles
            .iter()
            .map(|&q| {
                let mut quantile = Quantile::default();
                quantile.set_quantile(q);
                // An empty window has no quantiles; Go's client writes NaN too.
                let v = window.quantile(q).ok().flatten().unwrap_or(f64::NAN);
                quantile.set_value(v);
                quantile
            })
            .collect();
        let mut summary = Summary::default();
        summary.set_sample_count(series.count);
        summary.set_sample_sum(series.sum);
        summary.set_quantile(quantiles);

        let mut labels: Vec<LabelPair> = self.desc.const_label_pairs.clone();
        for (name, value) in self.label_names.iter().zip(values) {
            let mut pair = LabelPair::default();
            pair.set_name(name.clone());
            pair.set_value(value.clone());
            labels.push(pair);
        }
        labels.sort_by(|a, b| a.name().cmp(b.name()));
        let mut metric = Metric::default();
        metric.set_label(labels);
        metric.set_summary(summary);
        metric
    }
}

impl Collector for SummaryVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series: Vec<_> = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(values, s)| (values.clone(), s.clone()))
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::SUMMARY);
        family.set_metric(
            series
                .iter()
                .map(|(values, s)| self.metric(values, s))
                .collect(),
        );
        vec![family]
    }
}

impl Series {
    fn new() -> Series {
        Series {
            count: 0,
            sum: 0.0,
            buckets: (0..AGE_BUCKETS).map(|_| new_sketch()).collect(),
            head: 0,
            head_since: Instant::now(),
        }
    }

    fn observe(&mut self, value: f64, now: Instant) {
        self.rotate(now);
        self.count += 1;
        self.sum += value;
        self.buckets[self.head].add(value);
    }

    /// Empties the buckets whose observations are older than the window.
    fn rotate(&mut self, now: Instant) {
        let step = MAX_AGE / AGE_BUCKETS as u32;
        let mut turns = 0;
        while now.duration_since(self.head_since) >= step && turns < AGE_BUCKETS {
            self.head = (self.head + 1) % AGE_BUCKETS;
            self.buckets[self.head] = new_sketch();
            self.head_since += step;
            turns += 1;
        }
        // Idle for a whole window or more: every bucket is empty, start afresh.
        if now.duration_since(self.head_since) >= step {
            self.head_since = now;
        }
    }

    /// Returns the observations of the last window, merged.
    fn window(&mut self, now: Instant) -> DDSketch {
        self.rotate(now);
        let mut merged = new_sketch();
        for b in &self.buckets {
            // Every sketch shares one config, so merging cannot fail.
            let _ = merged.merge(b);
        }
        merged
    }
}

fn new_sketch() -> DDSketch {
    DDSketch::new(SketchConfig::defaults())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> SummaryVec {
        let desc = Desc::new(
            "pitaya_handler_t".into(),
            "help".into(),
            vec!["route".into()],
            HashMap::from([("game".to_owned(), "g".to_owned())]),
        )
        .unwrap();
        SummaryVec::new(desc, vec![0.5, 0.99])
    }

    #[test]
    fn quantiles_count_and_sum_follow_observations() {
        let s = summary();
        for v in 1..=100 {
            s.observe(vec!["a".into()], f64::from(v));
        }
        let family = s.collect().remove(0);
        assert_eq!(family.get_field_type(), MetricType::SUMMARY);
        let metric = &family.get_metric()[0];
        let names: Vec<_> = metric.get_label().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["game", "route"]);
        let summary = metric.get_summary();
        assert_eq!(summary.sample_count(), 100);
        assert_eq!(summary.sample_sum(), 5050.0);
        let q = summary.get_quantile();
        // DDSketch's 1% relative error, plus one rank of rounding.
        assert!((q[0].value() - 50.0).abs() <= 1.6, "{}", q[0].value());
        assert!((q[1].value() - 99.0).abs() <= 2.0, "{}", q[1].value());
    }

    #[test]
    fn old_observations_leave_the_window_but_stay_counted() {
        let mut series = Series::new();
        let start = series.head_since;
        series.observe(1000.0, start);
        let late = start + MAX_AGE + Duration::from_secs(1);
        series.observe(1.0, late);
        let window = series.window(late);
        assert_eq!(window.count(), 1);
        assert_eq!(window.quantile(0.5).unwrap().map(f64::round), Some(1.0));
        assert_eq!((series.count, series.sum), (2, 1001.0));
    }

    #[test]
    fn observations_within_the_window_all_count() {
        let mut series = Series::new();
        let start = series.head_since;
        for minute in 0..9 {
            series.observe(5.0, start + Duration::from_secs(60 * minute));
        }
        assert_eq!(series.window(start + Duration::from_secs(500)).count(), 9);
    }
}
