//! The chat room: joins, fan-out, mixed transports, leaving, and a nick joining twice.
//!
//! Other checks share the room at the same time, so member lists are checked for who
//! must and must not be in them, never for being exactly equal to something.

use std::time::Duration;

use pitaya_protocol::PacketType;
use serde_json::json;
use tokio::time::Instant;

use super::{check, CheckDef};
use crate::chat::{count, join, member, new_user, say};
use crate::conn::{deadline_in, show, Via};
use crate::ctx::{ensure, fail, within, Ctx, Failure, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "room.join",
            "join answers success and onMembers; the members already there get onNewUser",
            |ctx| Box::pin(join_room(ctx)),
        ),
        check(
            "room.message",
            "a chat message reaches every member, the sender too, with the same body",
            |ctx| Box::pin(message(ctx)),
        ),
        check(
            "room.mixed-transports",
            "WebSocket and TCP clients in one room see each other's joins and messages",
            |ctx| Box::pin(mixed_transports(ctx)),
        ),
        check(
            "room.leave-on-disconnect",
            "a member whose connection closes (TCP or WebSocket) leaves the room",
            |ctx| Box::pin(leave_on_disconnect(ctx)),
        ),
        check(
            "room.duplicate-uid",
            "a nick joining again from a new connection closes the old one (a kick first is \
             allowed) and stays one member",
            |ctx| Box::pin(duplicate_uid(ctx)),
        ),
    ]
}

async fn join_room(ctx: Ctx) -> Verdict {
    let (mut first, a) = member(&ctx, ctx.primary()).await?;
    let mut second = ctx.client(ctx.primary()).await?;
    let b = ctx.nick();
    let members = join(&mut second, 1, &b).await?;
    for nick in [&a, &b] {
        ensure!(
            count(&members, nick) == 1,
            "the second joiner's onMembers lists {nick} {} times",
            count(&members, nick)
        );
    }
    new_user(&mut first, &b, "the first member").await?;
    Ok(None)
}

async fn message(ctx: Ctx) -> Verdict {
    let (mut a, nick) = member(&ctx, ctx.primary()).await?;
    let (mut b, _) = member(&ctx, ctx.primary()).await?;
    let body = json!({ "name": nick, "content": "hello, ünïcode ✓" });
    say(&mut a, &mut [&mut b], &body).await?;
    // Keys beyond name and content are relayed too.
    let body = json!({ "name": nick, "content": "", "mood": 3, "tags": ["x"] });
    say(&mut a, &mut [&mut b], &body).await?;
    Ok(None)
}

async fn mixed_transports(ctx: Ctx) -> Verdict {
    let (mut ws1, n1) = member(&ctx, Via::Ws).await?;
    let (mut tcp, n2) = member(&ctx, Via::Tcp).await?;
    new_user(&mut ws1, &n2, "the WebSocket member").await?;
    let (mut ws2, n3) = member(&ctx, Via::Ws).await?;
    new_user(&mut ws1, &n3, "the first WebSocket member").await?;
    new_user(&mut tcp, &n3, "the TCP member").await?;

    let body = json!({ "name": n1, "content": "from WebSocket" });
    say(&mut ws1, &mut [&mut tcp, &mut ws2], &body).await?;
    let body = json!({ "name": n2, "content": "from TCP" });
    say(&mut tcp, &mut [&mut ws1, &mut ws2], &body).await?;
    Ok(None)
}

/// Joins fresh members until one's `onMembers` no longer lists `nick`.
///
/// Nothing on the wire says when the server has processed a close, so we ask again,
/// backing off from 10 ms to 200 ms, until the timeout.
async fn until_gone(ctx: &Ctx, via: Via, nick: &str) -> Result<(), Failure> {
    let deadline = deadline_in(ctx.wait());
    let mut pause = Duration::from_millis(10);
    loop {
        let mut probe = ctx.client(via).await?;
        let members = join(&mut probe, 1, &ctx.nick()).await?;
        if count(&members, nick) == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            fail!(
                "{nick} is still listed {} after its close",
                show(ctx.wait())
            );
        }
        drop(probe);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

async fn leave_on_disconnect(ctx: Ctx) -> Verdict {
    for via in ctx.transports() {
        let what = format!("{} member leaving", via.name());
        let (mut stays, a) = member(&ctx, ctx.primary()).await?;
        let (leaves, b) = member(&ctx, via).await?;
        within(&what, new_user(&mut stays, &b, "the staying member").await)?;

        drop(leaves);
        within(&what, until_gone(&ctx, ctx.primary(), &b).await)?;
        let body = json!({ "name": a, "content": "still here" });
        within(&what, say(&mut stays, &mut [], &body).await)?;
    }
    Ok(None)
}

async fn duplicate_uid(ctx: Ctx) -> Verdict {
    let via = ctx.primary();
    let (mut old, nick) = member(&ctx, via).await?;
    let (mut watcher, _) = member(&ctx, ctx.other(via)).await?;

    let mut new = ctx.client(ctx.other(via)).await?;
    let members = within("second join", join(&mut new, 1, &nick).await)?;
    ensure!(
        count(&members, &nick) == 1,
        "second join: onMembers lists {nick} {} times",
        count(&members, &nick)
    );

    // Room pushes may reach the old connection before it goes; a kick may end them.
    let seen = within("old connection", old.closed("waiting for its close").await)?;
    let kicked = seen.iter().any(|p| p.kind == PacketType::Kick);
    for p in &seen {
        let allowed = matches!(p.kind, PacketType::Data | PacketType::Kick);
        ensure!(allowed, "old connection: got a {:?} packet", p.kind);
    }

    // The newer connection keeps the membership the old one's close would drop.
    let body = json!({ "name": nick, "content": "the newer connection" });
    within(
        "after the old close",
        say(&mut new, &mut [&mut watcher], &body).await,
    )?;
    let mut probe = ctx.client(via).await?;
    let members = within("later join", join(&mut probe, 1, &ctx.nick()).await)?;
    ensure!(
        count(&members, &nick) == 1,
        "a later joiner sees {nick} {} times",
        count(&members, &nick)
    );
    let how = if kicked {
        "old connection kicked, then closed"
    } else {
        "old connection closed without a kick"
    };
    Ok(Some(how.into()))
}
