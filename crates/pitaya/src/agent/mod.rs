//! The agent: the one task that owns a client connection.
//!
//! It reads packets, drives the connection state machine (spec 1.9), sends heartbeats
//! and times out silent peers (spec 3), hands Data messages to handler tasks, and
//! writes everything queued for the session. Reading and writing are two futures of
//! this one task, so nothing else ever touches the socket and writes never interleave.
//!
//! ```text
//!  Start --Handshake--> Handshake --HandshakeAck--> Working --(close)--> Closed
//!    ^                      |  ^                       |
//!    |   bad JSON/refused   |  +------Handshake--------+
//!    +--> 400 + close <-----+
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;

use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt, SinkExt};
use tracing::Instrument;

use crate::acceptor::{
    is_proxy_header_error, ConnectionSlot, Incoming, PacketConn, PacketSink, PacketStream,
};
use crate::session::{write_queue, QueueReceiver, Session};
use crate::AppHandle;

mod reader;
mod writer;

/// Why a connection ended; logged on the "connection closed" line.
#[derive(Debug)]
pub(crate) enum CloseReason {
    PeerClosed,
    Read(io::Error),
    Protocol(String),
    HeartbeatTimeout,
    HandshakeTimeout,
    HandshakeRejected(String),
    ByServer,
    Write(io::Error),
    WriteTimeout,
    Panicked,
}

impl CloseReason {
    /// Returns whether the sink may still take a close: not after it failed.
    fn sink_usable(&self) -> bool {
        !matches!(
            self,
            CloseReason::Write(_) | CloseReason::WriteTimeout | CloseReason::Panicked
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Read(e) => write!(f, "read failed: {e}"),
            CloseReason::Protocol(m) => write!(f, "protocol violation: {m}"),
            CloseReason::HeartbeatTimeout => f.write_str("heartbeat timeout"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timeout"),
            CloseReason::HandshakeRejected(m) => write!(f, "handshake rejected: {m}"),
            CloseReason::ByServer => f.write_str("closed by server"),
            CloseReason::Write(e) => write!(f, "write failed: {e}"),
            CloseReason::WriteTimeout => f.write_str("write timed out"),
            CloseReason::Panicked => f.write_str("connection task panicked"),
        }
    }
}

/// Runs one connection from its transport handshake to its close callbacks.
pub(crate) async fn serve(
    app: AppHandle,
    incoming: Incoming,
    remote: SocketAddr,
    transport: &'static str,
    // Held until the connection is over, then given back to the connection limit.
    _slot: ConnectionSlot,
) {
    let cfg = app.config();
    let conn = match tokio::time::timeout(cfg.conn.handshake_timeout, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) if is_proxy_header_error(&e) => {
            // A misconfigured balancer, or a client going around it: worth a warning.
            tracing::warn!(
                remote = %remote,
                transport,
                error = %e,
                "PROXY header refused; connection closed"
            );
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(remote = %remote, transport, error = %e, "transport handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(remote = %remote, transport, "transport handshake timed out");
            return;
        }
    };

    // Behind a proxy, the client is the one its PROXY header names (spec 1.7).
    let remote = conn.remote_addr.unwrap_or(remote);
    let (tx, rx) = write_queue(cfg.buffer.agent.messages);
    let session = app.pool().create(remote, tx);
    app.metrics().connected_clients(app.pool().len());
    let span = tracing::info_span!("conn", session_id = session.id(), remote = %remote, transport);
    let PacketConn { stream, sink, .. } = conn;
    run(app, session, stream, sink, rx).instrument(span).await;
}

async fn run(
    app: AppHandle,
    session: Session,
    stream: PacketStream,
    mut sink: PacketSink,
    rx: QueueReceiver,
) {
    tracing::info!(target: "pitaya::connection", "connection opened");
    let cfg = app.config();
    // Whatever happens in there, the session below is closed and its callbacks run:
    // a panic must not leave a member in its groups or a uid in the index. The future
    // is built in place, not bound to a local first, so it is not stored twice.
    let reason = AssertUnwindSafe(async {
        let timeout = cfg.buffer.agent.conn_timeout;
        tokio::select! {
            r = reader::read_loop(&app, &session, stream) => r,
            r = writer::write_loop(&session, &mut sink, rx, timeout, app.metrics()) => r,
        }
    })
    .catch_unwind()
    .await
    .unwrap_or_else(|_| {
        tracing::error!("connection task panicked");
        CloseReason::Panicked
    });

    app.pool().mark_closed(&session);
    app.metrics().connected_clients(app.pool().len());
    session.closing().cancel();
    if reason.sink_usable() {
        // Best effort: a WebSocket close frame or a TCP shutdown, never waiting long.
        let close = AssertUnwindSafe(sink.close()).catch_unwind();
        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
    }
    drop(sink);

    tracing::info!(target: "pitaya::connection", uid = ?session.uid(), %reason, "connection closed");
    app.pool().run_close_callbacks(&session).await;
}
