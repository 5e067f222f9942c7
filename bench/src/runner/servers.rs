//! Starting and stopping the servers a scenario needs, each a process known by its id.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pitaya_protocol::PacketType;
use tokio::process::{Child, Command};

use super::scenarios::Scenario;
use crate::conn::{Conn, Transport};
use crate::load::REMOTE_ECHO;
use crate::wire::{self, KIND_REQUEST, KIND_RESPONSE};

/// How long a server may take to accept connections (cluster discovery included).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Which implementation serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// The raw tokio server.
    Baseline,
    /// pitaya-rs.
    Rs,
    /// Go Pitaya v1.1.8.
    Go,
}

impl Kind {
    /// Returns the label used in the JSON and the summary.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Rs => "rs",
            Kind::Go => "go",
        }
    }
}

/// Where the binaries and logs are.
#[derive(Debug)]
pub(crate) struct Setup {
    /// This executable, for `baseline`, `rs-server`, `nats-echo` and `load`.
    pub(crate) exe: PathBuf,
    /// The Go Pitaya bench server, when Go is part of the run.
    pub(crate) go_bin: Option<PathBuf>,
    /// Log directory.
    pub(crate) logs: PathBuf,
    /// NATS URL and etcd endpoint, for cluster scenarios.
    pub(crate) nats: String,
    pub(crate) etcd: String,
}

/// The running processes of one server set.
#[derive(Debug)]
pub(crate) struct Running {
    children: Vec<Child>,
    /// Client TCP address.
    pub(crate) tcp: SocketAddr,
    /// Client WebSocket address.
    pub(crate) ws: SocketAddr,
    /// Process ids whose CPU counts as server CPU.
    pub(crate) pids: Vec<u32>,
}

impl Running {
    /// Kills every process by its id and waits for it.
    pub(crate) async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for child in &mut self.children {
            let _ = child.wait().await;
        }
    }
}

/// Returns a free loopback port.
pub(crate) fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Returns `cmd` wrapped in `taskset -c 0` when pinned.
fn command(program: &Path, pinned: bool) -> Command {
    if pinned {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg("0").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Starts `program args` with its output in `log`.
fn spawn(program: &Path, args: &[String], pinned: bool, log: &Path) -> io::Result<Child> {
    let out = std::fs::File::create(log)?;
    command(program, pinned)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
}

/// Starts the servers of `kind` for `scenario` and returns once clients are served.
pub(crate) async fn start(
    setup: &Setup,
    kind: Kind,
    scenario: &Scenario,
    tag: &str,
) -> io::Result<Running> {
    let (tcp, ws) = (free_addr()?, free_addr()?);
    let log = |what: &str| setup.logs.join(format!("{}-{tag}-{what}.log", scenario.id));
    let mut common = vec![
        format!("--tcp={tcp}"),
        format!("--ws={ws}"),
        format!("--heartbeat={}", scenario.heartbeat),
    ];
    // A server killed by the previous slot stays registered until its lease expires, so
    // each start gets a discovery prefix of its own.
    let cluster = [
        format!("--nats={}", setup.nats),
        format!("--etcd={}", setup.etcd),
        format!("--etcd-prefix=bench-{}-{tag}/", scenario.id),
    ];
    let mut children = Vec::new();
    let pinned = scenario.pinned;
    match kind {
        Kind::Baseline => {
            let mut args = vec!["baseline".to_owned()];
            args.append(&mut common);
            if scenario.cluster {
                args.push(cluster[0].clone());
                let echo = vec!["nats-echo".to_owned(), cluster[0].clone()];
                children.push(spawn(&setup.exe, &echo, pinned, &log("responder"))?);
            }
            children.insert(0, spawn(&setup.exe, &args, pinned, &log("server"))?);
        }
        Kind::Rs | Kind::Go => {
            let (program, prefix) = match kind {
                Kind::Rs => (setup.exe.clone(), vec!["rs-server".to_owned()]),
                _ => {
                    let go = setup.go_bin.clone();
                    (
                        go.ok_or_else(|| io::Error::other("no Go server binary"))?,
                        vec![],
                    )
                }
            };
            let role = if scenario.cluster {
                "frontend"
            } else {
                "standalone"
            };
            let mut args = prefix.clone();
            args.push(format!("--role={role}"));
            args.extend(common.iter().cloned());
            if scenario.cluster {
                args.extend(cluster.iter().cloned());
                let mut backend = prefix;
                backend.push("--role=backend".into());
                backend.extend(cluster.iter().cloned());
                backend.push(format!("--heartbeat={}", scenario.heartbeat));
                // The backend first: Go Pitaya v1's frontend can miss a server that
                // registers while it lists the others, until its next full sync.
                children.push(spawn(&program, &backend, pinned, &log("backend"))?);
                children.push(spawn(&program, &args, pinned, &log("frontend"))?);
            } else {
                children.push(spawn(&program, &args, pinned, &log("server"))?);
            }
        }
    }
    let pids = children.iter().filter_map(Child::id).collect();
    let mut running = Running {
        children,
        tcp,
        ws,
        pids,
    };
    match ready(&mut running, scenario.cluster).await {
        Ok(()) => Ok(running),
        Err(e) => {
            running.stop().await;
            Err(io::Error::other(format!(
                "{} for {}: {e}",
                kind.label(),
                scenario.id
            )))
        }
    }
}

/// Waits until both listeners handshake and, in a cluster, a forwarded request is
/// answered (the frontend has discovered the backend).
async fn ready(running: &mut Running, cluster: bool) -> io::Result<()> {
    let give_up = Instant::now() + READY_WITHIN;
    let mut last = String::new();
    while Instant::now() < give_up {
        for child in &mut running.children {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("a server exited ({status})")));
            }
        }
        match probe(running.tcp, running.ws, cluster).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(io::Error::other(format!(
        "not ready within {READY_WITHIN:?}: {last}"
    )))
}

async fn probe(tcp: SocketAddr, ws: SocketAddr, cluster: bool) -> io::Result<()> {
    let (mut conn, _) = Conn::open(Transport::Tcp, tcp).await?;
    Conn::open(Transport::Ws, ws).await?;
    if !cluster {
        return Ok(());
    }
    let mut out = BytesMut::new();
    wire::put_routed(
        &mut out,
        KIND_REQUEST,
        1,
        REMOTE_ECHO.as_bytes(),
        br#"{"data":""}"#,
    );
    conn.send(&out).await?;
    loop {
        let packet = tokio::time::timeout(Duration::from_secs(2), conn.recv())
            .await
            .map_err(|_| io::Error::other("no answer"))??;
        if packet.kind != PacketType::Data {
            continue;
        }
        return match wire::parse(&packet.body) {
            Some(m) if m.kind == KIND_RESPONSE && !m.error => Ok(()),
            _ => Err(io::Error::other("forwarded request refused")),
        };
    }
}
