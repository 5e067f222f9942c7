//! Go Pitaya v1 servers (`interop/go-cluster`) and the helpers the mixed-cluster tests
//! share. The Go binary's path comes from `GO_CLUSTER_BIN` (`scripts/test.sh` builds
//! it); the tests are ignored unless asked for, and fail without it.

use std::net::SocketAddr;

use pitaya_test_support::{json, RawClient};
use serde_json::Value;

use super::{field, Connector, Infra, Proc};

/// Rust servers log discovery changes at debug level.
pub(crate) const RUST_LOG: (&str, &str) = ("RUST_LOG", "info,pitaya::cluster::discovery=debug");

/// Returns the Go server binary; panics, saying how to build it, when it is not given.
pub(crate) fn go_bin() -> String {
    match std::env::var("GO_CLUSTER_BIN") {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "GO_CLUSTER_BIN is unset; build interop/go-cluster and point GO_CLUSTER_BIN at \
             the binary (scripts/test.sh does both)"
        ),
    }
}

/// Starts the Go room backend; returns it and its server id once it is registered.
pub(crate) async fn go_room(go: &str, infra: &Infra) -> (Proc, String) {
    let mut proc = Proc::start_program(go, infra, &["room"], &[]);
    let id = proc.joined().await;
    (proc, id)
}

/// A Go connector and its TCP client address.
pub(crate) struct GoConnector {
    pub(crate) proc: Proc,
    pub(crate) tcp: SocketAddr,
    pub(crate) id: String,
}

impl GoConnector {
    pub(crate) async fn start(go: &str, infra: &Infra) -> GoConnector {
        let mut proc = Proc::start_program(go, infra, &["connector"], &[]);
        let line = proc.line_with(&["connector listening"]).await;
        let tcp = field(&line, "tcp")
            .and_then(|a| a.parse().ok())
            .expect("address in the listening line");
        let id = proc.joined().await;
        GoConnector { proc, tcp, id }
    }

    pub(crate) async fn client(&self) -> RawClient {
        let mut c = RawClient::tcp(self.tcp).await.unwrap();
        c.handshake().await.unwrap();
        c
    }
}

/// Starts a Rust room that logs discovery changes.
pub(crate) async fn rust_room(infra: &Infra) -> (Proc, String) {
    let mut proc = Proc::start_env(infra, &["room"], &[RUST_LOG]);
    let id = proc.joined().await;
    (proc, id)
}

/// Returns once `proc` logged a line with every one of `needles`, before or after now.
pub(crate) async fn saw(proc: &mut Proc, needles: &[&str]) {
    if proc.logged(needles).is_none() {
        proc.line_with(needles).await;
    }
}

/// Sends request `id` on `route` with `body`; returns whether it succeeded and the body.
pub(crate) async fn call(c: &mut RawClient, id: u64, route: &str, body: Value) -> (bool, Value) {
    c.request(id, route, body.to_string().as_bytes())
        .await
        .unwrap();
    let resp = c.recv_response().await.unwrap();
    assert_eq!(resp.id, id);
    (!resp.error, json(&resp))
}

/// Returns a Rust connector, a Go connector and a Rust room, all registered.
pub(crate) async fn two_frontends(go: &str, infra: &Infra) -> (Connector, GoConnector, Proc) {
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
