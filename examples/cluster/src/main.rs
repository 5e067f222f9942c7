//! `cluster-chat`: runs one server of the clustered chat, a connector or a room.
//!
//! Every server needs etcd and, by default, NATS; their addresses come from the Pitaya
//! config keys (file or `PITAYA_*` environment), for example
//! `PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT`, `PITAYA_CLUSTER_RPC_SERVER_NATS_CONNECT`,
//! `PITAYA_CLUSTER_SD_ETCD_ENDPOINTS` and, for rooms, `PITAYA_GROUPS_ETCD_ENDPOINTS`.
//!
//! `PITAYA_CLUSTER_RPC_TRANSPORT=grpc` switches to gRPC: each server then listens on
//! `PITAYA_CLUSTER_RPC_SERVER_GRPC_PORT` (0 for a free port, needed when several run
//! on one machine), publishes `PITAYA_CLUSTER_RPC_SERVER_GRPC_HOST` (default: the host
//! name), and records its users in `PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pitaya::acceptor::{Acceptor, TcpAcceptor, WsAcceptor};
use pitaya::cluster::{configured_transport, EtcdSd};
use pitaya::config::Config;
use pitaya::groups::EtcdGroupStore;
use pitaya::module::BinaryModule;
use pitaya::Builder;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "cluster-chat",
    about = "One server of the clustered pitaya-rs chat"
)]
struct Args {
    /// Config file (TOML or YAML) with Pitaya keys under `pitaya`.
    #[arg(long, global = true, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Program run beside the server for as long as it runs (Pitaya's binary
    /// module): its output goes to the log, it gets SIGTERM at shutdown.
    #[arg(long, global = true, env = "CHAT_SIDECAR")]
    sidecar: Option<PathBuf>,
    /// An argument of the --sidecar program; repeat for more.
    #[arg(long, global = true, allow_hyphen_values = true)]
    sidecar_arg: Vec<String>,
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// A frontend: client connections over TCP and WebSocket.
    Connector {
        /// TCP listen address.
        #[arg(long, env = "CHAT_TCP_ADDR", default_value = "127.0.0.1:3250")]
        tcp: SocketAddr,
        /// WebSocket listen address (any path is accepted).
        #[arg(long, env = "CHAT_WS_ADDR", default_value = "127.0.0.1:3251")]
        ws: SocketAddr,
    },
    /// A backend running the room.
    Room,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-chat: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::load()?,
    };
    // Logs per RUST_LOG; spans over OTLP when pitaya.tracing or OTEL_* ask for it,
    // each server type as its own service unless OTEL_SERVICE_NAME says otherwise.
    let service = match args.role {
        Role::Connector { .. } => "connector",
        Role::Room => "room",
    };
    let telemetry = pitaya::telemetry::init(&config.tracing, service)?;
    let sidecar = args
        .sidecar
        .map(|program| BinaryModule::new(program, args.sidecar_arg));
    let served = serve(args.role, config, sidecar).await;
    if let Err(e) = telemetry.shutdown().await {
        eprintln!("cluster-chat: {e}");
    }
    served
}

async fn serve(
    role: Role,
    config: Config,
    sidecar: Option<BinaryModule>,
) -> Result<(), Box<dyn std::error::Error>> {
    match role {
        Role::Connector { tcp, ws } => {
            let tcp = TcpAcceptor::bind(tcp)
                .await
                .map_err(|e| format!("cannot listen on {tcp} (tcp): {e}"))?;
            let ws = WsAcceptor::bind(ws)
                .await
                .map_err(|e| format!("cannot listen on {ws} (websocket): {e}"))?;
            tracing::info!(tcp = %tcp.local_addr(), ws = %ws.local_addr(), "connector listening");
            let transport = configured_transport(&config)?;
            let app = with_sidecar(cluster_chat::connector(config), sidecar)
                .acceptor(tcp)
                .acceptor(ws)
                .cluster(transport, EtcdSd)
                .build()?;
            app.run().await?;
        }
        Role::Room => {
            let groups = connect_groups(&config).await?;
            let transport = configured_transport(&config)?;
            let app = with_sidecar(cluster_chat::room(config), sidecar)
                .backend()
                .groups(Arc::new(groups))
                .cluster(transport, EtcdSd)
                .build()?;
            cluster_chat::ensure_room(&app.handle()).await?;
            app.run().await?;
        }
    }
    Ok(())
}

/// Returns `builder` with the sidecar module, if there is one.
fn with_sidecar(builder: Builder, sidecar: Option<BinaryModule>) -> Builder {
    match sidecar {
        Some(module) => builder.module("sidecar", module),
        None => builder,
    }
}

/// Returns the etcd group store, retrying while etcd is unreachable for as long as
/// service discovery would (`pitaya.cluster.sd.etcd.startuptimeout`).
async fn connect_groups(config: &Config) -> Result<EtcdGroupStore, String> {
    let give_up = Instant::now() + config.cluster.sd.etcd.startup_timeout;
    loop {
        match EtcdGroupStore::connect(&config.groups.etcd).await {
            Ok(groups) => return Ok(groups),
            Err(e) if Instant::now() < give_up => {
                tracing::warn!(error = %e, "etcd group store not reachable yet, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("etcd group store: {e}")),
        }
    }
}
