//! One live session: the read, write, heartbeat and watchdog loop.

use std::collections::HashMap;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{encode_packet, Message, MessageType, Packet, PacketType};
use tokio::sync::oneshot;
use tokio::time::{interval_at, sleep_until, Instant, Interval, MissedTickBehavior};

use super::handshake::{packet_name, SessionInfo};
use super::{Command, Connection, End, Reply};
use crate::event::{DisconnectReason, Event, Push};
use crate::ClientError;

/// Pending requests below this count are never swept for abandoned entries.
const SWEEP_FLOOR: usize = 64;

type ReplyTx = oneshot::Sender<Result<Reply, ClientError>>;

/// A session after a successful handshake.
pub(super) struct Live {
    transport: crate::transport::Transport,
    info: Arc<SessionInfo>,
    pending: HashMap<u64, ReplyTx>,
    last_id: u32,
    sweep_at: usize,
}

// ===== impl Live =====

impl Live {
    pub(super) fn new(transport: crate::transport::Transport, info: SessionInfo) -> Self {
        Self {
            transport,
            info: Arc::new(info),
            pending: HashMap::new(),
            last_id: 0,
            sweep_at: SWEEP_FLOOR,
        }
    }

    pub(super) fn info(&self) -> Arc<SessionInfo> {
        self.info.clone()
    }

    /// Answers every request still waiting with the error `failure` makes.
    pub(super) fn fail_pending(&mut self, failure: impl Fn() -> ClientError) {
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(failure()));
        }
    }

    /// Runs the session until it ends; returns how.
    pub(super) async fn serve(&mut self, conn: &mut Connection) -> End {
        let hb = self.info.heartbeat();
        let mut heartbeat = heartbeat_timer(hb);
        // A heartbeat of zero turns both off, as in libpitaya (spec 2.2).
        let silence_limit = (!hb.is_zero() && conn.opts.watchdog_factor > 0)
            .then(|| hb.saturating_mul(conn.opts.watchdog_factor));
        let mut last_seen = Instant::now();

        loop {
            // A limit past what the clock can count (a huge user factor) never expires.
            let give_up_at = silence_limit.and_then(|limit| last_seen.checked_add(limit));
            let watchdog = async {
                match give_up_at {
                    Some(at) => sleep_until(at).await,
                    None => pending().await,
                }
            };
            let tick = async {
                match heartbeat.as_mut() {
                    Some(timer) => timer.tick().await,
                    None => pending().await,
                }
            };
            tokio::select! {
                packet = self.transport.stream.next() => {
                    last_seen = Instant::now();
                    let packet = match packet {
                        None => return End::Lost(DisconnectReason::ServerClosed),
                        Some(Err(e)) => return lost(e),
                        Some(Ok(p)) => p,
                    };
                    if let Some(end) = self.on_packet(packet, conn) {
                        return end;
                    }
                }
                cmd = conn.commands.recv() => {
                    let Some(cmd) = cmd else {
                        self.close().await;
                        return End::Closed;
                    };
                    if let Some(end) = self.on_command(cmd).await {
                        return end;
                    }
                }
                _ = tick => {
                    let beat = Packet::heartbeat().to_bytes().map_err(ClientError::from);
                    if let Err(e) = self.send(beat).await {
                        return lost(e);
                    }
                }
                () = watchdog => {
                    let silent_for = last_seen.elapsed();
                    tracing::debug!(?silent_for, "watchdog: server went silent");
                    return End::Lost(DisconnectReason::HeartbeatTimeout { silent_for });
                }
            }
        }
    }

    fn on_packet(&mut self, packet: Packet, conn: &Connection) -> Option<End> {
        match packet.kind {
            PacketType::Heartbeat => None,
            PacketType::Data => match self.on_message(&packet.body, conn) {
                Ok(()) => None,
                Err(e) => Some(lost(e)),
            },
            PacketType::Kick => {
                tracing::debug!("kicked by the server");
                conn.emit(Event::Kicked);
                Some(End::Lost(DisconnectReason::Kicked))
            }
            other => {
                tracing::warn!(packet = packet_name(other), "unexpected packet from server");
                None
            }
        }
    }

    fn on_message(&mut self, body: &[u8], conn: &Connection) -> Result<(), ClientError> {
        let max = conn.opts.max_body_len;
        let msg = Message::decode(body, self.info.route_dict(), max)?;
        let serializer = self.info.serializer().clone();
        match msg.kind {
            MessageType::Response => match self.pending.remove(&msg.id) {
                Some(reply) => {
                    let reply_msg = Reply {
                        data: msg.data,
                        error: msg.error,
                        serializer,
                    };
                    let _ = reply.send(Ok(reply_msg));
                }
                // Most likely a request that timed out and was given up.
                None => tracing::debug!(id = msg.id, "response to no pending request"),
            },
            MessageType::Push => {
                tracing::trace!(route = %msg.route, len = msg.data.len(), "push");
                conn.emit(Event::Push(Push::new(msg.route, msg.data, serializer)));
            }
            kind => tracing::warn!(?kind, "server sent a client-only message type"),
        }
        Ok(())
    }

    /// Handles one command; returns `Some` when the session must end.
    async fn on_command(&mut self, cmd: Command) -> Option<End> {
        match cmd {
            Command::Request { route, body, reply } => {
                let id = self.next_id();
                let packet = self.data_packet(Message::request(u64::from(id), route, body));
                let packet = match packet {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return None;
                    }
                };
                self.sweep();
                self.pending.insert(u64::from(id), reply);
                self.send(Ok(packet)).await.err().map(lost)
            }
            Command::Notify { route, body, done } => {
                let packet = match self.data_packet(Message::notify(route, body)) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = done.send(Err(e));
                        return None;
                    }
                };
                match self.send(Ok(packet)).await {
                    Ok(()) => {
                        let _ = done.send(Ok(()));
                        None
                    }
                    Err(e) => {
                        let _ = done.send(Err(ClientError::Disconnected));
                        Some(lost(e))
                    }
                }
            }
            Command::Close { done } => {
                self.close().await;
                let _ = done.send(());
                Some(End::Closed)
            }
        }
    }

    fn data_packet(&self, msg: Message) -> Result<bytes::Bytes, ClientError> {
        // Bodies go out uncompressed, as libpitaya and the Go client send them.
        let body = msg.to_bytes(self.info.route_dict(), false)?;
        let mut dst = bytes::BytesMut::new();
        encode_packet(PacketType::Data, &body, &mut dst)?;
        Ok(dst.freeze())
    }

    async fn send(&mut self, packet: Result<bytes::Bytes, ClientError>) -> Result<(), ClientError> {
        self.transport.sink.send(packet?).await
    }

    async fn close(&mut self) {
        // Best effort: the peer may already be gone.
        let _ = self.transport.sink.close().await;
    }

    /// Returns the next request id: from 1, wrapping within `u32` (libpitaya's width)
    /// and skipping 0, which Pitaya never answers (spec 4.4), and ids still pending.
    fn next_id(&mut self) -> u32 {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            let id = self.last_id;
            if id != 0 && !self.pending.contains_key(&u64::from(id)) {
                return id;
            }
        }
    }

    /// Drops entries whose caller stopped waiting (timed out or cancelled).
    ///
    /// Runs when the map doubles past its size at the last sweep, so the cost per
    /// request stays constant.
    fn sweep(&mut self) {
        if self.pending.len() < self.sweep_at {
            return;
        }
        self.pending.retain(|_, reply| !reply.is_closed());
        self.sweep_at = (self.pending.len() * 2).max(SWEEP_FLOOR);
    }
}

fn heartbeat_timer(hb: Duration) -> Option<Interval> {
    if hb.is_zero() {
        return None;
    }
    // The first heartbeat goes one interval after the ack, as libpitaya does. The
    // handshake caps the interval, but the clock is not ours to overflow either way.
    let first = Instant::now().checked_add(hb)?;
    let mut timer = interval_at(first, hb);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(timer)
}

fn lost(e: ClientError) -> End {
    tracing::debug!(error = %e, "connection lost");
    End::Lost(DisconnectReason::Error(Arc::new(e)))
}
