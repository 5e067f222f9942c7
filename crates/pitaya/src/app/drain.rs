//! Session draining: on SIGTERM, let the clients leave before shutting down (spec 14.6).
//!
//! With `pitaya.session.drain.enabled`, a SIGTERM (or [`AppHandle::drain`]) does not
//! start the shutdown at once. The acceptors close first, so a new client is refused
//! and `/readyz` answers 503 for load balancers to stop sending; the clients already
//! connected are served on until none is left, `drain.timeout` has passed, or another
//! signal arrives, with progress logged every `drain.period`. The shutdown then closes
//! whoever is still there. SIGINT, and [`AppHandle::shutdown`], skip draining, as in
//! Pitaya.

use std::time::Duration;

use tokio::time::{interval, sleep, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::DrainConfig;
use crate::AppHandle;

/// How often the session count is read while draining.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DrainEnd {
    /// No session was left.
    Drained,
    /// `drain.timeout` passed first.
    TimedOut,
}

/// Which signal asked for the shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Interrupt,
    Terminate,
}

/// Completes when the app should shut down without waiting any longer: at SIGINT, at
/// SIGTERM when draining is off, or at the signal after a SIGTERM that started a drain.
pub(super) async fn signal_then_drain(app: AppHandle, mut signals: Signals) {
    if signals.next().await == Signal::Terminate && app.config().session.drain.enabled {
        app.drain();
        signals.next().await;
        tracing::info!(
            sessions = app.session_count(),
            "another signal while draining: shutting down now"
        );
    }
}

/// Drains once [`AppHandle::drain`] asked for it: stops the accept loops, which close
/// their listeners as they end, then waits for the sessions.
pub(super) async fn drain_when_asked(
    app: &AppHandle,
    accepting: &CancellationToken,
    accept_loops: &TaskTracker,
) -> DrainEnd {
    app.shared.drain.cancelled().await;
    accepting.cancel();
    accept_loops.wait().await;
    app.shared.metrics.lifecycle.set_draining(true);
    let drain = &app.config().session.drain;
    let end = drain_sessions(app, drain).await;
    tracing::info!(end = ?end, sessions = app.session_count(), "session draining ended");
    end
}

/// Waits until no session is left or `drain.timeout` passes.
pub(super) async fn drain_sessions(app: &AppHandle, drain: &DrainConfig) -> DrainEnd {
    tracing::info!(
        sessions = app.session_count(),
        timeout = ?drain.timeout,
        "acceptors closed; draining sessions before shutdown"
    );
    let deadline = sleep(drain.timeout);
    let mut check = interval(CHECK_EVERY);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_log = Instant::now();
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            _ = &mut deadline => return DrainEnd::TimedOut,
            _ = check.tick() => {}
        }
        let sessions = app.session_count();
        if sessions == 0 {
            return DrainEnd::Drained;
        }
        if last_log.elapsed() >= drain.period {
            last_log = Instant::now();
            tracing::info!(sessions, "still draining sessions");
        }
    }
}

/// The process's SIGINT and SIGTERM handlers, installed once.
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers now, so a signal sent from here on is seen.
    pub(super) fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes at the next SIGINT or SIGTERM.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let interrupt = wait(self.interrupt.as_mut());
            let terminate = wait(self.terminate.as_mut());
            tokio::select! {
                () = interrupt => Signal::Interrupt,
                () = terminate => Signal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            Signal::Interrupt
        }
    }
}

/// Completes when `signal` fires; never without a handler.
#[cfg(unix)]
async fn wait(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => drop(s.recv().await),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use pitaya_test_support::RawClient;

    use super::*;
    use crate::acceptor::{Acceptor, TcpAcceptor};
    use crate::App;

    /// Longest wait for anything that should happen soon.
    const LIMIT: Duration = Duration::from_secs(10);

    /// Returns a running app, its TCP address, and drain settings of `timeout`.
    async fn running_app(timeout: Duration) -> (AppHandle, std::net::SocketAddr, DrainConfig) {
        let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr();
        let app = App::builder("connector").acceptor(tcp).build().unwrap();
        let handle = app.handle();
        tokio::spawn(app.run_until(std::future::pending()));
        let drain = DrainConfig {
            enabled: true,
            timeout,
            ..DrainConfig::default()
        };
        (handle, addr, drain)
    }

    async fn connected_client(addr: std::net::SocketAddr) -> RawClient {
        let mut client = RawClient::tcp(addr).await.unwrap();
        client.handshake().await.unwrap();
        client
    }

    #[tokio::test]
    async fn drain_waits_for_the_last_session_to_end() {
        let (app, addr, drain) = running_app(Duration::from_secs(3600)).await;
        let first = connected_client(addr).await;
        let second = connected_client(addr).await;

        let draining = tokio::spawn({
            let app = app.clone();
            async move { drain_sessions(&app, &drain).await }
        });
        drop(first);
        drop(second);
        let end = tokio::time::timeout(LIMIT, draining)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, DrainEnd::Drained);
        assert_eq!(app.session_count(), 0);
        app.shutdown();
    }

    #[tokio::test]
    async fn drain_gives_up_at_its_timeout_while_sessions_remain() {
        let (app, addr, drain) = running_app(Duration::from_millis(300)).await;
        let _client = connected_client(addr).await;

        let end = drain_sessions(&app, &drain).await;
        assert_eq!(end, DrainEnd::TimedOut);
        assert_eq!(app.session_count(), 1);
        app.shutdown();
    }

    #[tokio::test]
    async fn drain_with_no_session_ends_at_once() {
        let (app, _addr, drain) = running_app(Duration::from_secs(3600)).await;
        let end = tokio::time::timeout(LIMIT, drain_sessions(&app, &drain))
            .await
            .unwrap();
        assert_eq!(end, DrainEnd::Drained);
        app.shutdown();
    }
}
