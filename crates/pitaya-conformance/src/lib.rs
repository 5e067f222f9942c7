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

/// Runs the selected checks and returns their results, in check order.
///
/// Checks run at the same time, except the few that load the server, which run alone
/// at the end. `on_result` sees each result as soon as it and every one before it are
/// known, so output printed from it is in a fixed order whatever finishes first.
///
/// Must be called within a multi-threaded Tokio runtime: each check is a task.
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
