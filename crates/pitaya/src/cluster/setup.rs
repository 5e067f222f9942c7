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
use crate::route::Route;
use crate::{Config, Session};

/// Starts the two sides of cluster RPC for an app.
#[async_trait]
pub trait RpcTransport: Send + Sync + fmt::Debug + 'static {
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
