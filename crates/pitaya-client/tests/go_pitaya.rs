//! The client against Go Pitaya v1: a Go chat server with the chat example's contract
//! (`interop/go-chat/server`). `interop/go-chat/interop.sh` starts that server and names
//! its acceptors in `GO_CHAT_TCP` and `GO_CHAT_WS` (`host:port`); a plain `cargo test`
//! has no Go server, so these tests are ignored there.

use std::time::Duration;

use pitaya_client::{Client, Event, Serializer};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::timeout;

/// Longest a test waits for anything; only a broken client or server ever reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

const NEEDS_GO: &str = "needs the Go chat server that interop/go-chat/interop.sh starts";

#[derive(Debug, Deserialize, PartialEq)]
struct JoinReply {
    code: i32,
    result: String,
}

/// Returns the Go server's URL for `scheme`, `tcp` or `ws`.
fn url(scheme: &str) -> String {
    let var = if scheme == "tcp" {
        "GO_CHAT_TCP"
    } else {
        "GO_CHAT_WS"
    };
    let addr = std::env::var(var).unwrap_or_else(|_| panic!("{var} is unset: {NEEDS_GO}"));
    // Only WebSocket URLs take a path; the Go acceptor serves any.
    match scheme {
        "tcp" => format!("tcp://{addr}"),
        _ => format!("ws://{addr}/"),
    }
}

/// Returns a nick unique to this process, since the server outlives one test run.
fn nick(who: &str) -> String {
    format!("{who}-{}", std::process::id())
}

async fn join(client: &Client, name: &str) {
    let reply: JoinReply = client
        .request("room.room.join", &json!({ "name": name }))
        .await
        .unwrap();
    let success = JoinReply {
        code: 0,
        result: "success".into(),
    };
    assert_eq!(reply, success, "join as {name}");
}

#[tokio::test]
#[ignore = "needs the Go chat server that interop/go-chat/interop.sh starts"]
async fn handshake_reports_the_go_servers_settings() {
    for scheme in ["tcp", "ws"] {
        let client = Client::connect(&url(scheme)).await.unwrap();
        let session = client.session().expect("connected");
        assert_eq!(session.serializer(), &Serializer::Json);
        // interop.sh runs the server with -heartbeat 1s.
        assert_eq!(session.heartbeat(), Duration::from_secs(1));
        client.close().await;
    }
}

#[tokio::test]
#[ignore = "needs the Go chat server that interop/go-chat/interop.sh starts"]
async fn members_on_tcp_and_ws_chat_through_the_go_server() {
    let (ann, bob) = (nick("ann"), nick("bob"));
    let first = Client::connect(&url("tcp")).await.unwrap();
    let mut news = first.pushes("onNewUser");
    join(&first, &ann).await;

    let second = Client::connect(&url("ws")).await.unwrap();
    let mut listed = second.pushes("onMembers");
    join(&second, &bob).await;
    let members = timeout(PATIENCE, listed.recv()).await.unwrap().unwrap();
    let members: Value = members.json().unwrap();
    for name in [&ann, &bob] {
        let listed = members["members"].as_array().unwrap();
        assert!(listed.contains(&json!(name)), "{name} not in {members}");
    }
    // The other tests share the Go server's room and may join meanwhile: their news
    // comes too, so wait for bob's.
    let content = json!({ "content": format!("New user: {bob}") });
    let bob_announced = async {
        while let Some(push) = news.recv().await {
            if push.json::<Value>().unwrap() == content {
                return;
            }
        }
        panic!("push stream ended before bob's onNewUser");
    };
    timeout(PATIENCE, bob_announced)
        .await
        .expect("onNewUser for bob");

    // A long body: the Go server compresses it, the client inflates it.
    let said = json!({ "name": bob, "content": "go ".repeat(3000) });
    let (mut at_first, mut at_second) = (first.pushes("onMessage"), second.pushes("onMessage"));
    second.notify("room.room.message", &said).await.unwrap();
    for pushes in [&mut at_first, &mut at_second] {
        let push = timeout(PATIENCE, pushes.recv()).await.unwrap().unwrap();
        assert_eq!(push.json::<Value>().unwrap(), said);
    }
}

#[tokio::test]
#[ignore = "needs the Go chat server that interop/go-chat/interop.sh starts"]
async fn go_error_answers_keep_their_codes() {
    for scheme in ["tcp", "ws"] {
        let client = Client::connect(&url(scheme)).await.unwrap();
        let err = client
            .request::<_, Value>("room.room.join", &json!({ "name": "" }))
            .await
            .unwrap_err();
        assert!(err.is_server(), "{err:?}");
        assert_eq!(err.code(), Some("PIT-400"));
        let err = client
            .request::<_, Value>("room.room.nothere", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("PIT-404"));
        join(&client, &nick(&format!("after-errors-{scheme}"))).await;
    }
}

#[tokio::test]
#[ignore = "needs the Go chat server that interop/go-chat/interop.sh starts"]
async fn a_go_kick_ends_the_older_connection_of_a_nick() {
    let name = nick("moving");
    let old = Client::connect(&url("tcp")).await.unwrap();
    let mut events = old.events();
    join(&old, &name).await;

    let new = Client::connect(&url("ws")).await.unwrap();
    join(&new, &name).await;
    // The Go server kicks the older session of a nick (pitaya-rs closes it without one).
    let mut kicked = false;
    loop {
        match timeout(PATIENCE, events.recv()).await.unwrap() {
            Some(Event::Kicked) => kicked = true,
            Some(Event::Disconnected(_)) | None => break,
            Some(_) => {}
        }
    }
    assert!(kicked, "disconnected without a kick");
    assert!(!old.is_connected());
}
