//! The chat room: a standalone pitaya-rs frontend of server type `room`.
//!
//! Routes (JSON bodies):
//!
//! - `room.room.join` (request) `{"name": "<nick>"}`: binds the session to the nick, joins
//!   group `room`, pushes `onMembers` to the joiner and `onNewUser` to everyone else,
//!   answers `{"code":0,"result":"success"}`.
//! - `room.room.message` (notify) `{"name": ..., "content": ...}`: pushes `onMessage`
//!   with that body to every member.
//!
//! A member whose connection closes leaves the room.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use pitaya::acceptor::{TcpAcceptor, TlsConfig, WsAcceptor};
use pitaya::config::Config;
use pitaya::{App, AppHandle, Component, Context, Error, Session, SessionError};
use serde_json::{json, Value};

const ROOM: &str = "room";

/// Command line, each flag also settable from the environment.
#[derive(Debug, Parser)]
#[command(name = "chat", about = "Standalone pitaya-rs chat room")]
struct Args {
    /// TCP listen address.
    #[arg(long, env = "CHAT_TCP_ADDR", default_value = "127.0.0.1:3250")]
    tcp: SocketAddr,
    /// WebSocket listen address (any path is accepted).
    #[arg(long, env = "CHAT_WS_ADDR", default_value = "127.0.0.1:3251")]
    ws: SocketAddr,
    /// Heartbeat interval, Go duration syntax (`30s`, `500ms`); overrides the config.
    #[arg(long, env = "CHAT_HEARTBEAT")]
    heartbeat: Option<String>,
    /// Config file (TOML or YAML) with Pitaya keys under `pitaya`.
    #[arg(long, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    /// PEM certificate: serve TLS on both acceptors (needs --tls-key).
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::load()?,
    };
    if let Some(h) = &args.heartbeat {
        config.heartbeat.interval =
            pitaya::config::duration::parse(h).map_err(|e| format!("--heartbeat {h:?}: {e}"))?;
    }

    let mut tcp = TcpAcceptor::bind(args.tcp).await?;
    let mut ws = WsAcceptor::bind(args.ws).await?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = TlsConfig::from_pem_files(cert, key)?;
        tcp = tcp.with_tls(tls.clone());
        ws = ws.with_tls(tls);
    }

    let app = App::builder("room")
        .config(config)
        .acceptor(tcp)
        .acceptor(ws)
        .register(room())
        .on_session_close(leave_room)
        .build()?;
    app.handle().groups().create(ROOM).await?;
    app.run().await;
    Ok(())
}

fn room() -> Component {
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

async fn join(ctx: Context, arg: Value) -> Result<Value, Error> {
    let name = match arg.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
        _ => return Err(Error::bad_request("join needs a non-empty string \"name\"")),
    };
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
