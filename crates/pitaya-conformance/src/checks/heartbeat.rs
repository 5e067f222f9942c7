//! Heartbeats and idle close (spec 3), timed by the server's own heartbeats.
//!
//! The server sends a heartbeat every interval H and closes a client silent for more
//! than 2·H (at most 3·H). Counting its heartbeats instead of reading a clock keeps
//! these checks right on a slow machine: a slow server is a slow clock too.

use std::time::Duration;

use pitaya_protocol::{Message, MessageType, PacketType, MAX_BODY_LEN};
use tokio::time::Instant;

use super::{check, CheckDef};
use crate::chat::{decode_answer, ping, Answer, UNKNOWN};
use crate::conn::{deadline_in, show, Conn, Event};
use crate::ctx::{ensure, fail, within, Ctx, Failure, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "heartbeat.server-sends",
            "the server sends empty heartbeat packets on its own, one per interval",
            |ctx| Box::pin(server_sends(ctx)),
        ),
        check(
            "heartbeat.keeps-alive",
            "a client answering heartbeats stays connected for 4 intervals (over the 3 of idle)",
            |ctx| Box::pin(keeps_alive(ctx)),
        ),
        check(
            "heartbeat.requests-keep-alive",
            "a client sending only requests, no heartbeats, also stays connected for 4 intervals",
            |ctx| Box::pin(requests_keep_alive(ctx)),
        ),
        check(
            "heartbeat.idle-close",
            "a silent client is closed after 1 to 3 server heartbeats, without a kick \
             (a kick would stop libpitaya reconnecting)",
            |ctx| Box::pin(idle_close(ctx)),
        ),
    ]
}

/// Longest heartbeat interval we wait out: idle checks take up to four of them.
const LONGEST_INTERVAL: Duration = Duration::from_secs(300);

/// Returns the heartbeat interval the server announced on `conn`.
pub(crate) fn interval(conn: &Conn) -> Result<Duration, Failure> {
    match conn.hello().map(|h| h.sys.heartbeat) {
        Some(h) if h.is_zero() => Err(Failure::Skipped("the server announced no heartbeat".into())),
        Some(h) if h > LONGEST_INTERVAL => Err(Failure::Skipped(format!(
            "heartbeat interval {} is too long to wait out",
            show(h)
        ))),
        Some(h) => Ok(h),
        None => fail!("no handshake answer to read the heartbeat interval from"),
    }
}

/// Returns the deadline for the next server heartbeat: two intervals plus the timeout.
fn next_beat(conn: &Conn, h: Duration) -> Instant {
    deadline_in(h.saturating_mul(2).saturating_add(conn.wait()))
}

/// Waits for the next packet and checks that it is an empty heartbeat.
async fn heartbeat(conn: &mut Conn, h: Duration, n: usize) -> Result<(), Failure> {
    let deadline = next_beat(conn, h);
    match conn.event_by(deadline).await {
        Some(Event::Packet(p)) if p.kind == PacketType::Heartbeat => {
            ensure!(p.body.is_empty(), "heartbeat {n} has a body");
            Ok(())
        }
        Some(Event::Packet(p)) => fail!("got a {:?} packet before heartbeat {n}", p.kind),
        Some(Event::Closed) => fail!("the server closed the connection before heartbeat {n}"),
        Some(Event::Invalid(e)) => fail!("{e}"),
        None => fail!(
            "no heartbeat {n} within {} (interval {})",
            show(h.saturating_mul(2).saturating_add(conn.wait())),
            show(h)
        ),
    }
}

async fn server_sends(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    let h = interval(&conn)?;
    for n in 1..=2 {
        heartbeat(&mut conn, h, n).await?;
    }
    Ok(Some(format!("interval {}", show(h))))
}

async fn keeps_alive(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    let h = interval(&conn)?;
    // The connection answers each heartbeat by itself.
    for n in 1..=4 {
        heartbeat(&mut conn, h, n).await?;
    }
    within("request afterwards", ping(&mut conn, 1).await)?;
    Ok(None)
}

async fn requests_keep_alive(ctx: Ctx) -> Verdict {
    let mut conn = ctx.connect(ctx.primary()).await?;
    conn.answer_heartbeats(false);
    conn.handshake().await?;
    let h = interval(&conn)?;

    // One request per server heartbeat, never a heartbeat of ours.
    let (mut beats, mut sent, mut answered) = (0, 0u64, 0u64);
    while beats < 4 || answered < sent {
        match conn.event_by(next_beat(&conn, h)).await {
            Some(Event::Packet(p)) if p.kind == PacketType::Heartbeat => {
                beats += 1;
                if beats <= 4 {
                    sent += 1;
                    conn.request(sent, UNKNOWN, b"{}").await?;
                }
            }
            Some(Event::Packet(p)) if p.kind == PacketType::Data => {
                let msg = match Message::decode(&p.body, conn.dict(), MAX_BODY_LEN) {
                    Ok(m) => m,
                    Err(e) => fail!("the server sent an invalid message: {e}"),
                };
                let ours = msg.kind == MessageType::Response && (1..=sent).contains(&msg.id);
                ensure!(ours, "got a {:?} message with id {}", msg.kind, msg.id);
                match decode_answer(&msg, "answer")? {
                    Answer::Err(e) if e.code == "PIT-404" => answered += 1,
                    other => fail!("request {} answered {other:?}", msg.id),
                }
            }
            Some(Event::Packet(p)) => fail!("got a {:?} packet", p.kind),
            Some(Event::Closed) => {
                fail!("closed after {beats} heartbeats although requests kept coming")
            }
            Some(Event::Invalid(e)) => fail!("{e}"),
            None => fail!(
                "no heartbeat or answer within {}",
                show(h.saturating_mul(2).saturating_add(conn.wait()))
            ),
        }
    }
    Ok(None)
}

async fn idle_close(ctx: Ctx) -> Verdict {
    let mut conn = ctx.connect(ctx.primary()).await?;
    conn.answer_heartbeats(false);
    conn.handshake().await?;
    let h = interval(&conn)?;

    let deadline = deadline_in(h.saturating_mul(4).saturating_add(conn.wait()));
    let mut beats = 0;
    loop {
        match conn.event_by(deadline).await {
            Some(Event::Packet(p)) if p.kind == PacketType::Heartbeat => beats += 1,
            Some(Event::Packet(p)) if p.kind == PacketType::Kick => {
                fail!("kicked: Pitaya closes an idle connection without a kick")
            }
            Some(Event::Packet(p)) => fail!("got a {:?} packet while idle", p.kind),
            Some(Event::Closed) => break,
            Some(Event::Invalid(e)) => fail!("{e}"),
            None => fail!("still open after {beats} heartbeats"),
        }
    }
    ensure!(
        beats >= 1,
        "closed before the first heartbeat: idle means over 2 intervals"
    );
    ensure!(
        beats <= 3,
        "closed only after {beats} heartbeats: idle close is due within 3 intervals"
    );
    Ok(None)
}
