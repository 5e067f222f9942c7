//! Compression (spec 4.5 and 4.6): zlib bodies both ways and dictionary route codes.

use bytes::{Bytes, BytesMut};
use pitaya_protocol::{deflate, Message, MessageType, RouteDict};
use serde_json::{json, Value};

use super::{check, CheckDef};
use crate::chat::{count, join, joined, member, JOIN, MESSAGE};
use crate::conn::{data_packet, deadline_in};
use crate::ctx::{ensure, fail, within, Ctx, Failure, Verdict};

/// Flag bit of a message whose body is zlib-compressed.
const COMPRESSED: u8 = 0x10;

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "compression.request-body",
            "a join whose body is zlib-compressed (flag 0x10) is handled like a plain one",
            |ctx| Box::pin(request_body(ctx)),
        ),
        check(
            "compression.push-body",
            "a 4 KiB chat message comes back intact, inflated if the server compressed it",
            |ctx| Box::pin(push_body(ctx)),
        ),
        check(
            "compression.route-codes",
            "with a dictionary, routes work as 2-byte codes and as strings (skipped without)",
            |ctx| Box::pin(route_codes(ctx)),
        ),
    ]
}

/// Returns the Data packet of a request whose body is zlib-compressed, flag set.
fn compressed_request(
    id: u64,
    route: &str,
    body: &[u8],
    dict: &RouteDict,
) -> Result<Bytes, Failure> {
    let msg = Message::request(id, route, deflate(body));
    let packet = data_packet(&msg, dict)?;
    let mut bytes = BytesMut::from(&packet[..]);
    // The flag is the first byte after the 4-byte packet header.
    bytes[4] |= COMPRESSED;
    Ok(bytes.freeze())
}

async fn request_body(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    let nick = ctx.nick();
    let body = json!({ "name": nick }).to_string();
    conn.send(&compressed_request(1, JOIN, body.as_bytes(), conn.dict())?)
        .await?;
    let members = joined(&mut conn, 1, &nick).await?;
    ensure!(
        count(&members, &nick) == 1,
        "onMembers lists {nick} {} times",
        count(&members, &nick)
    );
    Ok(None)
}

async fn push_body(ctx: Ctx) -> Verdict {
    let (mut conn, nick) = member(&ctx, ctx.primary()).await?;
    // Repetitive, so zlib shrinks it and a server that compresses does.
    let content = format!("{nick} ").repeat(4096 / (nick.len() + 1));
    let body = json!({ "name": nick, "content": content });
    conn.notify(MESSAGE, body.to_string().as_bytes()).await?;

    let deadline = deadline_in(conn.wait());
    loop {
        let (msg, compressed) = conn.message_by(deadline, "own onMessage").await?;
        if msg.kind != MessageType::Push || msg.route != "onMessage" {
            continue;
        }
        let got: Value = serde_json::from_slice(&msg.data).unwrap_or(Value::Null);
        if got.get("name") != body.get("name") {
            continue;
        }
        ensure!(got == body, "the body came back changed");
        let how = if compressed {
            "the server compressed it"
        } else {
            "the server sent it plain"
        };
        return Ok(Some(how.into()));
    }
}

async fn route_codes(ctx: Ctx) -> Verdict {
    let mut coded = ctx.client(ctx.primary()).await?;
    let routes = coded.dict().len();
    let Some(code) = coded.dict().code(JOIN) else {
        let why = if routes == 0 {
            "the server offers no route dictionary".to_owned()
        } else {
            format!("the dictionary ({routes} routes) has no {JOIN}")
        };
        return Err(Failure::Skipped(why));
    };

    // The connection encodes with the dictionary, so this join goes out as the code.
    let nick = ctx.nick();
    let members = within("join by code", join(&mut coded, 1, &nick).await)?;
    ensure!(count(&members, &nick) == 1, "join by code: not listed");

    // Clients may ignore the dictionary (libpitaya does): the string must work too.
    let mut plain = ctx.client(ctx.other(ctx.primary())).await?;
    let nick = ctx.nick();
    let body = json!({ "name": nick }).to_string();
    let msg = Message::request(2, JOIN, Bytes::from(body.into_bytes()));
    plain.send(&data_packet(&msg, &RouteDict::empty())?).await?;
    let members = within("join by string", joined(&mut plain, 2, &nick).await)?;
    if count(&members, &nick) != 1 {
        fail!("join by string: {nick} not listed once");
    }
    Ok(Some(format!("{routes} routes, join is code {code}")))
}
