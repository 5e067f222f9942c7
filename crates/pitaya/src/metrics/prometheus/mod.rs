//! The Prometheus reporter: Go Pitaya's metric families (spec 13.2), all registered.
//!
//! Each family is `pitaya_<subsystem>_<name>` with the constant labels `game` and
//! `serverType` plus `pitaya.metrics.constlabels`, and the keys of
//! `pitaya.metrics.additionallabels` as variable labels, filled with their configured
//! value when a report leaves them out.
//!
//! Where Go Pitaya declares a histogram but never registers it, we register it: the
//! channel-capacity histogram under its own name, and the response-time histogram as
//! `pitaya_handler_response_time_seconds`, since the summary holds Pitaya's name. It is
//! fed by every response-time report, in seconds as Prometheus names ask. Its buckets
//! are Pitaya's bounds read as milliseconds (1 ms to 10 s): read as nanoseconds, the
//! unit Pitaya reports in, every request would land past the last bucket.

mod decl;
mod labels;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::{CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};

use self::decl::{Decl, Kind, BUILT_IN, RESPONSE_TIME_BUCKETS};
use self::summary::SummaryVec;
use super::{Label, ReportError, Reporter, RESPONSE_TIME};
use crate::config::{CustomMetric, MetricsConfig};

/// Namespace of every family, as in Go Pitaya.
const NAMESPACE: &str = "pitaya";

/// Quantile objectives of the built-in summaries (spec 13.2); only the quantiles are
/// used, see the `summary` module.
const OBJECTIVES: [f64; 3] = [0.7, 0.95, 0.99];

/// A registered family and the names of its variable labels, in order.
#[derive(Debug)]
struct Family<M> {
    metric: M,
    labels: Vec<String>,
}

/// Reports to a Prometheus registry; `/metrics` serves [`render`](Self::render).
///
/// Built by the app when `pitaya.metrics.prometheus.enabled` is set; an app that
/// serves metrics itself can build one with [`new`](Self::new) and hand it to
/// [`Builder::reporter`](crate::Builder::reporter).
#[derive(Debug)]
pub struct PrometheusReporter {
    registry: Registry,
    counters: HashMap<String, Family<CounterVec>>,
    gauges: HashMap<String, Family<GaugeVec>>,
    summaries: HashMap<String, Family<Arc<SummaryVec>>>,
    histograms: HashMap<String, Family<HistogramVec>>,
    /// Fed with every response-time report, beside the summary.
    response_histogram: Family<HistogramVec>,
    additional: BTreeMap<String, String>,
}

impl PrometheusReporter {
    /// Returns a reporter for a server of `server_type`, with Go Pitaya's families, the
    /// custom ones of `config`, and, on Linux, the process metrics (`process_*`).
    ///
    /// # Errors
    ///
    /// When a custom family has an invalid name, label or buckets, or clashes with
    /// another; when a label name is reserved by Prometheus (`__*`, `le`, `quantile`)
    /// or would be both a constant and a variable label of a family (such as
    /// `constlabels: {route: x}`, `additionallabels: {game: x}`, or `constlabels`
    /// naming `game` or `serverType`, which the reporter sets).
    pub fn new(server_type: &str, config: &MetricsConfig) -> Result<Self, prometheus::Error> {
        labels::check_config(config)?;
        let mut const_labels: HashMap<String, String> = config
            .const_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        const_labels.insert("game".into(), config.game.clone());
        const_labels.insert("serverType".into(), server_type.into());
        let additional: Vec<String> = config.additional_labels.keys().cloned().collect();

        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let response = Decl {
            kind: Kind::Histogram(RESPONSE_TIME_BUCKETS),
            subsystem: "handler",
            name: "response_time_seconds",
            help: "Time from a message's arrival to its answer, or of a call, in seconds.",
            labels: &["route", "status", "type", "code"],
        };
        let mut reporter = PrometheusReporter {
            response_histogram: histogram(&response.spec(), &const_labels, &additional)?,
            registry,
            counters: HashMap::new(),
            gauges: HashMap::new(),
            summaries: HashMap::new(),
            histograms: HashMap::new(),
            additional: config.additional_labels.clone(),
        };
        reporter
            .registry
            .register(Box::new(reporter.response_histogram.metric.clone()))?;

        for decl in BUILT_IN {
            reporter.declare(decl.kind, &decl.spec(), &const_labels, &additional)?;
        }
        let custom = &config.custom;
        for m in &custom.summaries {
            reporter.declare(Kind::Summary, m, &const_labels, &additional)?;
        }
        for m in &custom.histograms {
            reporter.declare(Kind::Histogram(&[]), m, &const_labels, &additional)?;
        }
        for m in &custom.gauges {
            reporter.declare(Kind::Gauge, m, &const_labels, &additional)?;
        }
        for m in &custom.counters {
            reporter.declare(Kind::Counter, m, &const_labels, &additional)?;
        }
        Ok(reporter)
    }

    /// Returns the registry, to register more collectors in it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns every family in Prometheus's text format, as `/metrics` serves it.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Writing text into a Vec fails only for families the registry refused.
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics not encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn declare(
        &mut self,
        kind: Kind,
        spec: &CustomMetric,
        const_labels: &HashMap<String, String>,
        additional: &[String],
    ) -> Result<(), prometheus::Error> {
        let labels = label_names(spec, additional);
        labels::check_family(&full_name(spec), &labels, const_labels)?;
        let name = spec.name.clone();
        let collector: Box<dyn Collector> = match kind {
            Kind::Counter => {
                let family = vec_of(spec, const_labels, additional, CounterVec::new)?;
                let c = Box::new(family.metric.clone());
                self.counters.insert(name, family);
                c
            }
            Kind::Gauge => {
                let family = vec_of(spec, const_labels, additional, GaugeVec::new)?;
                let c = Box::new(family.metric.clone());
                self.gauges.insert(name, family);
                c
            }
            Kind::Histogram(buckets) => {
                let mut spec = spec.clone();
                if spec.buckets.is_empty() {
                    spec.buckets = buckets.to_vec();
                }
                let family = histogram(&spec, const_labels, additional)?;
                let c = Box::new(family.metric.clone());
                self.histograms.insert(name, family);
                c
            }
            Kind::Summary => {
                let desc = Desc::new(
                    full_name(spec),
                    help_of(spec),
                    labels.clone(),
                    const_labels.clone(),
                )?;
                let quantiles = if spec.objectives.is_empty() {
                    OBJECTIVES.to_vec()
                } else {
                    let mut q: Vec<f64> = spec.objectives.keys().flat_map(|q| q.parse()).collect();
                    q.sort_by(f64::total_cmp);
                    q
                };
                let metric = Arc::new(SummaryVec::new(desc, quantiles));
                self.summaries.insert(
                    name,
                    Family {
                        metric: metric.clone(),
                        labels,
                    },
                );
                Box::new(ArcCollector(metric))
            }
        };
        self.registry.register(collector)
    }

    /// Returns the label values of a report, in the family's order.
    fn values(
        &self,
        metric: &str,
        names: &[String],
        labels: &[Label<'_>],
    ) -> Result<Vec<String>, ReportError> {
        if let Some((k, _)) = labels.iter().find(|(k, _)| !names.iter().any(|n| n == k)) {
            return Err(ReportError::Invalid {
                metric: metric.into(),
                reason: format!("label {k:?} is not declared"),
            });
        }
        Ok(names
            .iter()
            .map(|n| match labels.iter().find(|(k, _)| k == n) {
                Some((_, v)) => (*v).to_owned(),
                None => self.additional.get(n).cloned().unwrap_or_default(),
            })
            .collect())
    }
}

impl Reporter for PrometheusReporter {
    fn report_count(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        let family = known(self.counters.get(metric), metric)?;
        // NaN is refused too: it is not a count.
        if value.is_nan() || value < 0.0 {
            return Err(ReportError::Invalid {
                metric: metric.into(),
                reason: format!("a counter cannot go down by {value}"),
            });
        }
        let values = self.values(metric, &family.labels, labels)?;
        family.metric.with_label_values(&values).inc_by(value);
        Ok(())
    }

    fn report_gauge(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        let family = known(self.gauges.get(metric), metric)?;
        let values = self.values(metric, &family.labels, labels)?;
        family.metric.with_label_values(&values).set(value);
        Ok(())
    }

    fn report_summary(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        let family = known(self.summaries.get(metric), metric)?;
        let values = self.values(metric, &family.labels, labels)?;
        if metric == RESPONSE_TIME {
            let h = &self.response_histogram;
            h.metric.with_label_values(&values).observe(value / 1e9);
        }
        family.metric.observe(values, value);
        Ok(())
    }

    fn report_histogram(
        &self,
        metric: &str,
        labels: &[Label<'_>],
        value: f64,
    ) -> Result<(), ReportError> {
        let family = known(self.histograms.get(metric), metric)?;
        let values = self.values(metric, &family.labels, labels)?;
        family.metric.with_label_values(&values).observe(value);
        Ok(())
    }
}

/// Lets the registry own a collector that the reporter keeps a handle on.
struct ArcCollector(Arc<SummaryVec>);

impl Collector for ArcCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

fn known<'a, M>(family: Option<&'a Family<M>>, metric: &str) -> Result<&'a Family<M>, ReportError> {
    family.ok_or_else(|| ReportError::UnknownMetric(metric.into()))
}

fn full_name(spec: &CustomMetric) -> String {
    [NAMESPACE, &spec.subsystem, &spec.name]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("_")
}

/// Returns the help text; Prometheus refuses an empty one.
fn help_of(spec: &CustomMetric) -> String {
    if spec.help.is_empty() {
        spec.name.clone()
    } else {
        spec.help.clone()
    }
}

fn label_names(spec: &CustomMetric, additional: &[String]) -> Vec<String> {
    let mut names = spec.labels.clone();
    names.extend(
        additional
            .iter()
            .filter(|a| !spec.labels.contains(a))
            .cloned(),
    );
    names
}

fn opts(spec: &CustomMetric, const_labels: &HashMap<String, String>) -> Opts {
    Opts::new(spec.name.clone(), help_of(spec))
        .namespace(NAMESPACE)
        .subsystem(spec.subsystem.clone())
        .const_labels(const_labels.clone())
}

fn vec_of<M>(
    spec: &CustomMetric,
    const_labels: &HashMap<String, String>,
    additional: &[String],
    make: impl FnOnce(Opts, &[&str]) -> Result<M, prometheus::Error>,
) -> Result<Family<M>, prometheus::Error> {
    let labels = label_names(spec, additional);
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let metric = make(opts(spec, const_labels), &refs)?;
    Ok(Family { metric, labels })
}

fn histogram(
    spec: &CustomMetric,
    const_labels: &HashMap<String, String>,
    additional: &[String],
) -> Result<Family<HistogramVec>, prometheus::Error> {
    vec_of(spec, const_labels, additional, |o, l| {
        let mut h = HistogramOpts::from(o);
        if !spec.buckets.is_empty() {
            h = h.buckets(spec.buckets.clone());
        }
        HistogramVec::new(h, l)
    })
}

#[cfg(test)]
mod tests;
