//! [`GrpcRpc`]: the gRPC transport as an app starts it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::client::GrpcRpcClient;
use super::server::GrpcRpcServer;
use super::{Shared, GRPC_HOST, GRPC_PORT, REGION};
use crate::cluster::bindings::EtcdBindingStorage;
use crate::cluster::rpc::{RpcClient, RpcError, RpcHandler, RpcServer};
use crate::cluster::{RpcTransport, ServerInfo};
use crate::Config;

/// Cluster RPC over gRPC with the settings of `pitaya.cluster.rpc.*.grpc`.
///
/// Building the app binds the gRPC port (`pitaya.cluster.rpc.server.grpc.port`,
/// 0 for a free one) on all IPv4 interfaces and adds to the server's metadata
/// `grpcHost` (`pitaya.cluster.rpc.server.grpc.host`, else the host name),
/// `grpcPort` (the port bound) and `region` (`pitaya.cluster.info.region`,
/// when set). Entries the app already set with
/// [`Builder::metadata`](crate::Builder::metadata) are kept, so an app behind
/// NAT can publish another address, and `grpc-external-host` /
/// `grpc-external-port` for callers in other regions.
///
/// Users are found through the binding storage in etcd of
/// `pitaya.modules.bindingstorage.etcd`.
///
/// A value serves one app; build each app with its own.
///
/// # Examples
///
/// ```no_run
/// use pitaya::cluster::{EtcdSd, GrpcRpc};
/// use pitaya::App;
///
/// # fn f() -> Result<(), pitaya::BuildError> {
/// let room = App::builder("room").backend().cluster(GrpcRpc::new(), EtcdSd).build()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct GrpcRpc {
    state: Mutex<State>,
}

/// What `prepare` and `connect_client` leave for the later steps.
#[derive(Debug, Default)]
struct State {
    listener: Option<TcpListener>,
    shared: Option<Arc<Shared>>,
}

impl GrpcRpc {
    /// Returns the transport, with bindings in etcd.
    pub fn new() -> GrpcRpc {
        GrpcRpc::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Each step takes or sets one field, so the state is whole after a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns what the client and server share, set up on first use.
    async fn shared(&self, config: &Config, me: &ServerInfo) -> Result<Arc<Shared>, RpcError> {
        if let Some(shared) = self.state().shared.clone() {
            return Ok(shared);
        }
        let etcd = &config.modules.binding_storage.etcd;
        let bindings = EtcdBindingStorage::connect(etcd, me)
            .await
            .map_err(|e| RpcError::Transport(e.into()))?;
        let shared = Arc::new(Shared {
            bindings: Arc::new(bindings),
            displaced: Mutex::default(),
        });
        Ok(Arc::clone(self.state().shared.get_or_insert(shared)))
    }
}

/// Returns a listener on `port` of every IPv4 interface, as Pitaya listens.
fn bind(port: u16) -> Result<TcpListener, RpcError> {
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    TcpListener::bind(address).map_err(|e| {
        let message = format!("cannot listen for grpc on {address}: {e}");
        RpcError::Transport(message.into())
    })
}

/// Adds the address keys of spec 8 to `metadata`, keeping those already set.
fn publish(metadata: &mut HashMap<String, String>, config: &Config, host: &str, port: u16) {
    let grpc = &config.cluster.rpc.server.grpc;
    let host = if grpc.host.is_empty() {
        host
    } else {
        &grpc.host
    };
    metadata
        .entry(GRPC_HOST.into())
        .or_insert_with(|| host.to_owned());
    metadata
        .entry(GRPC_PORT.into())
        .or_insert_with(|| port.to_string());
    let region = &config.cluster.info.region;
    if !region.is_empty() {
        metadata
            .entry(REGION.into())
            .or_insert_with(|| region.clone());
    }
}

#[async_trait]
impl RpcTransport for GrpcRpc {
    fn prepare(&self, config: &Config, info: &mut ServerInfo) -> Result<(), RpcError> {
        let listener = bind(config.cluster.rpc.server.grpc.port)?;
        let port = listener
            .local_addr()
            .map_err(|e| RpcError::Transport(e.into()))?
            .port();
        publish(&mut info.metadata, config, &info.hostname, port);
        self.state().listener = Some(listener);
        Ok(())
    }

    async fn connect_client(
        &self,
        config: &Config,
        me: &ServerInfo,
    ) -> Result<Arc<dyn RpcClient>, RpcError> {
        let shared = self.shared(config, me).await?;
        let grpc = &config.cluster.rpc.client.grpc;
        let region = &config.cluster.info.region;
        Ok(Arc::new(GrpcRpcClient::new(grpc, region, me, shared)))
    }

    async fn start_server(
        &self,
        config: &Config,
        me: &ServerInfo,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Arc<dyn RpcServer>, RpcError> {
        let shared = self.shared(config, me).await?;
        let listener = self.state().listener.take();
        let listener = match listener {
            Some(listener) => listener,
            // Without `prepare` nobody learns this address from discovery,
            // but servers told it otherwise can still call.
            None => bind(config.cluster.rpc.server.grpc.port)?,
        };
        let server = GrpcRpcServer::start(listener, me, handler, shared)?;
        Ok(Arc::new(server))
    }

    fn request_timeout(&self, config: &Config) -> Duration {
        config.cluster.rpc.client.grpc.request_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_binds_a_free_port_and_publishes_host_port_and_region() {
        let mut config = Config::default();
        config.cluster.rpc.server.grpc.port = 0;
        config.cluster.info.region = "eu".into();
        let mut info = ServerInfo::new("room", false);
        info.hostname = "room-7".into();

        let transport = GrpcRpc::new();
        transport.prepare(&config, &mut info).unwrap();
        let bound = transport.state().listener.as_ref().unwrap().local_addr();
        let port = bound.unwrap().port();
        assert_ne!(port, 0);
        assert_eq!(info.metadata[GRPC_HOST], "room-7");
        assert_eq!(info.metadata[GRPC_PORT], port.to_string());
        assert_eq!(info.metadata[REGION], "eu");
    }

    #[test]
    fn configured_host_and_app_metadata_win_over_defaults() {
        let mut config = Config::default();
        config.cluster.rpc.server.grpc.host = "10.1.2.3".into();
        let mut metadata = HashMap::from([(GRPC_PORT.to_owned(), "443".to_owned())]);
        publish(&mut metadata, &config, "ignored", 5000);
        assert_eq!(metadata[GRPC_HOST], "10.1.2.3");
        assert_eq!(metadata[GRPC_PORT], "443");
        assert!(!metadata.contains_key(REGION), "no region configured");
    }

    #[test]
    fn a_port_in_use_fails_prepare_naming_it() {
        let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let mut config = Config::default();
        config.cluster.rpc.server.grpc.port = taken.local_addr().unwrap().port();
        let mut info = ServerInfo::new("room", false);
        let err = GrpcRpc::new().prepare(&config, &mut info).unwrap_err();
        assert!(err.to_string().contains("cannot listen for grpc"), "{err}");
        assert!(info.metadata.is_empty());
    }
}
