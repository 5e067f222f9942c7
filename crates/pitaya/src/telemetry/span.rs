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
use crate::metrics::UNKNOWN_ROUTE;
use crate::route::Route;
use crate::{AppHandle, Error, Session};

/// Longest `route` attribute kept on a span, in bytes.
///
/// Clients choose routes, so we bound what a tracing backend stores for them; span
/// names are bounded harder, to the routes the cluster serves (see [`UNKNOWN_ROUTE`]).
const MAX_ROUTE_ATTRIBUTE: usize = 256;

/// Returns the span of a client message handled or forwarded here, exported as `name`.
///
/// `name` is the route if this server serves it, else [`UNKNOWN_ROUTE`]; a forwarded
/// route is renamed with [`rename`] once its server has answered.
pub(crate) fn client_request(
    app: &AppHandle,
    session: &Session,
    msg: &Message,
    name: &str,
) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "request",
        route = route_attribute(&msg.route),
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
    name_for_export(&span, name, "server");
    span
}

/// Returns the span of a call from another server: a forwarded client message
/// (named `request`, as on the frontend) or a remote call (named `remote`).
///
/// The caller's trace context in `req.metadata`, if any, becomes the parent. The span
/// is exported under its route only if this server has a handler or remote for it.
pub(crate) fn rpc_server(app: &AppHandle, req: &Request) -> Span {
    let full_route = req.msg.as_ref().map_or("", |m| m.route.as_str());
    let route = route_attribute(full_route);
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
    let name = if serves(app, req, full_route) {
        full_route
    } else {
        UNKNOWN_ROUTE
    };
    name_for_export(&span, name, "server");
    super::propagate::adopt_parent(&span, &metadata);
    span
}

/// Returns the span of a call this server makes to server `peer_id`, whose context
/// the request's metadata carries.
///
/// It is exported as [`UNKNOWN_ROUTE`] until [`record_rpc_outcome`] sees the peer
/// answer from a handler: a forwarded route is the client's choice.
pub(crate) fn rpc_client(route: &str, peer_id: &str) -> Span {
    let span = tracing::info_span!(
        "rpc",
        route = route_attribute(route),
        peer_id,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    name_for_export(&span, UNKNOWN_ROUTE, "client");
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

/// Records an error that the transport or the called server reported, and names the
/// span after `route` if the server answered it from a handler (not `PIT-404`).
pub(crate) fn record_rpc_outcome(span: &Span, route: &str, outcome: &Result<Response, RpcError>) {
    let not_found = |e: &pitaya_protos::Error| e.code == crate::codes::NOT_FOUND;
    if outcome
        .as_ref()
        .is_ok_and(|r| r.error.as_ref().is_none_or(|e| !not_found(e)))
    {
        rename(span, route);
    }
    match outcome {
        Err(e) => mark_failed(span, &e.to_string()),
        Ok(Response { error: Some(e), .. }) => mark_failed(span, &format!("{}: {}", e.code, e.msg)),
        Ok(_) => {}
    }
}

/// Renames the exported span, once it is known whether its route is served.
///
/// Recording `otel.name` only renames a span not yet started in OpenTelemetry; one
/// entered already is renamed through its context.
pub(crate) fn rename(span: &Span, name: &str) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        span.record("otel.name", name);
        span.context().span().update_name(name.to_owned());
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, name);
}

/// Returns `route` cut to at most [`MAX_ROUTE_ATTRIBUTE`] bytes, on a char boundary.
fn route_attribute(route: &str) -> &str {
    if route.len() <= MAX_ROUTE_ATTRIBUTE {
        return route;
    }
    let mut end = MAX_ROUTE_ATTRIBUTE;
    while !route.is_char_boundary(end) {
        end -= 1;
    }
    &route[..end]
}

/// Returns whether this server has the handler (sys calls) or remote (user calls)
/// that `req` names.
fn serves(app: &AppHandle, req: &Request, route: &str) -> bool {
    let Ok(route) = Route::parse(route, app.server_type()) else {
        return false;
    };
    if route.server_type() != app.server_type() {
        return false;
    }
    if req.r#type == i32::from(RpcType::Sys) {
        app.registry().get(&route.short()).is_some()
    } else {
        // `sys.*` remotes are built in; an unknown one answers `PIT-404`, which the
        // server renames to unknown.
        route.service() == "sys" || app.remotes().contains(&route.short())
    }
}

/// Names the exported span after its route and gives its kind; only with `otel`,
/// so that plain logs do not repeat the route in `otel.*` fields.
fn name_for_export(span: &Span, name: &str, kind: &str) {
    if cfg!(feature = "otel") {
        span.record("otel.name", name);
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
