//! Running one client message: route, hooks, handler, response.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use pitaya_protocol::{Message, MessageType};
use tracing::Instrument;

use super::{Context, HandlerKind};
use crate::metrics::ResponseKind;
use crate::route::Route;
use crate::session::Session;
use crate::{AppHandle, Error};

/// Handles one Request or Notify from `session`, read at `arrived`, and answers a
/// request.
///
/// Never panics outward: a panicking handler or hook answers `PIT-500`.
pub(crate) async fn dispatch(app: AppHandle, session: Session, msg: Message, arrived: Instant) {
    let is_request = msg.kind == MessageType::Request;
    let metrics = app.metrics().clone();
    // Span names are bounded as metric labels are, so we need the route's fate either way.
    let known = MetricRoute::of(&app, &msg.route);
    let route = metrics.is_enabled().then_some(&known);
    let delay = arrived.elapsed();
    // A forwarded route's label waits for its server's answer (see `RouteLabels`).
    match &route {
        Some(MetricRoute::Forwarded(_)) | None => {}
        Some(local) => metrics.handler_delay(local.label(&app), false, delay),
    }
    let name = match &known {
        MetricRoute::Here(route) => route.as_str(),
        _ => crate::metrics::UNKNOWN_ROUTE,
    };
    let span = crate::telemetry::span::client_request(&app, &session, &msg, name);
    let outcome = AssertUnwindSafe(run(&app, &session, &msg, is_request).instrument(span.clone()))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(parent: &span, "handler panicked");
            Err(Error::internal("handler panicked"))
        });
    crate::telemetry::span::record_outcome(&span, Some(&session), &outcome);
    if let MetricRoute::Forwarded(_) = known {
        crate::telemetry::span::rename(&span, known.label(&app));
    }
    let label = route.map(|r| r.label(&app));
    if let (Some(MetricRoute::Forwarded(_)), Some(label)) = (&route, label) {
        metrics.handler_delay(label, true, delay);
    }

    let report = |error: Option<&Error>| {
        if let Some(label) = label {
            metrics.response_time(ResponseKind::Handler, label, arrived, error);
        }
    };
    // Pitaya never answers a request with id 0 (spec 4.4): id 0 means notify mode.
    if !is_request || msg.id == 0 {
        report(outcome.as_ref().err());
        if let Err(e) = outcome {
            tracing::debug!(parent: &span, error = %e, "notify failed");
        }
        return;
    }
    let response = match &outcome {
        Ok(body) => Message::response(msg.id, body.clone()),
        Err(e) => {
            tracing::debug!(parent: &span, error = %e, "request failed");
            let body = session.serializer().serialize_error(&e.to_payload());
            Message::error_response(msg.id, body)
        }
    };
    let packet = match session.wire().data_packet(&response) {
        Ok(p) => p,
        Err(e) => {
            let err = Error::internal(format!("response could not be encoded: {e}"));
            let body = session.serializer().serialize_error(&err.to_payload());
            match session
                .wire()
                .data_packet(&Message::error_response(msg.id, body))
            {
                Ok(p) => p,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = session.send_packet(packet).await {
        tracing::debug!(parent: &span, error = %e, "response not delivered");
    }
    report(outcome.as_ref().err());
}

/// Where a client message's route leads, as its metrics label it.
///
/// Clients choose routes: one that names no handler here and no known server type is
/// labelled [`UNKNOWN_ROUTE`](crate::metrics::UNKNOWN_ROUTE), and so is a forwarded
/// one until a server of its type answers it, so that clients cannot grow the label
/// set without bound.
enum MetricRoute {
    /// A handler of this server.
    Here(String),
    /// A server type known to discovery, handler unknown yet.
    Forwarded(String),
    /// Nothing that exists.
    Unknown,
}

impl MetricRoute {
    fn of(app: &AppHandle, raw: &str) -> MetricRoute {
        let Ok(route) = Route::parse(raw, app.server_type()) else {
            return MetricRoute::Unknown;
        };
        if route.server_type() != app.server_type() {
            if app.servers_by_type(route.server_type()).is_empty() {
                return MetricRoute::Unknown;
            }
            return MetricRoute::Forwarded(route.to_string());
        }
        if app.registry().get(&route.short()).is_some() {
            MetricRoute::Here(route.to_string())
        } else {
            MetricRoute::Unknown
        }
    }

    /// Returns the label, once the message was handled or forwarded.
    fn label<'a>(&'a self, app: &AppHandle) -> &'a str {
        match self {
            MetricRoute::Here(route) => route,
            MetricRoute::Forwarded(route) => app.route_labels().label(route),
            MetricRoute::Unknown => crate::metrics::UNKNOWN_ROUTE,
        }
    }
}

async fn run(
    app: &AppHandle,
    session: &Session,
    msg: &Message,
    is_request: bool,
) -> Result<Bytes, Error> {
    let route = Route::parse(&msg.route, app.server_type())?;
    if route.server_type() != app.server_type() {
        if let Ok(link) = app.cluster_link() {
            return link.forward(app, session, route, msg).await;
        }
        // Standalone: no other server types exist. Pitaya leaves the request
        // unanswered here; a clear error is kinder to the client.
        return Err(Error::not_found(format!(
            "pitaya/handler: {route} not found: no server of type {}",
            route.server_type()
        ))
        .with_metadata("route", route.to_string()));
    }
    run_handler(app, session, route, msg.id, msg.data.clone(), is_request).await
}

/// Runs the handler of `route` with its hooks, for a client message received here or
/// forwarded by a frontend.
pub(crate) async fn run_handler(
    app: &AppHandle,
    session: &Session,
    route: Route,
    id: u64,
    data: Bytes,
    is_request: bool,
) -> Result<Bytes, Error> {
    let Some(handler) = app.registry().get(&route.short()).cloned() else {
        return Err(Error::not_found(format!(
            "pitaya/handler: {route} not found"
        )));
    };
    if is_request && handler.kind == HandlerKind::Notify {
        return Err(Error::bad_request("tried to request a notify route"));
    }
    if !is_request && handler.kind == HandlerKind::Request {
        tracing::warn!(route = %route, "notify sent to a request handler: reply dropped");
    }

    let ctx = Context::new(session.clone(), route, id, app.clone());
    let pipeline = app.pipeline();
    if pipeline.is_empty() {
        return (handler.call)(ctx, data).await;
    }
    let result = match pipeline.run_before(&ctx, data).await {
        Ok(body) => (handler.call)(ctx.clone(), body).await,
        Err(e) => return Err(e),
    };
    pipeline.run_after(&ctx, result).await
}
