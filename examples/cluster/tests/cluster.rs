//! The clustered chat as separate processes: one connector, room servers, a real NATS
//! and etcd; then the faults a cluster meets: a room killed, NATS and etcd restarting.

mod support;

use pitaya_test_support::{json, RawClient};
use serde_json::json;
use support::{join, member, room, rooms_registered, wait_for, Connector, Infra, Proc};

#[tokio::test]
async fn tcp_and_websocket_members_chat_through_two_rooms() {
    let infra = Infra::start();
    let (_r1, _) = room(&infra).await;
    let (_r2, _) = room(&infra).await;
    let connector = Connector::start(&infra).await;
    rooms_registered(&infra, 2).await;

    let mut ann = connector.tcp_client().await;
    member(&mut ann, "ann").await;
    let mut bob = connector.ws_client().await;
    member(&mut bob, "bob").await;
    let news = ann.recv_push("onNewUser").await.unwrap();
    assert_eq!(json(&news), json!({ "content": "New user: bob" }));

    // Messages go to a random room each time; membership is shared in etcd.
    for n in 0..6 {
        let msg = json!({ "name": "bob", "content": format!("hi {n}") });
        bob.notify("room.room.message", msg.to_string().as_bytes())
            .await
            .unwrap();
        for c in [&mut ann, &mut bob] {
            assert_eq!(json(&c.recv_push("onMessage").await.unwrap()), msg);
        }
    }

    // A member whose connection closes leaves the room (the connector tells a room
    // server; a later joiner's member list shows it).
    drop(bob);
    let addr = connector.tcp;
    let mut n = 0;
    wait_for("bob to leave the room", || {
        n += 1;
        let nick = format!("late{n}");
        async move {
            let mut c = RawClient::tcp(addr).await.unwrap();
            c.handshake().await.unwrap();
            c.request(
                1,
                "room.room.join",
                json!({ "name": nick }).to_string().as_bytes(),
            )
            .await
            .unwrap();
            let members = json(&c.recv_push("onMembers").await.unwrap())["members"].clone();
            assert!(
                members.as_array().unwrap().contains(&json!("ann")),
                "{members}"
            );
            !members.as_array().unwrap().contains(&json!("bob"))
        }
    })
    .await;
}

#[tokio::test]
async fn a_killed_room_is_dropped_and_requests_go_to_the_survivor() {
    let infra = Infra::start();
    let (mut doomed, doomed_id) = room(&infra).await;
    let (_survivor, survivor_id) = room(&infra).await;
    let connector = Connector::start(&infra).await;
    rooms_registered(&infra, 2).await;

    doomed.kill();
    // Right away, while discovery still lists the dead room, joins succeed.
    for n in 0..8 {
        let mut c = connector.tcp_client().await;
        let (ok, body) = join(&mut c, 1, &format!("early{n}")).await;
        assert!(ok, "join {n} failed: {body}");
    }
    // The dead room's lease ends and its record goes; the survivor stays.
    wait_for("the killed room's record to expire", || async {
        infra.registered("room").await == vec![survivor_id.clone()]
    })
    .await;
    assert!(!infra.registered("room").await.contains(&doomed_id));
    for n in 0..8 {
        let mut c = connector.tcp_client().await;
        let (ok, body) = join(&mut c, 1, &format!("late{n}")).await;
        assert!(ok, "join {n} failed: {body}");
    }
}

#[tokio::test]
async fn nats_going_away_fails_requests_fast_and_service_resumes_when_it_returns() {
    let mut infra = Infra::start();
    let (_room, _) = room(&infra).await;
    let connector = Connector::start(&infra).await;
    rooms_registered(&infra, 1).await;
    let mut c = connector.tcp_client().await;
    member(&mut c, "dana").await;

    infra.nats().stop();
    // Each request is answered with an error instead of hanging; the client
    // connection stays up.
    let mut seen_error = None;
    for id in 10..20 {
        let body = json!({ "name": format!("x{id}") }).to_string();
        c.request(id, "room.room.join", body.as_bytes())
            .await
            .unwrap();
        let resp = c
            .recv_response()
            .await
            .expect("an answer while NATS is down");
        assert_eq!(resp.id, id);
        if resp.error {
            seen_error = Some(json(&resp));
        }
    }
    let error = seen_error.expect("requests fail while NATS is down");
    assert_ne!(
        error["code"], "PIT-408",
        "failed fast, not by timeout: {error}"
    );

    infra.nats().restart().expect("nats restarts");
    let mut id = 100;
    wait_for("service to resume after NATS returns", || {
        id += 1;
        let addr = connector.tcp;
        let nick = format!("back{id}");
        async move {
            let Ok(mut c) = RawClient::tcp(addr).await else {
                return false;
            };
            if c.handshake().await.is_err() {
                return false;
            }
            join(&mut c, 1, &nick).await.0
        }
    })
    .await;
}

#[tokio::test]
async fn after_etcd_restarts_empty_every_server_registers_again_and_finds_new_ones() {
    let mut infra = Infra::start();
    let (mut old_room, _) = room(&infra).await;
    let connector = Connector::start(&infra).await;
    rooms_registered(&infra, 1).await;

    infra.etcd.restart_empty().expect("etcd restarts");
    wait_for("servers to register again", || async {
        infra.registered("room").await.len() == 1
            && infra.registered("connector").await == vec![connector.id.clone()]
    })
    .await;
    // The room group went with etcd's data; joining brings it back.
    let mut c = connector.tcp_client().await;
    member(&mut c, "dan").await;

    // A room started after the restart is found, and serves once the old one is gone.
    let (_new_room, new_id) = room(&infra).await;
    old_room.kill();
    wait_for("only the new room to be registered", || async {
        infra.registered("room").await == vec![new_id.clone()]
    })
    .await;
    let mut c = connector.tcp_client().await;
    member(&mut c, "eve").await;
}

#[tokio::test]
async fn a_server_still_waiting_for_nats_stops_on_sigterm() {
    let mut infra = Infra::start();
    infra.nats().stop();
    let mut connector = Proc::start(
        &infra,
        &["connector", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0"],
    );
    connector.line_with(&["nats not reachable yet"]).await;
    let status = connector.terminate().await;
    assert!(status.success(), "{status}");
    connector.line_with(&["shutdown complete"]).await;
}

#[tokio::test]
async fn a_server_that_loses_nats_for_good_exits_with_an_error() {
    let mut infra = Infra::start();
    let (mut room, _) = room(&infra).await;
    rooms_registered(&infra, 1).await;
    infra.nats().stop();
    // Pitaya's defaults: 15 reconnection attempts a second apart, then the app stops.
    room.line_with(&["lost for good"]).await;
    let status = room.wait().await;
    assert_eq!(status.code(), Some(1), "{status}");
}
