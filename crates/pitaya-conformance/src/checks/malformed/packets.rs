//! Hostile packets: bad headers, bad order, bad handshakes, bad sizes, cut streams.

use pitaya_protocol::{HandshakeResponse, MessageType, PacketType, MAX_BODY_LEN};

use super::{closes, closes_or_ignores, data, kinds, note, ping_packet, victim, Stage};
use crate::chat::others_served;
use crate::checks::heartbeat::interval;
use crate::checks::{check, CheckDef};
use crate::conn::{deadline_in, show, Via};
use crate::ctx::{ensure, fail, within, Ctx, Failure, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "malformed.unknown-packet-type",
            "a packet type outside 1..5 closes that connection, on every transport",
            |ctx| Box::pin(unknown_packet_type(ctx)),
        ),
        check(
            "malformed.garbage",
            "bytes that are no packet at all (an HTTP request, 0xFF...) close that connection",
            |ctx| Box::pin(garbage(ctx)),
        ),
        check(
            "malformed.data-before-handshake",
            "a Data packet before any handshake closes that connection",
            |ctx| Box::pin(data_before_handshake(ctx)),
        ),
        check(
            "malformed.data-before-ack",
            "a Data packet after the handshake answer but before the ack closes that connection",
            |ctx| Box::pin(data_before_ack(ctx)),
        ),
        check(
            "malformed.ack-before-handshake",
            "an ack with no handshake: closed, or taken as Go Pitaya does (either is accepted)",
            |ctx| Box::pin(ack_before_handshake(ctx)),
        ),
        check(
            "malformed.handshake-json",
            "a handshake that is not JSON, an array, or has a number for a string gets 400, then \
             a close",
            |ctx| Box::pin(handshake_json(ctx)),
        ),
        check(
            "malformed.kick-from-client",
            "a Kick packet from the client: closed, or ignored as Go Pitaya does (either)",
            |ctx| Box::pin(kick_from_client(ctx)),
        ),
        check(
            "malformed.trailing-garbage",
            "garbage after valid packets closes the connection; on WebSocket so do extra bytes \
             or a second packet in one message",
            |ctx| Box::pin(trailing_garbage(ctx)),
        ),
        check(
            "malformed.abrupt-close",
            "clients vanishing mid-header, mid-body and mid-handshake leave the server serving",
            |ctx| Box::pin(abrupt_close(ctx)),
        ),
        check(
            "malformed.over-max-size",
            "a header announcing more than --max-packet-size closes at once (skipped without it)",
            |ctx| Box::pin(over_max_size(ctx)),
        ),
        check(
            "malformed.huge-header-silence",
            "TCP: a 16 MiB header then silence: others are served meanwhile, and the victim \
             is closed, at once or as idle",
            |ctx| Box::pin(huge_header_silence(ctx)),
        ),
        check(
            "malformed.oversized-message",
            "a 1 MiB request is answered (PIT-404, or PIT-400 from a cluster frontend that \
             cannot forward it) or closed when over the server's maximum",
            |ctx| Box::pin(oversized_message(ctx)),
        ),
    ]
}

async fn unknown_packet_type(ctx: Ctx) -> Verdict {
    for via in ctx.transports() {
        let what = format!("{}: type 9", via.name());
        closes(&ctx, via, Stage::Working, &[9, 0, 0, 0], &what).await?;
    }
    let what = "type 0 before the handshake";
    closes(&ctx, ctx.primary(), Stage::Connected, &[0, 0, 0, 0], what).await?;
    Ok(None)
}

async fn garbage(ctx: Ctx) -> Verdict {
    let http = b"GET / HTTP/1.1\r\nHost: pitaya\r\n\r\n";
    closes(&ctx, ctx.primary(), Stage::Connected, http, "HTTP request").await?;
    closes(
        &ctx,
        ctx.primary(),
        Stage::Working,
        &[0xFF; 32],
        "0xFF bytes",
    )
    .await?;
    Ok(None)
}

async fn data_before_handshake(ctx: Ctx) -> Verdict {
    for via in ctx.transports() {
        let request = ping_packet(1)?;
        let what = format!("{}: request before the handshake", via.name());
        closes(&ctx, via, Stage::Connected, &request, &what).await?;
    }
    Ok(None)
}

async fn data_before_ack(ctx: Ctx) -> Verdict {
    let request = ping_packet(1)?;
    let what = "request before the ack";
    closes(&ctx, ctx.primary(), Stage::Handshaken, &request, what).await?;
    Ok(None)
}

async fn ack_before_handshake(ctx: Ctx) -> Verdict {
    let ack = [PacketType::HandshakeAck as u8, 0, 0, 0];
    let reaction = closes_or_ignores(&ctx, Stage::Connected, &ack, &[], "ack first").await?;
    Ok(note(reaction))
}

async fn handshake_json(ctx: Ctx) -> Verdict {
    let bodies: [&[u8]; 3] = [
        br#"{"sys": nope"#,
        b"[]",
        br#"{"sys":{"clientBuildNumber":5}}"#,
    ];
    let mut bystander = ctx.client(ctx.primary()).await?;
    for body in bodies {
        let what = format!("handshake {}", String::from_utf8_lossy(body));
        let mut victim = victim(&ctx, ctx.primary(), Stage::Connected).await?;
        let p = within(&what, victim.handshake_raw(body).await)?;
        let code = match HandshakeResponse::decode(&p.body) {
            Ok(answer) => answer.code,
            Err(e) => fail!("{what}: the answer does not decode: {e}"),
        };
        ensure!(code == 400, "{what}: answered code {code} (expected 400)");
        let seen = within(&what, victim.closed("waiting for the close").await)?;
        ensure!(
            seen.is_empty(),
            "{what}: sent {:?} after the 400",
            kinds(&seen)
        );
    }
    others_served(&ctx, &mut bystander, 1).await?;
    Ok(None)
}

async fn kick_from_client(ctx: Ctx) -> Verdict {
    let kick = [PacketType::Kick as u8, 0, 0, 0];
    let reaction = closes_or_ignores(&ctx, Stage::Working, &kick, &[], "kick").await?;
    Ok(note(reaction))
}

async fn trailing_garbage(ctx: Ctx) -> Verdict {
    if ctx.transports().contains(&Via::Tcp) {
        let mut bystander = ctx.client(ctx.primary()).await?;
        let mut victim = victim(&ctx, Via::Tcp, Stage::Working).await?;
        let mut bytes = ping_packet(1)?.to_vec();
        bytes.extend_from_slice(&[0xEE; 8]);
        let _ = victim.send(&bytes).await;
        let seen = within("TCP", victim.closed("waiting for the close").await)?;
        // The request before the garbage may or may not be answered before the close.
        for p in &seen {
            let body = pitaya_protocol::Message::decode(&p.body, victim.dict(), MAX_BODY_LEN);
            let answer = body.is_ok_and(|m| m.kind == MessageType::Response && m.id == 1);
            ensure!(answer, "TCP: sent a {:?} packet before closing", p.kind);
        }
        within("TCP", others_served(&ctx, &mut bystander, 1).await)?;
    }
    if ctx.transports().contains(&Via::Ws) {
        let one = ping_packet(1)?.to_vec();
        let extra = [one.clone(), vec![0xEE; 3]].concat();
        let what = "WebSocket: a packet plus 3 bytes in one message";
        closes(&ctx, Via::Ws, Stage::Working, &extra, what).await?;
        let two = [one.clone(), ping_packet(2)?.to_vec()].concat();
        let what = "WebSocket: two packets in one message";
        closes(&ctx, Via::Ws, Stage::Working, &two, what).await?;
    }
    Ok(None)
}

async fn abrupt_close(ctx: Ctx) -> Verdict {
    let mut bystander = ctx.client(ctx.primary()).await?;
    let handshake = crate::conn::packet(PacketType::Handshake, &crate::conn::default_handshake())?;
    let cases: [(&str, Stage, Vec<u8>); 3] = [
        (
            "mid-header",
            Stage::Working,
            vec![PacketType::Data as u8, 0],
        ),
        (
            "mid-body",
            Stage::Working,
            data(&[0x00, 0x01])[..5].to_vec(),
        ),
        ("mid-handshake", Stage::Connected, handshake[..10].to_vec()),
    ];
    for (what, stage, bytes) in cases {
        let victim = victim(&ctx, ctx.primary(), stage).await?;
        within(what, victim.send(&bytes).await)?;
        drop(victim);
        within(what, others_served(&ctx, &mut bystander, 1).await)?;
    }
    Ok(None)
}

async fn over_max_size(ctx: Ctx) -> Verdict {
    let Some(max) = ctx.max_packet_size() else {
        return Err(Failure::Skipped("needs --max-packet-size".into()));
    };
    if max >= MAX_BODY_LEN {
        return Err(Failure::Skipped(
            "no packet can be longer than the 16 MiB format limit".into(),
        ));
    }
    let len = u32::try_from(max + 1).unwrap_or(u32::MAX).to_be_bytes();
    let header = [PacketType::Data as u8, len[1], len[2], len[3]];
    for via in ctx.transports() {
        let what = format!("{}: length {}", via.name(), max + 1);
        // TCP: the header alone must do; a WebSocket message carries the whole packet.
        let bytes = match via {
            Via::Tcp => header.to_vec(),
            Via::Ws => [&header[..], &vec![0x20; max + 1]].concat(),
        };
        closes(&ctx, via, Stage::Working, &bytes, &what).await?;
    }
    Ok(None)
}

async fn huge_header_silence(ctx: Ctx) -> Verdict {
    let mut bystander = ctx.client(ctx.other(Via::Tcp)).await?;
    let mut victim = victim(&ctx, Via::Tcp, Stage::Working).await?;
    let h = interval(&victim)?;

    victim
        .send(&[PacketType::Data as u8, 0xFF, 0xFF, 0xFF])
        .await?;
    // The body is still awaited (or refused) while everyone else goes on.
    others_served(&ctx, &mut bystander, 1).await?;
    let deadline = deadline_in(h.saturating_mul(3).saturating_add(victim.wait()));
    let what = format!(
        "waiting up to {} for the close",
        show(h.saturating_mul(3).saturating_add(victim.wait()))
    );
    let seen = victim.closed_by(deadline, &what).await?;
    ensure!(
        seen.is_empty(),
        "answered {:?} before closing",
        kinds(&seen)
    );
    within("afterwards", others_served(&ctx, &mut bystander, 2).await)?;
    Ok(None)
}

async fn oversized_message(ctx: Ctx) -> Verdict {
    const BODY: usize = 1 << 20;
    let mut conn = victim(&ctx, ctx.primary(), Stage::Working).await?;
    let body = format!("\"{}\"", "x".repeat(BODY - 2));
    let msg = pitaya_protocol::Message::request(1, crate::chat::UNKNOWN, body.into_bytes());
    let bytes = conn.data(&msg)?;
    let over = ctx.max_packet_size().map(|max| bytes.len() - 4 > max);

    let mut bystander = ctx.client(ctx.primary()).await?;
    let _ = conn.send(&bytes).await;
    let _ = conn.request(1000, crate::chat::UNKNOWN, b"{}").await;
    let reaction = super::reaction(&mut conn, &["PIT-404", "PIT-400"]).await?;
    match (over, reaction) {
        (Some(true), super::Reaction::KeptOpen) => {
            fail!("answered although over --max-packet-size")
        }
        (Some(false), super::Reaction::Closed) => {
            fail!("closed although within --max-packet-size")
        }
        _ => {}
    }
    others_served(&ctx, &mut bystander, 1).await?;
    Ok(note(reaction))
}
