//! Cluster mode over gRPC: frontends and backends in this process, calling each other
//! over real gRPC servers, finding each other and their users in a real etcd.
#![cfg(feature = "grpc")]

mod cluster_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_support::apps::{connector, ok, request, room};
use cluster_support::{grpc_config, wait_for, Node};
use pitaya::cluster::etcd_client::Client;
use pitaya::cluster::rpc::protos::pitaya_client::PitayaClient;
use pitaya::cluster::rpc::protos::{KickMsg, Msg, Push, Request, RpcType};
use pitaya::cluster::rpc::{GRPC_HOST, GRPC_PORT};
use pitaya::cluster::{RouteRequest, ServerInfo};
use pitaya::protocol::{MessageType, PacketType};
use pitaya_test_support::{json, EtcdServer};
use serde_json::json;

fn etcd() -> EtcdServer {
    pitaya_test_support::init_tracing();
    EtcdServer::start().expect("etcd starts")
}

/// A connector and a room, each seeing the other.
async fn pair(etcd: &EtcdServer) -> (Node, Node) {
    let front = Node::frontend(connector(), grpc_config(etcd)).await;
    let back = Node::backend(room(), grpc_config(etcd)).await;
    front.sees("room", 1).await;
    back.sees("connector", 1).await;
    (front, back)
}

/// Returns the frontend id recorded for `uid` in the binding storage, if any.
async fn binding(etcd: &EtcdServer, uid: &str) -> Option<String> {
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let key = format!("pitaya/bindings/connector/{uid}");
    let resp = client.get(key, None).await.unwrap();
    resp.kvs()
        .first()
        .map(|kv| kv.value_str().unwrap().to_owned())
}

/// Returns a raw gRPC client of `server`, as a Go Pitaya peer would dial it.
async fn raw_client(server: &ServerInfo) -> PitayaClient<tonic::transport::Channel> {
    let url = format!(
        "http://{}:{}",
        server.metadata[GRPC_HOST], server.metadata[GRPC_PORT]
    );
    PitayaClient::connect(url)
        .await
        .expect("grpc server reachable")
}

#[tokio::test]
async fn servers_publish_their_grpc_address_and_forwarded_requests_reach_the_backend() {
    let etcd = etcd();
    let (front, back) = pair(&etcd).await;

    // The record other servers read carries the address of the bound port.
    let seen = front
        .handle
        .discovery()
        .unwrap()
        .server(&back.id())
        .unwrap();
    assert_eq!(seen.metadata[GRPC_HOST], "127.0.0.1");
    let port: u16 = seen.metadata[GRPC_PORT].parse().unwrap();
    assert_ne!(port, 0);
    assert_eq!(back.handle.server_info().metadata, seen.metadata);

    let mut c = front.client().await;
    let got = ok(&mut c, 1, "room.room.echo", json!({ "x": 1 })).await;
    assert_eq!(got["echo"], json!({ "x": 1 }));
    assert_eq!(got["server"], back.id());
    assert_eq!(got["frontend"], front.id());
    assert_eq!(got["data"]["ipversion"], "ipv4");
}

#[tokio::test]
async fn backend_errors_reach_the_client_with_code_message_and_metadata() {
    let etcd = etcd();
    let (front, _back) = pair(&etcd).await;
    let mut c = front.client().await;

    let (error, body) = request(&mut c, 1, "room.room.fail", json!({})).await;
    assert!(error, "the error bit is relayed");
    assert_eq!(body["code"], "GAME-1");
    assert_eq!(body["msg"], "room is full");
    assert_eq!(body["metadata"]["room"], "7");

    let (error, body) = request(&mut c, 2, "room.room.nope", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-404");
}

#[tokio::test]
async fn backend_bind_is_recorded_in_etcd_and_backend_pushes_reach_the_client() {
    let etcd = etcd();
    let (front, _back) = pair(&etcd).await;
    let mut c = front.client().await;

    // The push goes by PushToUser, the answer by Call's reply: either may come first.
    c.request(1, "room.room.join", br#"{"uid":"alice"}"#)
        .await
        .unwrap();
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
    assert_eq!(binding(&etcd, "alice").await, Some(front.id()));

    // A forwarded notify runs on the backend, which pushes by uid: the binding
    // storage names the frontend.
    c.notify("room.room.note", br#"{"n":5}"#).await.unwrap();
    let note = c.recv_push("onNote").await.unwrap();
    assert_eq!(json(&note), json!({ "n": 5 }));

    // The backend's session data replaces the frontend's (sys.pushsession over Call).
    let body = json!({ "key": "level", "value": 3 });
    ok(&mut c, 2, "room.room.setdata", body).await;
    assert_eq!(ok(&mut c, 3, "connector.conn.get", json!("level")).await, 3);

    // Leaving removes the binding.
    drop(c);
    wait_for("the binding to be removed", || async {
        binding(&etcd, "alice").await.is_none()
    })
    .await;
}

#[tokio::test]
async fn push_and_kick_by_uid_reach_users_on_every_frontend() {
    let etcd = etcd();
    let f1 = Node::frontend(connector(), grpc_config(&etcd)).await;
    let f2 = Node::frontend(connector(), grpc_config(&etcd)).await;
    let back = Node::backend(room(), grpc_config(&etcd)).await;
    for f in [&f1, &f2] {
        f.sees("room", 1).await;
    }
    back.sees("connector", 2).await;

    let mut a = f1.client().await;
    let mut b = f2.client().await;
    ok(&mut a, 1, "room.room.join", json!({ "uid": "a" })).await;
    ok(&mut b, 1, "room.room.join", json!({ "uid": "b" })).await;

    let uids = vec!["a".to_owned(), "b".to_owned(), "nobody".to_owned()];
    let failed = back
        .handle
        .push_to_users("onNews", json!({ "n": 1 }), &uids, "connector")
        .await
        .unwrap();
    assert_eq!(failed, ["nobody"], "a user without binding fails");
    for c in [&mut a, &mut b] {
        assert_eq!(
            json(&c.recv_push("onNews").await.unwrap()),
            json!({ "n": 1 })
        );
    }

    // A frontend pushes to a user of the other frontend the same way.
    let failed = f1
        .handle
        .push_to_users("onHello", json!("hi"), &["b".to_owned()], "connector")
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(json(&b.recv_push("onHello").await.unwrap()), json!("hi"));

    let failed = back.handle.kick_users(&["b".to_owned()], "connector").await;
    assert!(failed.is_empty(), "{failed:?}");
    let seen = b.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    let failed = back
        .handle
        .kick_users(&["nobody".to_owned()], "connector")
        .await;
    assert_eq!(failed, ["nobody"]);
    // The other user is untouched.
    assert_eq!(ok(&mut a, 2, "room.room.echo", json!(2)).await["uid"], "a");
}

#[tokio::test]
async fn backend_kick_disconnects_the_client_with_a_kick_packet() {
    let etcd = etcd();
    let (front, _back) = pair(&etcd).await;
    let mut c = front.client().await;
    ok(&mut c, 1, "room.room.join", json!({ "uid": "bob" })).await;

    c.request(2, "room.room.kickme", b"{}").await.unwrap();
    let seen = c.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    wait_for("the binding to be removed", || async {
        binding(&etcd, "bob").await.is_none()
    })
    .await;
}

#[tokio::test]
async fn pushes_sent_before_a_kick_arrive_before_it() {
    let etcd = etcd();
    let (front, _back) = pair(&etcd).await;
    let mut c = front.client().await;
    ok(&mut c, 1, "room.room.join", json!({ "uid": "carl" })).await;

    c.request(2, "room.room.byekick", b"{}").await.unwrap();
    let seen = c.expect_closed().await.unwrap();
    let kick = seen.iter().position(|p| p.kind == PacketType::Kick);
    let kick = kick.unwrap_or_else(|| panic!("no kick in {seen:?}"));
    // The route is in clear in a push (no dictionary here).
    let is_bye = |p: &&pitaya::protocol::Packet| {
        p.kind == PacketType::Data && p.body.windows(5).any(|w| w == b"onBye")
    };
    assert_eq!(seen[..kick].iter().filter(is_bye).count(), 5, "{seen:?}");
}

#[tokio::test]
async fn a_second_login_on_another_frontend_kicks_the_first() {
    let etcd = etcd();
    let f1 = Node::frontend(connector(), grpc_config(&etcd)).await;
    let f2 = Node::frontend(connector(), grpc_config(&etcd)).await;
    let _back = Node::backend(room(), grpc_config(&etcd)).await;
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
    // The old session's close leaves the new binding alone.
    let h = f1.handle.clone();
    wait_for("the first session to close", move || {
        let h = h.clone();
        async move { h.session_by_uid("carol").is_none() }
    })
    .await;
    assert_eq!(binding(&etcd, "carol").await, Some(f2.id()));
    assert_eq!(
        ok(&mut second, 2, "room.room.echo", json!(0)).await["uid"],
        "carol"
    );
}

#[tokio::test]
async fn user_rpcs_reach_remotes_by_type_or_id_and_report_errors() {
    let etcd = etcd();
    let (front, back) = pair(&etcd).await;
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
}

#[tokio::test]
async fn a_backend_slower_than_the_rpc_timeout_answers_pit_408() {
    let etcd = etcd();
    let mut config = grpc_config(&etcd);
    config.cluster.rpc.client.grpc.request_timeout = Duration::from_millis(300);
    let front = Node::frontend(connector(), config).await;
    let _back = Node::backend(room(), grpc_config(&etcd)).await;
    front.sees("room", 1).await;
    let mut c = front.client().await;

    let (error, body) = request(&mut c, 1, "room.room.slow", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-408");
    assert_eq!(body["metadata"]["route"], "room.room.slow");
    assert_eq!(body["metadata"]["timeout"], "300ms");
}

#[tokio::test]
async fn a_go_style_peer_gets_pitaya_answers_and_errors() {
    let etcd = etcd();
    let (front, back) = pair(&etcd).await;
    let mut room = raw_client(back.handle.server_info()).await;

    // A user RPC with a context is answered inside the Response.
    let call = |metadata: &'static [u8]| Request {
        r#type: RpcType::User.into(),
        msg: Some(Msg {
            route: "room.stats.ping".into(),
            ..Msg::default()
        }),
        metadata: Bytes::from_static(metadata),
        ..Request::default()
    };
    let answer = room.call(call(b"{}")).await.unwrap().into_inner();
    assert!(answer.error.is_none(), "{answer:?}");
    let reply: Push = prost::Message::decode(answer.data).unwrap();
    assert_eq!(reply.route, "pong");

    // Without one, the call fails before dispatch with a status, as in Pitaya.
    let status = room.call(call(b"")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "no context found");

    // Pushes and kicks of users not on the frontend are errors.
    let mut conn = raw_client(front.handle.server_info()).await;
    let push = Push {
        route: "onX".into(),
        uid: "ghost".into(),
        data: Bytes::new(),
    };
    let status = conn.push_to_user(push).await.unwrap_err();
    assert_eq!(status.message(), "session not found");
    let kick = KickMsg {
        user_id: "ghost".into(),
    };
    let status = conn.kick_user(kick).await.unwrap_err();
    assert_eq!(status.message(), "session not found");

    // A bound user gets the push, answered with "ack".
    let mut c = front.client().await;
    ok(&mut c, 1, "room.room.join", json!({ "uid": "dave" })).await;
    let push = Push {
        route: "onRaw".into(),
        uid: "dave".into(),
        data: Bytes::from_static(br#"{"raw":true}"#),
    };
    let answer = conn.push_to_user(push).await.unwrap().into_inner();
    assert_eq!(&answer.data[..], b"ack");
    assert_eq!(
        json(&c.recv_push("onRaw").await.unwrap()),
        json!({ "raw": true })
    );
}

#[tokio::test]
async fn a_stopped_backend_leaves_and_its_grpc_port_closes() {
    let etcd = etcd();
    let (front, back) = pair(&etcd).await;
    let info = back.handle.server_info().clone();
    back.stop().await;
    front.sees("room", 0).await;

    let mut c = front.client().await;
    let (error, body) = request(&mut c, 1, "room.room.echo", json!({})).await;
    assert!(error);
    assert_eq!(body["code"], "PIT-500");
    let address = format!("127.0.0.1:{}", info.metadata[GRPC_PORT]);
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn a_listed_room_that_is_gone_makes_requests_go_to_another() {
    let etcd = etcd();
    // The router picks the gone room whenever it is listed, so every request meets it.
    let ghost_first = |_: &RouteRequest<'_>, servers: &[Arc<ServerInfo>]| {
        let ghost = servers.iter().find(|s| s.id == "ghost");
        ghost.or(servers.first()).cloned()
    };
    let front = Node::frontend(connector().router("room", ghost_first), grpc_config(&etcd)).await;
    let back = Node::backend(room(), grpc_config(&etcd)).await;

    // A record like a killed server's: listed, but nothing listens on its port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let ghost = ServerInfo::new("room", false)
        .with_id("ghost")
        .with_metadata(GRPC_HOST, "127.0.0.1")
        .with_metadata(GRPC_PORT, port.to_string());
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    client
        .put("pitaya/servers/room/ghost", ghost.to_json(), None)
        .await
        .unwrap();
    front.sees("room", 2).await;

    let mut c = front.client().await;
    for id in 1..=8 {
        let got = ok(&mut c, id, "room.room.echo", json!(id)).await;
        assert_eq!(got["server"], back.id());
    }
}

/// Clients of the load test: a few hundred, as the conformance suite's default.
const MANY: usize = 300;

#[tokio::test]
async fn a_few_hundred_clients_at_once_get_every_reply_and_push_over_grpc() {
    let etcd = etcd();
    let (front, back) = pair(&etcd).await;

    // All at once: connect, bind through the backend (a call back to the frontend
    // and a push), then a forwarded request whose answer names the caller.
    let clients = (0..MANY).map(|n| {
        let front = &front;
        async move {
            let mut c = front.client().await;
            c.timeout = cluster_support::WAIT;
            let uid = format!("u{n}");
            c.request(
                1,
                "room.room.join",
                json!({ "uid": uid }).to_string().as_bytes(),
            )
            .await
            .unwrap();
            let (mut pushed, mut joined) = (None, None);
            while pushed.is_none() || joined.is_none() {
                let msg = c.recv_message().await.unwrap();
                match msg.kind {
                    MessageType::Push if msg.route == "onJoined" => pushed = Some(json(&msg)),
                    MessageType::Response => {
                        assert!(!msg.error, "join {uid}: {}", json(&msg));
                        joined = Some(json(&msg));
                    }
                    _ => {}
                }
            }
            assert_eq!(pushed.unwrap(), json!({ "uid": uid }));
            assert_eq!(joined.unwrap(), json!({ "joined": uid }));
            let got = ok(&mut c, 2, "room.room.echo", json!({ "n": n })).await;
            assert_eq!(got["echo"], json!({ "n": n }));
            assert_eq!(got["uid"], uid.as_str());
            (c, uid)
        }
    });
    let (mut clients, uids): (Vec<_>, Vec<_>) = futures_util::future::join_all(clients)
        .await
        .into_iter()
        .unzip();

    // One push to all of them by uid, found through the binding storage.
    let failed = back
        .handle
        .push_to_users("onAll", json!("everyone"), &uids, "connector")
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let pushes = clients
        .iter_mut()
        .map(|c| async { json(&c.recv_push("onAll").await.unwrap()) });
    for got in futures_util::future::join_all(pushes).await {
        assert_eq!(got, json!("everyone"));
    }

    // Pushes are sent in the background, many at once, but each user gets theirs in
    // the order they were pushed.
    for seq in 0..20 {
        let failed = back
            .handle
            .push_to_users("onSeq", json!(seq), &uids, "connector")
            .await
            .unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let sequences = clients.iter_mut().map(|c| async {
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(json(&c.recv_push("onSeq").await.unwrap()));
        }
        got
    });
    let expected: Vec<_> = (0..20).map(|seq| json!(seq)).collect();
    for got in futures_util::future::join_all(sequences).await {
        assert_eq!(got, expected);
    }
}
