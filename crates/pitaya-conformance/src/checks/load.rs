//! A few hundred clients at once, driven by the high-level client (`pitaya-client`),
//! which brings its own handshake, heartbeats and request matching.

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use pitaya_client::{Client, ConnectOptions, Pushes};
use serde_json::{json, Value};

use super::{solo, CheckDef};
use crate::chat::{JOIN, MESSAGE};
use crate::conn::{show, Via};
use crate::ctx::{ensure, fail, Ctx, Failure, Verdict};

/// Connections and joins under way at once, so the listen backlog is not the test.
const IN_FLIGHT: usize = 64;

pub(super) fn checks() -> Vec<CheckDef> {
    vec![solo(
        "load.many-clients",
        "--clients clients (half TCP, half WebSocket) connect, join and all get one message; \
         runs alone",
        |ctx| Box::pin(many_clients(ctx)),
    )]
}

/// One connected client and its `onMessage` pushes, subscribed before it joined.
struct Member {
    client: Client,
    nick: String,
    messages: Pushes,
}

async fn many_clients(ctx: Ctx) -> Verdict {
    let n = ctx.clients();
    if n == 0 {
        return Err(Failure::Skipped("--clients is 0".into()));
    }
    let vias = ctx.transports();
    if vias.is_empty() {
        return Err(Failure::Skipped("needs --tcp or --ws".into()));
    }
    let opts = ConnectOptions::new()
        .request_timeout(ctx.wait())
        .handshake_timeout(ctx.wait())
        // Our own timeouts judge the server; the client's watchdog would only add noise.
        .watchdog_factor(0)
        // Every join pushes onNewUser to everyone: room for all of them and then some.
        .event_capacity(n * 2 + 256);

    let mut members: Vec<Member> = stream::iter(0..n)
        .map(|i| join_one(&ctx, &opts, vias[i % vias.len()]))
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;

    let result = broadcast(&ctx, &mut members).await;
    for m in &members {
        m.client.close().await;
    }
    result?;
    let per = |via: Via| (0..n).filter(|i| vias[i % vias.len()] == via).count();
    Ok(Some(format!(
        "{n} clients: {} TCP, {} WebSocket",
        per(Via::Tcp),
        per(Via::Ws)
    )))
}

/// Connects one client over `via`, joins it under a fresh nick and checks the answer.
async fn join_one(ctx: &Ctx, opts: &ConnectOptions, via: Via) -> Result<Member, Failure> {
    let Some(url) = ctx.url(via) else {
        fail!("no address for {}", via.name());
    };
    let client = match opts.clone().connect(&url).await {
        Ok(c) => c,
        Err(e) => fail!("{} client: {e}", via.name()),
    };
    let nick = ctx.nick();
    let messages = client.pushes("onMessage");
    let mut listed = client.pushes("onMembers");
    let reply: Value = match client.request(JOIN, &json!({ "name": nick })).await {
        Ok(v) => v,
        Err(e) => fail!("join as {nick}: {e}"),
    };
    ensure!(
        reply == json!({ "code": 0, "result": "success" }),
        "join as {nick}: answered {reply}"
    );
    let members = match tokio::time::timeout(ctx.wait(), listed.recv()).await {
        Ok(Some(push)) => push.json::<Value>().unwrap_or(Value::Null),
        Ok(None) => fail!("join as {nick}: disconnected before onMembers"),
        Err(_) => fail!("join as {nick}: no onMembers within {}", show(ctx.wait())),
    };
    let listed = members["members"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m == nick.as_str()));
    ensure!(listed, "join as {nick}: onMembers does not list the joiner");
    Ok(Member {
        client,
        nick,
        messages,
    })
}

/// Has the first member say something and checks that every member gets it.
async fn broadcast(ctx: &Ctx, members: &mut [Member]) -> Result<(), Failure> {
    let total = members.len();
    let Some(first) = members.first() else {
        return Ok(());
    };
    let body = json!({ "name": first.nick, "content": "to all at once" });
    if let Err(e) = first.client.notify(MESSAGE, &body).await {
        fail!("message from {}: {e}", first.nick);
    }
    let waits = members.iter_mut().map(|m| received(ctx, m, &body));
    let missing = join_all(waits).await.iter().filter(|got| !**got).count();
    ensure!(
        missing == 0,
        "{missing} of {total} members got no onMessage within {}",
        show(ctx.wait())
    );
    Ok(())
}

/// Returns whether `member` receives an `onMessage` push of `body` in time.
async fn received(ctx: &Ctx, member: &mut Member, body: &Value) -> bool {
    let wait = async {
        while let Some(push) = member.messages.recv().await {
            if push.json::<Value>().is_ok_and(|got| &got == body) {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(ctx.wait(), wait)
        .await
        .unwrap_or(false)
}
