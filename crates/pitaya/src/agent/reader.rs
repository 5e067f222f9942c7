//! The read half of the agent: the connection state machine and heartbeats.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use pitaya_protocol::{HandshakeRequest, Message, MessageType, Packet, PacketType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{interval_at, sleep, Instant, MissedTickBehavior};

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
    let mut heartbeat = interval_at(Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let handshake_deadline = sleep(cfg.conn.handshake_timeout);
    tokio::pin!(handshake_deadline);

    let mut state = State::Start;
    let mut handshake_done = false;
    let mut last_seen = Instant::now();
    // Requests of this connection running at once; when all are taken we stop reading,
    // so a flooding client is slowed down by its own backlog, not by everyone's memory.
    let in_flight = Arc::new(Semaphore::new(cfg.buffer.handler.local_process.max(1)));
    let mut permit: Option<OwnedSemaphorePermit> = None;
    // Once the app shuts down we take no new packets, so the requests in flight can
    // finish without clients adding more; the session is closed after them.
    let mut draining = false;

    loop {
        tokio::select! {
            biased;
            _ = session.closing().cancelled() => return CloseReason::ByServer,
            _ = app.shutting_down(), if !draining => {
                draining = true;
            }
            _ = &mut handshake_deadline, if !handshake_done => {
                return CloseReason::HandshakeTimeout;
            }
            _ = heartbeat.tick() => {
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
            p = in_flight.clone().acquire_owned(), if permit.is_none() && !draining => {
                permit = p.ok();
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
                        if let Err(reason) = handshake(app, session, &packet).await {
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
                        handshake_done = true;
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
