//! Metrics and health settings (keys `pitaya.metrics` and `pitaya.health`).
//!
//! The `pitaya.metrics` keys and defaults are Go Pitaya's (spec section 12.5);
//! `pitaya.health` is a pitaya-rs addition.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::serde_go;

/// Metrics settings (key `pitaya.metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Interval between reports of the periodic metrics (tasks, memory,
    /// servers by type, queues, dropped messages); must be above zero. Key
    /// `pitaya.metrics.period`, default 15s (Pitaya's).
    #[serde(with = "serde_go")]
    pub period: Duration,
    /// Value of the constant label `game` on every metric. Key
    /// `pitaya.metrics.game`, default empty (Pitaya's).
    pub game: String,
    /// More constant labels, name to value, on every metric. Key
    /// `pitaya.metrics.constlabels`, default none (Pitaya's).
    #[serde(rename = "constlabels")]
    pub const_labels: BTreeMap<String, String>,
    /// Variable labels added to every metric, name to the value used when a
    /// report does not set it. Key `pitaya.metrics.additionallabels`, default
    /// none (Pitaya's).
    #[serde(rename = "additionallabels")]
    pub additional_labels: BTreeMap<String, String>,
    /// Application metrics the built-in reporters declare. Key
    /// `pitaya.metrics.custom`, default none (Pitaya's).
    pub custom: CustomMetricsConfig,
    /// The Prometheus reporter.
    pub prometheus: PrometheusConfig,
    /// The StatsD reporter.
    pub statsd: StatsdConfig,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(15),
            game: String::new(),
            const_labels: BTreeMap::new(),
            additional_labels: BTreeMap::new(),
            custom: CustomMetricsConfig::default(),
            prometheus: PrometheusConfig::default(),
            statsd: StatsdConfig::default(),
        }
    }
}

/// The Prometheus reporter (key `pitaya.metrics.prometheus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PrometheusConfig {
    /// Whether to serve `/metrics`; needs the `prometheus` feature. Key
    /// `pitaya.metrics.prometheus.enabled`, default false (Pitaya's).
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub enabled: bool,
    /// Host name or IP address `/metrics` listens on: `127.0.0.1` keeps it to this
    /// machine, `::` takes IPv6 too. Key `pitaya.metrics.prometheus.host` (a
    /// pitaya-rs addition), default `0.0.0.0`, every IPv4 interface, where Pitaya
    /// listens so that Prometheus can reach it from another host.
    pub host: String,
    /// TCP port of `/metrics`; 0 picks a free port (see
    /// [`AppHandle::metrics_addr`](crate::AppHandle::metrics_addr)). Key
    /// `pitaya.metrics.prometheus.port`, default 9090 (Pitaya's).
    pub port: u16,
}

/// Where the HTTP listeners bind unless configured: every IPv4 interface, as
/// Pitaya's `/metrics` does.
const ALL_INTERFACES: &str = "0.0.0.0";

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: ALL_INTERFACES.into(),
            port: 9090,
        }
    }
}

/// The StatsD reporter (key `pitaya.metrics.statsd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StatsdConfig {
    /// Whether to send metrics to a StatsD agent over UDP; needs the `statsd`
    /// feature. Key `pitaya.metrics.statsd.enabled`, default false (Pitaya's).
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub enabled: bool,
    /// `host:port` of the agent. Key `pitaya.metrics.statsd.host`, default
    /// `localhost:9125` (Pitaya's).
    pub host: String,
    /// Prefix of every metric name. Key `pitaya.metrics.statsd.prefix`,
    /// default `pitaya.` (Pitaya's).
    pub prefix: String,
    /// Share of reports sent, from above 0 to 1. Key
    /// `pitaya.metrics.statsd.rate`, default 1 (Pitaya's).
    pub rate: f64,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "localhost:9125".into(),
            prefix: "pitaya.".into(),
            rate: 1.0,
        }
    }
}

/// Application metrics declared in config (key `pitaya.metrics.custom`).
///
/// The Prometheus reporter registers each one as `pitaya_<subsystem>_<name>`
/// with the constant and additional labels; applications report them through
/// [`AppHandle::metrics`](crate::AppHandle::metrics) by `name`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CustomMetricsConfig {
    /// Summaries, with their quantile objectives.
    pub summaries: Vec<CustomMetric>,
    /// Histograms, with their buckets.
    pub histograms: Vec<CustomMetric>,
    /// Gauges.
    pub gauges: Vec<CustomMetric>,
    /// Counters.
    pub counters: Vec<CustomMetric>,
}

/// One application metric of [`CustomMetricsConfig`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CustomMetric {
    /// Middle part of the exposed name, `pitaya_<subsystem>_<name>`.
    pub subsystem: String,
    /// Name the application reports the metric by.
    pub name: String,
    /// Help text.
    pub help: String,
    /// Names of the variable labels each report sets.
    pub labels: Vec<String>,
    /// Summaries only: quantile (such as `"0.95"`) to allowed rank error.
    pub objectives: BTreeMap<String, f64>,
    /// Histograms only: upper bounds of the buckets, increasing.
    pub buckets: Vec<f64>,
}

/// HTTP readiness and liveness endpoint (key `pitaya.health`, a pitaya-rs
/// addition).
///
/// The Prometheus listener serves the same paths whether or not this is
/// enabled; this gives them a listener of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HealthConfig {
    /// Whether to serve `/healthz` and `/readyz`; needs the `health` feature.
    /// Key `pitaya.health.enabled`, default false.
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub enabled: bool,
    /// Host name or IP address to listen on. Key `pitaya.health.host`, default
    /// `0.0.0.0`, every IPv4 interface, so that an orchestrator's probes reach it.
    pub host: String,
    /// TCP port; 0 picks a free port (see
    /// [`AppHandle::health_addr`](crate::AppHandle::health_addr)). The same
    /// host and non-zero port as `/metrics` share that listener. Key
    /// `pitaya.health.port`, default 9091.
    pub port: u16,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: ALL_INTERFACES.into(),
            port: 9091,
        }
    }
}

impl MetricsConfig {
    /// Returns an error message naming the first value out of range.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.period.is_zero() {
            return Err("pitaya.metrics.period must be greater than zero".into());
        }
        if self.prometheus.host.trim().is_empty() {
            return Err("pitaya.metrics.prometheus.host must name a host or IP address".into());
        }
        let rate = self.statsd.rate;
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(format!(
                "pitaya.metrics.statsd.rate must be above 0 and at most 1, got {rate}"
            ));
        }
        for s in &self.custom.summaries {
            for (q, err) in &s.objectives {
                let quantile = q.parse::<f64>().is_ok_and(|q| q > 0.0 && q < 1.0);
                if !(quantile && (0.0..1.0).contains(err)) {
                    return Err(format!(
                        "pitaya.metrics.custom summary {:?}: objective {q}: {err} is not a \
                         quantile between 0 and 1 with an error between 0 and 1",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use figment::Jail;

    use crate::config::{Config, ConfigError};

    #[test]
    fn defaults_are_pitaya_s() {
        let c = Config::default();
        let m = &c.metrics;
        assert_eq!(m.period, std::time::Duration::from_secs(15));
        assert_eq!((m.game.as_str(), m.const_labels.len()), ("", 0));
        assert_eq!((m.prometheus.enabled, m.prometheus.port), (false, 9090));
        assert_eq!(
            (m.prometheus.host.as_str(), c.health.host.as_str()),
            ("0.0.0.0", "0.0.0.0")
        );
        let s = &m.statsd;
        assert_eq!((s.enabled, s.host.as_str()), (false, "localhost:9125"));
        assert_eq!((s.prefix.as_str(), s.rate), ("pitaya.", 1.0));
        assert_eq!((c.health.enabled, c.health.port), (false, 9091));
    }

    #[test]
    // figment's Jail fixes the closure's error type; we cannot box it.
    #[allow(clippy::result_large_err)]
    fn pitaya_env_variables_switch_the_reporters_on() {
        Jail::expect_with(|jail| {
            jail.set_env("PITAYA_METRICS_PROMETHEUS_ENABLED", "true");
            jail.set_env("PITAYA_METRICS_PROMETHEUS_PORT", "0");
            jail.set_env("PITAYA_METRICS_STATSD_ENABLED", "true");
            jail.set_env("PITAYA_METRICS_STATSD_RATE", "0.5");
            jail.set_env("PITAYA_METRICS_CONSTLABELS_REGION", "eu");
            jail.set_env("PITAYA_HEALTH_ENABLED", "true");
            jail.set_env("PITAYA_METRICS_PROMETHEUS_HOST", "127.0.0.1");
            jail.set_env("PITAYA_HEALTH_HOST", "::1");
            let c = Config::load().map_err(|e| e.to_string())?;
            assert!(c.metrics.prometheus.enabled && c.metrics.statsd.enabled);
            assert_eq!(c.metrics.prometheus.port, 0);
            assert_eq!(c.metrics.statsd.rate, 0.5);
            assert_eq!(c.metrics.const_labels["region"], "eu");
            assert!(c.health.enabled);
            assert_eq!(c.metrics.prometheus.host, "127.0.0.1");
            assert_eq!(c.health.host, "::1");
            Ok(())
        });
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let mut c = Config::default();
        c.metrics.statsd.rate = 0.0;
        let err = c.validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(ref m) if m.contains("statsd.rate")));
        let mut c = Config::default();
        c.metrics.period = std::time::Duration::ZERO;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("metrics.period"));
    }
}
