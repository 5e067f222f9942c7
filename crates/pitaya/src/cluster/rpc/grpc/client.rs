//! The calling side over gRPC: one channel per peer, binding lookups.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use pitaya_protos::pitaya_client::PitayaClient;
use pitaya_protos::{BindMsg, KickMsg, Push, Request, Response};
use tokio::sync::broadcast::error::RecvError;
use tonic::transport::{Channel, Endpoint};

use super::pusher::PushQueue;
use super::{address, is_connect_error, is_timeout, Shared, StatusError};
use crate::cluster::rpc::{with_timeout, RpcClient, RpcError};
use crate::cluster::{DiscoveryEvent, ServerInfo, ServiceDiscovery};
use crate::config::GrpcClientConfig;

/// A connection to one peer, and the address it was made for.
#[derive(Debug, Clone)]
struct Peer {
    address: String,
    client: PitayaClient<Channel>,
    pushes: PushQueue,
}

/// The peers by server id.
#[derive(Debug, Default)]
struct Peers(Mutex<HashMap<String, Peer>>);

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        // Each update is one call, so the map stays consistent after a panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The calling side of cluster RPC over gRPC.
#[derive(Debug)]
pub(super) struct GrpcRpcClient {
    server_id: String,
    region: String,
    config: GrpcClientConfig,
    shared: Arc<Shared>,
    peers: Arc<Peers>,
    discovery: OnceLock<Arc<dyn ServiceDiscovery>>,
}

impl GrpcRpcClient {
    pub(super) fn new(
        config: &GrpcClientConfig,
        region: &str,
        me: &ServerInfo,
        shared: Arc<Shared>,
    ) -> Self {
        GrpcRpcClient {
            server_id: me.id.clone(),
            region: region.to_owned(),
            config: config.clone(),
            shared,
            peers: Arc::default(),
            discovery: OnceLock::new(),
        }
    }

    /// Returns the connection to `server`, made now if there is none for its
    /// current address.
    fn peer(&self, server: &ServerInfo) -> Result<Peer, RpcError> {
        let address = address(server, &self.region).ok_or_else(|| RpcError::NoAddress {
            server_id: server.id.clone(),
        })?;
        let mut peers = self.peers.lock();
        if let Some(peer) = peers.get(&server.id).filter(|p| p.address == address) {
            return Ok(peer.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| RpcError::Transport(e.into()))?
            .connect_timeout(self.config.dial_timeout);
        // The channel connects on first use and again after a failure.
        let client = PitayaClient::new(endpoint.connect_lazy());
        let timeout = self.config.request_timeout;
        let pushes = PushQueue::start(client.clone(), server.id.clone(), timeout);
        let peer = Peer {
            address,
            client,
            pushes,
        };
        peers.insert(server.id.clone(), peer.clone());
        tracing::debug!(server_id = %server.id, address = %peer.address, "grpc peer added");
        Ok(peer)
    }

    /// Returns the server with `id`, as discovery knows it.
    fn server(&self, id: &str) -> Result<Arc<ServerInfo>, RpcError> {
        self.discovery
            .get()
            .and_then(|sd| sd.server(id))
            .ok_or_else(|| RpcError::UnknownServer {
                server_id: id.to_owned(),
            })
    }

    /// Returns the frontend of `frontend_type` that holds `uid`.
    async fn holder(&self, uid: &str, frontend_type: &str) -> Result<Arc<ServerInfo>, RpcError> {
        let bindings = &self.shared.bindings;
        let id = bindings
            .frontend_id(uid, frontend_type)
            .await
            .map_err(|e| RpcError::Transport(e.into()))?
            .ok_or_else(|| RpcError::NotBound {
                uid: uid.to_owned(),
            })?;
        self.server(&id)
    }

    /// Returns the answer of `server` to the call `send` makes on its connection,
    /// or the error of spec 4.8 for a call that outlived `timeout`.
    async fn unary<T, F, Fut>(
        &self,
        server: &ServerInfo,
        route: &str,
        timeout: Duration,
        send: F,
    ) -> Result<T, RpcError>
    where
        F: FnOnce(PitayaClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let peer = self.peer(server)?;
        let timed_out = || RpcError::Timeout {
            timeout,
            route: route.to_owned(),
            caller_id: self.server_id.clone(),
            target_id: server.id.clone(),
        };
        match tokio::time::timeout(timeout, send(peer.client)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if is_timeout(&status) => Err(timed_out()),
            Ok(Err(status)) if is_connect_error(&status) => Err(RpcError::Unreachable {
                server_id: server.id.clone(),
                address: peer.address,
            }),
            Ok(Err(status)) => {
                tracing::debug!(server_id = %server.id, error = ?status, "grpc call failed");
                Err(RpcError::Transport(Box::new(StatusError(status))))
            }
            Err(_) => Err(timed_out()),
        }
    }
}

/// Returns `message` as a request carrying the deadline `timeout`, which the
/// server sees in its `grpc-timeout` header as from a Go peer.
fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

#[async_trait]
impl RpcClient for GrpcRpcClient {
    async fn call(
        &self,
        server: &ServerInfo,
        mut req: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        // Pitaya's gRPC client always writes its timeout here (spec 6.3).
        req.metadata = with_timeout(&req.metadata, timeout);
        let route = req
            .msg
            .as_ref()
            .map(|m| m.route.clone())
            .unwrap_or_default();
        let request = with_deadline(req, timeout);
        self.unary(server, &route, timeout, |mut c| async move {
            c.call(request).await
        })
        .await
    }

    async fn publish_push(&self, frontend_type: &str, push: Push) -> Result<(), RpcError> {
        let frontend = self.holder(&push.uid, frontend_type).await?;
        self.push_to_server(&frontend, push).await
    }

    /// Looks every user up in one go, then queues each push for the frontend
    /// holding its user.
    async fn publish_pushes(
        &self,
        frontend_type: &str,
        pushes: Vec<Push>,
    ) -> Vec<(String, RpcError)> {
        let uids: Vec<String> = pushes.iter().map(|p| p.uid.clone()).collect();
        let holders = match self
            .shared
            .bindings
            .frontend_ids(&uids, frontend_type)
            .await
        {
            Ok(holders) => holders,
            Err(e) => {
                let e = e.to_string();
                let failed = |uid| (uid, RpcError::Transport(e.clone().into()));
                return uids.into_iter().map(failed).collect();
            }
        };
        let mut failed = Vec::new();
        for push in pushes {
            let uid = push.uid.clone();
            let queued = match holders.get(&uid) {
                Some(id) => match self.server(id) {
                    Ok(server) => self.push_to_server(&server, push).await,
                    Err(e) => Err(e),
                },
                None => Err(RpcError::NotBound { uid: uid.clone() }),
            };
            if let Err(e) = queued {
                failed.push((uid, e));
            }
        }
        failed
    }

    /// Returns once the push is queued for `server`; it is sent in the
    /// background, in order with the other pushes to the same user.
    async fn push_to_server(&self, server: &ServerInfo, push: Push) -> Result<(), RpcError> {
        let peer = self.peer(server)?;
        peer.pushes
            .send(push)
            .await
            .map_err(|_| RpcError::Unreachable {
                server_id: server.id.clone(),
                address: peer.address,
            })
    }

    async fn pushes_flushed(&self, server: &ServerInfo, uid: &str) {
        let queue = self.peers.lock().get(&server.id).map(|p| p.pushes.clone());
        if let Some(queue) = queue {
            queue.flushed(uid).await;
        }
    }

    async fn publish_kick(&self, frontend_type: &str, uid: &str) -> Result<(), RpcError> {
        let frontend = self.holder(uid, frontend_type).await?;
        self.pushes_flushed(&frontend, uid).await;
        let timeout = self.config.request_timeout;
        let kick = KickMsg {
            user_id: uid.to_owned(),
        };
        let request = with_deadline(kick, timeout);
        self.unary(&frontend, "KickUser", timeout, |mut c| async move {
            c.kick_user(request).await
        })
        .await
        .map(drop)
    }

    /// Tells the frontend that held `bind.uid` before this one to kick its
    /// session; nothing to do when no other frontend held it.
    async fn publish_bind(&self, server_type: &str, bind: BindMsg) -> Result<(), RpcError> {
        let recorded = self.shared.displaced().remove(&bind.uid);
        let previous = match recorded {
            Some(recorded) => recorded,
            None => self
                .shared
                .bindings
                .frontend_id(&bind.uid, server_type)
                .await
                .map_err(|e| RpcError::Transport(e.into()))?,
        };
        let Some(previous) = previous.filter(|id| *id != self.server_id) else {
            return Ok(());
        };
        let Ok(frontend) = self.server(&previous) else {
            tracing::debug!(uid = %bind.uid, server_id = %previous, "former frontend is gone");
            return Ok(());
        };
        let timeout = self.config.request_timeout;
        let request = with_deadline(bind, timeout);
        self.unary(
            &frontend,
            "SessionBindRemote",
            timeout,
            |mut c| async move { c.session_bind_remote(request).await },
        )
        .await
        .map(drop)
    }

    fn attach_discovery(&self, discovery: Arc<dyn ServiceDiscovery>) {
        let events = discovery.subscribe();
        if self.discovery.set(Arc::clone(&discovery)).is_err() {
            return;
        }
        tokio::spawn(forget_departed(
            Arc::downgrade(&self.peers),
            Arc::downgrade(&discovery),
            events,
        ));
    }
}

/// Drops the connection to every server that leaves, until discovery or the
/// client goes away.
async fn forget_departed(
    peers: Weak<Peers>,
    discovery: Weak<dyn ServiceDiscovery>,
    mut events: tokio::sync::broadcast::Receiver<DiscoveryEvent>,
) {
    loop {
        let event = events.recv().await;
        let Some(peers) = peers.upgrade() else { return };
        match event {
            Ok(DiscoveryEvent::Removed(server)) => {
                if peers.lock().remove(&server.id).is_some() {
                    tracing::debug!(server_id = %server.id, "grpc peer dropped");
                }
            }
            Ok(_) => {}
            // Some events were lost: keep only the servers still known.
            Err(RecvError::Lagged(_)) => {
                let Some(sd) = discovery.upgrade() else {
                    return;
                };
                peers.lock().retain(|id, _| sd.server(id).is_some());
            }
            Err(RecvError::Closed) => return,
        }
    }
}
