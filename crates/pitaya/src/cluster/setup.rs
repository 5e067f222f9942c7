//! How an app joins a cluster: the RPC transport and the discovery backend it starts,
//! and the routers that pick a server for forwarded client messages.
//!
//! An app in cluster mode starts, in this order (spec 9.3 and 14.5): its RPC client,
//! its RPC server, then service discovery, so that it becomes visible to the others
//! only once it can answer them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::rpc::{RpcClient, RpcError, RpcHandler, RpcServer};
use super::{DiscoveryError, ServerInfo, ServiceDiscovery};
use crate::config::ConfigError;
use crate::route::Route;
use crate::{Config, Session};

/// Starts the two sides of cluster RPC for an app.
///
/// One transport value serves one app: it may keep what
/// [`prepare`](Self::prepare) set up for the later calls.
#[async_trait]
pub trait RpcTransport: Send + Sync + fmt::Debug + 'static {
    /// Returns once what must precede publishing this server is done, with its
    /// metadata added to `info`; the builder calls it, before discovery can
    /// see `info`. gRPC binds its port here and publishes its address; the
    /// default does nothing.
    ///
    /// # Errors
    ///
    /// Returns an [`RpcError`] when the transport cannot be set up.
    fn prepare(&self, config: &Config, info: &mut ServerInfo) -> Result<(), RpcError> {
        let _ = (config, info);
        Ok(())
    }

    /// Returns the calling side, connected.
    ///
    /// # Errors
    ///
    /// Returns an [`RpcError`] when the transport stays unreachable.
    async fn connect_client(
        &self,
        config: &Config,
        me: &ServerInfo,
    ) -> Result<Arc<dyn RpcClient>, RpcError>;

    /// Returns the answering side, ready to receive calls for `me`.
    ///
    /// # Errors
    ///
    /// Returns an [`RpcError`] when the transport stays unreachable.
    async fn start_server(
        &self,
        config: &Config,
        me: &ServerInfo,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Arc<dyn RpcServer>, RpcError>;

    /// Returns how long a call waits for its answer; NATS's setting unless overridden.
    fn request_timeout(&self, config: &Config) -> Duration {
        config.cluster.rpc.client.nats.request_timeout
    }
}

#[async_trait]
impl RpcTransport for Box<dyn RpcTransport> {
    fn prepare(&self, config: &Config, info: &mut ServerInfo) -> Result<(), RpcError> {
        (**self).prepare(config, info)
    }

    async fn connect_client(
        &self,
        config: &Config,
        me: &ServerInfo,
    ) -> Result<Arc<dyn RpcClient>, RpcError> {
        (**self).connect_client(config, me).await
    }

    async fn start_server(
        &self,
        config: &Config,
        me: &ServerInfo,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Arc<dyn RpcServer>, RpcError> {
        (**self).start_server(config, me, handler).await
    }

    fn request_timeout(&self, config: &Config) -> Duration {
        (**self).request_timeout(config)
    }
}

/// Returns a new instance of the transport `pitaya.cluster.rpc.transport` names.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "etcd")]
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use pitaya::cluster::{configured_transport, EtcdSd};
/// use pitaya::{App, Config};
///
/// // PITAYA_CLUSTER_RPC_TRANSPORT=grpc switches this backend to gRPC.
/// let config = Config::load()?;
/// let room = App::builder("room")
///     .backend()
///     .cluster(configured_transport(&config)?, EtcdSd)
///     .config(config)
///     .build()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// Returns [`ConfigError::Invalid`] when the transport is not compiled in
/// (features `nats` and `grpc`).
pub fn configured_transport(config: &Config) -> Result<Box<dyn RpcTransport>, ConfigError> {
    match config.cluster.rpc.transport {
        #[cfg(feature = "nats")]
        crate::config::TransportKind::Nats => Ok(Box::new(NatsRpc)),
        #[cfg(feature = "grpc")]
        crate::config::TransportKind::Grpc => Ok(Box::new(super::rpc::GrpcRpc::new())),
        #[allow(unreachable_patterns)]
        other => Err(ConfigError::Invalid(format!(
            "pitaya.cluster.rpc.transport {other:?} is not compiled in (features nats, grpc)"
        ))),
    }
}

/// Starts service discovery for an app.
#[async_trait]
pub trait DiscoveryBackend: Send + Sync + fmt::Debug + 'static {
    /// Returns discovery with `me` published.
    ///
    /// # Errors
    ///
    /// Returns a [`DiscoveryError`] when the backend stays unreachable.
    async fn start(
        &self,
        config: &Config,
        me: ServerInfo,
    ) -> Result<Arc<dyn ServiceDiscovery>, DiscoveryError>;
}

/// A client message being forwarded, as a [`Router`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteRequest<'a> {
    /// The route, with the server type to choose a server of.
    pub route: &'a Route,
    /// The client's session on this frontend.
    pub session: &'a Session,
    /// The message body, decompressed but still serialized.
    pub body: &'a Bytes,
}

/// Picks the server a forwarded client message goes to among `servers` (never empty);
/// `None` answers the client with `PIT-500`.
pub type Router =
    Arc<dyn Fn(&RouteRequest<'_>, &[Arc<ServerInfo>]) -> Option<Arc<ServerInfo>> + Send + Sync>;

/// Cluster RPC over NATS with the settings of `pitaya.cluster.rpc.*.nats`.
#[cfg(feature = "nats")]
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsRpc;

#[cfg(feature = "nats")]
#[async_trait]
impl RpcTransport for NatsRpc {
    async fn connect_client(
        &self,
        config: &Config,
        me: &ServerInfo,
    ) -> Result<Arc<dyn RpcClient>, RpcError> {
        let client = super::rpc::NatsRpcClient::connect(&config.cluster.rpc.client.nats, me);
        Ok(Arc::new(client.await?))
    }

    async fn start_server(
        &self,
        config: &Config,
        me: &ServerInfo,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Arc<dyn RpcServer>, RpcError> {
        let nats = &config.cluster.rpc.server.nats;
        let server = super::rpc::NatsRpcServer::start(nats, me, handler).await?;
        Ok(Arc::new(server))
    }
}

/// Service discovery in etcd with the settings of `pitaya.cluster.sd.etcd`.
#[cfg(feature = "etcd")]
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdSd;

#[cfg(feature = "etcd")]
#[async_trait]
impl DiscoveryBackend for EtcdSd {
    async fn start(
        &self,
        config: &Config,
        me: ServerInfo,
    ) -> Result<Arc<dyn ServiceDiscovery>, DiscoveryError> {
        let sd = super::EtcdDiscovery::start(config.cluster.sd.etcd.clone(), me).await?;
        Ok(Arc::new(sd))
    }
}
