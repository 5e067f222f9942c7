//! Mixed clusters: Go Pitaya v1 servers (`interop/go-cluster`) next to `cluster-chat`
//! servers, over a real etcd and either a real NATS or gRPC.
//!
//! The Go binary's path comes from `GO_CLUSTER_BIN` (`scripts/test.sh` builds it);
//! without it every test here prints that it is skipped and passes.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use pitaya::cluster::{configured_transport, EtcdSd};
use pitaya::config::TransportKind;
use pitaya::protocol::PacketType;
use pitaya::{App, Component, Config, Context, Error, SessionError};
use pitaya_test_support::{json, RawClient};
use serde_json::{json, Value};
use support::{field, join, member, Connector, Infra, Proc};

/// Rust servers log discovery changes at debug level.
const RUST_LOG: (&str, &str) = ("RUST_LOG", "info,pitaya::cluster::discovery=debug");

/// Returns the Go server binary, or `None` (after saying so) when it is not built.
fn go_bin() -> Option<String> {
    match std::env::var("GO_CLUSTER_BIN") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!(
                "skipped: GO_CLUSTER_BIN is unset; build interop/go-cluster and point \
                 GO_CLUSTER_BIN at the binary (scripts/test.sh does both)"
            );
            None
        }
    }
}

/// Starts the Go room backend; returns it and its server id once it is registered.
async fn go_room(go: &str, infra: &Infra) -> (Proc, String) {
    let mut proc = Proc::start_program(go, infra, &["room"], &[]);
    let id = proc.joined().await;
    (proc, id)
}

/// A Go connector and its TCP client address.
struct GoConnector {
    proc: Proc,
    tcp: SocketAddr,
    id: String,
}

impl GoConnector {
    async fn start(go: &str, infra: &Infra) -> GoConnector {
        let mut proc = Proc::start_program(go, infra, &["connector"], &[]);
        let line = proc.line_with(&["connector listening"]).await;
        let tcp = field(&line, "tcp")
            .and_then(|a| a.parse().ok())
            .expect("address in the listening line");
        let id = proc.joined().await;
        GoConnector { proc, tcp, id }
    }

    async fn client(&self) -> RawClient {
        let mut c = RawClient::tcp(self.tcp).await.unwrap();
        c.handshake().await.unwrap();
        c
    }
}

/// Starts a Rust room that logs discovery changes.
async fn rust_room(infra: &Infra) -> (Proc, String) {
    let mut proc = Proc::start_env(infra, &["room"], &[RUST_LOG]);
    let id = proc.joined().await;
    (proc, id)
}

/// Returns once `proc` logged a line with every one of `needles`, before or after now.
async fn saw(proc: &mut Proc, needles: &[&str]) {
    if proc.logged(needles).is_none() {
        proc.line_with(needles).await;
    }
}

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
async fn nats_rust_connector_chats_in_a_go_room() {
    let Some(go) = go_bin() else { return };
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
async fn nats_go_connector_forwards_to_a_rust_room() {
    let Some(go) = go_bin() else { return };
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
async fn nats_go_and_rust_rooms_share_one_membership() {
    let Some(go) = go_bin() else { return };
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
async fn nats_servers_that_stop_leave_each_others_discovery() {
    let Some(go) = go_bin() else { return };
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
async fn grpc_rust_connector_chats_in_a_go_room() {
    let Some(go) = go_bin() else { return };
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
async fn grpc_go_connector_forwards_to_a_rust_room() {
    let Some(go) = go_bin() else { return };
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

// ===== Backend session operations from Go =====

/// Sends request `id` on `route` with `body`; returns whether it succeeded and the body.
async fn call(c: &mut RawClient, id: u64, route: &str, body: Value) -> (bool, Value) {
    c.request(id, route, body.to_string().as_bytes())
        .await
        .unwrap();
    let resp = c.recv_response().await.unwrap();
    assert_eq!(resp.id, id);
    (!resp.error, json(&resp))
}

/// A Go backend pushes session data to a Rust frontend, which keeps it and sends it
/// with the next forwarded request; then the Go backend has the Rust frontend kick.
async fn go_backend_changes_a_rust_session(infra: &Infra, go: &str) {
    let connector = Connector::start(infra).await;
    let (_room, _) = go_room(go, infra).await;
    let mut c = connector.tcp_client().await;
    member(&mut c, "sam").await;

    let data = json!({ "level": 3, "title": "knight" });
    let (ok, body) = call(&mut c, 2, "room.session.set", data).await;
    assert!(ok, "{body}");
    let (ok, seen) = call(&mut c, 3, "room.session.get", json!({})).await;
    assert!(ok, "{seen}");
    assert_eq!(seen["level"], json!(3), "{seen}");
    assert_eq!(seen["title"], json!("knight"), "{seen}");

    c.request(4, "room.session.kick", b"{}").await.unwrap();
    let seen = c.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
}

#[tokio::test]
async fn nats_a_go_backend_pushes_session_data_to_and_kicks_through_a_rust_frontend() {
    let Some(go) = go_bin() else { return };
    go_backend_changes_a_rust_session(&Infra::start(), &go).await;
}

#[tokio::test]
async fn grpc_a_go_backend_pushes_session_data_to_and_kicks_through_a_rust_frontend() {
    let Some(go) = go_bin() else { return };
    go_backend_changes_a_rust_session(&Infra::start_grpc(), &go).await;
}

// ===== Backend session operations from Rust to a Go frontend =====

/// Returns the config of an in-process Rust server of this cluster.
fn in_process_config(infra: &Infra) -> Config {
    let mut c = Config::default();
    c.cluster.sd.etcd.endpoints = vec![infra.etcd.endpoint()];
    c.cluster.sd.etcd.shutdown.delay = Duration::ZERO;
    match infra.nats_url() {
        Some(url) => {
            c.cluster.rpc.client.nats.connection.connect = url.clone();
            c.cluster.rpc.server.nats.connection.connect = url;
        }
        None => {
            c.cluster.rpc.transport = TransportKind::Grpc;
            c.cluster.rpc.server.grpc.port = 0;
            c.cluster.rpc.server.grpc.host = "127.0.0.1".into();
            c.modules.binding_storage.etcd.endpoints = vec![infra.etcd.endpoint()];
        }
    }
    c
}

/// Returns the `session` component of a `probe` backend: `bind` `{"uid"}`, `set` (every
/// key of the body, then `sys.pushsession`), `get` (the data as forwarded), `kick`.
fn probe_session() -> Component {
    let internal = |e: SessionError| Error::internal(e.to_string());
    Component::new("session")
        .request("bind", move |ctx: Context, arg: Value| async move {
            let uid = arg["uid"].as_str().unwrap_or_default().to_owned();
            ctx.session().bind(uid).await.map_err(internal)?;
            Ok::<_, Error>(json!({ "code": 0 }))
        })
        .request("set", move |ctx: Context, arg: Value| async move {
            let Value::Object(kv) = arg else {
                return Err(Error::bad_request("set needs a JSON object"));
            };
            for (k, v) in kv {
                ctx.session().set(k, v).map_err(internal)?;
            }
            ctx.session().push_to_front().await.map_err(internal)?;
            Ok(json!({ "code": 0 }))
        })
        .request("get", |ctx: Context, _: Value| async move {
            Ok::<_, Error>(Value::Object(ctx.session().data()))
        })
        .request("kick", move |ctx: Context, _: Value| async move {
            ctx.session().kick().await.map_err(internal)?;
            Ok::<_, Error>(json!({ "code": 0 }))
        })
}

/// A Rust backend binds a Go frontend's session, pushes data to it (it comes back
/// with the next forwarded request) and has it kick the client.
async fn rust_backend_changes_a_go_session(infra: &Infra, go: &str) {
    let mut connector = GoConnector::start(go, infra).await;
    let probe = App::builder("probe")
        .config(in_process_config(infra))
        .register(probe_session())
        .backend()
        .cluster(
            configured_transport(&in_process_config(infra)).unwrap(),
            EtcdSd,
        )
        .build()
        .expect("probe backend builds");
    let handle = probe.handle();
    let probe_id = handle.server_id().to_owned();
    let running = tokio::spawn(probe.run_until(std::future::pending()));
    // Others see the probe as soon as its etcd record is written, a moment before its
    // discovery is in place to find the frontend a bind must call.
    support::wait_for("the probe to join the cluster", || {
        let handle = handle.clone();
        async move { handle.discovery().is_some() }
    })
    .await;
    saw(
        &mut connector.proc,
        &["discovered", &format!("server_id={probe_id}")],
    )
    .await;

    let mut c = connector.client().await;
    let (ok, body) = call(&mut c, 1, "probe.session.bind", json!({ "uid": "pat" })).await;
    assert!(ok, "{body}");
    let (ok, body) = call(&mut c, 2, "probe.session.set", json!({ "level": 3 })).await;
    assert!(ok, "{body}");
    let (ok, seen) = call(&mut c, 3, "probe.session.get", json!({})).await;
    assert!(ok, "{seen}");
    assert_eq!(seen["level"], json!(3), "{seen}");

    c.request(4, "probe.session.kick", b"{}").await.unwrap();
    let packets = c.expect_closed().await.unwrap();
    assert!(
        packets.iter().any(|p| p.kind == PacketType::Kick),
        "{packets:?}"
    );
    running.abort();
}

#[tokio::test]
async fn nats_a_rust_backend_binds_pushes_session_data_to_and_kicks_through_a_go_frontend() {
    let Some(go) = go_bin() else { return };
    rust_backend_changes_a_go_session(&Infra::start(), &go).await;
}

#[tokio::test]
async fn grpc_a_rust_backend_binds_pushes_session_data_to_and_kicks_through_a_go_frontend() {
    let Some(go) = go_bin() else { return };
    rust_backend_changes_a_go_session(&Infra::start_grpc(), &go).await;
}

// ===== Unique sessions across Go and Rust frontends =====

/// `cleo` joins through `old`, then through `new` on the other frontend: the first
/// connection gets a Kick packet and is closed; the second stays bound.
async fn second_login_kicks_the_first(mut old: RawClient, mut new: RawClient) {
    member(&mut old, "cleo").await;
    member(&mut new, "cleo").await;
    let seen = old.expect_closed().await.unwrap();
    assert!(seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    let (ok, body) = join(&mut new, 2, "cleo").await;
    assert!(!ok);
    assert!(
        body["msg"].as_str().unwrap().contains("already joined"),
        "{body}"
    );
}

/// Returns a Rust connector, a Go connector and a Rust room, all registered.
async fn two_frontends(go: &str, infra: &Infra) -> (Connector, GoConnector, Proc) {
    let mut rust = Connector::start_env(infra, &[RUST_LOG]).await;
    let (room, room_id) = rust_room(infra).await;
    let mut go = GoConnector::start(go, infra).await;
    saw(
        &mut go.proc,
        &["discovered", &format!("server_id={}", rust.id)],
    )
    .await;
    saw(
        &mut go.proc,
        &["discovered", &format!("server_id={room_id}")],
    )
    .await;
    let go_key = format!("pitaya/servers/connector/{}", go.id);
    saw(&mut rust.proc, &["server added", &go_key]).await;
    (rust, go, room)
}

#[tokio::test]
async fn nats_a_login_on_a_go_connector_kicks_the_one_on_a_rust_connector() {
    let Some(go) = go_bin() else { return };
    let infra = Infra::start();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(rust.tcp_client().await, go.client().await).await;
}

#[tokio::test]
async fn nats_a_login_on_a_rust_connector_kicks_the_one_on_a_go_connector() {
    let Some(go) = go_bin() else { return };
    let infra = Infra::start();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(go.client().await, rust.tcp_client().await).await;
}

#[tokio::test]
async fn grpc_a_login_on_a_go_connector_kicks_the_one_on_a_rust_connector() {
    let Some(go) = go_bin() else { return };
    let infra = Infra::start_grpc();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(rust.tcp_client().await, go.client().await).await;
}

#[tokio::test]
async fn grpc_a_login_on_a_rust_connector_kicks_the_one_on_a_go_connector() {
    let Some(go) = go_bin() else { return };
    let infra = Infra::start_grpc();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(go.client().await, rust.tcp_client().await).await;
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
async fn nats_members_on_go_and_rust_connectors_chat_through_go_and_rust_rooms() {
    let Some(go) = go_bin() else { return };
    two_connectors_two_rooms(&go, &Infra::start()).await;
}

#[tokio::test]
async fn grpc_members_on_go_and_rust_connectors_chat_through_go_and_rust_rooms() {
    let Some(go) = go_bin() else { return };
    two_connectors_two_rooms(&go, &Infra::start_grpc()).await;
}
