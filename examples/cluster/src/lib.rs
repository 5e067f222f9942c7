//! The chat room of the `chat` example, split for a cluster.
//!
//! - `connector` (frontend, TCP and WebSocket): holds the client connections and
//!   forwards every `room.room.*` route to a `room` server over NATS, or gRPC when
//!   `pitaya.cluster.rpc.transport` says so.
//! - `room` (backend, one or more): runs the chat. Membership lives in the etcd group
//!   store, so any room server can serve any client; pushes go back through the
//!   connectors by uid.
//!
//! The client contract is the standalone chat's (see the `chat` example):
//! `room.room.join` `{"name"}` answers `{"code":0,"result":"success"}` and pushes
//! `onMembers` and `onNewUser`; `room.room.message` (notify) pushes `onMessage` to every
//! member. `room.room.kick` `{"name"}` kicks that member off whichever connector holds
//! it (by uid: over gRPC the binding storage finds the connector) and answers
//! `{"code":0,"kicked":true|false}`. When a member's connection closes, the connector
//! tells a room server with the user RPC `room.chat.leave` (argument `protos.KickMsg`
//! carrying the uid).

use pitaya::cluster::rpc::protos::{KickAnswer, KickMsg};
use pitaya::config::Config;
use pitaya::{
    App, AppHandle, Builder, Component, Context, Error, GroupError, Remote, RemoteContext, Session,
    SessionError,
};
use serde_json::{json, Value};

/// The group every member joins.
pub const ROOM: &str = "room";

/// The longest nick accepted, in characters.
pub const MAX_NICK_CHARS: usize = 64;

/// The server type of the frontends, where pushes to members go.
pub const CONNECTOR: &str = "connector";

/// Returns the connector's builder: no handlers of its own, a close hook that takes the
/// member out of the room. Add acceptors and `cluster(...)` to it.
pub fn connector(config: Config) -> Builder {
    App::builder(CONNECTOR)
        .config(config)
        .on_session_close(leave_on_close)
}

/// Returns a room server's builder: the `room` handlers and the `chat` remote. Add
/// `backend()`, `cluster(...)` and the shared group store to it.
pub fn room(config: Config) -> Builder {
    App::builder("room")
        .config(config)
        .register(room_handlers())
        .register_remote(chat_remote())
}

/// Returns the `room` component: `join`, `message` and `kick`.
pub fn room_handlers() -> Component {
    Component::new("room")
        .request("join", |ctx: Context, arg: Value| join(ctx, arg))
        .request("kick", |ctx: Context, arg: Value| async move {
            let Some(Value::String(name)) = arg.get("name") else {
                return Err(Error::bad_request("kick needs a string \"name\""));
            };
            let failed = ctx
                .app()
                .kick_users(std::slice::from_ref(name), CONNECTOR)
                .await;
            tracing::info!(uid = %name, kicked = failed.is_empty(), "kick asked");
            Ok(json!({ "code": 0, "kicked": failed.is_empty() }))
        })
        .notify("message", |ctx: Context, msg: Value| async move {
            let members = match ctx.app().groups().members(ROOM).await {
                Err(GroupError::NotFound) => Vec::new(),
                other => other?,
            };
            ctx.app()
                .push_to_users("onMessage", &msg, &members, CONNECTOR)
                .await?;
            Ok(())
        })
}

/// Returns the `chat` remote: `leave`, called by connectors.
pub fn chat_remote() -> Remote {
    Remote::new("chat").method("leave", |ctx: RemoteContext, arg: KickMsg| async move {
        let removed = ctx.app().groups().remove_member(ROOM, &arg.user_id).await;
        match &removed {
            Ok(()) => tracing::info!(uid = %arg.user_id, "left the room"),
            Err(e) => tracing::debug!(uid = %arg.user_id, error = %e, "not in the room"),
        }
        Ok::<_, Error>(KickAnswer {
            kicked: removed.is_ok(),
        })
    })
}

/// Creates the room group unless another room server did.
///
/// # Errors
///
/// When the group store cannot be reached.
pub async fn ensure_room(app: &AppHandle) -> Result<(), GroupError> {
    match app.groups().create(ROOM).await {
        Ok(()) | Err(GroupError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Handles `room.room.join` on a room server.
async fn join(ctx: Context, arg: Value) -> Result<Value, Error> {
    let name = match arg.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
        _ => return Err(Error::bad_request("join needs a non-empty string \"name\"")),
    };
    if name.chars().count() > MAX_NICK_CHARS {
        let msg = format!("name longer than {MAX_NICK_CHARS} characters");
        return Err(Error::bad_request(msg));
    }
    let session = ctx.session();
    session.bind(name.clone()).await.map_err(|e| match e {
        SessionError::AlreadyBound => Error::bad_request("this connection has already joined"),
        SessionError::Cluster(e) => e,
        other => Error::internal(other.to_string()),
    })?;

    let groups = ctx.app().groups();
    // The nick may still be a member through an older connection: that membership
    // now belongs to this session.
    let added = match groups.add_member(ROOM, &name).await {
        // etcd lost its data (a restart from scratch): the room comes back with the
        // first member who joins.
        Err(GroupError::NotFound) => {
            ensure_room(ctx.app()).await?;
            groups.add_member(ROOM, &name).await
        }
        other => other,
    };
    match added {
        Ok(()) | Err(GroupError::MemberExists) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(uid = %name, server_id = ctx.app().server_id(), "joined the room");
    let members = groups.members(ROOM).await?;
    session
        .push("onMembers", json!({ "members": members }))
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    let others: Vec<String> = members.into_iter().filter(|m| *m != name).collect();
    let news = json!({ "content": format!("New user: {name}") });
    ctx.app()
        .push_to_users("onNewUser", &news, &others, CONNECTOR)
        .await?;
    Ok(json!({ "code": 0, "result": "success" }))
}

/// Tells a room server that a member's connection closed.
async fn leave_on_close(app: AppHandle, session: Session) {
    let Some(uid) = session.uid() else { return };
    // A newer connection that bound the same nick, here or on another connector, keeps
    // the membership: this close is a replacement, not a leave.
    if session.is_replaced() || app.session_by_uid(&uid).is_some() {
        tracing::info!(uid = %uid, "replaced by a newer login: still in the room");
        return;
    }
    let arg = KickMsg {
        user_id: uid.clone(),
    };
    if let Err(e) = app.rpc::<KickAnswer>("room.chat.leave", &arg).await {
        tracing::warn!(uid, error = %e, "could not tell a room server that a member left");
    }
}
