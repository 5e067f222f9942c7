//! The chat room: a standalone pitaya-rs frontend of server type `room`.
//!
//! Routes (JSON bodies):
//!
//! - `room.room.join` (request) `{"name": "<nick>"}`: binds the session to the nick, joins
//!   group `room`, pushes `onMembers` to the joiner and `onNewUser` to everyone else,
//!   answers `{"code":0,"result":"success"}`. A missing, empty or non-string name
//!   answers `PIT-400`.
//! - `room.room.message` (notify) `{"name": ..., "content": ...}`: pushes `onMessage`
//!   with that body to every member.
//!
//! A member whose connection closes leaves the room. The binary (`main.rs`) adds the
//! command line; tests build the same app here on ephemeral ports. [`serve_page`] serves
//! the browser page, a chat client written in JavaScript (see the `page` module).

use pitaya::config::Config;
use pitaya::{
    App, AppHandle, BuildError, Builder, Component, Context, Error, Session, SessionError,
};
use serde_json::{json, Value};

mod page;

pub use page::serve_page;

/// The group every member joins.
pub const ROOM: &str = "room";

/// The longest nick accepted, in characters.
pub const MAX_NICK_CHARS: usize = 64;

/// Returns a builder for the chat app: the `room` component and its close hook.
///
/// Add acceptors to it, then hand it to [`build`].
pub fn builder(config: Config) -> Builder {
    App::builder("room")
        .config(config)
        .register(room())
        .on_session_close(leave_room)
}

/// Returns the built app with its room group created.
///
/// # Errors
///
/// When the app cannot be built (see [`BuildError`]).
pub async fn build(builder: Builder) -> Result<App, BuildError> {
    let app = builder.build()?;
    // A fresh store has no groups, so creating the room cannot clash.
    let _ = app.handle().groups().create(ROOM).await;
    Ok(app)
}

/// Returns the `room` component: `join` and `message`.
pub fn room() -> Component {
    Component::new("room")
        .request("join", |ctx: Context, arg: Value| join(ctx, arg))
        .notify("message", |ctx: Context, msg: Value| async move {
            let members = ctx.app().groups().members(ROOM).await?;
            ctx.app()
                .push_to_users("onMessage", &msg, &members, "")
                .await?;
            Ok(())
        })
}

/// Handles `room.room.join`.
async fn join(ctx: Context, arg: Value) -> Result<Value, Error> {
    let name = match arg.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
        _ => return Err(Error::bad_request("join needs a non-empty string \"name\"")),
    };
    // Every member's nick goes to every joiner: one huge nick would be pushed to all.
    if name.chars().count() > MAX_NICK_CHARS {
        let msg = format!("name longer than {MAX_NICK_CHARS} characters");
        return Err(Error::bad_request(msg));
    }
    let session = ctx.session();
    session.bind(name.clone()).await.map_err(|e| match e {
        SessionError::AlreadyBound => Error::bad_request("this connection has already joined"),
        other => Error::internal(other.to_string()),
    })?;

    let groups = ctx.app().groups();
    // The same nick may still be a member through an older connection that this bind
    // just closed: that membership now belongs to this session.
    if !groups.contains_member(ROOM, &name).await? {
        groups.add_member(ROOM, &name).await?;
    }
    let members = groups.members(ROOM).await?;
    session
        .push("onMembers", json!({ "members": members }))
        .await?;
    let others: Vec<String> = members.into_iter().filter(|m| *m != name).collect();
    let news = json!({ "content": format!("New user: {name}") });
    ctx.app()
        .push_to_users("onNewUser", &news, &others, "")
        .await?;
    Ok(json!({ "code": 0, "result": "success" }))
}

/// Removes a closing member from the room.
async fn leave_room(app: AppHandle, session: Session) {
    let Some(uid) = session.uid() else { return };
    // A newer connection that bound the same nick keeps the membership.
    if app.session_by_uid(&uid).is_some() {
        return;
    }
    match app.groups().remove_member(ROOM, &uid).await {
        Ok(()) => tracing::info!(uid, "left the room"),
        Err(e) => tracing::debug!(uid, error = %e, "not in the room"),
    }
}
