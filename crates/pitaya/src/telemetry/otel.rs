//! OpenTelemetry glue: the W3C propagator, the OTLP/gRPC exporter and the layer that
//! turns `tracing` spans into OpenTelemetry spans.

use std::sync::LazyLock;

use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value};
use tracing::{Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::config::OtlpPlan;
use crate::cluster::rpc::OTEL_SPAN;

/// Pitaya v3's propagators (spec 6.3): W3C trace context, then W3C baggage. We use
/// our own rather than the global one, so that the carrier's format never depends on
/// what else the process installed.
static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(propagator);

fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

// ===== carriers =====

/// Writes propagator fields as JSON strings, the shape Pitaya expects.
struct JsonInjector(Map<String, Value>);

impl Injector for JsonInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

/// Reads propagator fields from a JSON object; values that are not strings are
/// skipped, as Go Pitaya skips them.
struct JsonExtractor<'a>(&'a Map<String, Value>);

impl Extractor for JsonExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Returns the `otel-span` carrier of `span`'s trace context, or `None` when the
/// span takes no part in a trace (no OpenTelemetry layer, or a disabled span).
pub(crate) fn carrier(span: &Span) -> Option<Map<String, Value>> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut injector = JsonInjector(Map::new());
    PROPAGATOR.inject_context(&cx, &mut injector);
    Some(injector.0).filter(|m| !m.is_empty())
}

/// Sets `span`'s parent to the remote span that `metadata` carries, if valid.
pub(crate) fn adopt_parent(span: &Span, metadata: &Map<String, Value>) {
    let Some(carrier) = metadata.get(OTEL_SPAN) else {
        return;
    };
    let Some(fields) = carrier.as_object() else {
        tracing::debug!(parent: span, "otel-span is not an object: new trace");
        return;
    };
    let cx = PROPAGATOR.extract(&JsonExtractor(fields));
    if !cx.span().span_context().is_valid() {
        tracing::debug!(parent: span, "otel-span has no valid traceparent: new trace");
        return;
    }
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(parent: span, error = %e, "trace parent not set");
    }
}

// ===== export =====

/// Returns a tracer provider exporting over OTLP/gRPC in batches.
///
/// Must run inside a tokio runtime: the gRPC channel spawns its worker there.
pub(crate) fn provider(plan: &OtlpPlan) -> Result<SdkTracerProvider, ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(plan.endpoint.clone());
    let mut resource = Resource::builder();
    if let Some(name) = &plan.service_name {
        resource = resource.with_service_name(name.clone());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter.build()?)
        .with_resource(resource.build())
        .build())
}

/// Makes `provider` and our propagator the process's global ones, for application
/// code that uses the OpenTelemetry API directly.
pub(crate) fn install_globals(provider: &SdkTracerProvider) {
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(propagator());
}

/// Returns the layer exporting spans through `provider`.
///
/// It sees INFO and above whatever `RUST_LOG` says, which only chooses what is
/// printed. The exporter's own crates are left out, so that exporting never makes
/// spans to export.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let filter = ["opentelemetry", "tonic", "tower", "hyper", "h2"]
        .into_iter()
        .fold(
            Targets::new().with_default(LevelFilter::INFO),
            |t, target| t.with_target(target, LevelFilter::OFF),
        );
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer_with_scope(scope))
        .with_filter(filter)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceId;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Returns a subscriber whose spans get OpenTelemetry ids; nothing is exported.
    fn subscriber() -> (impl Subscriber + Send + Sync, SdkTracerProvider) {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        (subscriber, provider)
    }

    fn trace_id(span: &Span) -> TraceId {
        span.context().span().span_context().trace_id()
    }

    fn metadata(carrier: Value) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(OTEL_SPAN.into(), carrier);
        map
    }

    #[test]
    fn carrier_holds_the_w3c_traceparent_of_the_span() {
        let (subscriber, _provider) = subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("caller");
            let carrier = carrier(&span).expect("a traced span has a carrier");
            let traceparent = carrier["traceparent"].as_str().unwrap();
            let ids = span.context().span().span_context().clone();
            assert_eq!(
                traceparent,
                format!("00-{}-{}-01", ids.trace_id(), ids.span_id())
            );
        });
    }

    #[test]
    fn an_adopted_carrier_puts_the_span_in_the_callers_trace() {
        let (subscriber, _provider) = subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let caller = tracing::info_span!("caller");
            let carrier = carrier(&caller).unwrap();

            let callee = tracing::info_span!(parent: None, "callee");
            adopt_parent(&callee, &metadata(Value::Object(carrier)));
            assert_eq!(trace_id(&callee), trace_id(&caller));
        });
    }

    #[test]
    fn a_bad_carrier_leaves_the_span_in_a_new_trace() {
        let (subscriber, _provider) = subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let caller = tracing::info_span!("caller");
            let bad = [
                Value::from(42),
                serde_json::json!({"traceparent": "00-not-a-trace-01"}),
                serde_json::json!({"traceparent": 7}),
                serde_json::json!({}),
            ];
            for carrier in bad {
                let callee = tracing::info_span!(parent: None, "callee");
                adopt_parent(&callee, &metadata(carrier.clone()));
                let id = trace_id(&callee);
                assert!(
                    id != TraceId::INVALID && id != trace_id(&caller),
                    "{carrier}"
                );
            }
        });
    }

    #[test]
    fn inject_adds_the_carrier_beside_the_other_keys() {
        let (subscriber, _provider) = subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("caller");
            let _entered = span.enter();
            let metadata =
                super::super::propagate::inject(br#"{"peer.id":"c-1"}"#.as_slice().into());
            let map: Map<String, Value> = serde_json::from_slice(&metadata).unwrap();
            assert_eq!(map["peer.id"], "c-1");
            assert_eq!(map[OTEL_SPAN], Value::Object(carrier(&span).unwrap()));

            // Not ours to repair: the receiver reports metadata that is no object.
            let odd = bytes::Bytes::from_static(b"[1]");
            assert_eq!(super::super::propagate::inject(odd.clone()), odd);
        });
    }

    #[test]
    fn a_span_outside_any_otel_layer_has_no_carrier() {
        let span = tracing::info_span!("untraced");
        assert_eq!(carrier(&span), None);
    }
}
