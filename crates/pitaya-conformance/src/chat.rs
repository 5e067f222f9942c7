//! The chat contract, as a client sees it, and strict readers for its answers.
//!
//! The contract: `room.room.join` (request, `{"name": nick}`) answers
//! `{"code":0,"result":"success"}`, pushes `onMembers` `{"members": [...]}` to the joiner
//! and `onNewUser` `{"content": "New user: <nick>"}` to the others, and answers `PIT-400`
//! to a missing, empty or non-string name; `room.room.message` (notify) pushes
//! `onMessage` with the same body to every member. Checks run at once in one room, so
//! every reader here skips pushes that belong to someone else's check.

use pitaya_protocol::{ErrorPayload, Message, MessageType};
use serde_json::{json, Value};

use crate::conn::{deadline_in, Conn, Via};
use crate::ctx::{ensure, fail, within, Ctx, Failure};

/// The join request route.
pub(crate) const JOIN: &str = "room.room.join";
/// The chat message notify route.
pub(crate) const MESSAGE: &str = "room.room.message";
/// A route of the chat's server type that has no handler.
pub(crate) const UNKNOWN: &str = "room.room.conformanceMissing";

/// How the server answered one request.
#[derive(Debug)]
pub(crate) enum Answer {
    Ok(Value),
    Err(ErrorPayload),
}

/// Returns the answer to request `id`, skipping pushes; any other response fails.
pub(crate) async fn answer(conn: &mut Conn, id: u64, what: &str) -> Result<Answer, Failure> {
    let deadline = deadline_in(conn.wait());
    loop {
        let (msg, _) = conn.message_by(deadline, what).await?;
        match msg.kind {
            MessageType::Push => continue,
            MessageType::Response if msg.id == id => return decode_answer(&msg, what),
            MessageType::Response => {
                fail!("{what}: got a response for id {} (expected {id})", msg.id)
            }
            other => fail!("{what}: got a {other:?} message from the server"),
        }
    }
}

/// Returns the answer in a Response: its JSON body, or its error payload.
pub(crate) fn decode_answer(msg: &Message, what: &str) -> Result<Answer, Failure> {
    if msg.error {
        return match ErrorPayload::from_json(&msg.data) {
            Ok(e) => Ok(Answer::Err(e)),
            Err(e) => fail!("{what}: the error payload is not JSON: {e}"),
        };
    }
    match serde_json::from_slice(&msg.data) {
        Ok(v) => Ok(Answer::Ok(v)),
        Err(e) => fail!("{what}: the response body is not JSON: {e}"),
    }
}

/// Checks that request `id` was answered with the error `code` and a message.
pub(crate) async fn expect_error(
    conn: &mut Conn,
    id: u64,
    code: &str,
    what: &str,
) -> Result<(), Failure> {
    match answer(conn, id, what).await? {
        Answer::Err(e) => {
            ensure!(e.code == code, "{what}: error {} (expected {code})", e.code);
            ensure!(!e.msg.is_empty(), "{what}: the {code} error has no message");
            Ok(())
        }
        Answer::Ok(v) => fail!("{what}: answered success {v} (expected {code})"),
    }
}

/// Sends a request for a route with no handler and checks the `PIT-404` answer.
pub(crate) async fn ping(conn: &mut Conn, id: u64) -> Result<(), Failure> {
    conn.request(id, UNKNOWN, b"{}").await?;
    expect_error(
        conn,
        id,
        "PIT-404",
        "answer to a request for a missing route",
    )
    .await
}

/// Joins as `nick` with request `id`; returns the members listed in `onMembers`.
///
/// Waits for both the exact success answer and the `onMembers` push, in either order.
pub(crate) async fn join(conn: &mut Conn, id: u64, nick: &str) -> Result<Vec<String>, Failure> {
    let body = json!({ "name": nick }).to_string();
    conn.request(id, JOIN, body.as_bytes()).await?;
    joined(conn, id, nick).await
}

/// Reads the answer to join request `id` and the `onMembers` push; returns the members.
pub(crate) async fn joined(conn: &mut Conn, id: u64, nick: &str) -> Result<Vec<String>, Failure> {
    let what = format!("join as {nick}");
    let deadline = deadline_in(conn.wait());
    let (mut members, mut answered) = (None, false);
    while members.is_none() || !answered {
        let (msg, _) = conn.message_by(deadline, &what).await?;
        match (msg.kind, msg.route.as_str()) {
            (MessageType::Response, _) if msg.id == id && !answered => {
                match decode_answer(&msg, &what)? {
                    Answer::Ok(v) if v == json!({ "code": 0, "result": "success" }) => {}
                    Answer::Ok(v) => fail!("{what}: answered {v}, not the success body"),
                    Answer::Err(e) => fail!("{what}: answered {} {}", e.code, e.msg),
                }
                answered = true;
            }
            (MessageType::Response, _) => fail!("{what}: unexpected response id {}", msg.id),
            (MessageType::Push, "onMembers") if members.is_none() => {
                members = Some(member_list(&msg.data, &what)?);
            }
            (MessageType::Push, "onMembers") => fail!("{what}: a second onMembers push"),
            _ => {}
        }
    }
    Ok(members.unwrap_or_default())
}

/// Returns the members of an `onMembers` body, which must be `{"members": [strings]}`.
fn member_list(body: &[u8], what: &str) -> Result<Vec<String>, Failure> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => fail!("{what}: onMembers is not JSON: {e}"),
    };
    let Some(list) = value.get("members").and_then(Value::as_array) else {
        fail!("{what}: onMembers has no members array: {value}");
    };
    let mut members = Vec::with_capacity(list.len());
    for m in list {
        let Some(name) = m.as_str() else {
            fail!("{what}: a member is not a string: {m}");
        };
        members.push(name.to_owned());
    }
    Ok(members)
}

/// Returns how many times `nick` is listed in `members`.
pub(crate) fn count(members: &[String], nick: &str) -> usize {
    members.iter().filter(|m| *m == nick).count()
}

/// Waits for the push on `route` whose JSON body is `body`, skipping other pushes.
pub(crate) async fn expect_push(
    conn: &mut Conn,
    route: &str,
    body: &Value,
    what: &str,
) -> Result<(), Failure> {
    let deadline = deadline_in(conn.wait());
    loop {
        let (msg, _) = conn.message_by(deadline, what).await?;
        match msg.kind {
            MessageType::Push if msg.route == route => {
                let got: Value = serde_json::from_slice(&msg.data).unwrap_or(Value::Null);
                if &got == body {
                    return Ok(());
                }
            }
            MessageType::Push => {}
            _ => fail!("{what}: unexpected response id {}", msg.id),
        }
    }
}

/// Waits for the `onNewUser` push announcing `nick`.
pub(crate) async fn new_user(conn: &mut Conn, nick: &str, who: &str) -> Result<(), Failure> {
    let body = json!({ "content": format!("New user: {nick}") });
    let what = format!("{who} waiting for onNewUser of {nick}");
    expect_push(conn, "onNewUser", &body, &what).await
}

/// Sends `body` as a chat message from `from` and checks it and each of `to` get it.
pub(crate) async fn say(
    from: &mut Conn,
    to: &mut [&mut Conn],
    body: &Value,
) -> Result<(), Failure> {
    from.notify(MESSAGE, body.to_string().as_bytes()).await?;
    expect_push(
        from,
        "onMessage",
        body,
        "sender waiting for its own onMessage",
    )
    .await?;
    for (n, conn) in to.iter_mut().enumerate() {
        let what = format!("member {} waiting for onMessage", n + 1);
        expect_push(conn, "onMessage", body, &what).await?;
    }
    Ok(())
}

/// Returns a connection over `via` that has joined the room under a fresh nick.
pub(crate) async fn member(ctx: &Ctx, via: Via) -> Result<(Conn, String), Failure> {
    let mut conn = ctx.client(via).await?;
    let nick = ctx.nick();
    let members = join(&mut conn, 1, &nick).await?;
    ensure!(
        count(&members, &nick) == 1,
        "join as {nick}: onMembers lists the joiner {} times",
        count(&members, &nick)
    );
    Ok((conn, nick))
}

/// Checks that `bystander` is still answered and that new clients are still accepted.
pub(crate) async fn others_served(ctx: &Ctx, bystander: &mut Conn, id: u64) -> Result<(), Failure> {
    within("bystander", ping(bystander, id).await)?;
    for via in ctx.transports() {
        let what = format!("new {} client", via.name());
        let mut fresh = within(&what, ctx.client(via).await)?;
        within(&what, ping(&mut fresh, 1).await)?;
    }
    Ok(())
}
