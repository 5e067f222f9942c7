//! A cluster for tests: real NATS and etcd, apps started in this process.
//!
//! Apps run on the transport their config names (`pitaya.cluster.rpc.transport`):
//! [`Infra::config`] gives NATS, [`grpc_config`] gRPC.
#![allow(dead_code)]

pub(crate) mod apps;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pitaya::acceptor::TcpAcceptor;
use pitaya::cluster::{configured_transport, EtcdSd};
use pitaya::config::TransportKind;
use pitaya::{AppHandle, Builder, Config, StartError};
use pitaya_test_support::{EtcdServer, NatsServer, RawClient};
use tokio::task::JoinHandle;

/// Longest wait for anything in these tests; generous for a loaded CI machine.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Real NATS and etcd on free ports.
pub(crate) struct Infra {
    pub(crate) nats: NatsServer,
    pub(crate) etcd: EtcdServer,
}

impl Infra {
    pub(crate) fn start() -> Infra {
        pitaya_test_support::init_tracing();
        Infra {
            nats: NatsServer::start().expect("nats-server starts"),
            etcd: EtcdServer::start().expect("etcd starts"),
        }
    }

    /// Returns a config pointing at this NATS and etcd, with quick timeouts.
    pub(crate) fn config(&self) -> Config {
        let mut c = etcd_config(&self.etcd);
        c.cluster.rpc.client.nats.connection.connect = self.nats.url();
        c.cluster.rpc.server.nats.connection.connect = self.nats.url();
        c.cluster.rpc.client.nats.connection.reconnect_wait = Duration::from_millis(100);
        c.cluster.rpc.server.nats.connection.reconnect_wait = Duration::from_millis(100);
        c.cluster.rpc.client.nats.request_timeout = Duration::from_secs(5);
        c
    }
}

/// Returns a config for discovery in `etcd`, with quick timeouts.
fn etcd_config(etcd: &EtcdServer) -> Config {
    let mut c = Config::default();
    let sd = &mut c.cluster.sd.etcd;
    sd.endpoints = vec![etcd.endpoint()];
    sd.dial_timeout = Duration::from_secs(2);
    sd.shutdown.delay = Duration::ZERO;
    sd.grant_lease.retry_interval = Duration::from_millis(100);
    c.shutdown.timeout = Duration::from_secs(5);
    c
}

/// Returns a config for RPC over gRPC on a free loopback port, with discovery
/// and binding storage in `etcd`.
pub(crate) fn grpc_config(etcd: &EtcdServer) -> Config {
    let mut c = etcd_config(etcd);
    c.cluster.rpc.transport = TransportKind::Grpc;
    c.cluster.rpc.server.grpc.port = 0;
    c.cluster.rpc.server.grpc.host = "127.0.0.1".into();
    c.cluster.rpc.client.grpc.request_timeout = Duration::from_secs(5);
    c.modules.binding_storage.etcd.endpoints = vec![etcd.endpoint()];
    c.modules.binding_storage.etcd.dial_timeout = Duration::from_secs(2);
    c
}

/// One app of the cluster, running in this process.
pub(crate) struct Node {
    pub(crate) handle: AppHandle,
    pub(crate) tcp: Option<SocketAddr>,
    run: Option<JoinHandle<Result<(), StartError>>>,
}

impl Node {
    /// Starts a frontend with a TCP acceptor on a free port.
    pub(crate) async fn frontend(builder: Builder, config: Config) -> Node {
        let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
        let transport = configured_transport(&config).expect("transport compiled in");
        let builder = builder.config(config).acceptor(tcp);
        Node::start(builder.cluster(transport, EtcdSd)).await
    }

    /// Starts a backend.
    pub(crate) async fn backend(builder: Builder, config: Config) -> Node {
        let transport = configured_transport(&config).expect("transport compiled in");
        let builder = builder.config(config).backend();
        Node::start(builder.cluster(transport, EtcdSd)).await
    }

    async fn start(builder: Builder) -> Node {
        let app = builder.build().expect("app builds");
        let tcp = app
            .local_addrs()
            .into_iter()
            .find(|(t, _)| *t == "tcp")
            .map(|(_, a)| a);
        let handle = app.handle();
        let run = tokio::spawn(app.run_until(std::future::pending()));
        let h = handle.clone();
        wait_for("the app to join the cluster", move || {
            let h = h.clone();
            async move { h.discovery().is_some() }
        })
        .await;
        Node {
            handle,
            tcp,
            run: Some(run),
        }
    }

    pub(crate) fn id(&self) -> String {
        self.handle.server_id().to_owned()
    }

    /// Returns once this node knows `count` servers of `server_type`.
    pub(crate) async fn sees(&self, server_type: &str, count: usize) {
        let h = self.handle.clone();
        let server_type = server_type.to_owned();
        wait_for("servers to show up in discovery", move || {
            let (h, t) = (h.clone(), server_type.clone());
            async move { h.servers_by_type(&t).len() == count }
        })
        .await;
    }

    /// Returns a TCP client of this frontend, handshake done.
    pub(crate) async fn client(&self) -> RawClient {
        let mut c = RawClient::tcp(self.tcp.expect("a frontend")).await.unwrap();
        c.handshake().await.unwrap();
        c
    }

    /// Returns what the app returned once it stopped on its own.
    pub(crate) async fn stopped(mut self) -> Result<(), StartError> {
        let run = self.run.take().expect("app running");
        let stopped = tokio::time::timeout(WAIT, run).await;
        stopped.expect("app stops on its own").unwrap()
    }

    /// Shuts the app down gracefully and returns once it stopped.
    pub(crate) async fn stop(mut self) {
        self.handle.shutdown();
        if let Some(run) = self.run.take() {
            let stopped = tokio::time::timeout(WAIT, run).await;
            stopped.expect("app stops").unwrap().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Returns once `check` is true, polling; panics after [`WAIT`] naming `what`.
pub(crate) async fn wait_for<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
