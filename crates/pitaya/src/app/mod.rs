//! The app: building it, running it, stopping it gracefully.
//!
//! Running starts, in this order and before the first connection is accepted: in
//! cluster mode the RPC client and server, then the app's modules, then (cluster mode)
//! service discovery.
//!
//! With `pitaya.session.drain.enabled`, a SIGTERM (or [`AppHandle::drain`]) first lets
//! the clients leave on their own (spec 14.6): the acceptors close, `/readyz` answers
//! 503, and the app serves the clients still connected until none is left,
//! `drain.timeout` passes or another signal comes.
//!
//! Shutdown (on SIGINT, SIGTERM or [`AppHandle::shutdown`]) goes in this order: leave
//! service discovery, so no server picks this one any more; stop accepting; let
//! requests in flight finish, up to `pitaya.shutdown.timeout`; ask every session to
//! close once its queued writes are out; wait for the connections to end and their
//! close callbacks to run (closing the stragglers at the same deadline); stop the
//! modules in reverse order; stop the RPC server once the calls it is serving are
//! answered.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acceptor::{Acceptor, ConnectionLimit};
use crate::agent;
use crate::groups::MemoryGroupStore;

mod builder;
pub(crate) mod cluster;
mod drain;
mod handle;

pub use builder::{BuildError, Builder};
pub use cluster::StartError;
pub(crate) use handle::Shared;
pub use handle::{AppHandle, Validator};

/// A built app, not yet running.
pub struct App {
    handle: AppHandle,
    acceptors: Vec<Arc<dyn Acceptor>>,
    memory_groups: Arc<MemoryGroupStore>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("handle", &self.handle)
            .field("acceptors", &self.acceptors)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Returns a builder for a server of type `server_type`.
    pub fn builder(server_type: impl Into<String>) -> Builder {
        Builder::new(server_type)
    }

    /// Returns a handle on the app, usable before and while it runs.
    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    /// Returns each acceptor's transport name and local address.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.acceptors
            .iter()
            .map(|a| (a.transport(), a.local_addr()))
            .collect()
    }

    /// Runs until SIGINT, SIGTERM or [`AppHandle::shutdown`], then shuts down gracefully.
    ///
    /// With `pitaya.session.drain.enabled`, SIGTERM first waits for the sessions to
    /// end, as the module docs describe.
    ///
    /// # Errors
    ///
    /// In cluster mode, when the RPC transport or service discovery cannot start.
    pub async fn run(self) -> Result<(), StartError> {
        // Installed before the server says it started: a signal arriving right after
        // that log line must shut it down gracefully, not kill it.
        let signals = drain::Signals::install();
        let app = self.handle();
        self.run_until(drain::signal_then_drain(app, signals)).await
    }

    /// Runs until `signal` completes or [`AppHandle::shutdown`] is called.
    ///
    /// # Errors
    ///
    /// In cluster mode, when the RPC transport or service discovery cannot start.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), StartError> {
        let shared = self.handle.shared.clone();
        let cfg = &shared.config;
        // Metrics and probes answer from the start (not ready yet) to the very end.
        let ops_stop = CancellationToken::new();
        let _ops_guard = ops_stop.clone().drop_guard();
        let rate_limited = self.acceptors.iter().filter_map(|a| a.rate_limit_drops());
        let lifecycle = &shared.metrics.lifecycle;
        shared
            .metrics
            .start(&self.handle, rate_limited.collect(), &ops_stop);
        // A signal during a long start (NATS or etcd still unreachable) stops it too.
        let signal = signal.fuse();
        tokio::pin!(signal);
        let started = tokio::select! {
            r = start(&self.handle) => r,
            _ = shared.shutdown.cancelled() => Ok(()),
            () = &mut signal => {
                tracing::info!("shutdown requested while starting");
                shared.shutdown.cancel();
                Ok(())
            }
        };
        if let Err(e) = started {
            tracing::error!(error = %e, "could not start");
            shared.modules.stop(&self.handle).await;
            if let Some(link) = &shared.cluster {
                link.leave_discovery().await;
                link.stop_server().await;
            }
            return Err(e);
        }
        if let Some(link) = &shared.cluster {
            lifecycle.set_registered(link.discovery().is_ok());
        }
        if !shared.shutdown.is_cancelled() {
            tracing::info!(
                server_type = %shared.info.server_type,
                server_id = %shared.info.id,
                acceptors = ?self.local_addrs(),
                serializer = shared.pool.wire().serializer.name(),
                "server started"
            );
        }
        tracing::debug!(
            routes = ?shared.registry.routes(),
            remotes = ?shared.remotes.routes(),
            "handlers registered"
        );

        let sweeper = self
            .memory_groups
            .spawn_sweeper(cfg.groups.memory.tick_duration, shared.shutdown.clone());
        let limit = ConnectionLimit::new(cfg.acceptor.max_connections);
        // Each loop owns its acceptor, so the listener closes as soon as the loop ends:
        // at the start of a drain, or of the shutdown.
        let accepting = shared.shutdown.child_token();
        let accept_loops = TaskTracker::new();
        // Serving before the first accept: a client answered by a loop must never see
        // `/readyz` say 503 because this task was descheduled right after the spawn.
        lifecycle.set_serving(true);
        for acceptor in self.acceptors {
            let app = self.handle.clone();
            accept_loops.spawn(accept_loop(app, acceptor, limit.clone(), accepting.clone()));
        }
        accept_loops.close();

        let draining = drain::drain_when_asked(&self.handle, &accepting, &accept_loops);
        tokio::select! {
            () = &mut signal => tracing::info!("shutdown requested"),
            _ = shared.shutdown.cancelled() => tracing::info!("shutdown requested by the app"),
            _ = draining => {}
        }
        shared.shutdown.cancel();
        lifecycle.set_serving(false);
        if let Some(link) = &shared.cluster {
            link.leave_discovery().await;
            lifecycle.set_registered(false);
        }
        // A client connecting during the grace period must be refused, not left in the
        // kernel's accept queue until every request in flight finished.
        accept_loops.wait().await;
        let _ = sweeper.await;

        let grace = cfg.shutdown.timeout;
        shared.tasks.close();
        if timeout(grace, shared.tasks.wait()).await.is_err() {
            tracing::warn!(timeout = ?grace, "requests still running at shutdown; closing anyway");
        }

        let sessions = shared.pool.all();
        tracing::info!(sessions = sessions.len(), "closing sessions");
        for s in &sessions {
            // Flush what is queued, then close; a stuck client is closed at the deadline.
            if !s.enqueue_close() {
                s.close();
            }
        }
        shared.conns.close();
        if timeout(grace, shared.conns.wait()).await.is_err() {
            for s in shared.pool.all() {
                s.close();
            }
            let _ = timeout(Duration::from_secs(1), shared.conns.wait()).await;
        }
        shared.modules.stop(&self.handle).await;
        if let Some(link) = &shared.cluster {
            if timeout(grace, link.stop_server()).await.is_err() {
                tracing::warn!(timeout = ?grace, "rpc calls still running at shutdown");
            }
        }
        tracing::info!("shutdown complete");
        let fatal = shared
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match fatal {
            Some(reason) => Err(StartError::Stopped(reason)),
            None => Ok(()),
        }
    }
}

/// Starts the cluster transport, the modules, then discovery, in Pitaya's order.
async fn start(app: &AppHandle) -> Result<(), StartError> {
    let link = app.shared.cluster.as_ref();
    if let Some(link) = link {
        link.start_rpc(app).await?;
    }
    app.shared.modules.start(app).await?;
    if let Some(link) = link {
        link.start_discovery(app).await?;
    }
    Ok(())
}

/// Accepts on `acceptor` until `stop`; dropping the acceptor then closes its listener.
async fn accept_loop(
    app: crate::AppHandle,
    acceptor: Arc<dyn Acceptor>,
    limit: ConnectionLimit,
    stop: CancellationToken,
) {
    let transport = acceptor.transport();
    let max = app.config().conn.max_packet_size;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = acceptor.accept(max) => r,
        };
        match accepted {
            Ok((incoming, remote)) => {
                // Over `pitaya.acceptor.maxconnections`: dropping `incoming` closes it.
                let Some(slot) = limit.admit(remote, transport) else {
                    continue;
                };
                // The agent's future goes to the task as it is: wrapped in an `async`
                // block it would be stored twice, as the captured value and while
                // awaited, doubling the memory of every idle connection.
                let conn = agent::serve(app.clone(), incoming, remote, transport, slot);
                app.shared.conns.spawn(conn);
            }
            Err(e) => {
                // Out of file descriptors and the like: say so, back off a little, go on.
                tracing::error!(transport, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
