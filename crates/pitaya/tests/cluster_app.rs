//! Cluster mode end to end: frontends and backends in this process, talking over a
//! real NATS and finding each other in a real etcd.
#![cfg(all(feature = "nats", feature = "etcd"))]

mod cluster_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_support::apps::{connector, ok, request, room};
use cluster_support::{wait_for, Infra, Node};
use pitaya::cluster::rpc::protos::Push;
use pitaya::protocol::{MessageType, PacketType};
use pitaya_test_support::json;
use serde_json::{json, Value};

/// A connector and a room, each seeing the other.
async fn pair(infra: &Infra) -> (Node, Node) {
    let front = Node::frontend(connector(), infra.config()).await;
    let back = Node::backend(room(), infra.config()).await;
    front.sees("room", 1).await;
    back.sees("connector", 1).await;
    (front, back)
}

#[tokio::test]
async fn forwarded_request_is_answered_by_a_backend_with_the_session_snapshot() {
    let infra = Infra::start();
    let (front, back) = pair(&infra).await;
    let mut c = front.client().await;

    let got = ok(&mut c, 1, "room.room.echo", json!({ "x": 1 })).await;
    assert_eq!(got["echo"], json!({ "x": 1 }));
    assert_eq!(got["server"], back.id());
    assert_eq!(got["frontend"], front.id());
    assert_eq!(got["uid"], Value::Null);
    assert_eq!(got["data"]["ipversion"], "ipv4");

    // A route of the frontend's own type is still served locally.
    let local = ok(&mut c, 2, "connector.conn.get", json!("ipversion")).await;
    assert_eq!(local, "ipv4");
}

#[tokio::test]
async fn backend_error_reaches_the_client_with_code_message_and_metadata() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;

    let (error, body) = request(&mut c, 7, "room.room.fail", json!({})).await;
    assert!(error, "the error bit is relayed");
    assert_eq!(body["code"], "GAME-1");
    assert_eq!(body["msg"], "room is full");
    assert_eq!(body["metadata"]["room"], "7");
}

#[tokio::test]
async fn unknown_backend_route_answers_pit_404_and_missing_type_pit_500() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;

    let (error, body) = request(&mut c, 1, "room.room.nope", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-404");

    let (error, body) = request(&mut c, 2, "lobby.hall.enter", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-500");
    assert!(body["msg"].as_str().unwrap().contains("lobby"), "{body}");
}

#[tokio::test]
async fn backend_bind_binds_on_the_frontend_and_backend_pushes_reach_the_client() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;

    c.request(1, "room.room.join", br#"{"uid":"alice"}"#)
        .await
        .unwrap();
    // The push travels on the user's subject and the response on the call's reply
    // inbox: either may arrive first.
    let (mut push, mut resp) = (None, None);
    while push.is_none() || resp.is_none() {
        let msg = c.recv_message().await.unwrap();
        match msg.kind {
            MessageType::Push if msg.route == "onJoined" => push = Some(json(&msg)),
            MessageType::Response => resp = Some(json(&msg)),
            _ => {}
        }
    }
    assert_eq!(push.unwrap(), json!({ "uid": "alice" }));
    assert_eq!(resp.unwrap(), json!({ "joined": "alice" }));

    let session = front
        .handle
        .session_by_uid("alice")
        .expect("bound on the frontend");
    assert_eq!(session.uid().as_deref(), Some("alice"));
    // Later forwarded messages carry the uid in their snapshot.
    let got = ok(&mut c, 2, "room.room.echo", json!(null)).await;
    assert_eq!(got["uid"], "alice");

    // A forwarded notify runs on the backend, which pushes by uid.
    c.notify("room.room.note", br#"{"n":5}"#).await.unwrap();
    let note = c.recv_push("onNote").await.unwrap();
    assert_eq!(json(&note), json!({ "n": 5 }));
}

#[tokio::test]
async fn push_to_front_replaces_the_frontend_session_data() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;

    ok(
        &mut c,
        1,
        "room.room.setdata",
        json!({ "key": "level", "value": 3 }),
    )
    .await;
    assert_eq!(ok(&mut c, 2, "connector.conn.get", json!("level")).await, 3);
    // The backend's copy held `ipversion` too, so the replacement kept it.
    assert_eq!(
        ok(&mut c, 3, "connector.conn.get", json!("ipversion")).await,
        "ipv4"
    );
}

#[tokio::test]
async fn backend_kick_disconnects_the_client_with_a_kick_packet() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;
    ok(&mut c, 1, "room.room.join", json!({ "uid": "bob" })).await;

    c.request(2, "room.room.kickme", b"{}").await.unwrap();
    let seen = c.expect_closed().await.unwrap();
    assert!(
        seen.iter().any(|p| p.kind == PacketType::Kick),
        "no kick packet in {seen:?}"
    );
    let h = front.handle.clone();
    wait_for("the kicked session to close", move || {
        let h = h.clone();
        async move { h.session_by_uid("bob").is_none() }
    })
    .await;
}

#[tokio::test]
async fn backend_session_refuses_close_callbacks() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;
    let msg = ok(&mut c, 1, "room.room.onclose", json!({})).await;
    assert!(msg.as_str().unwrap().contains("frontend"), "{msg}");
}

#[tokio::test]
async fn push_and_kick_by_uid_from_a_backend_reach_users_on_every_frontend() {
    let infra = Infra::start();
    let f1 = Node::frontend(connector(), infra.config()).await;
    let f2 = Node::frontend(connector(), infra.config()).await;
    let back = Node::backend(room(), infra.config()).await;
    for f in [&f1, &f2] {
        f.sees("room", 1).await;
    }
    back.sees("connector", 2).await;

    let mut a = f1.client().await;
    let mut b = f2.client().await;
    ok(&mut a, 1, "room.room.join", json!({ "uid": "a" })).await;
    ok(&mut b, 1, "room.room.join", json!({ "uid": "b" })).await;

    let uids = vec!["a".to_owned(), "b".to_owned()];
    let failed = back
        .handle
        .push_to_users("onNews", json!({ "n": 1 }), &uids, "connector")
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    for c in [&mut a, &mut b] {
        assert_eq!(
            json(&c.recv_push("onNews").await.unwrap()),
            json!({ "n": 1 })
        );
    }

    // A backend must say which frontends hold the users.
    let err = back
        .handle
        .push_to_users("onNews", json!(1), &uids, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PIT-500");

    let failed = back.handle.kick_users(&["b".to_owned()], "connector").await;
    assert!(failed.is_empty(), "{failed:?}");
    let seen = b.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    // The other user is untouched.
    assert_eq!(ok(&mut a, 2, "room.room.echo", json!(2)).await["uid"], "a");
}

#[tokio::test]
async fn a_second_login_on_another_frontend_kicks_the_first() {
    let infra = Infra::start();
    let f1 = Node::frontend(connector(), infra.config()).await;
    let f2 = Node::frontend(connector(), infra.config()).await;
    let _back = Node::backend(room(), infra.config()).await;
    for f in [&f1, &f2] {
        f.sees("room", 1).await;
        f.sees("connector", 2).await;
    }

    let mut first = f1.client().await;
    ok(&mut first, 1, "room.room.join", json!({ "uid": "carol" })).await;
    let mut second = f2.client().await;
    ok(&mut second, 1, "room.room.join", json!({ "uid": "carol" })).await;

    let seen = first.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    assert!(f2.handle.session_by_uid("carol").is_some());
    assert_eq!(
        ok(&mut second, 2, "room.room.echo", json!(0)).await["uid"],
        "carol"
    );
}

#[tokio::test]
async fn user_rpcs_reach_remotes_by_type_or_id_and_report_errors() {
    let infra = Infra::start();
    let (front, back) = pair(&infra).await;
    let arg = Push {
        data: Bytes::from_static(b"hi"),
        ..Push::default()
    };

    let reply: Push = front.handle.rpc("room.stats.ping", &arg).await.unwrap();
    assert_eq!(
        (reply.uid.as_str(), &reply.data[..]),
        (back.id().as_str(), &b"hi"[..])
    );
    let reply: Push = front
        .handle
        .rpc_to(&back.id(), "room.stats.ping", &arg)
        .await
        .unwrap();
    assert_eq!(reply.route, "pong");

    let err = front
        .handle
        .rpc::<Push>("room.stats.nope", &arg)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PIT-404");
    let err = front
        .handle
        .rpc::<Push>("lobby.stats.ping", &arg)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PIT-500");
    let err = front
        .handle
        .rpc::<Push>("stats.ping", &arg)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PIT-500");
    let err = back
        .handle
        .rpc::<Push>("room.stats.ping", &arg)
        .await
        .unwrap_err();
    assert!(err.message().contains("own type"), "{err}");
}

#[tokio::test]
async fn a_backend_slower_than_the_rpc_timeout_answers_pit_408() {
    let infra = Infra::start();
    let mut config = infra.config();
    config.cluster.rpc.client.nats.request_timeout = Duration::from_millis(300);
    let front = Node::frontend(connector(), config).await;
    let _back = Node::backend(room(), infra.config()).await;
    front.sees("room", 1).await;
    let mut c = front.client().await;

    let (error, body) = request(&mut c, 1, "room.room.slow", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-408");
    assert_eq!(body["metadata"]["route"], "room.room.slow");
}

#[tokio::test]
async fn a_custom_router_chooses_the_backend_of_forwarded_messages() {
    let infra = Infra::start();
    let router = |_: &pitaya::cluster::RouteRequest<'_>, servers: &[Arc<_>]| {
        servers
            .iter()
            .max_by(|a: &&Arc<pitaya::cluster::ServerInfo>, b| a.id.cmp(&b.id))
            .cloned()
    };
    let front = Node::frontend(connector().router("room", router), infra.config()).await;
    let b1 = Node::backend(room(), infra.config()).await;
    let b2 = Node::backend(room(), infra.config()).await;
    front.sees("room", 2).await;
    let chosen = b1.id().max(b2.id());

    let mut c = front.client().await;
    for id in 1..=8 {
        let got = ok(&mut c, id, "room.room.echo", json!(id)).await;
        assert_eq!(got["server"], chosen);
    }
}

#[tokio::test]
async fn malformed_messages_on_a_server_subject_are_dropped_and_serving_goes_on() {
    let infra = Infra::start();
    let (front, back) = pair(&infra).await;
    let raw = async_nats::connect(infra.nats.url()).await.unwrap();
    let subject = format!("pitaya/servers/room/{}", back.id());
    for junk in [&b"\xff\xff\xff"[..], b"", b"\x0a\x02\x08"] {
        raw.publish(subject.clone(), Bytes::copy_from_slice(junk))
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();

    let mut c = front.client().await;
    let got = ok(&mut c, 1, "room.room.echo", json!("still here")).await;
    assert_eq!(got["echo"], "still here");
    assert_eq!(got["server"], back.id());
    // The kind is checked so the message is a Response, not something else.
    c.request(2, "room.room.echo", b"1").await.unwrap();
    assert_eq!(c.recv_response().await.unwrap().kind, MessageType::Response);
}

#[tokio::test]
async fn shutdown_withdraws_the_server_from_discovery() {
    let infra = Infra::start();
    let (front, back) = pair(&infra).await;
    back.stop().await;
    front.sees("room", 0).await;
    let mut c = front.client().await;
    let (error, body) = request(&mut c, 1, "room.room.echo", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-500");
}

#[tokio::test]
async fn an_app_that_loses_nats_for_good_shuts_down() {
    let mut infra = Infra::start();
    let mut config = infra.config();
    for nats in [
        &mut config.cluster.rpc.client.nats.connection,
        &mut config.cluster.rpc.server.nats.connection,
    ] {
        nats.max_reconnection_retries = 2;
    }
    let (front, _back) = (
        Node::frontend(connector(), config).await,
        Node::backend(room(), infra.config()).await,
    );
    infra.nats.stop();
    let err = front.stopped().await.unwrap_err();
    assert!(err.to_string().contains("lost for good"), "{err}");
}

#[tokio::test]
async fn a_message_too_large_for_nats_answers_pit_400() {
    let infra = Infra::start();
    let (front, _back) = pair(&infra).await;
    let mut c = front.client().await;
    // NATS carries at most 1 MiB by default; the frontend takes larger packets.
    let big = format!("\"{}\"", "x".repeat(1_100_000));
    c.request(1, "room.room.echo", big.as_bytes())
        .await
        .unwrap();
    let resp = c.recv_response().await.unwrap();
    assert!(resp.error);
    assert_eq!(json(&resp)["code"], "PIT-400");
    // The connection and the cluster still serve.
    assert_eq!(ok(&mut c, 2, "room.room.echo", json!(1)).await["echo"], 1);
}
