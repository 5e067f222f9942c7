//! The read half of the agent: the connection state machine and heartbeats.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use pitaya_protocol::{HandshakeRequest, Message, MessageType, Packet, PacketType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant};

use super::CloseReason;
use crate::acceptor::PacketStream;
use crate::handler::dispatch::dispatch;
use crate::session::{Outbound, Session};
use crate::AppHandle;

const HEARTBEAT: &[u8] = &[PacketType::Heartbeat as u8, 0, 0, 0];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Handshake,
    Working,
}

/// Reads and handles packets until the connection must close; returns why.
pub(super) async fn read_loop(
    app: &AppHandle,
    session: &Session,
    mut stream: PacketStream,
) -> CloseReason {
    let cfg = app.config();
    let interval = cfg.heartbeat.interval;
    // One timer serves the handshake deadline and the heartbeats: it lives in this
    // future for the whole connection, and a second one would cost every idle session.
    let mut next_beat = Instant::now() + interval;
    let mut handshake_by = Some(Instant::now() + cfg.conn.handshake_timeout);
    let timer = sleep_until(earliest(next_beat, handshake_by));
    tokio::pin!(timer);

    let mut state = State::Start;
    let mut last_seen = Instant::now();
    // Requests of this connection running at once; when all are taken we stop reading,
    // so a flooding client is slowed down by its own backlog, not by everyone's memory.
    let in_flight = Arc::new(Semaphore::new(cfg.buffer.handler.local_process.max(1)));
    let mut permit: Option<OwnedSemaphorePermit> = None;
    // Boxed and made only when every permit is taken: a wait kept inline would sit in
    // every idle connection's future.
    let mut waiting: Option<BoxFuture<'static, Option<OwnedSemaphorePermit>>> = None;
    // Once the app shuts down we take no new packets, so the requests in flight can
    // finish without clients adding more; the session is closed after them.
    let mut draining = false;

    loop {
        if permit.is_none() && waiting.is_none() && !draining {
            match in_flight.clone().try_acquire_owned() {
                Ok(p) => permit = Some(p),
                Err(_) => waiting = Some(in_flight.clone().acquire_owned().map(Result::ok).boxed()),
            }
        }
        tokio::select! {
            biased;
            _ = session.closing().cancelled() => return CloseReason::ByServer,
            _ = app.shutting_down(), if !draining => {
                draining = true;
            }
            () = &mut timer => {
                let now = Instant::now();
                if handshake_by.is_some_and(|by| now >= by) {
                    return CloseReason::HandshakeTimeout;
                }
                if now < next_beat {
                    timer.as_mut().reset(earliest(next_beat, handshake_by));
                    continue;
                }
                // A late beat pushes the next ones back rather than bunching them.
                next_beat = now + interval;
                timer.as_mut().reset(earliest(next_beat, handshake_by));
                if permit.is_none() || draining {
                    // We are not reading because our own handlers are busy: the silence is
                    // ours, not the client's.
                    last_seen = Instant::now();
                }
                // Spec 3: more than two intervals without any packet.
                if last_seen.elapsed() > interval * 2 {
                    return CloseReason::HeartbeatTimeout;
                }
                session.try_send_packet(Bytes::from_static(HEARTBEAT));
            }
            p = wait_permit(&mut waiting), if waiting.is_some() && !draining => {
                permit = p;
                waiting = None;
            }
            item = stream.next(), if permit.is_some() && !draining => {
                let packet = match item {
                    None => return CloseReason::PeerClosed,
                    Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                        tracing::debug!(error = %e, "malformed packet");
                        return CloseReason::Protocol(e.to_string());
                    }
                    Some(Err(e)) => return CloseReason::Read(e),
                    Some(Ok(p)) => p,
                };
                last_seen = Instant::now();
                match packet.kind {
                    PacketType::Handshake => {
                        // Boxed: inline, its state would stay in every connection's
                        // future long after the one handshake that needs it.
                        if let Err(reason) = Box::pin(handshake(app, session, &packet)).await {
                            return reason;
                        }
                        state = State::Handshake;
                    }
                    PacketType::HandshakeAck => {
                        // Pitaya takes an ack in any state (spec 1.9), which lets a client
                        // skip the handshake and its validators; we require one first.
                        if state == State::Start {
                            tracing::debug!("handshake ack before handshake");
                            return CloseReason::Protocol("handshake ack before handshake".into());
                        }
                        state = State::Working;
                        if handshake_by.take().is_some() {
                            timer.as_mut().reset(next_beat);
                        }
                    }
                    PacketType::Heartbeat => {}
                    PacketType::Data => {
                        if state != State::Working {
                            tracing::debug!(state = ?state, "data before handshake ack");
                            return CloseReason::Protocol("data before handshake ack".into());
                        }
                        let msg = match decode_data(app, &packet) {
                            Ok(msg) => msg,
                            Err(reason) => return reason,
                        };
                        let (app, session, permit) = (app.clone(), session.clone(), permit.take());
                        let arrived = std::time::Instant::now();
                        app.clone().tasks().spawn(async move {
                            dispatch(app, session, msg, arrived).await;
                            drop(permit);
                        });
                    }
                    PacketType::Kick => {
                        tracing::debug!("kick packet from a client");
                        return CloseReason::Protocol("kick packet from client".into());
                    }
                }
            }
        }
    }
}

fn decode_data(app: &AppHandle, packet: &Packet) -> Result<Message, CloseReason> {
    let cfg = app.config();
    let msg = Message::decode(
        &packet.body,
        &app.pool().wire().dict,
        cfg.conn.max_packet_size,
    )
    .map_err(|e| {
        tracing::debug!(error = %e, "malformed message");
        CloseReason::Protocol(e.to_string())
    })?;
    match msg.kind {
        MessageType::Request | MessageType::Notify => Ok(msg),
        other => {
            tracing::debug!(kind = ?other, "client sent a server-only message type");
            Err(CloseReason::Protocol(format!(
                "{other:?} message from client"
            )))
        }
    }
}

/// Validates a handshake and answers it; on refusal answers 400 and closes.
async fn handshake(app: &AppHandle, session: &Session, packet: &Packet) -> Result<(), CloseReason> {
    let verdict = HandshakeRequest::parse(&packet.body)
        .map_err(|e| e.to_string())
        .and_then(|req| app.validate_handshake(&req).map(|()| req));
    match verdict {
        Ok(req) => {
            session.set_handshake(req);
            let ip = if session.remote_addr().is_ipv6() {
                "ipv6"
            } else {
                "ipv4"
            };
            // A string always serializes; the error arm cannot happen.
            let _ = session.set("ipversion", ip);
            let reply = app.handshake_reply(true);
            session
                .send_packet(reply)
                .await
                .map_err(|_| CloseReason::ByServer)
        }
        Err(why) => {
            tracing::debug!(reason = %why, "handshake rejected");
            let reply = app.handshake_reply(false);
            // Answer, then close once the answer is written.
            if session.send_packet(reply).await.is_ok() {
                let _ = session.enqueue(Outbound::Close).await;
                session.closing().cancelled().await;
            }
            Err(CloseReason::HandshakeRejected(why))
        }
    }
}

/// Returns the earlier of the next heartbeat and the handshake deadline, if any.
fn earliest(next_beat: Instant, handshake_by: Option<Instant>) -> Instant {
    handshake_by.map_or(next_beat, |by| by.min(next_beat))
}

/// Returns the permit `waiting` waits for; never completes while it waits for none.
async fn wait_permit(
    waiting: &mut Option<BoxFuture<'static, Option<OwnedSemaphorePermit>>>,
) -> Option<OwnedSemaphorePermit> {
    match waiting {
        Some(wait) => wait.await,
        None => std::future::pending().await,
    }
}
