//! Connection options: timeouts, heartbeat watchdog, handshake data, TLS, reconnect.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pitaya_protocol::{HandshakeRequest, HandshakeSys};
use serde_json::{Map, Value};

use crate::{Client, ClientError};

/// Default per-request timeout: 5 s, as Pitaya's Go client uses.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time allowed for connecting and the handshake: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default watchdog factor: the connection is dead after 3 silent heartbeat intervals.
pub const DEFAULT_WATCHDOG_FACTOR: u32 = 3;

/// Options for [`Client`] connections; every method takes and returns the options.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pitaya_client::ClientError> {
/// use std::time::Duration;
/// use pitaya_client::{ConnectOptions, ReconnectConfig};
///
/// let client = ConnectOptions::new()
///     .request_timeout(Duration::from_secs(2))
///     .user_data(serde_json::json!({ "token": "abc" }))
///     .reconnect(ReconnectConfig::default())
///     .connect("tcp://127.0.0.1:3250")
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ConnectOptions {
    pub(crate) request_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) watchdog_factor: u32,
    pub(crate) handshake: HandshakeRequest,
    pub(crate) event_capacity: usize,
    pub(crate) command_capacity: usize,
    pub(crate) max_body_len: usize,
    pub(crate) reconnect: Option<ReconnectConfig>,
    pub(crate) tls: TlsOptions,
}

/// TLS choices kept until a `tls://` or `wss://` connection needs them.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    pub(crate) ca_files: Vec<PathBuf>,
    pub(crate) insecure: bool,
    pub(crate) server_name: Option<String>,
}

// ===== impl ConnectOptions =====

impl ConnectOptions {
    /// Returns the default options (each documented on its setter).
    pub fn new() -> Self {
        let sys = HandshakeSys {
            platform: "desktop".into(),
            lib_version: format!("pitaya-client-rs/{}", env!("CARGO_PKG_VERSION")),
            client_build_number: "1".into(),
            client_version: "0.1".into(),
        };
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            watchdog_factor: DEFAULT_WATCHDOG_FACTOR,
            handshake: HandshakeRequest { sys, user: None },
            event_capacity: 1024,
            command_capacity: 128,
            max_body_len: pitaya_protocol::MAX_BODY_LEN,
            reconnect: None,
            tls: TlsOptions::default(),
        }
    }

    /// Returns the options with this per-request timeout (default 5 s, Pitaya's Go client's).
    ///
    /// [`Client::with_timeout`] overrides it for some requests.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Returns the options with this limit on connecting plus the handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Returns the options with this heartbeat watchdog factor (default 3).
    ///
    /// When nothing at all arrives from the server for more than `factor` times the
    /// heartbeat interval it announced (raised to [`MIN_HEARTBEAT`](crate::MIN_HEARTBEAT)
    /// if shorter), the connection is declared dead. The server
    /// sends a heartbeat every interval (spec 3), so 3 leaves two lost intervals of
    /// slack; libpitaya waits 6 intervals. Zero turns the watchdog off.
    pub fn watchdog_factor(mut self, factor: u32) -> Self {
        self.watchdog_factor = factor;
        self
    }

    /// Returns the options with user data sent in the handshake (spec 2.1, key `user`).
    ///
    /// A value that is not a JSON object is sent as `{"data": value}`, since Pitaya keeps
    /// an object.
    pub fn user_data(mut self, data: Value) -> Self {
        let map = match data {
            Value::Object(map) => map,
            other => Map::from_iter([("data".to_owned(), other)]),
        };
        self.handshake.user = Some(map);
        self
    }

    /// Returns the options with these client details sent in the handshake (`sys`).
    ///
    /// The default is platform `desktop`, build number `1`, version `0.1` (libpitaya's),
    /// and this library's name and version.
    pub fn client_info(mut self, sys: HandshakeSys) -> Self {
        self.handshake.sys = sys;
        self
    }

    /// Returns the options with this capacity for each event stream (default 1024).
    ///
    /// The connection never waits for a slow reader: a stream that falls this many
    /// events behind loses the oldest ones and is told how many (see [`crate::Event`]).
    /// It is also how many events since the handshake are kept for the first stream
    /// until it is asked for (see the crate docs).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Returns the options with this capacity of the command queue (default 128).
    ///
    /// Requests and notifies wait for room in the queue, so a busy connection pushes
    /// back on its callers instead of growing memory.
    pub fn command_capacity(mut self, capacity: usize) -> Self {
        self.command_capacity = capacity.max(1);
        self
    }

    /// Returns the options with this limit on incoming packet bodies and inflated
    /// message bodies, in bytes (default and maximum 16,777,215, the packet limit).
    pub fn max_body_len(mut self, max: usize) -> Self {
        self.max_body_len = max.min(pitaya_protocol::MAX_BODY_LEN);
        self
    }

    /// Returns the options with automatic reconnection (default off).
    ///
    /// See [`ReconnectConfig`] for what happens on a reconnect.
    pub fn reconnect(mut self, config: ReconnectConfig) -> Self {
        self.reconnect = Some(config);
        self
    }

    /// Returns the options trusting the CA certificates of a PEM file for TLS.
    ///
    /// They are added to the built-in web PKI roots. May be called more than once.
    pub fn add_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_files.push(path.into());
        self
    }

    /// Returns the options with TLS certificate verification switched off.
    ///
    /// **Dangerous**: anyone on the path can impersonate the server and read or change
    /// everything. Meant for tests and development servers with throwaway certificates;
    /// prefer [`add_ca_file`](Self::add_ca_file) with the server's certificate.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.tls.insecure = insecure;
        self
    }

    /// Returns the options with this name checked against the server certificate,
    /// instead of the URL's host (for example when connecting by IP address).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls.server_name = Some(name.into());
        self
    }

    /// Connects to `url`, completes the handshake and returns the client.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`], connection and TLS errors, and
    /// [`ClientError::Handshake`] when the server refuses or does not answer in time.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it returns, the half-open connection is closed.
    pub async fn connect(self, url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, self).await
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

// Written by hand to keep the handshake user data, which may hold tokens, out of logs.
impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("request_timeout", &self.request_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("watchdog_factor", &self.watchdog_factor)
            .field("event_capacity", &self.event_capacity)
            .field("reconnect", &self.reconnect)
            .field("tls_insecure", &self.tls.insecure)
            .finish_non_exhaustive()
    }
}

/// Automatic reconnection with exponential backoff.
///
/// After an unexpected disconnect (the server closed the connection, an I/O error, the
/// watchdog), the client connects again to the same URL and handshakes again, waiting
/// `initial_delay`, then twice as long after each failure, up to `max_delay`. Requests
/// in flight when the connection drops fail with [`ClientError::Disconnected`], and so
/// do requests made while reconnecting. A kick or [`Client::close`] never reconnects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// Delay before the first attempt; default 100 ms.
    pub initial_delay: Duration,
    /// Longest delay between attempts; default 5 s.
    pub max_delay: Duration,
    /// Attempts before giving up, `None` for no limit; default `None`.
    pub max_attempts: Option<u32>,
}

impl ReconnectConfig {
    /// Returns the delay before attempt `attempt` (counting from 1).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let cfg = ReconnectConfig::default();
        let delays: Vec<u64> = (1..=8).map(|a| cfg.delay(a).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(cfg.delay(u32::MAX), cfg.max_delay);
    }

    #[test]
    fn non_object_user_data_is_wrapped() {
        let opts = ConnectOptions::new().user_data(Value::from(7));
        let user = opts.handshake.user.unwrap();
        assert_eq!(user.get("data"), Some(&Value::from(7)));
    }

    #[test]
    fn debug_leaves_out_user_data() {
        let opts = ConnectOptions::new().user_data(serde_json::json!({ "token": "secret" }));
        assert!(!format!("{opts:?}").contains("secret"));
    }
}
