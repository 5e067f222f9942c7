//! The task that owns the socket: handshake, requests by id, pushes, heartbeats,
//! watchdog and reconnects.
//!
//! [`Client`](crate::Client) handles send [`Command`]s over a bounded channel; the
//! task answers requests through oneshot channels and broadcasts [`Event`]s.

mod handshake;
mod live;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use handshake::{SessionInfo, MAX_HEARTBEAT, MIN_HEARTBEAT};

use crate::body::Serializer;
use crate::error::HandshakeError;
use crate::event::{DisconnectReason, Event};
use crate::options::ConnectOptions;
use crate::transport::Connector;
use crate::ClientError;
use live::Live;

/// A request from a client handle to the connection task.
pub(crate) enum Command {
    /// Send a Request and answer `reply` with the Response.
    Request {
        route: String,
        body: Bytes,
        reply: oneshot::Sender<Result<Reply, ClientError>>,
    },
    /// Send a Notify and answer `done` once it is written.
    Notify {
        route: String,
        body: Bytes,
        done: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Close the connection and stop; answer `done` when closed.
    Close { done: oneshot::Sender<()> },
}

/// A Response as it came, for the handle to decode.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) data: Bytes,
    pub(crate) error: bool,
    pub(crate) serializer: Serializer,
}

/// Channels shared by the task and every handle.
pub(crate) struct Shared {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<Event>,
    /// Subscribed before the task starts, so it holds every event since the handshake
    /// until the first call to `Client::events` takes it.
    pub(crate) first_events: broadcast::Receiver<Event>,
    pub(crate) session: watch::Receiver<Option<Arc<SessionInfo>>>,
    pub(crate) done: CancellationToken,
}

/// The task's side of the connection.
struct Connection {
    connector: Connector,
    opts: ConnectOptions,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    session: watch::Sender<Option<Arc<SessionInfo>>>,
    done: CancellationToken,
}

/// How one session ended.
enum End {
    /// The client asked to close, or every handle is gone: no reconnect.
    Closed,
    /// The connection was lost for `reason`.
    Lost(DisconnectReason),
}

/// Connects and handshakes, then spawns the connection task.
///
/// # Errors
///
/// As [`open`]: connection, TLS, WebSocket and handshake errors.
pub(crate) async fn start(
    connector: Connector,
    opts: ConnectOptions,
) -> Result<Shared, ClientError> {
    let live = open(&connector, &opts).await?;
    let (commands_tx, commands) = mpsc::channel(opts.command_capacity);
    let (events, first_events) = broadcast::channel(opts.event_capacity);
    let (session, session_rx) = watch::channel(Some(live.info()));
    let done = CancellationToken::new();
    let shared = Shared {
        commands: commands_tx,
        events: events.clone(),
        first_events,
        session: session_rx,
        done: done.clone(),
    };
    let span = tracing::debug_span!("pitaya_client", url = %connector.url());
    let conn = Connection {
        connector,
        opts,
        commands,
        events,
        session,
        done,
    };
    tokio::spawn(conn.run(live).instrument(span));
    Ok(shared)
}

/// Opens a transport and runs the handshake, both within the handshake timeout.
///
/// # Errors
///
/// [`HandshakeError::Timeout`] when it takes too long, or the first error on the way.
async fn open(connector: &Connector, opts: &ConnectOptions) -> Result<Live, ClientError> {
    let attempt = async {
        let mut transport = connector.connect().await?;
        let info = handshake::handshake(&mut transport, &opts.handshake).await?;
        tracing::debug!(
            heartbeat = ?info.heartbeat(),
            serializer = %info.serializer(),
            dict_len = info.route_dict().len(),
            "handshake done"
        );
        Ok(Live::new(transport, info))
    };
    timeout(opts.handshake_timeout, attempt)
        .await
        .map_err(|_| HandshakeError::Timeout(opts.handshake_timeout))?
}

// ===== impl Connection =====

impl Connection {
    async fn run(mut self, mut live: Live) {
        loop {
            let end = live.serve(&mut self).await;
            let _ = self.session.send(None);
            let reason = match end {
                End::Closed => DisconnectReason::ClientClosed,
                End::Lost(reason) => reason,
            };
            tracing::debug!(?reason, "disconnected");
            let failure = match reason {
                DisconnectReason::Kicked => ClientError::Kicked,
                _ => ClientError::Disconnected,
            };
            live.fail_pending(|| clone_failure(&failure));
            let retry = !matches!(
                reason,
                DisconnectReason::Kicked | DisconnectReason::ClientClosed
            );
            self.emit(Event::Disconnected(reason));
            if !retry {
                break;
            }
            match self.reconnect().await {
                Some(next) => live = next,
                None => break,
            }
        }
        self.done.cancel();
    }

    /// Returns a new live session after backoff, or `None` when giving up or closing.
    async fn reconnect(&mut self) -> Option<Live> {
        let cfg = self.opts.reconnect.clone()?;
        for attempt in 1u32.. {
            if cfg.max_attempts.is_some_and(|max| attempt > max) {
                tracing::debug!(attempts = attempt - 1, "giving up reconnecting");
                return None;
            }
            let delay = cfg.delay(attempt);
            self.emit(Event::Reconnecting { attempt, delay });
            if !self.refuse_commands_for(delay).await {
                return None;
            }
            match open(&self.connector, &self.opts).await {
                Ok(live) => {
                    let _ = self.session.send(Some(live.info()));
                    self.emit(Event::Reconnected);
                    return Some(live);
                }
                Err(e) => tracing::debug!(attempt, error = %e, "reconnect failed"),
            }
        }
        None
    }

    /// Waits `delay`, failing requests and notifies meanwhile; returns false on close.
    async fn refuse_commands_for(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                cmd = self.commands.recv() => match cmd {
                    None => return false,
                    Some(Command::Close { done }) => {
                        let _ = done.send(());
                        return false;
                    }
                    Some(Command::Request { reply, .. }) => {
                        let _ = reply.send(Err(ClientError::Disconnected));
                    }
                    Some(Command::Notify { done, .. }) => {
                        let _ = done.send(Err(ClientError::Disconnected));
                    }
                },
            }
        }
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error: nobody asked for events.
        let _ = self.events.send(event);
    }
}

/// Returns a copy of the error pending requests fail with (only the two plain variants).
fn clone_failure(e: &ClientError) -> ClientError {
    match e {
        ClientError::Kicked => ClientError::Kicked,
        _ => ClientError::Disconnected,
    }
}
