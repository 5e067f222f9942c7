//! Hostile input: each case goes to a victim connection of its own, and after it a
//! bystander connected before the attack and new clients must still be served.
//!
//! Most cases must close the victim without answering it, as Go Pitaya does for any
//! packet or message it cannot decode. A few are handled differently by Pitaya
//! implementations that are all correct (Go ignores a kick from a client, pitaya-rs
//! closes on it); those cases accept either, and their descriptions say so.

mod messages;
mod packets;

use pitaya_protocol::{MessageType, Packet, PacketType, MAX_BODY_LEN};

use super::CheckDef;
use crate::chat::{decode_answer, others_served, Answer, UNKNOWN};
use crate::conn::{deadline_in, Conn, Event, Via};
use crate::ctx::{ensure, fail, within, Ctx, Failure};

pub(super) fn checks() -> Vec<CheckDef> {
    let mut all = packets::checks();
    all.extend(messages::checks());
    all
}

/// How far a victim gets before it misbehaves.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Connected, nothing sent.
    Connected,
    /// Handshake answered, no ack sent.
    Handshaken,
    /// Handshake and ack done: data is accepted.
    Working,
}

/// Returns a victim connection at `stage` that never answers heartbeats, so that
/// nothing of ours follows its bad bytes.
async fn victim(ctx: &Ctx, via: Via, stage: Stage) -> Result<Conn, Failure> {
    let mut conn = ctx.connect(via).await?;
    conn.answer_heartbeats(false);
    match stage {
        Stage::Connected => {}
        Stage::Handshaken => {
            conn.handshake_only().await?;
        }
        Stage::Working => {
            conn.handshake().await?;
        }
    }
    Ok(conn)
}

/// Returns a Data packet around `message`, byte for byte.
fn data(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let mut p = vec![PacketType::Data as u8, len[1], len[2], len[3]];
    p.extend_from_slice(message);
    p
}

/// Returns the kinds of `packets`, for failure reasons.
fn kinds(packets: &[Packet]) -> Vec<PacketType> {
    packets.iter().map(|p| p.kind).collect()
}

/// Sends `bytes` from a victim at `stage` over `via`; checks that the server closes it
/// without an answer and goes on serving everyone else.
async fn closes(
    ctx: &Ctx,
    via: Via,
    stage: Stage,
    bytes: &[u8],
    what: &str,
) -> Result<(), Failure> {
    let mut bystander = ctx.client(ctx.other(via)).await?;
    let mut victim = within(what, victim(ctx, via, stage).await)?;

    // The server may close before it has read all of it; that is a close too.
    let _ = victim.send(bytes).await;
    let seen = within(what, victim.closed("waiting for the close").await)?;
    ensure!(
        seen.is_empty(),
        "{what}: answered {:?} before closing",
        kinds(&seen)
    );
    within(what, others_served(ctx, &mut bystander, 1).await)
}

/// What a server did with input that Pitaya implementations may treat differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaction {
    Closed,
    KeptOpen,
}

/// Sends `bytes` from a victim at `stage`, then a request; accepts a close, or the
/// request answered (after errors for the bad input with one of `codes`, if any).
async fn closes_or_ignores(
    ctx: &Ctx,
    stage: Stage,
    bytes: &[u8],
    codes: &[&str],
    what: &str,
) -> Result<Reaction, Failure> {
    let via = ctx.primary();
    let mut bystander = ctx.client(ctx.other(via)).await?;
    let mut victim = within(what, victim(ctx, via, stage).await)?;

    let _ = victim.send(bytes).await;
    let _ = victim.request(1000, UNKNOWN, b"{}").await;
    let reaction = within(what, reaction(&mut victim, codes).await)?;
    within(what, others_served(ctx, &mut bystander, 1).await)?;
    Ok(reaction)
}

async fn reaction(victim: &mut Conn, codes: &[&str]) -> Result<Reaction, Failure> {
    let deadline = deadline_in(victim.wait());
    loop {
        let p = match victim.event_by(deadline).await {
            Some(Event::Packet(p)) => p,
            Some(Event::Closed) => return Ok(Reaction::Closed),
            Some(Event::Invalid(e)) => fail!("{e}"),
            None => fail!("neither closed nor answered the request that followed"),
        };
        match p.kind {
            PacketType::Heartbeat => continue,
            PacketType::Data => {}
            other => fail!("got a {other:?} packet"),
        }
        let msg = match pitaya_protocol::Message::decode(&p.body, victim.dict(), MAX_BODY_LEN) {
            Ok(m) => m,
            Err(e) => fail!("the server sent an invalid message: {e}"),
        };
        if msg.kind != MessageType::Response {
            continue;
        }
        match (msg.id, decode_answer(&msg, "answer")?) {
            (1000, Answer::Err(e)) if e.code == "PIT-404" => return Ok(Reaction::KeptOpen),
            (1000, other) => fail!("the request that followed was answered {other:?}"),
            (_, Answer::Err(e)) if codes.contains(&e.code.as_str()) => {}
            (id, other) => fail!("request {id} was answered {other:?}"),
        }
    }
}

/// Returns a note naming `reaction`.
fn note(reaction: Reaction) -> Option<String> {
    Some(
        match reaction {
            Reaction::Closed => "closed the connection",
            Reaction::KeptOpen => "kept the connection open",
        }
        .into(),
    )
}

/// Returns a request packet whose answer, if any, is `PIT-404`.
///
/// The route goes as a string, which is valid with or without a dictionary.
fn ping_packet(id: u64) -> Result<bytes::Bytes, Failure> {
    let msg = pitaya_protocol::Message::request(id, UNKNOWN, &b"{}"[..]);
    crate::conn::data_packet(&msg, &pitaya_protocol::RouteDict::empty())
}
