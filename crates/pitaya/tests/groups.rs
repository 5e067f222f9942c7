//! Groups and pushes by uid (spec 11): broadcast to many clients joined through a
//! handler, disconnected members reported as failed, pushes to an explicit uid list.

mod common;

use std::time::Duration;

use common::{bind, builder, call_ok, wait_until, Server};
use pitaya::protocol::MessageType;
use pitaya_test_support::{json, RawClient};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(10);

/// Joins `count` clients to `group` as `<prefix><i>`, each through `room.join`.
async fn joined(server: &Server, group: &str, prefix: &str, count: usize) -> Vec<RawClient> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let mut c = server.client().await;
        let arg = json!({"uid": format!("{prefix}{i}"), "group": group});
        assert_eq!(call_ok(&mut c, 1, "room.join", arg).await, json!("joined"));
        clients.push(c);
    }
    clients
}

/// Returns the `room.msg` pushes a client got before the answer to a fresh request.
///
/// Everything queued for the client before the request leaves before its answer, so
/// this is every push sent to it so far.
async fn pushes_until_answer(client: &mut RawClient, id: u64) -> Vec<Value> {
    client.request(id, "svc.echo", b"0").await.unwrap();
    let mut pushes = Vec::new();
    loop {
        let msg = client.recv_message().await.unwrap();
        match msg.kind {
            MessageType::Push if msg.route == "room.msg" => pushes.push(json(&msg)),
            MessageType::Response if msg.id == id => return pushes,
            _ => panic!("unexpected {msg:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_each_of_200_members_exactly_once() {
    let server = Server::start(builder()).await;
    let mut members = joined(&server, "lobby", "m", 200).await;
    assert_eq!(
        server.handle.groups().count_members("lobby").await.unwrap(),
        200
    );

    let mut sender = server.client().await;
    let arg = json!({"group": "lobby", "body": {"text": "hello all"}});
    let failed = call_ok(&mut sender, 1, "room.broadcast", arg).await;
    assert_eq!(failed, json!([]));

    for member in &mut members {
        let got = pushes_until_answer(member, 2).await;
        assert_eq!(got, vec![json!({"text": "hello all"})]);
    }
    // The sender is no member.
    assert!(pushes_until_answer(&mut sender, 2).await.is_empty());
}

#[tokio::test]
async fn members_that_left_are_reported_failed_and_the_rest_still_get_the_push() {
    let server = Server::start(builder()).await;
    let members = joined(&server, "table", "p", 10).await;

    let leavers = [3, 5, 8];
    let (gone, mut members): (Vec<_>, Vec<_>) = members
        .into_iter()
        .enumerate()
        .partition(|(i, _)| leavers.contains(i));
    drop(gone);
    wait_until(LIMIT, "leavers unbound", || {
        ["p3", "p5", "p8"]
            .iter()
            .all(|u| server.handle.session_by_uid(u).is_none())
    })
    .await;

    let mut failed = server
        .handle
        .group_broadcast("", "table", "room.msg", json!({"round": 2}))
        .await
        .unwrap();
    failed.sort();
    assert_eq!(failed, ["p3", "p5", "p8"]);
    for (_, member) in &mut members {
        assert_eq!(
            pushes_until_answer(member, 2).await,
            vec![json!({"round": 2})]
        );
    }
}

#[tokio::test]
async fn push_to_users_reaches_exactly_the_listed_uids() {
    let server = Server::start(builder()).await;
    let mut clients = Vec::new();
    for uid in ["u1", "u2", "u3"] {
        let mut c = server.client().await;
        bind(&mut c, 1, uid).await;
        clients.push(c);
    }

    let uids = ["u1".to_string(), "u3".to_string(), "ghost".to_string()];
    let failed = server
        .handle
        .push_to_users("room.msg", json!({"dm": true}), &uids, "")
        .await
        .unwrap();
    assert_eq!(failed, ["ghost"]);
    let own_type = server
        .handle
        .push_to_users(
            "room.msg",
            json!({"dm": 2}),
            &uids[..1],
            common::SERVER_TYPE,
        )
        .await
        .unwrap();
    assert!(own_type.is_empty());

    let got: Vec<Vec<Value>> = {
        let mut got = Vec::new();
        for c in &mut clients {
            got.push(pushes_until_answer(c, 2).await);
        }
        got
    };
    assert_eq!(
        got,
        vec![
            vec![json!({"dm": true}), json!({"dm": 2})],
            vec![],
            vec![json!({"dm": true})],
        ]
    );
}

#[tokio::test]
async fn push_to_users_of_another_frontend_type_fails_for_all_in_standalone() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;
    bind(&mut client, 1, "u1").await;

    let uids = ["u1".to_string()];
    let failed = server
        .handle
        .push_to_users("room.msg", json!(1), &uids, "gate")
        .await
        .unwrap();
    assert_eq!(failed, ["u1"]);
    assert!(pushes_until_answer(&mut client, 2).await.is_empty());
}

#[tokio::test]
async fn broadcast_to_a_missing_group_is_an_error() {
    let server = Server::start(builder()).await;
    let mut sender = server.client().await;

    let arg = json!({"group": "nowhere", "body": 1});
    let resp = common::call(&mut sender, 1, "room.broadcast", arg).await;
    assert!(resp.error);
    let err = server
        .handle
        .group_broadcast("", "nowhere", "room.msg", json!(1))
        .await;
    assert!(err.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_closed_and_does_not_hold_up_the_others() {
    // A tiny write queue and a write timeout of an hour: if a broadcast waited for room
    // in the stalled member's queue, this test would hang instead of finishing.
    let mut config = common::config();
    config.buffer.agent.messages = 4;
    config.buffer.agent.conn_timeout = Duration::from_secs(3600);
    // Uncompressed, so the pushes really are 64 KiB on the wire.
    config.handler.messages.compression = false;
    let server = Server::start(builder().config(config)).await;
    let mut fast = joined(&server, "g", "fast", 1).await.pop().unwrap();
    let mut stalled = RawClient::tcp_with_recv_buffer(server.tcp, 4096)
        .await
        .unwrap();
    stalled.handshake().await.unwrap();
    let arg = json!({"uid": "stalled", "group": "g"});
    assert_eq!(
        call_ok(&mut stalled, 1, "room.join", arg).await,
        json!("joined")
    );

    const PUSHES: usize = 400;
    let reader = tokio::spawn(async move {
        for _ in 0..PUSHES {
            fast.recv_push("room.msg").await.unwrap();
        }
        fast
    });
    let blob = "x".repeat(64 * 1024);
    let mut stalled_failed = false;
    let broadcasts = async {
        for _ in 0..PUSHES {
            let body = json!({ "blob": blob });
            let failed = server
                .handle
                .group_broadcast("", "g", "room.msg", body)
                .await;
            let failed = failed.unwrap();
            assert!(
                !failed.contains(&"fast0".to_string()),
                "the reading member failed"
            );
            stalled_failed |= failed.contains(&"stalled".to_string());
        }
    };
    tokio::time::timeout(LIMIT, broadcasts)
        .await
        .expect("broadcasts waited on the stalled member");
    let _fast = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();

    assert!(
        stalled_failed,
        "the stalled member never showed up as failed"
    );
    wait_until(LIMIT, "stalled member closed", || {
        server.handle.session_by_uid("stalled").is_none()
    })
    .await;
    assert!(server.handle.session_by_uid("fast0").is_some());
}
