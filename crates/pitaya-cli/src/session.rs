//! Runs commands against at most one connection and renders their results as lines.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pitaya_client::{Client, ClientError, ConnectOptions, DisconnectReason, Event, Events, Push};
use tokio::sync::oneshot;

use crate::command::{Command, HELP};

/// The result line of a command: `Ok` for success, `Err` for an `error ...` line.
pub(crate) type Outcome = Result<String, String>;

/// The connection commands run against.
pub(crate) struct Session {
    opts: ConnectOptions,
    wait_timeout: Duration,
    conn: Option<Conn>,
}

struct Conn {
    client: Client,
    feed: Feed,
    /// Why the connection ended, once a `wait` has seen it, for the waits after it.
    ended: Option<String>,
}

/// Where `wait` gets its pushes.
enum Feed {
    /// Scripted mode: `wait` reads the events itself, from the handshake on.
    Own(Events),
    /// Interactive mode: the printer reads the events and hands `wait` its push.
    Printer(Arc<Claims>),
}

// ===== impl Session =====

impl Session {
    /// Returns a session with no connection yet.
    pub(crate) fn new(opts: ConnectOptions, wait_timeout: Duration) -> Self {
        Self {
            opts,
            wait_timeout,
            conn: None,
        }
    }

    /// Returns the events of the current connection for a printer, once, with the
    /// claims through which `wait` takes its push instead of the printer printing it.
    pub(crate) fn hand_to_printer(&mut self) -> Option<(Events, Arc<Claims>)> {
        let conn = self.conn.as_mut()?;
        let claims = Arc::new(Claims::default());
        match std::mem::replace(&mut conn.feed, Feed::Printer(claims.clone())) {
            Feed::Own(events) => Some((events, claims)),
            printer => {
                conn.feed = printer;
                None
            }
        }
    }

    /// Runs `cmd` and returns its result line; `quit` is the caller's to handle.
    pub(crate) async fn run(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Connect(url) => self.connect(&url).await,
            Command::Request { route, body } => {
                let client = self.client()?;
                match client.request_raw(&route, body.to_string()).await {
                    Ok(reply) => Ok(format!("ok {}", show(&reply))),
                    Err(e) => Err(error_line(&e)),
                }
            }
            Command::Notify { route, body } => {
                let client = self.client()?;
                match client.notify_raw(&route, body.to_string()).await {
                    Ok(()) => Ok("ok".to_owned()),
                    Err(e) => Err(error_line(&e)),
                }
            }
            Command::Wait { route, timeout } => {
                let timeout = timeout.unwrap_or(self.wait_timeout);
                self.wait(&route, timeout).await
            }
            Command::Disconnect => match self.conn.take() {
                Some(conn) => {
                    conn.client.close().await;
                    Ok("disconnected".to_owned())
                }
                None => Err(not_connected()),
            },
            Command::Help => Ok(HELP.to_owned()),
            Command::Quit => Ok(String::new()),
        }
    }

    /// Closes the connection, if any.
    pub(crate) async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.client.close().await;
        }
    }

    async fn connect(&mut self, url: &str) -> Outcome {
        self.close().await;
        let client = self
            .opts
            .clone()
            .connect(url)
            .await
            .map_err(|e| error_line(&e))?;
        // The client's first stream starts at the handshake, so a push sent right
        // after it is there for the next `wait`.
        let feed = Feed::Own(client.events());
        let line = format!("connected {}", client.url());
        self.conn = Some(Conn {
            client,
            feed,
            ended: None,
        });
        Ok(line)
    }

    fn client(&self) -> Result<Client, String> {
        self.conn
            .as_ref()
            .map(|c| c.client.clone())
            .ok_or_else(not_connected)
    }

    /// Waits for the next push on `route`; pushes on other routes are passed over.
    async fn wait(&mut self, route: &str, timeout: Duration) -> Outcome {
        let conn = self.conn.as_mut().ok_or_else(not_connected)?;
        let next = async {
            match &mut conn.feed {
                Feed::Own(events) => loop {
                    let Some(event) = events.recv().await else {
                        return Err(gone(conn.ended.as_deref()));
                    };
                    if let Event::Disconnected(reason) = &event {
                        conn.ended = Some(reason_text(reason));
                    }
                    if let Some(outcome) = wait_result(route, &event) {
                        return outcome;
                    }
                },
                Feed::Printer(claims) => {
                    let claimed = claims.claim(route).map_err(|why| gone(why.as_deref()))?;
                    let result = claimed.await;
                    match result {
                        Ok(event) => wait_result(route, &event).unwrap_or_else(|| Err(gone(None))),
                        Err(_) => Err(gone(claims.ended().as_deref())),
                    }
                }
            }
        };
        let outcome = tokio::time::timeout(timeout, next).await;
        if let Feed::Printer(claims) = &conn.feed {
            claims.withdraw();
        }
        outcome.unwrap_or_else(|_| {
            Err(format!(
                "error client no push on {route} within {timeout:?}"
            ))
        })
    }
}

/// Returns the result of a `wait` for `route` that `event` settles, if it does.
fn wait_result(route: &str, event: &Event) -> Option<Outcome> {
    match event {
        Event::Push(p) if p.route() == route => Some(Ok(push_line(p))),
        Event::Kicked => Some(Err("error client kicked by the server".into())),
        Event::Disconnected(reason) => Some(Err(format!("error client {}", reason_text(reason)))),
        _ => None,
    }
}

/// Returns the error line of a `wait` on a connection that is gone, for `why` if known.
fn gone(why: Option<&str>) -> String {
    format!("error client {}", why.unwrap_or("disconnected"))
}

/// The `wait` in progress in interactive mode, shared with the event printer, which
/// hands the waited-for push over instead of printing it, so it shows once.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    state: Mutex<ClaimState>,
}

#[derive(Debug, Default)]
struct ClaimState {
    /// The route waited for, and where its push goes.
    waiting: Option<(String, oneshot::Sender<Event>)>,
    /// Why the connection ended, once the printer saw it.
    ended: Option<String>,
    /// The printer has stopped: no push will come any more.
    closed: bool,
}

// ===== impl Claims =====

impl Claims {
    fn state(&self) -> MutexGuard<'_, ClaimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns where the next push on `route` will arrive, or why none will.
    fn claim(&self, route: &str) -> Result<oneshot::Receiver<Event>, Option<String>> {
        let mut state = self.state();
        if state.closed {
            return Err(state.ended.clone());
        }
        let (tx, rx) = oneshot::channel();
        state.waiting = Some((route.to_owned(), tx));
        Ok(rx)
    }

    /// Drops the claim of a `wait` that is over.
    fn withdraw(&self) {
        self.state().waiting = None;
    }

    fn ended(&self) -> Option<String> {
        self.state().ended.clone()
    }

    /// Returns `event` for the printer, or `None` when a `wait` took it.
    pub(crate) fn offer(&self, event: Event) -> Option<Event> {
        let mut state = self.state();
        if let Event::Disconnected(reason) = &event {
            state.ended = Some(reason_text(reason));
        }
        let wanted = match (&state.waiting, &event) {
            (Some((route, _)), Event::Push(p)) => p.route() == route,
            (Some(_), Event::Kicked | Event::Disconnected(_)) => true,
            _ => false,
        };
        if !wanted {
            return Some(event);
        }
        let (_, tx) = state.waiting.take()?;
        // A wait that timed out at this very moment leaves the event to the printer.
        tx.send(event).err()
    }

    /// Records that the printer stopped; a `wait` still on is told the connection ended.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.waiting = None;
    }
}

fn not_connected() -> String {
    "error client not connected (use connect <url>)".to_owned()
}

/// Returns `push <route> <body>`.
pub(crate) fn push_line(push: &Push) -> String {
    format!("push {} {}", push.route(), show(push.body()))
}

/// Returns the line printed for an event that arrives on its own (interactive mode).
pub(crate) fn event_line(event: &Event) -> Option<String> {
    match event {
        Event::Push(p) => Some(push_line(p)),
        Event::Kicked => Some("kicked by the server".to_owned()),
        Event::Disconnected(DisconnectReason::ClientClosed) => None,
        Event::Disconnected(reason) => Some(reason_text(reason)),
        Event::Lagged(n) => Some(format!("missed {n} events")),
        _ => None,
    }
}

fn reason_text(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::ServerClosed => "disconnected: the server closed the connection".into(),
        DisconnectReason::Kicked => "disconnected: kicked".into(),
        DisconnectReason::HeartbeatTimeout { silent_for } => {
            format!("disconnected: server silent for {silent_for:?}")
        }
        DisconnectReason::Error(e) => format!("disconnected: {}", chain(e.as_ref())),
        _ => "disconnected".into(),
    }
}

/// Returns `error <code> <message>`: the server's code, `PIT-504` for a client
/// timeout, `client` for any other failure.
pub(crate) fn error_line(e: &ClientError) -> String {
    match e {
        ClientError::Server { code, message, .. } => format!("error {code} {message}"),
        other => format!(
            "error {} {}",
            other.code().unwrap_or("client"),
            chain(other)
        ),
    }
}

/// Returns the error and its sources, joined by `: `.
///
/// Some errors (tungstenite's among them) repeat their source in their own message; a
/// source already in the message before it is not printed again.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut above = text.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !above.contains(&line) {
            let _ = write!(text, ": {line}");
        }
        above = line;
        source = s.source();
    }
    text
}

/// Returns a body as compact JSON, or as `hex:...` when it is not JSON (protobuf).
pub(crate) fn show(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.to_string(),
        Err(_) => {
            let mut hex = String::with_capacity(4 + body.len() * 2);
            hex.push_str("hex:");
            for b in body {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn bodies_show_as_compact_json_or_hex() {
        assert_eq!(show(br#"{ "code": 0 }"#), r#"{"code":0}"#);
        assert_eq!(show(&[0x0a, 0x01]), "hex:0a01");
        assert_eq!(show(b""), "hex:");
    }

    /// An error that, like tungstenite's, repeats its source in its own message.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "protocol error: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chains_say_each_cause_once() {
        let inner = std::io::Error::other("handshake not finished");
        let err = ClientError::WebSocket(Box::new(Repeats(inner)));
        assert_eq!(
            error_line(&err),
            "error client websocket error: protocol error: handshake not finished"
        );
    }

    #[test]
    fn error_lines_carry_the_code() {
        let server = ClientError::Server {
            code: "PIT-400".into(),
            message: "bad name".into(),
            metadata: BTreeMap::new(),
        };
        assert_eq!(error_line(&server), "error PIT-400 bad name");
        let timeout = ClientError::Timeout {
            route: "a.b".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(error_line(&timeout).starts_with("error PIT-504 "));
        assert_eq!(
            error_line(&ClientError::Disconnected),
            "error client disconnected"
        );
    }
}
