//! What an app holds for metrics and health: reporters, lifecycle, listeners.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Lifecycle, Metrics, Reporter};
use crate::acceptor::ExceededCounter;
use crate::config::Config;
use crate::AppHandle;

/// Why an app's metrics or health endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A setting asks for something this build does not have.
    #[error("{setting} is set but pitaya was built without its feature `{feature}`")]
    NotCompiled {
        /// The config key.
        setting: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// A listener could not bind its address.
    #[error("cannot listen on {host}:{port} for {what}: {source}")]
    Bind {
        /// `metrics` or `health`.
        what: &'static str,
        /// The configured host.
        host: String,
        /// The configured port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A built-in reporter refused the config.
    #[error("{reporter} reporter: {reason}")]
    Reporter {
        /// `prometheus` or `statsd`.
        reporter: &'static str,
        /// Why.
        reason: String,
    },
}

/// The metrics side of an app.
#[derive(Debug, Default)]
pub(crate) struct AppMetrics {
    pub(crate) metrics: Metrics,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) routes: super::RouteLabels,
    #[cfg(feature = "_http")]
    ops: super::OpsServer,
}

impl AppMetrics {
    /// Returns the reporters of `config` followed by `extra`, with the listeners bound.
    pub(crate) fn build(
        config: &Config,
        server_type: &str,
        extra: Vec<Arc<dyn Reporter>>,
    ) -> Result<AppMetrics, MetricsError> {
        let cfg = &config.metrics;
        let mut reporters: Vec<Arc<dyn Reporter>> = Vec::new();

        #[cfg(feature = "prometheus")]
        let prometheus = if cfg.prometheus.enabled {
            let r = super::PrometheusReporter::new(server_type, cfg).map_err(|e| {
                MetricsError::Reporter {
                    reporter: "prometheus",
                    reason: e.to_string(),
                }
            })?;
            let r = Arc::new(r);
            reporters.push(r.clone());
            let at = super::http::Bind {
                host: &cfg.prometheus.host,
                port: cfg.prometheus.port,
            };
            Some((at, r))
        } else {
            None
        };
        #[cfg(not(feature = "prometheus"))]
        if cfg.prometheus.enabled {
            return Err(not_compiled(
                "pitaya.metrics.prometheus.enabled",
                "prometheus",
            ));
        }

        #[cfg(feature = "statsd")]
        if cfg.statsd.enabled {
            let r = super::StatsdReporter::new(server_type, cfg).map_err(|e| {
                MetricsError::Reporter {
                    reporter: "statsd",
                    reason: e.to_string(),
                }
            })?;
            reporters.push(Arc::new(r));
        }
        #[cfg(not(feature = "statsd"))]
        if cfg.statsd.enabled {
            return Err(not_compiled("pitaya.metrics.statsd.enabled", "statsd"));
        }
        #[cfg(not(any(feature = "statsd", feature = "prometheus")))]
        let _ = server_type;

        #[cfg(not(feature = "health"))]
        if config.health.enabled {
            return Err(not_compiled("pitaya.health.enabled", "health"));
        }
        #[cfg(feature = "_http")]
        let ops = {
            let health = config.health.enabled.then_some(super::http::Bind {
                host: &config.health.host,
                port: config.health.port,
            });
            super::OpsServer::bind(
                #[cfg(feature = "prometheus")]
                prometheus,
                health,
            )
            .map_err(|(at, source)| {
                let what = if health == Some(at) {
                    "health"
                } else {
                    "metrics"
                };
                MetricsError::Bind {
                    what,
                    host: at.host.to_owned(),
                    port: at.port,
                    source,
                }
            })?
        };

        reporters.extend(extra);
        Ok(AppMetrics {
            metrics: Metrics::new(reporters),
            lifecycle: Lifecycle::default(),
            routes: super::RouteLabels::default(),
            #[cfg(feature = "_http")]
            ops,
        })
    }

    /// Starts the listeners and the periodic reports; both stop with `stop`.
    pub(crate) fn start(
        &self,
        app: &AppHandle,
        rate_limited: Vec<ExceededCounter>,
        stop: &CancellationToken,
    ) {
        #[cfg(feature = "_http")]
        if let Err(e) = self.ops.serve(app, stop) {
            tracing::error!(error = %e, "metrics and health listeners not started");
        }
        if self.metrics.is_enabled() {
            super::spawn_periodic(app.clone(), rate_limited, stop.clone());
        }
    }

    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "_http")]
        return self.ops.metrics_addr();
        #[cfg(not(feature = "_http"))]
        None
    }

    pub(crate) fn health_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "_http")]
        return self.ops.health_addr();
        #[cfg(not(feature = "_http"))]
        None
    }
}

#[cfg(not(all(feature = "prometheus", feature = "statsd", feature = "health")))]
fn not_compiled(setting: &'static str, feature: &'static str) -> MetricsError {
    MetricsError::NotCompiled { setting, feature }
}

impl AppHandle {
    /// Returns the app's reporters, to report application metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics.metrics
    }

    /// Returns the forwarded routes that metrics may name.
    pub(crate) fn route_labels(&self) -> &super::RouteLabels {
        &self.shared.metrics.routes
    }

    /// Returns the address `/metrics` is served on, with
    /// `pitaya.metrics.prometheus.enabled`.
    ///
    /// The port is bound when the app is built, so a configured port 0 is resolved
    /// here before the app runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.shared.metrics.metrics_addr()
    }

    /// Returns the address `/healthz` and `/readyz` are served on: their own listener
    /// with `pitaya.health.enabled`, else the `/metrics` listener.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.shared.metrics.health_addr()
    }
}
