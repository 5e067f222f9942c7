//! Mixed clusters: Go Pitaya v1 servers (`interop/go-cluster`) next to `cluster-chat`
//! servers, over a real etcd and either a real NATS or gRPC: chat in both directions,
//! discovery both ways, rooms of both kinds at once.
//!
//! Ignored by a plain `cargo test`: they need `GO_CLUSTER_BIN`, the Go binary, and run
//! with `-- --ignored` (`scripts/test.sh` builds the binary and runs them).

mod support;

use pitaya_test_support::{json, RawClient};
use serde_json::{json, Value};
use support::go::{go_bin, go_room, rust_room, saw, two_frontends, GoConnector, RUST_LOG};
use support::{join, member, Connector, Infra, Proc};

/// One server as the tests know it: process, type, id, whether it is a frontend.
struct Server<'a> {
    proc: &'a mut Proc,
    kind: &'static str,
    id: &'a str,
    frontend: bool,
}

/// Checks both etcd records, in Pitaya's JSON layout, and that each server's discovery
/// found the other one. With gRPC, each record must carry its address metadata.
async fn see_each_other(infra: &Infra, go: Server<'_>, rust: Server<'_>, grpc: bool) {
    for s in [&go, &rust] {
        let record = infra
            .record(s.kind, s.id)
            .await
            .unwrap_or_else(|| panic!("no etcd record for {} {}", s.kind, s.id));
        assert_eq!(record["id"], json!(s.id), "{record}");
        assert_eq!(record["type"], json!(s.kind), "{record}");
        assert_eq!(record["frontend"], json!(s.frontend), "{record}");
        assert!(record["hostname"].is_string(), "{record}");
        let metadata = &record["metadata"];
        if grpc {
            assert_eq!(metadata["grpcHost"], json!("127.0.0.1"), "{record}");
            let port = metadata["grpcPort"].as_str().unwrap_or_default();
            assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{record}");
        } else {
            assert!(metadata.is_object() || metadata.is_null(), "{record}");
        }
    }
    let rust_id = format!("server_id={}", rust.id);
    saw(go.proc, &["discovered", &rust_id]).await;
    let go_key = format!("pitaya/servers/{}/{}", go.kind, go.id);
    saw(rust.proc, &["server added", &go_key]).await;
}

/// Two members chat; `bob` then disconnects and the room serving `room` sees him leave.
///
/// Covers: forwarded requests and notifies with their answers, the bind of each
/// session on its frontend, pushes to the joiner's own session, pushes by uid and the
/// group broadcast, and the connector's user RPC `room.chat.leave`.
async fn chat(mut ann: RawClient, mut bob: RawClient, room: &mut Proc) {
    member(&mut ann, "ann").await;
    member(&mut bob, "bob").await;
    let news = ann.recv_push("onNewUser").await.unwrap();
    assert_eq!(json(&news), json!({ "content": "New user: bob" }));

    // The frontend now holds bob's uid: the next forwarded session carries it.
    let (ok, body) = join(&mut bob, 2, "bob2").await;
    assert!(!ok, "a second join on one connection succeeded: {body}");
    assert_eq!(body["code"], json!("PIT-400"), "{body}");
    assert!(
        body["msg"].as_str().unwrap().contains("already joined"),
        "{body}"
    );

    for n in 0..3 {
        let msg = json!({ "name": "bob", "content": format!("hi {n}") });
        bob.notify("room.room.message", msg.to_string().as_bytes())
            .await
            .unwrap();
        for c in [&mut ann, &mut bob] {
            assert_eq!(json(&c.recv_push("onMessage").await.unwrap()), msg);
        }
    }

    // Bad input and unknown routes come back as the room's errors, codes kept.
    let (ok, body) = join(&mut ann, 3, "").await;
    assert!(!ok);
    assert_eq!(body["code"], json!("PIT-400"), "{body}");
    ann.request(4, "room.room.nope", b"{}").await.unwrap();
    let resp = ann.recv_response().await.unwrap();
    assert!(resp.error && resp.id == 4, "{}", json(&resp));
    assert_eq!(json(&resp)["code"], json!("PIT-404"), "{}", json(&resp));

    drop(bob);
    room.line_with(&["left the room", "uid=bob"]).await;
}

/// Returns the members a new joiner sees.
async fn members_seen_by(mut c: RawClient, nick: &str) -> Value {
    let body = json!({ "name": nick }).to_string();
    c.request(1, "room.room.join", body.as_bytes())
        .await
        .unwrap();
    json(&c.recv_push("onMembers").await.unwrap())["members"].clone()
}

// ===== NATS =====

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_rust_connector_chats_in_a_go_room() {
    let go = go_bin();
    let infra = Infra::start();
    // The Rust server first: it logs servers its watch adds, not those it lists at start.
    let mut connector = Connector::start_env(&infra, &[RUST_LOG]).await;
    let (mut room, room_id) = go_room(&go, &infra).await;
    let go_side = Server {
        proc: &mut room,
        kind: "room",
        id: &room_id,
        frontend: false,
    };
    let rust_side = Server {
        proc: &mut connector.proc,
        kind: "connector",
        id: &connector.id,
        frontend: true,
    };
    see_each_other(&infra, go_side, rust_side, false).await;

    let (ann, bob) = (connector.tcp_client().await, connector.ws_client().await);
    chat(ann, bob, &mut room).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_go_connector_forwards_to_a_rust_room() {
    let go = go_bin();
    let infra = Infra::start();
    let (mut room, room_id) = rust_room(&infra).await;
    let mut connector = GoConnector::start(&go, &infra).await;
    let go_side = Server {
        proc: &mut connector.proc,
        kind: "connector",
        id: &connector.id,
        frontend: true,
    };
    let rust_side = Server {
        proc: &mut room,
        kind: "room",
        id: &room_id,
        frontend: false,
    };
    see_each_other(&infra, go_side, rust_side, false).await;

    let (ann, bob) = (connector.client().await, connector.client().await);
    chat(ann, bob, &mut room).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_go_and_rust_rooms_share_one_membership() {
    let go = go_bin();
    let infra = Infra::start();
    let (mut rust_room, rust_id) = rust_room(&infra).await;
    let (mut go_room, go_id) = go_room(&go, &infra).await;
    let connector = Connector::start(&infra).await;
    saw(
        &mut go_room,
        &["discovered", &format!("server_id={rust_id}")],
    )
    .await;
    support::wait_for("both rooms in etcd", || async {
        let mut ids = infra.registered("room").await;
        ids.sort();
        let mut want = vec![go_id.clone(), rust_id.clone()];
        want.sort();
        ids == want
    })
    .await;

    // Joins land on either room at random (20 of them all on one room: 1 time in
    // 2^19); both rooms add to the one etcd group.
    let nicks: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    let mut clients = Vec::new();
    for nick in &nicks {
        let mut c = connector.tcp_client().await;
        member(&mut c, nick).await;
        clients.push(c);
    }
    saw(&mut go_room, &["joined the room"]).await;
    saw(&mut rust_room, &["joined the room"]).await;
    let members = members_seen_by(connector.tcp_client().await, "last").await;
    for nick in &nicks {
        let listed = members.as_array().unwrap().contains(&json!(nick));
        assert!(listed, "{nick} missing from {members}");
    }
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_servers_that_stop_leave_each_others_discovery() {
    let go = go_bin();
    let infra = Infra::start();
    let mut connector = Connector::start_env(&infra, &[RUST_LOG]).await;
    let (mut rust_room, rust_id) = rust_room(&infra).await;
    let (mut go_room, go_id) = go_room(&go, &infra).await;
    let go_key = format!("pitaya/servers/room/{go_id}");
    saw(&mut connector.proc, &["server added", &go_key]).await;
    saw(
        &mut go_room,
        &["discovered", &format!("server_id={rust_id}")],
    )
    .await;

    // Each one deregisters on SIGTERM, and the others drop it without waiting for
    // its lease to expire.
    assert!(rust_room.terminate().await.success());
    go_room
        .line_with(&["removed", &format!("server_id={rust_id}")])
        .await;
    let status = go_room.terminate().await;
    assert!(status.success(), "{status}");
    connector.proc.line_with(&["server removed", &go_id]).await;
    assert_eq!(infra.registered("room").await, Vec::<String>::new());
}

// ===== gRPC =====

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_rust_connector_chats_in_a_go_room() {
    let go = go_bin();
    let infra = Infra::start_grpc();
    // The Rust server first: it logs servers its watch adds, not those it lists at start.
    let mut connector = Connector::start_env(&infra, &[RUST_LOG]).await;
    let (mut room, room_id) = go_room(&go, &infra).await;
    let go_side = Server {
        proc: &mut room,
        kind: "room",
        id: &room_id,
        frontend: false,
    };
    let rust_side = Server {
        proc: &mut connector.proc,
        kind: "connector",
        id: &connector.id,
        frontend: true,
    };
    see_each_other(&infra, go_side, rust_side, true).await;

    let (ann, bob) = (connector.tcp_client().await, connector.ws_client().await);
    chat(ann, bob, &mut room).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_go_connector_forwards_to_a_rust_room() {
    let go = go_bin();
    let infra = Infra::start_grpc();
    let (mut room, room_id) = rust_room(&infra).await;
    let mut connector = GoConnector::start(&go, &infra).await;
    let go_side = Server {
        proc: &mut connector.proc,
        kind: "connector",
        id: &connector.id,
        frontend: true,
    };
    let rust_side = Server {
        proc: &mut room,
        kind: "room",
        id: &room_id,
        frontend: false,
    };
    see_each_other(&infra, go_side, rust_side, true).await;

    let (ann, bob) = (connector.client().await, connector.client().await);
    chat(ann, bob, &mut room).await;
}

// ===== Everything mixed =====

/// `ann` on the Rust connector and `bob` on the Go one chat while a Rust and a Go room
/// share the work: every push reaches both frontends, whichever room sends it.
async fn two_connectors_two_rooms(go: &str, infra: &Infra) {
    let (rust, go_connector, _rust_room) = two_frontends(go, infra).await;
    let (mut go_room, _) = go_room(go, infra).await;
    saw(
        &mut go_room,
        &["discovered", &format!("server_id={}", rust.id)],
    )
    .await;
    let mut ann = rust.tcp_client().await;
    member(&mut ann, "ann").await;
    let mut bob = go_connector.client().await;
    member(&mut bob, "bob").await;
    let news = ann.recv_push("onNewUser").await.unwrap();
    assert_eq!(json(&news), json!({ "content": "New user: bob" }));

    // Notifies go to a random room each; the Go room serves at least one of the 12
    // but 1 time in 4096.
    for n in 0..12 {
        let (from, name) = if n % 2 == 0 {
            (&mut ann, "ann")
        } else {
            (&mut bob, "bob")
        };
        let msg = json!({ "name": name, "content": format!("hi {n}") });
        from.notify("room.room.message", msg.to_string().as_bytes())
            .await
            .unwrap();
        for c in [&mut ann, &mut bob] {
            assert_eq!(json(&c.recv_push("onMessage").await.unwrap()), msg);
        }
    }
    saw(&mut go_room, &["broadcast route=onMessage"]).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_members_on_go_and_rust_connectors_chat_through_go_and_rust_rooms() {
    let go = go_bin();
    two_connectors_two_rooms(&go, &Infra::start()).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_members_on_go_and_rust_connectors_chat_through_go_and_rust_rooms() {
    let go = go_bin();
    two_connectors_two_rooms(&go, &Infra::start_grpc()).await;
}
