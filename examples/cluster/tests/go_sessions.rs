//! Sessions across Go Pitaya v1 (`interop/go-cluster`) and `cluster-chat` servers:
//! backend session operations (spec 6.6) in both directions, and a second login on
//! the other kind of frontend kicking the first (spec 6.8), over NATS and gRPC.
//!
//! Ignored by a plain `cargo test`: they need `GO_CLUSTER_BIN`, the Go binary, and run
//! with `-- --ignored` (`scripts/test.sh` builds the binary and runs them).

mod support;

use std::time::Duration;

use pitaya::cluster::{configured_transport, EtcdSd};
use pitaya::config::TransportKind;
use pitaya::protocol::PacketType;
use pitaya::{App, Component, Config, Context, Error, SessionError};
use pitaya_test_support::RawClient;
use serde_json::{json, Value};
use support::go::{call, go_bin, go_room, saw, two_frontends, GoConnector};
use support::{join, member, Connector, Infra};

// ===== Backend session operations from Go =====

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
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_a_go_backend_pushes_session_data_to_and_kicks_through_a_rust_frontend() {
    let go = go_bin();
    go_backend_changes_a_rust_session(&Infra::start(), &go).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_a_go_backend_pushes_session_data_to_and_kicks_through_a_rust_frontend() {
    let go = go_bin();
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
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_a_rust_backend_binds_pushes_session_data_to_and_kicks_through_a_go_frontend() {
    let go = go_bin();
    rust_backend_changes_a_go_session(&Infra::start(), &go).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_a_rust_backend_binds_pushes_session_data_to_and_kicks_through_a_go_frontend() {
    let go = go_bin();
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

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_a_login_on_a_go_connector_kicks_the_one_on_a_rust_connector() {
    let go = go_bin();
    let infra = Infra::start();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(rust.tcp_client().await, go.client().await).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn nats_a_login_on_a_rust_connector_kicks_the_one_on_a_go_connector() {
    let go = go_bin();
    let infra = Infra::start();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(go.client().await, rust.tcp_client().await).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_a_login_on_a_go_connector_kicks_the_one_on_a_rust_connector() {
    let go = go_bin();
    let infra = Infra::start_grpc();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(rust.tcp_client().await, go.client().await).await;
}

#[tokio::test]
#[ignore = "needs GO_CLUSTER_BIN, a Go Pitaya build (scripts/test.sh)"]
async fn grpc_a_login_on_a_rust_connector_kicks_the_one_on_a_go_connector() {
    let go = go_bin();
    let infra = Infra::start_grpc();
    let (rust, go, _room) = two_frontends(&go, &infra).await;
    second_login_kicks_the_first(go.client().await, rust.tcp_client().await).await;
}
