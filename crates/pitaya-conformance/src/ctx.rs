//! What every check gets: the target, fresh nicks, connections; and how a check fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::conn::{Conn, Via};
use crate::Config;

/// Why a check did not pass.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server did something the check does not accept.
    Failed(String),
    /// The check cannot run against this target (a transport or setting is missing).
    Skipped(String),
}

/// What a check returns: an optional note on how it passed, or why it did not.
pub(crate) type Verdict = Result<Option<String>, Failure>;

/// Returns early from a check with [`Failure::Failed`] and a formatted reason.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::ctx::Failure::Failed(format!($($arg)*)))
    };
}

/// Fails the check with the formatted reason unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::ctx::fail!($($arg)*);
        }
    };
}

pub(crate) use {ensure, fail};

/// Returns `result` with its failure reason prefixed by `what`.
pub(crate) fn within<T>(what: &str, result: Result<T, Failure>) -> Result<T, Failure> {
    result.map_err(|f| match f {
        Failure::Failed(r) => Failure::Failed(format!("{what}: {r}")),
        skipped => skipped,
    })
}

/// The run's shared state, cheap to clone into each check's task.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Config,
    /// `host:port` and `ws://` URL of the WebSocket listener.
    ws: Option<(String, String)>,
    /// Tells this run's nicks apart from any other run's on the same server.
    token: String,
    nicks: AtomicU64,
}

// ===== impl Ctx =====

impl Ctx {
    pub(crate) fn new(config: Config) -> Ctx {
        let ws = config.ws.as_deref().map(ws_target);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let token = format!(
            "{:06x}",
            (seed ^ u128::from(std::process::id())) & 0xFF_FFFF
        );
        Ctx {
            shared: Arc::new(Shared {
                config,
                ws,
                token,
                nicks: AtomicU64::new(0),
            }),
        }
    }

    /// Returns how long one expected event may take.
    pub(crate) fn wait(&self) -> Duration {
        self.shared.config.timeout
    }

    /// Returns how many clients the load check connects.
    pub(crate) fn clients(&self) -> usize {
        self.shared.config.clients
    }

    /// Returns the server's largest packet body, when the user gave it.
    pub(crate) fn max_packet_size(&self) -> Option<usize> {
        self.shared.config.max_packet_size
    }

    /// Returns whether the check `id` was selected.
    pub(crate) fn selects(&self, id: &str) -> bool {
        let filters = &self.shared.config.filters;
        filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
    }

    /// Returns whether the check `id` is left out by name.
    pub(crate) fn skips(&self, id: &str) -> bool {
        self.shared.config.skips.iter().any(|s| s == id)
    }

    /// Returns the transports the target has, TCP first.
    pub(crate) fn transports(&self) -> Vec<Via> {
        let mut v = Vec::new();
        if self.shared.config.tcp.is_some() {
            v.push(Via::Tcp);
        }
        if self.shared.ws.is_some() {
            v.push(Via::Ws);
        }
        v
    }

    /// Returns TCP if the target has it, else WebSocket.
    pub(crate) fn primary(&self) -> Via {
        self.transports().first().copied().unwrap_or(Via::Tcp)
    }

    /// Returns the other transport than `via` if the target has it, else `via`.
    pub(crate) fn other(&self, via: Via) -> Via {
        self.transports()
            .into_iter()
            .find(|v| *v != via)
            .unwrap_or(via)
    }

    /// Returns the `tcp://` or `ws://` URL of a listener, for the high-level client.
    pub(crate) fn url(&self, via: Via) -> Option<String> {
        match via {
            Via::Tcp => self
                .shared
                .config
                .tcp
                .as_ref()
                .map(|a| format!("tcp://{a}")),
            Via::Ws => self.shared.ws.as_ref().map(|(_, url)| url.clone()),
        }
    }

    /// Returns a fresh nick, unique in this run and unlikely in any other.
    pub(crate) fn nick(&self) -> String {
        let n = self.shared.nicks.fetch_add(1, Ordering::Relaxed);
        format!("cf{}-{n}", self.shared.token)
    }

    /// Returns a connection that has sent nothing yet.
    pub(crate) async fn connect(&self, via: Via) -> Result<Conn, Failure> {
        let wait = self.wait();
        match via {
            Via::Tcp => match &self.shared.config.tcp {
                Some(addr) => Conn::tcp(addr, wait).await,
                None => Err(Failure::Skipped("needs --tcp".into())),
            },
            Via::Ws => match &self.shared.ws {
                Some((addr, url)) => Conn::ws(addr, url, wait).await,
                None => Err(Failure::Skipped("needs --ws".into())),
            },
        }
    }

    /// Returns a connection whose handshake is done and acknowledged.
    pub(crate) async fn client(&self, via: Via) -> Result<Conn, Failure> {
        let mut conn = self.connect(via).await?;
        within(&format!("{} handshake", via.name()), conn.handshake().await)?;
        Ok(conn)
    }
}

/// Returns the address to dial and the URL to ask for, from `host:port` or a `ws://` URL.
fn ws_target(given: &str) -> (String, String) {
    match given.strip_prefix("ws://") {
        Some(rest) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            (authority.to_owned(), given.to_owned())
        }
        None => (given.to_owned(), format!("ws://{given}/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_target_takes_an_address_or_a_url() {
        assert_eq!(
            ws_target("127.0.0.1:3251"),
            ("127.0.0.1:3251".into(), "ws://127.0.0.1:3251/".into())
        );
        assert_eq!(
            ws_target("ws://localhost:80/chat"),
            ("localhost:80".into(), "ws://localhost:80/chat".into())
        );
    }

    #[test]
    fn filters_select_by_substring_and_none_selects_all() {
        let mut config = Config::default();
        assert!(Ctx::new(config.clone()).selects("heartbeat.idle-close"));
        config.filters = vec!["heartbeat".into(), "ids.echo".into()];
        let ctx = Ctx::new(config);
        assert!(ctx.selects("heartbeat.idle-close"));
        assert!(ctx.selects("ids.echo"));
        assert!(!ctx.selects("ids.pipelining"));
    }

    #[test]
    fn skips_match_whole_ids_only() {
        let config = Config {
            skips: vec!["malformed.route-overrun".into(), "heartbeat".into()],
            ..Config::default()
        };
        let ctx = Ctx::new(config);
        assert!(ctx.skips("malformed.route-overrun"));
        assert!(!ctx.skips("heartbeat.idle-close"));
        assert!(!ctx.skips("malformed.route-code"));
    }

    #[test]
    fn nicks_are_unique_and_short_enough_for_the_chat() {
        let ctx = Ctx::new(Config::default());
        let (a, b) = (ctx.nick(), ctx.nick());
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
    }
}
