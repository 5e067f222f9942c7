//! Error answers (spec 4.7, 4.8 and 5): codes for bad routes and bad bodies, silence
//! for notifies, and the two route forms.

use pitaya_protocol::MessageType;

use super::{check, CheckDef};
use crate::chat::{count, decode_answer, expect_error, join, ping, Answer, JOIN, MESSAGE, UNKNOWN};
use crate::conn::deadline_in;
use crate::ctx::{ensure, fail, within, Ctx, Verdict};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check(
            "errors.not-found",
            "a request for a route without handler gets PIT-404 with a message",
            |ctx| Box::pin(not_found(ctx)),
        ),
        check(
            "errors.bad-request",
            "join with a missing, empty, non-string name or non-JSON body gets PIT-400",
            |ctx| Box::pin(bad_request(ctx)),
        ),
        check(
            "errors.empty-body",
            "a request with an empty body gets PIT-400 (nothing to deserialize)",
            |ctx| Box::pin(empty_body(ctx)),
        ),
        check(
            "errors.bad-route",
            "routes that are empty, have one or four parts or an empty part get PIT-400",
            |ctx| Box::pin(bad_route(ctx)),
        ),
        check(
            "errors.request-to-notify",
            "a request to a notify-only route gets PIT-400",
            |ctx| Box::pin(request_to_notify(ctx)),
        ),
        check(
            "errors.notify-silent",
            "failing notifies get no answer at all; the next answer is the next request's",
            |ctx| Box::pin(notify_silent(ctx)),
        ),
        check(
            "routes.short-form",
            "`room.join` is handled as the server's own `room.room.join`",
            |ctx| Box::pin(short_form(ctx)),
        ),
        check(
            "routes.other-server-type",
            "a route for a server type that is not there: an error, or no answer as Go's \
             standalone mode does; the connection stays usable",
            |ctx| Box::pin(other_server_type(ctx)),
        ),
    ]
}

async fn not_found(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    ping(&mut conn, 1).await?;
    within("the connection afterwards", ping(&mut conn, 2).await)?;
    Ok(None)
}

async fn bad_request(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    let bodies: [&[u8]; 9] = [
        b"{}",
        br#"{"nick":"someone"}"#,
        br#"{"name":""}"#,
        br#"{"name":"   "}"#,
        br#"{"name":42}"#,
        br#"{"name":null}"#,
        br#"{"name":["x"]}"#,
        b"[]",
        b"not json at all",
    ];
    for (id, body) in (1..).zip(bodies) {
        conn.request(id, JOIN, body).await?;
        let what = format!("join with body {}", String::from_utf8_lossy(body));
        expect_error(&mut conn, id, "PIT-400", &what).await?;
    }

    // None of those bound the connection, so a good join still works.
    let nick = ctx.nick();
    let members = within("join afterwards", join(&mut conn, 100, &nick).await)?;
    ensure!(
        count(&members, &nick) == 1,
        "onMembers lists {nick} {} times",
        count(&members, &nick)
    );
    Ok(None)
}

async fn empty_body(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    conn.request(1, JOIN, b"").await?;
    expect_error(&mut conn, 1, "PIT-400", "join with an empty body").await?;
    within("the connection afterwards", ping(&mut conn, 2).await)?;
    Ok(None)
}

async fn bad_route(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    let routes = [
        "",
        "room",
        "room..join",
        ".room.join",
        "room. .join",
        "a.b.c.d",
    ];
    for (id, route) in (1..).zip(routes) {
        conn.request(id, route, b"{}").await?;
        let what = format!("request for route {route:?}");
        expect_error(&mut conn, id, "PIT-400", &what).await?;
    }
    Ok(None)
}

async fn request_to_notify(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    let body = br#"{"name":"nobody","content":"never sent"}"#;
    conn.request(1, MESSAGE, body).await?;
    expect_error(&mut conn, 1, "PIT-400", "request to room.room.message").await?;
    Ok(None)
}

async fn notify_silent(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    conn.notify(UNKNOWN, b"{}").await?;
    conn.notify("room", b"{}").await?;
    conn.notify(JOIN, b"{}").await?;
    conn.notify(MESSAGE, b"\xff not json").await?;
    // Whatever the server says about those comes before this answer or not at all.
    ping(&mut conn, 9).await?;
    Ok(None)
}

async fn short_form(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    // A bad name, so the answer proves the handler ran without joining anyone.
    conn.request(1, "room.join", br#"{"name":""}"#).await?;
    match within(
        "room.join",
        crate::chat::answer(&mut conn, 1, "answer").await,
    )? {
        Answer::Err(e) if e.code == "PIT-400" => Ok(None),
        Answer::Err(e) => fail!("room.join answered {} {} (expected PIT-400)", e.code, e.msg),
        Answer::Ok(v) => fail!("room.join answered success {v} (expected PIT-400)"),
    }
}

async fn other_server_type(ctx: Ctx) -> Verdict {
    let mut conn = ctx.client(ctx.primary()).await?;
    conn.request(1, "conformancenone.room.join", br#"{"name":""}"#)
        .await?;
    conn.request(2, UNKNOWN, b"{}").await?;
    // The answer to the first, if any, may come before or after the second's: Go
    // Pitaya sends none, so only the second's is waited for.
    let deadline = deadline_in(conn.wait());
    loop {
        let (msg, _) = conn
            .message_by(deadline, "answer to the request after it")
            .await?;
        if msg.kind != MessageType::Response {
            continue;
        }
        match (msg.id, decode_answer(&msg, "answer")?) {
            (1, Answer::Err(_)) => {}
            (1, Answer::Ok(v)) => fail!("answered success {v}"),
            (2, Answer::Err(e)) if e.code == "PIT-404" => return Ok(None),
            (2, other) => fail!("the request after it answered {other:?}"),
            (id, _) => fail!("got a response for id {id}"),
        }
    }
}
