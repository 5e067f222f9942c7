//! The HTTP listeners of `/metrics`, `/healthz` and `/readyz`.
//!
//! Ports are bound when the app is built, so that their addresses are known before it
//! runs (port 0 picks a free one); serving starts with the app and ends after its
//! shutdown, so probes see readiness drop while it drains. Each listener holds its
//! clients to [`Limits::OPS`].

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::serve::{serve, Limits};
use super::Health;
use crate::AppHandle;

#[cfg(feature = "prometheus")]
type Scrape = Option<std::sync::Arc<super::PrometheusReporter>>;
#[cfg(not(feature = "prometheus"))]
type Scrape = Option<std::convert::Infallible>;

/// A bound listener waiting for the app to run.
#[derive(Debug)]
struct Pending {
    listener: Mutex<Option<StdListener>>,
    addr: SocketAddr,
    scrape: Scrape,
}

/// The app's ops listeners: `/metrics` with the health paths, and health alone.
#[derive(Debug, Default)]
pub(crate) struct OpsServer {
    metrics: Option<Pending>,
    health: Option<Pending>,
}

impl OpsServer {
    /// Binds the listeners: `/metrics` on `prometheus` with its reporter, the health
    /// paths alone on `health` unless that is `/metrics`'s host and port.
    pub(crate) fn bind<'a>(
        #[cfg(feature = "prometheus")] prometheus: Option<(
            Bind<'a>,
            std::sync::Arc<super::PrometheusReporter>,
        )>,
        health: Option<Bind<'a>>,
    ) -> Result<OpsServer, (Bind<'a>, io::Error)> {
        let mut ops = OpsServer::default();
        #[cfg(feature = "prometheus")]
        let metrics_at = prometheus.as_ref().map(|(at, _)| *at);
        #[cfg(not(feature = "prometheus"))]
        let metrics_at: Option<Bind<'a>> = None;
        #[cfg(feature = "prometheus")]
        if let Some((at, reporter)) = prometheus {
            ops.metrics = Some(Pending::bind(at, Some(reporter))?);
        }
        let shared = |at: Bind<'a>| at.port != 0 && metrics_at == Some(at);
        if let Some(at) = health.filter(|at| !shared(*at)) {
            ops.health = Some(Pending::bind(at, None)?);
        }
        Ok(ops)
    }

    /// Returns the address of `/metrics`.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|p| p.addr)
    }

    /// Returns the address of the health paths on a listener of their own, else of
    /// `/metrics`'s listener.
    pub(crate) fn health_addr(&self) -> Option<SocketAddr> {
        self.health
            .as_ref()
            .or(self.metrics.as_ref())
            .map(|p| p.addr)
    }

    /// Serves every listener until `stop`.
    ///
    /// # Errors
    ///
    /// When a listener cannot be handed to the runtime.
    pub(crate) fn serve(&self, app: &AppHandle, stop: &CancellationToken) -> io::Result<()> {
        for pending in [&self.metrics, &self.health].into_iter().flatten() {
            let taken = pending
                .listener
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(listener) = taken else { continue };
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let router = routes(app.clone(), pending.scrape.clone());
            let addr = pending.addr;
            tokio::spawn(serve(listener, router, Limits::OPS, stop.clone()));
            let metrics = pending.scrape.is_some();
            tracing::info!(%addr, metrics, "metrics and health endpoint listening");
        }
        Ok(())
    }
}

/// Where a listener binds: a host name or IP, and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bind<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: u16,
}

impl Pending {
    fn bind(at: Bind<'_>, scrape: Scrape) -> Result<Pending, (Bind<'_>, io::Error)> {
        let bound = StdListener::bind((at.host, at.port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(|l| Ok((l.local_addr()?, l)));
        let (addr, listener) = bound.map_err(|e| (at, e))?;
        Ok(Pending {
            listener: Mutex::new(Some(listener)),
            addr,
            scrape,
        })
    }
}

fn routes(app: AppHandle, scrape: Scrape) -> Router {
    let health = Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(app);
    with_scrape(health, scrape)
}

#[cfg(feature = "prometheus")]
fn with_scrape(router: Router, scrape: Scrape) -> Router {
    match scrape {
        Some(reporter) => router.merge(
            Router::new()
                .route("/metrics", get(render))
                .with_state(reporter),
        ),
        None => router,
    }
}

#[cfg(not(feature = "prometheus"))]
fn with_scrape(router: Router, _: Scrape) -> Router {
    router
}

#[cfg(feature = "prometheus")]
async fn render(
    State(reporter): State<std::sync::Arc<super::PrometheusReporter>>,
) -> impl IntoResponse {
    // Gathering reads every family under locks: off the async workers.
    let body = tokio::task::spawn_blocking(move || reporter.render())
        .await
        .unwrap_or_default();
    // The content type Prometheus expects of its text format 0.0.4.
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], body)
}

async fn live(State(app): State<AppHandle>) -> impl IntoResponse {
    json(StatusCode::OK, "ok", &Health::of(&app))
}

async fn ready(State(app): State<AppHandle>) -> impl IntoResponse {
    let health = Health::of(&app);
    if health.is_ready() {
        json(StatusCode::OK, "ready", &health)
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, "not ready", &health)
    }
}

fn json(code: StatusCode, status: &str, health: &Health) -> impl IntoResponse {
    let mut body = serde_json::to_value(health).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("status".into(), status.into());
    }
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}
