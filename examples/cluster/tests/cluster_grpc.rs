//! The clustered chat switched to gRPC by configuration alone: no NATS at all, the
//! servers call each other over gRPC and find users through etcd's binding storage.

mod support;

use futures_util::stream::{self, StreamExt};
use pitaya::protocol::PacketType;
use pitaya_test_support::{json, RawClient};
use serde_json::json;
use support::{join, member, room, rooms_registered, wait_for, Connector, Infra, Proc};

#[tokio::test]
async fn members_on_two_connectors_chat_through_two_rooms() {
    let infra = Infra::start_grpc();
    let (_r1, _) = room(&infra).await;
    let (_r2, _) = room(&infra).await;
    let c1 = Connector::start(&infra).await;
    let c2 = Connector::start(&infra).await;
    rooms_registered(&infra, 2).await;

    let mut ann = c1.tcp_client().await;
    member(&mut ann, "ann").await;
    let mut bob = c2.ws_client().await;
    member(&mut bob, "bob").await;
    // A room pushes to ann on the other connector, found by uid.
    let news = ann.recv_push("onNewUser").await.unwrap();
    assert_eq!(json(&news), json!({ "content": "New user: bob" }));

    for n in 0..6 {
        let msg = json!({ "name": "bob", "content": format!("hi {n}") });
        bob.notify("room.room.message", msg.to_string().as_bytes())
            .await
            .unwrap();
        for c in [&mut ann, &mut bob] {
            assert_eq!(json(&c.recv_push("onMessage").await.unwrap()), msg);
        }
    }
}

#[tokio::test]
async fn a_nick_joining_on_another_connector_kicks_its_older_connection() {
    let infra = Infra::start_grpc();
    let (_room, _) = room(&infra).await;
    let mut c1 = Connector::start(&infra).await;
    let c2 = Connector::start(&infra).await;
    rooms_registered(&infra, 1).await;

    let mut old = c1.tcp_client().await;
    member(&mut old, "cleo").await;
    let mut new = c2.tcp_client().await;
    member(&mut new, "cleo").await;

    let seen = old.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    // The old connection's close is a replacement, not a leave: no `room.chat.leave`.
    c1.proc
        .line_with(&["replaced by a newer login", "uid=cleo"])
        .await;
    // The new connection is still up, bound, and in the room.
    let (ok, body) = join(&mut new, 2, "cleo").await;
    assert!(!ok);
    assert!(
        body["msg"].as_str().unwrap().contains("already joined"),
        "{body}"
    );
    let mut dan = c1.tcp_client().await;
    member(&mut dan, "dan").await;
    let msg = json!({ "name": "dan", "content": "still there, cleo?" });
    dan.notify("room.room.message", msg.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(json(&new.recv_push("onMessage").await.unwrap()), msg);
}

#[tokio::test]
async fn a_killed_room_is_skipped_and_then_dropped() {
    let infra = Infra::start_grpc();
    let (mut doomed, doomed_id) = room(&infra).await;
    let (_survivor, survivor_id) = room(&infra).await;
    let connector = Connector::start(&infra).await;
    rooms_registered(&infra, 2).await;

    doomed.kill();
    // While discovery still lists the dead room its port refuses connections, so
    // each join is sent to the survivor instead.
    for n in 0..8 {
        let mut c = connector.tcp_client().await;
        let (ok, body) = join(&mut c, 1, &format!("early{n}")).await;
        assert!(ok, "join {n} failed: {body}");
    }
    wait_for("the killed room's record to expire", || async {
        infra.registered("room").await == vec![survivor_id.clone()]
    })
    .await;
    assert!(!infra.registered("room").await.contains(&doomed_id));
    let mut c = connector.tcp_client().await;
    member(&mut c, "late").await;
}

/// Clients of the load test; the conformance suite's default.
const MANY: usize = 300;

/// Joins under way at once, the conformance suite's load check's.
const JOINS_IN_FLIGHT: usize = 64;

#[tokio::test]
async fn a_few_hundred_members_join_and_all_get_a_message() {
    let infra = Infra::start_grpc();
    let (_r1, _) = room(&infra).await;
    let (_r2, _) = room(&infra).await;
    let connector = Connector::start(&infra).await;
    rooms_registered(&infra, 2).await;

    // Every member stays connected; joins run JOINS_IN_FLIGHT at a time, as in the
    // conformance suite's load check, and each pushes onNewUser to all the members
    // before it, found through the binding storage.
    let joins = (0..MANY).map(|n| {
        let connector = &connector;
        async move {
            let mut c = if n % 2 == 0 {
                connector.tcp_client().await
            } else {
                connector.ws_client().await
            };
            // Slow reads are the machine's, not the server's fault: the bound is WAIT.
            c.timeout = support::WAIT;
            member(&mut c, &format!("m{n}")).await;
            c
        }
    });
    let mut members: Vec<_> = stream::iter(joins)
        .buffer_unordered(JOINS_IN_FLIGHT)
        .collect()
        .await;

    let msg = json!({ "name": "any", "content": "to everyone" });
    let first = members.first_mut().expect("members joined");
    first
        .notify("room.room.message", msg.to_string().as_bytes())
        .await
        .unwrap();
    let got = members.iter_mut().map(|c| async {
        let push = c.recv_push("onMessage").await.unwrap();
        json(&push)
    });
    for body in futures_util::future::join_all(got).await {
        assert_eq!(body, msg);
    }
}

#[tokio::test]
async fn a_member_on_one_connector_is_kicked_by_uid_from_another() {
    let infra = Infra::start_grpc();
    let (_room, _) = room(&infra).await;
    let c1 = Connector::start(&infra).await;
    let c2 = Connector::start(&infra).await;
    rooms_registered(&infra, 1).await;

    let mut ann = c1.tcp_client().await;
    member(&mut ann, "ann").await;
    let mut bob = c2.tcp_client().await;
    member(&mut bob, "bob").await;

    // The room finds ann's connector in the binding storage and calls KickUser there.
    bob.request(2, "room.room.kick", br#"{"name":"ann"}"#)
        .await
        .unwrap();
    let answer = bob.recv_response().await.unwrap();
    assert_eq!(json(&answer), json!({ "code": 0, "kicked": true }));
    let seen = ann.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");

    bob.request(3, "room.room.kick", br#"{"name":"nobody"}"#)
        .await
        .unwrap();
    let answer = bob.recv_response().await.unwrap();
    assert_eq!(json(&answer), json!({ "code": 0, "kicked": false }));
}

#[tokio::test]
async fn a_room_runs_its_sidecar_program_and_stops_it_on_sigterm() {
    let infra = Infra::start_grpc();
    let script = "echo sidecar up; exec sleep 600";
    let args = [
        "room",
        "--sidecar",
        "sh",
        "--sidecar-arg",
        "-c",
        "--sidecar-arg",
        script,
    ];
    let mut room = Proc::start(&infra, &args);
    room.joined().await;
    // Modules start before the room joins the cluster: the lines came already.
    let started = room
        .logged(&["child process started"])
        .expect("start logged");
    let pid = support::field(started, "pid").expect("pid in the start line");
    support::go::saw(&mut room, &["sidecar up"]).await;
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    let status = room.terminate().await;
    assert!(status.success(), "room exited with {status}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the sidecar {pid} outlived the room"
    );
}

#[tokio::test]
async fn a_connectors_acceptor_options_switch_on_from_the_environment() {
    let infra = Infra::start_grpc();
    let (_room, _) = room(&infra).await;
    let env = [
        ("PITAYA_ACCEPTOR_PROXYPROTOCOL", "true"),
        ("PITAYA_ACCEPTOR_MAXCONNECTIONS", "1"),
        ("PITAYA_CONN_RATELIMITING_ENABLED", "true"),
        ("PITAYA_CONN_RATELIMITING_LIMIT", "3"),
        ("PITAYA_CONN_RATELIMITING_INTERVAL", "1h"),
    ];
    let mut connector = Connector::start_env(&infra, &env).await;
    rooms_registered(&infra, 1).await;

    // Header, handshake, ack and a join: the join is the third packet of the hour.
    let mut c = RawClient::tcp(connector.tcp).await.unwrap();
    c.send_raw(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 3250\r\n")
        .await
        .unwrap();
    c.handshake().await.unwrap();
    c.timeout = support::WAIT;
    let (ok, body) = join(&mut c, 1, "proxied").await;
    assert!(ok, "{body}");
    c.request(2, "room.room.join", br#"{"name":"again"}"#)
        .await
        .unwrap();
    connector.proc.line_with(&["rate limit exceeded"]).await;

    let mut second = RawClient::tcp(connector.tcp).await.unwrap();
    assert!(second.expect_closed().await.unwrap().is_empty());
    connector
        .proc
        .line_with(&["connection limit reached"])
        .await;
}

#[tokio::test]
async fn a_draining_connector_refuses_new_clients_and_keeps_its_members_chatting() {
    let infra = Infra::start_grpc();
    let (_room, _) = room(&infra).await;
    let env = [("PITAYA_SESSION_DRAIN_ENABLED", "true")];
    let mut draining = Connector::start_env(&infra, &env).await;
    let other = Connector::start(&infra).await;
    rooms_registered(&infra, 1).await;
    let mut ann = draining.tcp_client().await;
    member(&mut ann, "ann").await;
    let mut bob = other.tcp_client().await;
    member(&mut bob, "bob").await;

    let pid = draining.proc.pid().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(sent.expect("kill runs").success());
    draining.proc.line_with(&["draining sessions"]).await;
    assert!(
        RawClient::tcp(draining.tcp).await.is_err(),
        "tcp still listens"
    );
    assert!(
        RawClient::tcp(draining.ws).await.is_err(),
        "ws still listens"
    );

    // Still in discovery: the room reaches ann through the draining connector.
    let msg = json!({ "name": "bob", "content": "still here?" });
    bob.notify("room.room.message", msg.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(json(&ann.recv_push("onMessage").await.unwrap()), msg);

    drop(ann);
    let ended = ["session draining ended", "end=Drained"];
    draining.proc.line_with(&ended).await;
    let status = draining.proc.wait().await;
    assert!(
        status.success(),
        "the drained connector exited with {status}"
    );
}
