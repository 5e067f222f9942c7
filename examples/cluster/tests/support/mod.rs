//! Server processes of the clustered chat, against a real etcd and either a real NATS
//! or gRPC between the servers.
#![allow(dead_code)]

pub(crate) mod go;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pitaya::cluster::etcd_client::{Client, GetOptions};
use pitaya::protocol::MessageType;
use pitaya_test_support::{json, EtcdServer, NatsServer, RawClient};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longest wait for anything; generous for a loaded CI machine.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Real etcd and, unless the servers talk gRPC, NATS, on free ports.
pub(crate) struct Infra {
    nats: Option<NatsServer>,
    pub(crate) etcd: EtcdServer,
}

impl Infra {
    /// Returns NATS and etcd; the servers call each other over NATS.
    pub(crate) fn start() -> Infra {
        pitaya_test_support::init_tracing();
        Infra {
            nats: Some(NatsServer::start().expect("nats-server starts")),
            etcd: EtcdServer::start().expect("etcd starts"),
        }
    }

    /// Returns etcd alone; the servers call each other over gRPC.
    pub(crate) fn start_grpc() -> Infra {
        pitaya_test_support::init_tracing();
        Infra {
            nats: None,
            etcd: EtcdServer::start().expect("etcd starts"),
        }
    }

    /// Returns the URL of NATS, or `None` when the servers talk gRPC.
    pub(crate) fn nats_url(&self) -> Option<String> {
        self.nats.as_ref().map(NatsServer::url)
    }

    /// Returns the NATS server of a NATS cluster.
    pub(crate) fn nats(&mut self) -> &mut NatsServer {
        self.nats.as_mut().expect("a cluster on NATS")
    }

    /// Returns the environment every server of the cluster gets.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = match &self.nats {
            Some(nats) => vec![
                ("PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT", nats.url()),
                ("PITAYA_CLUSTER_RPC_SERVER_NATS_CONNECT", nats.url()),
                (
                    "PITAYA_CLUSTER_RPC_CLIENT_NATS_RECONNECTWAIT",
                    "200ms".into(),
                ),
                (
                    "PITAYA_CLUSTER_RPC_SERVER_NATS_RECONNECTWAIT",
                    "200ms".into(),
                ),
            ],
            // The switch to gRPC is configuration only.
            None => vec![
                ("PITAYA_CLUSTER_RPC_TRANSPORT", "grpc".into()),
                ("PITAYA_CLUSTER_RPC_SERVER_GRPC_PORT", "0".into()),
                ("PITAYA_CLUSTER_RPC_SERVER_GRPC_HOST", "127.0.0.1".into()),
                (
                    "PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS",
                    self.etcd.endpoint(),
                ),
            ],
        };
        env.extend([
            ("PITAYA_CLUSTER_SD_ETCD_ENDPOINTS", self.etcd.endpoint()),
            ("PITAYA_GROUPS_ETCD_ENDPOINTS", self.etcd.endpoint()),
            // A killed server's record goes away quickly.
            ("PITAYA_CLUSTER_SD_ETCD_HEARTBEAT_TTL", "2s".into()),
            (
                "PITAYA_CLUSTER_SD_ETCD_GRANTLEASE_RETRYINTERVAL",
                "200ms".into(),
            ),
            ("PITAYA_CLUSTER_SD_ETCD_SYNCSERVERS_INTERVAL", "1s".into()),
            ("PITAYA_CLUSTER_SD_ETCD_SHUTDOWN_DELAY", "0s".into()),
        ]);
        env
    }

    /// Returns the JSON record of server `id` of `server_type` in etcd, if any.
    pub(crate) async fn record(&self, server_type: &str, id: &str) -> Option<Value> {
        let mut client = Client::connect([self.etcd.endpoint()], None).await.ok()?;
        let key = format!("pitaya/servers/{server_type}/{id}");
        let resp = client.get(key.as_str(), None).await.ok()?;
        let kv = resp.kvs().first()?;
        serde_json::from_slice(kv.value()).ok()
    }

    /// Returns the ids of the servers of `server_type` registered in etcd.
    pub(crate) async fn registered(&self, server_type: &str) -> Vec<String> {
        let Ok(mut client) = Client::connect([self.etcd.endpoint()], None).await else {
            return Vec::new();
        };
        let prefix = format!("pitaya/servers/{server_type}/");
        let opts = GetOptions::new().with_prefix().with_keys_only();
        let Ok(resp) = client.get(prefix.as_str(), Some(opts)).await else {
            return Vec::new();
        };
        resp.kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok())
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

/// One `cluster-chat` process and every line it writes; killed on drop.
pub(crate) struct Proc {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    pub(crate) fn start(infra: &Infra, args: &[&str]) -> Proc {
        Proc::start_env(infra, args, &[])
    }

    /// Returns a process started with `env` on top of the cluster's environment.
    pub(crate) fn start_env(infra: &Infra, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::start_program(env!("CARGO_BIN_EXE_cluster-chat"), infra, args, env)
    }

    /// Returns `program` (a `cluster-chat` or a Go `go-cluster`) started with `env` on
    /// top of the cluster's environment.
    pub(crate) fn start_program(
        program: &str,
        infra: &Infra,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .envs(infra.env())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
        let (tx, lines) = mpsc::unbounded_channel();
        forward(child.stdout.take().expect("piped stdout"), tx.clone());
        forward(child.stderr.take().expect("piped stderr"), tx);
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Returns the first line from now on containing every one of `needles`.
    pub(crate) async fn line_with(&mut self, needles: &[&str]) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if needles.iter().all(|n| line.contains(n)) {
                    return line;
                }
            }
            panic!("exited without logging {needles:?}: {:#?}", self.seen);
        };
        match timeout(WAIT, wait).await {
            Ok(line) => line,
            Err(_) => panic!("no {needles:?} logged in time: {:#?}", self.seen),
        }
    }

    /// Returns a line already read that contains every one of `needles`.
    pub(crate) fn logged(&self, needles: &[&str]) -> Option<&str> {
        let found = self
            .seen
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)));
        found.map(String::as_str)
    }

    /// Returns this server's id, once it joined the cluster.
    pub(crate) async fn joined(&mut self) -> String {
        let line = self.line_with(&["joined the cluster"]).await;
        field(&line, "server_id").expect("server_id in the join line")
    }

    /// Returns the process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns the exit status.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.expect("kill runs").success(), "kill -TERM failed");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit after SIGTERM: {:#?}",
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the exit status once the process exits on its own.
    pub(crate) async fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit: {:#?}",
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL: no goodbye to etcd or NATS.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connector process and its client addresses.
pub(crate) struct Connector {
    pub(crate) proc: Proc,
    pub(crate) tcp: SocketAddr,
    pub(crate) ws: SocketAddr,
    pub(crate) id: String,
}

impl Connector {
    pub(crate) async fn start(infra: &Infra) -> Connector {
        Connector::start_env(infra, &[]).await
    }

    /// Returns a connector started with `env` on top of the cluster's environment.
    pub(crate) async fn start_env(infra: &Infra, env: &[(&str, &str)]) -> Connector {
        let args = ["connector", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0"];
        let mut proc = Proc::start_env(infra, &args, env);
        let line = proc.line_with(&["connector listening"]).await;
        let addr = |name| {
            field(&line, name)
                .and_then(|a| a.parse().ok())
                .expect("address in the listening line")
        };
        let (tcp, ws) = (addr("tcp"), addr("ws"));
        let id = proc.joined().await;
        Connector { proc, tcp, ws, id }
    }

    /// Returns a TCP client, handshake done.
    pub(crate) async fn tcp_client(&self) -> RawClient {
        let mut c = RawClient::tcp(self.tcp).await.unwrap();
        c.handshake().await.unwrap();
        c
    }

    /// Returns a WebSocket client, handshake done.
    pub(crate) async fn ws_client(&self) -> RawClient {
        let mut c = RawClient::ws(self.ws).await.unwrap();
        c.handshake().await.unwrap();
        c
    }
}

/// Returns the value of `name=value` in a log line.
pub(crate) fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

fn forward(out: impl Read + Send + 'static, tx: mpsc::UnboundedSender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Sends a join as request `id`; returns whether it succeeded and the answer.
pub(crate) async fn join(c: &mut RawClient, id: u64, nick: &str) -> (bool, Value) {
    let body = serde_json::json!({ "name": nick }).to_string();
    c.request(id, "room.room.join", body.as_bytes())
        .await
        .unwrap();
    let resp = c.recv_response().await.unwrap();
    assert_eq!(resp.id, id);
    (!resp.error, pitaya_test_support::json(&resp))
}

/// Starts a room server and returns it once it joined the cluster.
pub(crate) async fn room(infra: &Infra) -> (Proc, String) {
    let mut proc = Proc::start(infra, &["room"]);
    let id = proc.joined().await;
    (proc, id)
}

/// Returns once `count` room servers are registered in etcd.
pub(crate) async fn rooms_registered(infra: &Infra, count: usize) {
    wait_for("room servers in etcd", || async {
        infra.registered("room").await.len() == count
    })
    .await;
}

/// Returns a client joined as `nick`, its own `onMembers` push consumed.
pub(crate) async fn member(c: &mut RawClient, nick: &str) {
    c.request(
        1,
        "room.room.join",
        json!({ "name": nick }).to_string().as_bytes(),
    )
    .await
    .unwrap();
    let (mut members, mut answered) = (false, false);
    while !(members && answered) {
        let msg = c.recv_message().await.unwrap();
        match msg.kind {
            MessageType::Push if msg.route == "onMembers" => members = true,
            MessageType::Response => {
                assert!(!msg.error, "join failed: {}", json(&msg));
                assert_eq!(json(&msg), json!({ "code": 0, "result": "success" }));
                answered = true;
            }
            _ => {}
        }
    }
}

/// Returns once `check` is true, polling; panics after [`WAIT`] naming `what`.
pub(crate) async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
