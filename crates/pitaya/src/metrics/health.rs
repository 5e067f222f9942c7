//! [`Health`]: whether the app is registered and serving, as probes see it.

use serde::Serialize;

use crate::AppHandle;

/// The app's state as the readiness and liveness endpoints report it.
///
/// `GET /healthz` (liveness) answers 200 whenever the app answers at all, shutdown
/// included, so that a supervisor lets a graceful shutdown finish. `GET /readyz`
/// (readiness) answers 200 when [`is_ready`](Self::is_ready), else 503. Both bodies are
/// this struct as JSON, with a `status` of `ok`, `ready` or `not ready`.
///
/// In cluster mode, `registered` follows service discovery: it turns false when the
/// link to etcd is lost and true again once the server has re-registered. Readiness
/// does not follow it. While etcd is away the server still serves its clients and
/// calls its peers from the cached server list, only peers cannot find it; and an etcd
/// outage reaches every server at once, so turning them all unready would take the
/// whole game out of its load balancer for a fault clients do not feel. Alert on
/// `registered` (or the `lost etcd` log) instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// This server's id.
    pub server_id: String,
    /// This server's type.
    pub server_type: String,
    /// Whether the app runs in cluster mode.
    pub cluster: bool,
    /// Whether the app is published in service discovery now; false standalone, and
    /// false in cluster mode while the link to etcd is lost.
    pub registered: bool,
    /// Whether the app takes client connections (frontends) and calls (cluster).
    pub serving: bool,
    /// Whether the app is draining sessions before a shutdown (spec 14.6): it accepts
    /// no new client and waits for the connected ones to leave.
    pub draining: bool,
    /// Whether graceful shutdown has started.
    pub shutting_down: bool,
}

impl Health {
    /// Returns the state of `app` now.
    pub(crate) fn of(app: &AppHandle) -> Health {
        let lifecycle = &app.shared.metrics.lifecycle;
        Health {
            server_id: app.server_id().to_owned(),
            server_type: app.server_type().to_owned(),
            cluster: app.shared.cluster.is_some(),
            registered: lifecycle.registered() && discovery_registered(app),
            serving: lifecycle.serving(),
            draining: lifecycle.draining(),
            shutting_down: app.is_shutting_down(),
        }
    }

    /// Returns whether the app should get traffic: serving, neither draining nor
    /// shutting down.
    ///
    /// A cluster server serves only once it has registered in service discovery at
    /// start; losing discovery later keeps it ready (see [`Health`]).
    pub fn is_ready(&self) -> bool {
        let leaving = self.draining || self.shutting_down;
        self.serving && !leaving
    }
}

/// Returns whether discovery holds our record now; true when not in cluster mode or
/// before discovery started, which `Lifecycle::registered` already covers.
fn discovery_registered(app: &AppHandle) -> bool {
    let discovery = app.shared.cluster.as_ref().map(|link| link.discovery());
    match discovery {
        Some(Ok(discovery)) => discovery.is_registered(),
        _ => true,
    }
}

impl AppHandle {
    /// Returns whether the app is registered and serving, as `/readyz` reports it.
    pub fn health(&self) -> Health {
        Health::of(self)
    }
}
