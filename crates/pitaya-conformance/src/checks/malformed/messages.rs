//! Hostile messages inside well-formed Data packets (spec 4).

use super::{closes, closes_or_ignores, data, note, Stage};
use crate::checks::{check, CheckDef};
use crate::ctx::{Ctx, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "malformed.short-message",
            "a Data packet holding fewer than 2 bytes of message closes that connection",
            |ctx| Box::pin(short_message(ctx)),
        ),
        check(
            "malformed.bad-varint",
            "a message id whose varint never ends closes that connection",
            |ctx| Box::pin(bad_varint(ctx)),
        ),
        check(
            "malformed.route-overrun",
            "a route length past the end of the message closes that connection",
            |ctx| Box::pin(route_overrun(ctx)),
        ),
        check(
            "malformed.message-type",
            "message types 4 to 7 close that connection",
            |ctx| Box::pin(message_type(ctx)),
        ),
        check(
            "malformed.response-from-client",
            "a Response sent by the client: closed, or PIT-400 and kept open as Go Pitaya \
             does (either)",
            |ctx| Box::pin(response_from_client(ctx)),
        ),
        check(
            "malformed.push-from-client",
            "a Push sent by the client: closed, or ignored as Go Pitaya does (either)",
            |ctx| Box::pin(push_from_client(ctx)),
        ),
        check(
            "malformed.route-code",
            "a compressed route code missing from the dictionary closes that connection",
            |ctx| Box::pin(route_code(ctx)),
        ),
        check(
            "malformed.route-utf8",
            "a route that is not UTF-8: closed, or PIT-400/404 as Go Pitaya, which does not \
             check, answers (either)",
            |ctx| Box::pin(route_utf8(ctx)),
        ),
        check(
            "malformed.bad-zlib",
            "a body flagged compressed that is not zlib closes that connection",
            |ctx| Box::pin(bad_zlib(ctx)),
        ),
    ]
}

async fn short_message(ctx: Ctx) -> Verdict {
    let via = ctx.primary();
    closes(&ctx, via, Stage::Working, &data(&[]), "empty message").await?;
    closes(&ctx, via, Stage::Working, &data(&[0x00]), "1-byte message").await?;
    Ok(None)
}

async fn bad_varint(ctx: Ctx) -> Verdict {
    let msg = data(&[0x00, 0x80, 0x80]);
    closes(&ctx, ctx.primary(), Stage::Working, &msg, "id 80 80").await?;
    Ok(None)
}

async fn route_overrun(ctx: Ctx) -> Verdict {
    // Request id 1, route length 16, one route byte.
    let msg = data(&[0x00, 0x01, 0x10, b'a']);
    closes(&ctx, ctx.primary(), Stage::Working, &msg, "route length 16").await?;
    Ok(None)
}

async fn message_type(ctx: Ctx) -> Verdict {
    for flag in [0x08u8, 0x0E] {
        let msg = data(&[flag, 0x01, 0x01, b'a']);
        let what = format!("type {}", flag >> 1);
        closes(&ctx, ctx.primary(), Stage::Working, &msg, &what).await?;
    }
    Ok(None)
}

async fn response_from_client(ctx: Ctx) -> Verdict {
    // Response, id 5, body `{}`.
    let msg = data(&[0x04, 0x05, b'{', b'}']);
    let reaction = closes_or_ignores(&ctx, Stage::Working, &msg, &["PIT-400"], "response").await?;
    Ok(note(reaction))
}

async fn push_from_client(ctx: Ctx) -> Verdict {
    let mut msg = vec![0x06, 8];
    msg.extend_from_slice(b"onFakeIt{}");
    let reaction = closes_or_ignores(&ctx, Stage::Working, &data(&msg), &[], "push").await?;
    Ok(note(reaction))
}

async fn route_code(ctx: Ctx) -> Verdict {
    // A code the server's dictionary does not use: the highest free one.
    let probe = ctx.client(ctx.primary()).await?;
    let used: Vec<u16> = probe.dict().to_map().into_values().collect();
    let code = (0..=u16::MAX)
        .rev()
        .find(|c| !used.contains(c))
        .unwrap_or(0);
    let [hi, lo] = code.to_be_bytes();
    let msg = data(&[0x01, 0x01, hi, lo, b'{', b'}']);
    let what = format!("route code {code}");
    closes(&ctx, ctx.primary(), Stage::Working, &msg, &what).await?;
    Ok(None)
}

async fn route_utf8(ctx: Ctx) -> Verdict {
    let route = b"room.room.\xff\xfe";
    let mut msg = vec![0x00, 0x01, route.len() as u8];
    msg.extend_from_slice(route);
    msg.extend_from_slice(b"{}");
    let codes = ["PIT-400", "PIT-404"];
    let reaction = closes_or_ignores(&ctx, Stage::Working, &data(&msg), &codes, "route").await?;
    Ok(note(reaction))
}

async fn bad_zlib(ctx: Ctx) -> Verdict {
    let route = crate::chat::UNKNOWN.as_bytes();
    let mut msg = vec![0x10, 0x01, route.len() as u8];
    msg.extend_from_slice(route);
    msg.extend_from_slice(b"this is not zlib");
    closes(&ctx, ctx.primary(), Stage::Working, &data(&msg), "body").await?;
    Ok(None)
}
