//! Protocol conformance checks for servers that speak Pitaya's client protocol.
//!
//! The suite connects to a running server the way any client would, over TCP and
//! WebSocket, and checks what it does on the wire: the handshake, ids, framing,
//! compression, error codes, heartbeats, hostile input, and a few hundred clients at
//! once. It knows nothing of the server but the wire spec (`docs/pitaya-wire.md`) and
//! the chat example's contract (routes `room.room.join` and `room.room.message`, pushes
//! `onMembers`, `onNewUser` and `onMessage`), so it runs against any implementation of
//! that contract, pitaya-rs or Go Pitaya alike. Where Pitaya implementations may
//! correctly differ (closing on a kick from a client, or ignoring it), a check accepts
//! either and says so in its description.
//!
//! # Layout
//!
//! | module | what it does |
//! |---|---|
//! | `conn` | a raw connection: writes bytes as given, reads packets in a task of its own |
//! | `chat` | the chat contract: join, messages, error answers, liveness of others |
//! | `checks` | the checks, one module per area; [`checks`] lists them |
//! | `report` | [`Report`], [`CheckResult`] and the lines the binary prints |
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() {
//! let mut config = pitaya_conformance::Config::default();
//! config.tcp = Some("127.0.0.1:3250".into());
//! config.ws = Some("127.0.0.1:3251".into());
//! let report = pitaya_conformance::run(config, |result| println!("{result}")).await;
//! println!("{report}");
//! # }
//! ```

mod chat;
mod checks;
mod conn;
mod ctx;
mod report;

use std::time::Duration;

pub use report::{checks, CheckInfo, CheckResult, Outcome, Report};

use ctx::{Ctx, Failure};

/// Default for [`Config::clients`].
pub const DEFAULT_CLIENTS: usize = 300;

/// Default for [`Config::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to check and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP address of the server, `host:port`; checks that need TCP are skipped without.
    /// Default none.
    pub tcp: Option<String>,
    /// WebSocket address, `host:port` (path `/`) or a `ws://host:port/path` URL; checks
    /// that need WebSocket are skipped without. Default none.
    pub ws: Option<String>,
    /// Clients the load check connects at once. Default [`DEFAULT_CLIENTS`].
    pub clients: usize,
    /// How long any one expected event may take: an answer, a push, a close. Heartbeat
    /// checks wait this long on top of two or three heartbeat intervals. Default
    /// [`DEFAULT_TIMEOUT`] (Pitaya's Go client uses the same for requests).
    pub timeout: Duration,
    /// The server's largest packet body in bytes, if known; enables the check that a
    /// longer packet is refused. Default none.
    pub max_packet_size: Option<usize>,
    /// Checks to run: those whose id contains any of these; all when empty. Default empty.
    pub filters: Vec<String>,
    /// Ids of checks not to run, matched exactly; they are reported as skipped, so a run
    /// against a server known to fail them still shows them. Default empty.
    pub skips: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp: None,
            ws: None,
            clients: DEFAULT_CLIENTS,
            timeout: DEFAULT_TIMEOUT,
            max_packet_size: None,
            filters: Vec::new(),
            skips: Vec::new(),
        }
    }
}

/// Returns whether `config`'s filters select at least one check.
pub fn selects_any(config: &Config) -> bool {
    let ctx = Ctx::new(config.clone());
    checks::all().iter().any(|c| ctx.selects(c.id))
}

/// Returned by [`reachable`] when nothing answers at one of the target's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unreachable {
    /// The address as given, such as `127.0.0.1:3250`.
    pub address: String,
    /// Why connecting failed, such as `Connection refused (os error 111)`.
    pub reason: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach the server at {}: {}",
            self.address, self.reason
        )
    }
}

impl std::error::Error for Unreachable {}

/// Opens (and closes) one TCP connection to each address of the target, within
/// [`Config::timeout`], so that a server that is not there is reported once.
///
/// # Errors
///
/// [`Unreachable`] for the first address nothing answers at.
pub async fn reachable(config: &Config) -> Result<(), Unreachable> {
    let ctx = Ctx::new(config.clone());
    for address in ctx.addresses() {
        let connect = tokio::net::TcpStream::connect(address.as_str());
        let reason = match tokio::time::timeout_at(conn::deadline_in(config.timeout), connect).await
        {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}", conn::show(config.timeout)),
        };
        return Err(Unreachable { address, reason });
    }
    Ok(())
}

/// Runs the selected checks and returns their results, in check order.
///
/// Checks run at the same time, except the few that load the server, which run alone
/// at the end. `on_result` sees each result as soon as it and every one before it are
/// known, so output printed from it is in a fixed order whatever finishes first.
///
/// Must be called within a multi-threaded Tokio runtime: each check is a task. Against
/// a server that is not there every check fails on its own; [`reachable`] first says
/// so once.
///
/// A [`Config::timeout`] too long for the clock to count is waited as "forever".
pub async fn run(config: Config, mut on_result: impl FnMut(&CheckResult)) -> Report {
    let ctx = Ctx::new(config);
    let selected: Vec<_> = checks::all()
        .into_iter()
        .filter(|c| ctx.selects(c.id))
        .collect();

    // Solo checks come last (a unit test holds the list to that), so waiting for the
    // results in order also means they start once every other check has finished.
    let started: Vec<_> = selected
        .iter()
        .map(|c| (!c.solo && !ctx.skips(c.id)).then(|| tokio::spawn((c.run)(ctx.clone()))))
        .collect();

    let mut report = Report::default();
    for (def, task) in selected.iter().zip(started) {
        let verdict = if ctx.skips(def.id) {
            Err(Failure::Skipped("left out by --skip".into()))
        } else {
            let task = task.unwrap_or_else(|| tokio::spawn((def.run)(ctx.clone())));
            task.await
                .unwrap_or_else(|e| Err(Failure::Failed(format!("the check itself failed: {e}"))))
        };
        let result = CheckResult::new(def, verdict);
        on_result(&result);
        report.results.push(result);
    }
    report
}
