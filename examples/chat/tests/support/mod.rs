//! A chat app on ephemeral ports, and strict readers for what its clients receive.

use std::net::SocketAddr;
use std::time::Duration;

use pitaya::acceptor::{TcpAcceptor, WsAcceptor};
use pitaya::protocol::{Message, MessageType};
use pitaya::{AppHandle, Config};
use pitaya_test_support::{init_tracing, json, RawClient};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How long a test waits for the server to report a closed session.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Which acceptor a client connects to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    Tcp,
    Ws,
}

/// A running chat app; shut down on drop.
pub(crate) struct Chat {
    tcp: SocketAddr,
    ws: SocketAddr,
    app: AppHandle,
    /// The uid (if any) of every session whose close hooks have all run.
    closed: mpsc::UnboundedReceiver<Option<String>>,
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.app.shutdown();
    }
}

impl Chat {
    /// Returns a chat app running on 127.0.0.1 with a TCP and a WebSocket acceptor.
    pub(crate) async fn start() -> Chat {
        init_tracing();
        let tcp = TcpAcceptor::bind("127.0.0.1:0").await.expect("bind tcp");
        let ws = WsAcceptor::bind("127.0.0.1:0").await.expect("bind ws");

        // Registered after the room's own close hook, and hooks run in order, so a
        // report here means the room has already dropped (or kept) the member.
        let (tx, closed) = mpsc::unbounded_channel();
        let builder = chat::builder(Config::default())
            .acceptor(tcp)
            .acceptor(ws)
            .on_session_close(move |_, session| {
                let _ = tx.send(session.uid());
                async {}
            });
        let app = chat::build(builder).await.expect("chat app builds");

        let addr = |name: &str| {
            app.local_addrs()
                .into_iter()
                .find(|(t, _)| *t == name)
                .map(|(_, a)| a)
                .expect("acceptor is listening")
        };
        let (tcp, ws) = (addr("tcp"), addr("ws"));
        let handle = app.handle();
        tokio::spawn(app.run_until(std::future::pending()));
        Chat {
            tcp,
            ws,
            app: handle,
            closed,
        }
    }

    /// Returns a client that has connected and finished the handshake.
    pub(crate) async fn client(&self, via: Via) -> RawClient {
        let mut client = self.raw(via).await;
        client.handshake().await.expect("handshake");
        client
    }

    /// Returns a connected client that has sent nothing yet.
    pub(crate) async fn raw(&self, via: Via) -> RawClient {
        match via {
            Via::Tcp => RawClient::tcp(self.tcp).await.expect("tcp connect"),
            Via::Ws => RawClient::ws(self.ws).await.expect("ws connect"),
        }
    }

    /// Waits until a session bound to `uid` has closed and its close hooks have run.
    pub(crate) async fn closed(&mut self, uid: &str) {
        let wait = async {
            while let Some(closed) = self.closed.recv().await {
                if closed.as_deref() == Some(uid) {
                    return;
                }
            }
            panic!("the app stopped before {uid} closed");
        };
        tokio::time::timeout(CLOSE_WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no session of {uid} closed in time"));
    }
}

/// Returns the next message, failing the test if the connection ends first.
pub(crate) async fn next(client: &mut RawClient) -> Message {
    client.recv_message().await.expect("a message arrives")
}

/// Checks that the next message is a push on `route` whose body is exactly `body`.
pub(crate) async fn expect_push(client: &mut RawClient, route: &str, body: Value) {
    let msg = next(client).await;
    assert_eq!(
        (msg.kind, msg.route.as_str()),
        (MessageType::Push, route),
        "unexpected message with body {}",
        json(&msg)
    );
    assert_eq!(json(&msg), body, "body of {route}");
}

/// Joins as `nick` with request `id`; returns the members listed in `onMembers`, sorted.
///
/// Checks that exactly two messages come back, the `onMembers` push and the exact
/// success answer, so an `onNewUser` echoed to the joiner fails the test.
pub(crate) async fn join(client: &mut RawClient, id: u64, nick: &str) -> Vec<String> {
    let body = json!({ "name": nick }).to_string();
    client
        .request(id, "room.room.join", body.as_bytes())
        .await
        .expect("send join");

    let mut members = None;
    let mut answered = false;
    while members.is_none() || !answered {
        let msg = next(client).await;
        match (msg.kind, msg.route.as_str()) {
            (MessageType::Response, _) if !answered => {
                assert_eq!(msg.id, id, "response to the join");
                assert!(!msg.error, "join failed: {}", json(&msg));
                assert_eq!(json(&msg), json!({ "code": 0, "result": "success" }));
                answered = true;
            }
            (MessageType::Push, "onMembers") if members.is_none() => {
                members = Some(member_list(&json(&msg)));
            }
            _ => panic!(
                "unexpected {:?} {:?} while joining: {}",
                msg.kind,
                msg.route,
                json(&msg)
            ),
        }
    }
    members.unwrap_or_default()
}

/// Returns the sorted uids of an `onMembers` body, which must be `{"members": [strings]}`.
fn member_list(body: &Value) -> Vec<String> {
    let object = body.as_object().expect("onMembers body is an object");
    assert_eq!(object.len(), 1, "onMembers has only `members`: {body}");
    let mut members: Vec<String> = object["members"]
        .as_array()
        .expect("members is an array")
        .iter()
        .map(|m| m.as_str().expect("members are strings").to_owned())
        .collect();
    // The room is a set: the issue asks for every uid, in no particular order.
    members.sort();
    members
}

/// Checks that the next message answers request `id` with error `code`.
pub(crate) async fn expect_error(client: &mut RawClient, id: u64, code: &str) {
    let msg = next(client).await;
    assert_eq!((msg.kind, msg.id), (MessageType::Response, id));
    assert!(msg.error, "expected {code}, got success {}", json(&msg));
    let body = json(&msg);
    assert_eq!(body["code"], code, "error body {body}");
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "error carries a message: {body}"
    );
}

/// Sends `room.room.message` from member `from`; checks it and every client in `others`
/// receive exactly that body next.
pub(crate) async fn say(from: &mut RawClient, others: &mut [&mut RawClient], body: Value) {
    from.notify("room.room.message", body.to_string().as_bytes())
        .await
        .expect("send message");
    expect_push(from, "onMessage", body.clone()).await;
    for client in others.iter_mut() {
        expect_push(client, "onMessage", body.clone()).await;
    }
}

/// Returns `names` as owned, sorted strings, to compare with [`join`]'s result.
pub(crate) fn names(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    v.sort();
    v
}
