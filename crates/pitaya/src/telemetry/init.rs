//! Installing the process's subscriber: logs on stdout, and spans over OTLP.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::config::{Export, TracingConfig};

/// The log filter when `RUST_LOG` is unset or invalid: lifecycle events, and only the
/// OpenTelemetry SDK's warnings, such as a failed export.
const LOG_DEFAULT: &str = "info,opentelemetry=warn";

/// Returned when telemetry cannot start or flush.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// Another global subscriber, or `log` logger, was installed first.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Span export must start inside a tokio runtime, where its gRPC channel runs.
    #[error("span export must start inside a tokio runtime")]
    NoRuntime,
    /// The OTLP endpoint is one we cannot export to, such as an `https://` one.
    #[error("otlp endpoint {endpoint:?} (from {origin}): {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// The variable or config key that set it.
        origin: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// The OTLP exporter refused its settings, such as a malformed endpoint.
    #[error("otlp exporter: {0}")]
    Exporter(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Spans could not be handed to the collector.
    #[error("span export: {0}")]
    Export(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Installs the global subscriber of an application and returns its guard.
///
/// Logs go to stdout, filtered by `RUST_LOG` (default `info`, with the OpenTelemetry
/// SDK at `warn`). When `config` and the `OTEL_*` environment turn export on (see
/// [`TracingConfig`]) and the `otel` feature is compiled in, spans at INFO and above
/// also go to an OTLP/gRPC collector, as `service_name` unless the config or
/// `OTEL_SERVICE_NAME` names the service. Export asked for without the feature is
/// reported as a warning.
///
/// Call it once, early in `main`, inside the tokio runtime, and call
/// [`Telemetry::shutdown`] before returning so that the last spans are sent.
///
/// # Errors
///
/// Returns [`TelemetryError::AlreadyInstalled`] when a global subscriber exists,
/// [`TelemetryError::NoRuntime`] when export is on outside a tokio runtime,
/// [`TelemetryError::Endpoint`] when the endpoint is not plain http (one without a
/// scheme is taken as `http://`), and [`TelemetryError::Exporter`] when the exporter
/// refuses its settings.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = pitaya::Config::load()?;
/// let telemetry = pitaya::telemetry::init(&config.tracing, "connector")?;
/// // ... build and run the app ...
/// telemetry.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub fn init(config: &TracingConfig, service_name: &str) -> Result<Telemetry, TelemetryError> {
    let export = config.export(service_name, |name| std::env::var(name).ok());
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(LOG_DEFAULT)),
        );
    let registry = tracing_subscriber::registry().with(logs);

    #[cfg(feature = "otel")]
    let (registry, provider) = {
        let provider = match &export {
            Export::Otlp(plan) => {
                tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
                let provider = super::otel::provider(plan)
                    .map_err(|e| TelemetryError::Exporter(Box::new(e)))?;
                Some(provider)
            }
            Export::BadEndpoint {
                endpoint,
                origin,
                reason,
            } => {
                return Err(TelemetryError::Endpoint {
                    endpoint: endpoint.clone(),
                    origin,
                    reason: reason.clone(),
                })
            }
            _ => None,
        };
        let layer = provider.as_ref().map(super::otel::layer);
        (registry.with(layer), provider)
    };

    registry
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(Box::new(e)))?;
    #[cfg(feature = "otel")]
    if let Some(provider) = &provider {
        super::otel::install_globals(provider);
    }
    let telemetry = Telemetry {
        #[cfg(feature = "otel")]
        provider,
    };
    report(&export, &telemetry);
    Ok(telemetry)
}

/// Logs what became of span export, now that logs have somewhere to go.
fn report(export: &Export, telemetry: &Telemetry) {
    match export {
        Export::Off => tracing::debug!("span export off"),
        Export::Unsupported(names) => tracing::warn!(
            exporters = %names,
            "OTEL_TRACES_EXPORTER names no exporter pitaya has (only otlp): spans not exported"
        ),
        Export::Otlp(plan) if telemetry.is_exporting() => {
            if let Some((variable, protocol)) = &plan.ignored_protocol {
                tracing::warn!(
                    %variable,
                    %protocol,
                    "only OTLP over gRPC is exported; this protocol setting is ignored"
                );
            }
            tracing::info!(
                endpoint = %plan.endpoint,
                from = %plan.origin,
                service = plan.service_name.as_deref().unwrap_or("from OTEL_*"),
                "exporting spans over OTLP/gRPC"
            );
        }
        Export::Otlp(_) | Export::BadEndpoint { .. } => {
            tracing::warn!("span export asked for, but pitaya was built without its `otel` feature")
        }
    }
}

/// The guard of [`init`]: flushes and stops span export.
///
/// Dropping it without [`shutdown`](Telemetry::shutdown) loses the spans not yet
/// sent; the subscriber itself stays installed for the life of the process.
#[derive(Debug)]
#[must_use = "call `shutdown` before exiting, or the last spans are lost"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Returns whether spans are being exported.
    pub fn is_exporting(&self) -> bool {
        #[cfg(feature = "otel")]
        return self.provider.is_some();
        #[cfg(not(feature = "otel"))]
        false
    }

    /// Sends every finished span now, without waiting for the next batch.
    ///
    /// # Errors
    ///
    /// Returns [`TelemetryError::Export`] when the collector could not take them.
    pub async fn flush(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.clone() {
            return blocking(move || provider.force_flush()).await;
        }
        Ok(())
    }

    /// Sends every finished span and stops export; spans that end later are dropped.
    ///
    /// # Errors
    ///
    /// Returns [`TelemetryError::Export`] when the last spans could not be sent.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            return blocking(move || provider.shutdown()).await;
        }
        Ok(())
    }
}

/// Runs a blocking SDK call off the async workers: the export it waits for needs
/// them to drive the gRPC channel.
#[cfg(feature = "otel")]
async fn blocking(
    call: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> Result<(), TelemetryError> {
    match tokio::task::spawn_blocking(call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(TelemetryError::Export(Box::new(e))),
        Err(e) => Err(TelemetryError::Export(Box::new(e))),
    }
}
