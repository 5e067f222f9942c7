//! Requests, notifies, pushes and server errors against the chat example, over TCP
//! and WebSocket.

mod common;

use common::{next_event, Server, PATIENCE};
use pitaya_client::{Client, ClientError, ConnectOptions, Event, Serializer};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::timeout;

#[derive(Debug, Deserialize, PartialEq)]
struct JoinReply {
    code: i32,
    result: String,
}

#[tokio::test]
async fn join_returns_the_typed_reply_over_tcp_and_ws() {
    let server = Server::start().await;
    for scheme in ["tcp", "ws"] {
        let client = Client::connect(&server.url(scheme)).await.unwrap();
        let session = client.session().expect("connected");
        assert_eq!(session.serializer(), &Serializer::Json);
        assert_eq!(session.heartbeat(), std::time::Duration::from_secs(30));

        let reply: JoinReply = client
            .request(
                "room.room.join",
                &json!({ "name": format!("ann-{scheme}") }),
            )
            .await
            .unwrap();
        assert_eq!(
            reply,
            JoinReply {
                code: 0,
                result: "success".into()
            }
        );
        client.close().await;
    }
}

#[tokio::test]
async fn empty_name_comes_back_as_a_server_error_with_its_code() {
    let server = Server::start().await;
    for scheme in ["tcp", "ws"] {
        let client = Client::connect(&server.url(scheme)).await.unwrap();
        let err = client
            .request::<_, Value>("room.room.join", &json!({ "name": "" }))
            .await
            .unwrap_err();
        match &err {
            ClientError::Server { code, message, .. } => {
                assert_eq!(code, "PIT-400");
                assert!(message.contains("name"), "message: {message}");
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        assert_eq!(err.code(), Some("PIT-400"));
        assert!(err.is_server());
    }
}

#[tokio::test]
async fn unknown_route_is_not_found_and_the_connection_stays_usable() {
    let server = Server::start().await;
    let client = Client::connect(&server.url("tcp")).await.unwrap();
    let err = client
        .request::<_, Value>("room.nothing.here", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("PIT-404"));

    let echo: Value = client
        .request("room.test.echo", &json!([1, 2]))
        .await
        .unwrap();
    assert_eq!(echo, json!([1, 2]));
}

#[tokio::test]
async fn pushes_are_filtered_by_route() {
    let server = Server::start().await;
    let client = Client::connect(&server.url("ws")).await.unwrap();
    let mut members = client.pushes("onMembers");
    let mut messages = client.pushes("onMessage");

    let _: Value = client
        .request("room.room.join", &json!({ "name": "ann" }))
        .await
        .unwrap();
    let said = json!({ "name": "ann", "content": "hello" });
    client.notify("room.room.message", &said).await.unwrap();

    let push = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
    assert_eq!(push.route(), "onMessage");
    assert_eq!(push.json::<Value>().unwrap(), said);
    let push = timeout(PATIENCE, members.recv()).await.unwrap().unwrap();
    assert_eq!(push.route(), "onMembers");
    assert_eq!(push.json::<Value>().unwrap(), json!({ "members": ["ann"] }));
    assert_eq!((members.missed(), messages.missed()), (0, 0));
}

#[tokio::test]
async fn notify_from_one_client_reaches_another_as_a_push() {
    let server = Server::start().await;
    let ann = Client::connect(&server.url("tcp")).await.unwrap();
    let bob = Client::connect(&server.url("ws")).await.unwrap();
    let mut bob_events = bob.events();
    let _: Value = ann
        .request("room.room.join", &json!({ "name": "ann" }))
        .await
        .unwrap();
    let _: Value = bob
        .request("room.room.join", &json!({ "name": "bob" }))
        .await
        .unwrap();

    let said = json!({ "name": "ann", "content": "hi bob" });
    ann.notify("room.room.message", &said).await.unwrap();

    // Every event bob sees is a push, in the order the server sent them.
    let mut routes = Vec::new();
    loop {
        match next_event(&mut bob_events).await {
            Event::Push(p) if p.route() == "onMessage" => {
                assert_eq!(p.json::<Value>().unwrap(), said);
                break;
            }
            Event::Push(p) => routes.push(p.route().to_owned()),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(routes, ["onMembers"]);
}

#[tokio::test]
async fn handshake_carries_user_data() {
    let server = Server::start().await;
    let client = ConnectOptions::new()
        .user_data(json!({ "token": "t-1", "level": 3 }))
        .connect(&server.url("tcp"))
        .await
        .unwrap();
    let who: Value = client
        .request("room.test.whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(who, json!({ "user": { "token": "t-1", "level": 3 } }));
}

#[tokio::test]
async fn concurrent_requests_get_their_own_replies() {
    let server = Server::start().await;
    let client = Client::connect(&server.url("tcp")).await.unwrap();
    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move {
            let reply: Value = client.request("room.test.echo", &json!({ "i": i })).await?;
            Ok::<_, ClientError>((i, reply))
        }
    });
    let tasks: Vec<_> = calls.map(tokio::spawn).collect();
    for task in tasks {
        let (i, reply) = task.await.unwrap().unwrap();
        assert_eq!(reply, json!({ "i": i }));
    }
}

#[tokio::test]
async fn reply_of_the_wrong_type_is_a_deserialize_error() {
    let server = Server::start().await;
    let client = Client::connect(&server.url("tcp")).await.unwrap();
    let err = client
        .request::<_, JoinReply>("room.test.echo", &json!("text"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Deserialize(_)), "{err:?}");
}
