//! The spans of requests and RPCs, with the same field names everywhere.
//!
//! Spans are at INFO so that the OTLP exporter sees them under the default log
//! filter. Each request span is a root: a client request starts a trace of its own
//! rather than joining the connection's span, and a call from another server joins
//! the caller's trace through the carrier in its metadata instead.

use pitaya_protocol::Message;
use pitaya_protos::{Request, Response, RpcType};
use serde_json::{Map, Value};
use tracing::field::Empty;
use tracing::Span;

use crate::cluster::rpc::PEER_ID;
use crate::cluster::RpcError;
use crate::{AppHandle, Error, Session};

/// Returns the span of a client message handled or forwarded here.
pub(crate) fn client_request(app: &AppHandle, session: &Session, msg: &Message) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "request",
        route = %msg.route,
        session_id = session.id(),
        uid = Empty,
        server_id = app.server_id(),
        id = msg.id,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    if let Some(uid) = session.uid() {
        span.record("uid", uid);
    }
    name_for_export(&span, &msg.route, "server");
    span
}

/// Returns the span of a call from another server: a forwarded client message
/// (named `request`, as on the frontend) or a remote call (named `remote`).
///
/// The caller's trace context in `req.metadata`, if any, becomes the parent.
pub(crate) fn rpc_server(app: &AppHandle, req: &Request) -> Span {
    let route = req.msg.as_ref().map_or("", |m| m.route.as_str());
    let metadata = serde_json::from_slice::<Map<String, Value>>(&req.metadata).unwrap_or_default();
    let span = if req.r#type == i32::from(RpcType::Sys) {
        let session = req.session.clone().unwrap_or_default();
        let span = tracing::info_span!(
            parent: None,
            "request",
            route,
            session_id = session.id,
            uid = Empty,
            server_id = app.server_id(),
            frontend_id = %req.frontend_id,
            id = req.msg.as_ref().map_or(0, |m| m.id),
            otel.name = Empty,
            otel.kind = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        );
        if !session.uid.is_empty() {
            span.record("uid", session.uid.as_str());
        }
        span
    } else {
        let peer_id = metadata.get(PEER_ID).and_then(Value::as_str);
        tracing::info_span!(
            parent: None,
            "remote",
            route,
            server_id = app.server_id(),
            peer_id = peer_id.unwrap_or_default(),
            otel.name = Empty,
            otel.kind = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        )
    };
    name_for_export(&span, route, "server");
    super::propagate::adopt_parent(&span, &metadata);
    span
}

/// Returns the span of a call this server makes to server `peer_id`, whose context
/// the request's metadata carries.
pub(crate) fn rpc_client(route: &str, peer_id: &str) -> Span {
    let span = tracing::info_span!(
        "rpc",
        route,
        peer_id,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    name_for_export(&span, route, "client");
    span
}

/// Records how a request ended: its uid if the handler bound one, and the error.
pub(crate) fn record_outcome<T>(
    span: &Span,
    session: Option<&Session>,
    outcome: &Result<T, Error>,
) {
    if let Some(uid) = session.and_then(Session::uid) {
        span.record("uid", uid);
    }
    if let Err(e) = outcome {
        mark_error(span, e);
    }
}

/// Records an error that the transport or the called server reported.
pub(crate) fn record_rpc_outcome(span: &Span, outcome: &Result<Response, RpcError>) {
    match outcome {
        Err(e) => mark_failed(span, &e.to_string()),
        Ok(Response { error: Some(e), .. }) => mark_failed(span, &format!("{}: {}", e.code, e.msg)),
        Ok(_) => {}
    }
}

/// Names the exported span after its route and gives its kind; only with `otel`,
/// so that plain logs do not repeat the route in `otel.*` fields.
fn name_for_export(span: &Span, route: &str, kind: &str) {
    if cfg!(feature = "otel") {
        span.record("otel.name", route);
        span.record("otel.kind", kind);
    }
}

fn mark_error(span: &Span, e: &Error) {
    mark_failed(span, &format!("{}: {}", e.code(), e.message()));
}

fn mark_failed(span: &Span, description: &str) {
    if cfg!(feature = "otel") {
        span.record("otel.status_code", "error");
        span.record("otel.status_description", description);
    }
}
