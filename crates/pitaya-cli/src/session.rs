//! Runs commands against at most one connection and renders their results as lines.

use std::error::Error as _;
use std::fmt::Write as _;
use std::time::Duration;

use pitaya_client::{Client, ClientError, ConnectOptions, DisconnectReason, Event, Events, Push};

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
    /// Events since connecting; taken by the interactive printer.
    events: Option<Events>,
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

    /// Returns the events of the current connection, once; later calls get `None`.
    pub(crate) fn take_events(&mut self) -> Option<Events> {
        self.conn.as_mut().and_then(|c| c.events.take())
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
        let events = Some(client.events());
        let line = format!("connected {}", client.url());
        self.conn = Some(Conn { client, events });
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
        // Interactive mode hands its events to the printer; follow from now on then.
        let events = conn.events.get_or_insert_with(|| conn.client.events());
        let next = async {
            loop {
                match events.recv().await {
                    Some(Event::Push(p)) if p.route() == route => return Ok(push_line(&p)),
                    Some(Event::Kicked) => return Err("error client kicked by the server".into()),
                    Some(Event::Disconnected(reason)) => {
                        return Err(format!("error client {}", reason_text(&reason)))
                    }
                    Some(_) => {}
                    None => return Err("error client disconnected".to_owned()),
                }
            }
        };
        tokio::time::timeout(timeout, next)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "error client no push on {route} within {timeout:?}"
                ))
            })
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
fn chain(e: &ClientError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
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
