//! The pitaya-rs bench server: the bench routes on the framework, as a user writes them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pitaya::acceptor::{TcpAcceptor, WsAcceptor};
use pitaya::cluster::{EtcdSd, NatsRpc};
use pitaya::config::Config;
use pitaya::{App, Component, Context, Error, GroupError};
use serde::{Deserialize, Serialize};

/// Group the broadcast members join.
const GROUP: &str = "bench";

/// Which server this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// Every route, no cluster.
    Standalone,
    /// Cluster frontend (server type `connector`) forwarding `backend.*`.
    Frontend,
    /// Cluster backend (server type `backend`) with the echo handler.
    Backend,
}

/// Command line of `pitaya-bench rs-server` (and of the Go server, flag for flag).
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Which server to run.
    #[arg(long, value_enum, default_value = "standalone")]
    role: Role,
    /// TCP listen address (frontends).
    #[arg(long, default_value = "127.0.0.1:0")]
    tcp: SocketAddr,
    /// WebSocket listen address (frontends).
    #[arg(long, default_value = "127.0.0.1:0")]
    ws: SocketAddr,
    /// Heartbeat interval, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat: u64,
    /// NATS URL (cluster roles).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// etcd endpoint `host:port` (cluster roles).
    #[arg(long, default_value = "127.0.0.1:2379")]
    etcd: String,
    /// Service discovery key prefix (cluster roles).
    #[arg(long, default_value = "pitaya/")]
    etcd_prefix: String,
}

/// The echo body: `{"data": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    data: String,
}

/// A broadcast body: the sender's clock in nanoseconds and the broadcast's number.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    ts: u64,
    seq: u64,
}

/// A join body.
#[derive(Debug, Deserialize)]
struct Join {
    uid: String,
}

/// A plain answer.
#[derive(Debug, Serialize)]
struct Done {
    code: u32,
}

/// A count answer.
#[derive(Debug, Serialize)]
struct Count {
    count: u64,
}

/// Returns the `bench` component with every route.
fn component() -> Component {
    let notifies = Arc::new(AtomicU64::new(0));
    let counted = notifies.clone();
    Component::new("bench")
        .request("echo", |_ctx: Context, arg: Echo| async move {
            Ok::<_, Error>(arg)
        })
        .notify("notify", move |_ctx: Context, _arg: Echo| {
            notifies.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
        .request("count", move |_ctx: Context, _arg: serde_json::Value| {
            let count = counted.load(Ordering::Relaxed);
            async move { Ok::<_, Error>(Count { count }) }
        })
        .request("join", |ctx: Context, arg: Join| async move {
            ctx.session()
                .bind(arg.uid.clone())
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            match ctx.app().groups().add_member(GROUP, &arg.uid).await {
                Ok(()) | Err(GroupError::MemberExists) => Ok(Done { code: 0 }),
                Err(e) => Err(e.into()),
            }
        })
        .request("broadcast", |ctx: Context, arg: Stamp| async move {
            ctx.app()
                .group_broadcast("", GROUP, "onBcast", &arg)
                .await?;
            Ok::<_, Error>(Done { code: 0 })
        })
}

/// Runs the server until killed.
pub(crate) async fn run(args: ServerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.heartbeat.interval = Duration::from_secs(args.heartbeat);
    config.cluster.rpc.client.nats.connection.connect = args.nats.clone();
    config.cluster.rpc.server.nats.connection.connect = args.nats.clone();
    config.cluster.sd.etcd.endpoints = vec![args.etcd.clone()];
    config.cluster.sd.etcd.prefix = args.etcd_prefix.clone();
    // Off in every server of the benchmark: Go Pitaya v1 deflates each message once per
    // recipient, which would measure zlib rather than the frameworks.
    config.handler.messages.compression = false;
    let app = match args.role {
        Role::Standalone => App::builder("bench")
            .config(config)
            .register(component())
            // A member leaves with its session, as the baseline's do, so a point's
            // broadcasts reach only its own clients.
            .on_session_close(|app, session| async move {
                if let Some(uid) = session.uid() {
                    let _ = app.groups().remove_member(GROUP, &uid).await;
                }
            })
            .acceptor(TcpAcceptor::bind(args.tcp).await?)
            .acceptor(WsAcceptor::bind(args.ws).await?)
            .build()?,
        Role::Frontend => App::builder("connector")
            .config(config)
            .acceptor(TcpAcceptor::bind(args.tcp).await?)
            .acceptor(WsAcceptor::bind(args.ws).await?)
            .cluster(NatsRpc, EtcdSd)
            .build()?,
        Role::Backend => App::builder("backend")
            .config(config)
            .backend()
            .register(component())
            .cluster(NatsRpc, EtcdSd)
            .build()?,
    };
    let _ = app.handle().groups().create(GROUP).await;
    app.run().await?;
    Ok(())
}
