//! The trace context in cluster request metadata (spec 6.3, key `otel-span`).
//!
//! Without the `otel` feature there is no trace context to carry: outgoing metadata
//! is left alone and incoming carriers are ignored.

use bytes::Bytes;
use serde_json::{Map, Value};
use tracing::Span;

/// Returns `metadata` with the current span's trace context under `otel-span`.
///
/// Metadata is returned unchanged when there is no context to carry or when it is
/// not a JSON object.
pub(crate) fn inject(metadata: Bytes) -> Bytes {
    #[cfg(feature = "otel")]
    if let Some(carrier) = super::otel::carrier(&Span::current()) {
        return insert_carrier(metadata, carrier);
    }
    metadata
}

#[cfg(feature = "otel")]
fn insert_carrier(metadata: Bytes, carrier: Map<String, Value>) -> Bytes {
    let mut map = match serde_json::from_slice::<Value>(&metadata) {
        Ok(Value::Object(map)) => map,
        _ => return metadata,
    };
    map.insert(
        crate::cluster::rpc::OTEL_SPAN.to_owned(),
        Value::Object(carrier),
    );
    Bytes::from(Value::Object(map).to_string())
}

/// Makes the trace context that `metadata` carries the parent of `span`, which
/// must not have been entered yet.
///
/// A missing or unusable carrier leaves `span` the root of a new trace: tracing
/// never fails a call.
pub(crate) fn adopt_parent(span: &Span, metadata: &Map<String, Value>) {
    #[cfg(feature = "otel")]
    super::otel::adopt_parent(span, metadata);
    #[cfg(not(feature = "otel"))]
    let _ = (span, metadata);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_left_alone_outside_a_traced_span() {
        let metadata = Bytes::from_static(br#"{"peer.id":"c-1"}"#);
        let span = tracing::info_span!("untraced");
        let _entered = span.enter();
        assert_eq!(inject(metadata.clone()), metadata);
    }
}
