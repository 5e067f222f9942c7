//! The app's side of cluster mode: starting the RPC transport and discovery, calling
//! other servers, and answering them.
//!
//! | file | what it does |
//! |---|---|
//! | `mod.rs` | [`ClusterLink`]: start, stop, calls, pushes, kicks, bind announcements |
//! | `forward.rs` | sys RPC: a frontend forwarding a client message (spec 6.4) |
//! | `serve.rs` | the [`RpcHandler`](crate::cluster::RpcHandler) answering other servers |
//! | `api.rs` | the public cluster API of [`AppHandle`]: `rpc`, `rpc_to`, servers |

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pitaya_protos::{BindMsg, Msg, MsgType, Push, Request, RpcType};

use super::AppHandle;
use crate::cluster::rpc::{request_metadata, response_error};
use crate::cluster::{
    DiscoveryBackend, DiscoveryError, Router, RpcClient, RpcError, RpcServer, RpcTransport,
    ServerInfo, ServiceDiscovery,
};
use crate::metrics::ResponseKind;
use crate::Error;

mod api;
mod forward;
mod serve;

/// Route of the frontend remote that binds a session for a backend (spec 6.6).
pub(crate) const SYS_BIND: &str = "sys.bindsession";
/// Route of the frontend remote that takes a backend's session data.
pub(crate) const SYS_PUSH_SESSION: &str = "sys.pushsession";
/// Route of the frontend remote that kicks a user for a backend.
pub(crate) const SYS_KICK: &str = "sys.kick";

/// Why an app could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The RPC transport stayed unreachable.
    #[error("cluster rpc could not start: {0}")]
    Rpc(#[from] RpcError),
    /// Service discovery stayed unreachable.
    #[error("service discovery could not start: {0}")]
    Discovery(#[from] DiscoveryError),
    /// A module's `init` failed.
    #[error(transparent)]
    Module(#[from] crate::module::ModuleError),
    /// The app ran, then had to stop: the reason is given.
    #[error("stopped: {0}")]
    Stopped(String),
}

/// What a cluster app holds: how to start its parts, and the parts once started.
pub(crate) struct ClusterLink {
    transport: Arc<dyn RpcTransport>,
    discovery_backend: Arc<dyn DiscoveryBackend>,
    routers: HashMap<String, Router>,
    request_timeout: Duration,
    client: OnceLock<Arc<dyn RpcClient>>,
    server: OnceLock<Arc<dyn RpcServer>>,
    discovery: OnceLock<Arc<dyn ServiceDiscovery>>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink")
            .field("transport", &self.transport)
            .field("discovery", &self.discovery_backend)
            .field("routers", &self.routers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn not_started() -> Error {
    Error::internal("cluster not started yet")
}

impl ClusterLink {
    pub(crate) fn new(
        transport: Arc<dyn RpcTransport>,
        discovery_backend: Arc<dyn DiscoveryBackend>,
        routers: HashMap<String, Router>,
        request_timeout: Duration,
    ) -> Self {
        ClusterLink {
            transport,
            discovery_backend,
            routers,
            request_timeout,
            client: OnceLock::new(),
            server: OnceLock::new(),
            discovery: OnceLock::new(),
        }
    }

    /// Starts the RPC client, then the RPC server (spec 9.3: discovery comes later,
    /// so that a server is published only once it can answer).
    pub(crate) async fn start_rpc(&self, app: &AppHandle) -> Result<(), StartError> {
        let config = app.config();
        let me = app.server_info();
        let client = self.transport.connect_client(config, me).await?;
        let client = crate::telemetry::TracedClient::wrap(client);
        let _ = self.client.set(client);
        let handler = Arc::new(serve::AppRpcHandler::new(app));
        let server = self.transport.start_server(config, me, handler).await?;
        let _ = self.server.set(server);
        Ok(())
    }

    /// Publishes this server in service discovery and follows the others.
    pub(crate) async fn start_discovery(&self, app: &AppHandle) -> Result<(), StartError> {
        let me = app.server_info();
        let discovery = self
            .discovery_backend
            .start(app.config(), (**me).clone())
            .await?;
        if let Ok(client) = self.client() {
            client.attach_discovery(discovery.clone());
        }
        let _ = self.discovery.set(discovery);
        self.watch_transport(app);
        tracing::info!(
            server_id = %me.id, server_type = %me.server_type, frontend = me.frontend,
            "joined the cluster"
        );
        Ok(())
    }

    /// Shuts the app down if the RPC transport is lost for good (spec 7.1): a server
    /// that can neither call nor be called must leave, so that it is restarted.
    fn watch_transport(&self, app: &AppHandle) {
        let (Ok(client), Ok(server)) = (self.client(), self.server()) else {
            return;
        };
        let (client, server, app) = (client.clone(), server.clone(), app.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = client.closed() => {}
                () = server.closed() => {}
                () = app.shutting_down() => return,
            }
            tracing::error!("cluster rpc connection lost for good: shutting down");
            app.shutdown_on_error("cluster rpc connection lost for good");
        });
    }

    /// Withdraws from discovery first, so that nobody picks this server any more.
    pub(crate) async fn leave_discovery(&self) {
        if let Some(sd) = self.discovery.get() {
            if let Err(e) = sd.shutdown().await {
                tracing::warn!(error = %e, "could not withdraw from service discovery");
            }
        }
    }

    /// Stops answering calls once those in progress are done.
    pub(crate) async fn stop_server(&self) {
        if let Some(server) = self.server.get() {
            server.shutdown().await;
        }
    }

    pub(crate) fn client(&self) -> Result<&Arc<dyn RpcClient>, Error> {
        self.client.get().ok_or_else(not_started)
    }

    pub(crate) fn server(&self) -> Result<&Arc<dyn RpcServer>, Error> {
        self.server.get().ok_or_else(not_started)
    }

    pub(crate) fn discovery(&self) -> Result<&Arc<dyn ServiceDiscovery>, Error> {
        self.discovery.get().ok_or_else(not_started)
    }

    pub(crate) fn router(&self, server_type: &str) -> Option<&Router> {
        self.routers.get(server_type)
    }

    /// Returns the metadata of a new call from this server (spec 6.3).
    fn metadata(&self, app: &AppHandle, route: &str, start: SystemTime) -> Bytes {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        request_metadata(
            app.server_info(),
            &request_id,
            route,
            start,
            self.request_timeout,
        )
    }

    /// Returns the data of `server`'s answer to `req`, or the error it carries.
    pub(crate) async fn call(&self, server: &ServerInfo, req: Request) -> Result<Bytes, Error> {
        let client = self.client()?;
        let response = client.call(server, req, self.request_timeout).await?;
        match response_error(&response) {
            Some(e) => Err(e),
            None => Ok(response.data),
        }
    }

    /// Returns the answer of a user RPC to `target` (spec 6.5 and 6.6).
    pub(crate) async fn call_user(
        &self,
        app: &AppHandle,
        target: &ServerInfo,
        route: &str,
        arg: Bytes,
    ) -> Result<Bytes, Error> {
        let req = self.user_request(app, route, arg);
        let started = Instant::now();
        let result = self.call(target, req).await;
        let metrics = app.metrics();
        metrics.response_time(ResponseKind::Rpc, route, started, result.as_ref().err());
        result
    }

    /// Returns the answer of a user RPC to a random server among `servers`, trying one
    /// other if the first is gone without having left discovery.
    pub(crate) async fn call_user_any(
        &self,
        app: &AppHandle,
        servers: &[Arc<ServerInfo>],
        route: &str,
        arg: Bytes,
    ) -> Result<Bytes, Error> {
        let req = self.user_request(app, route, arg);
        let started = Instant::now();
        let result = self.call_any(servers, route, req).await;
        let metrics = app.metrics();
        metrics.response_time(ResponseKind::Rpc, route, started, result.as_ref().err());
        result
    }

    async fn call_any(
        &self,
        servers: &[Arc<ServerInfo>],
        route: &str,
        req: Request,
    ) -> Result<Bytes, Error> {
        let first = &servers[fastrand::usize(..servers.len())];
        let response = match self.call_raw(first, req.clone()).await {
            Err(RpcError::NoResponders { .. } | RpcError::Unreachable { .. })
                if servers.len() > 1 =>
            {
                tracing::debug!(server_id = %first.id, route, "server gone, trying another");
                let rest: Vec<_> = servers.iter().filter(|s| s.id != first.id).collect();
                let other = rest[fastrand::usize(..rest.len())];
                self.call_raw(other, req).await?
            }
            other => other?,
        };
        match response_error(&response) {
            Some(e) => Err(e),
            None => Ok(response.data),
        }
    }

    fn user_request(&self, app: &AppHandle, route: &str, arg: Bytes) -> Request {
        let me = app.server_info();
        Request {
            r#type: RpcType::User.into(),
            session: None,
            msg: Some(Msg {
                route: route.to_owned(),
                data: arg,
                r#type: MsgType::MsgRequest.into(),
                ..Msg::default()
            }),
            frontend_id: if me.frontend {
                me.id.clone()
            } else {
                String::new()
            },
            metadata: self.metadata(app, route, SystemTime::now()),
        }
    }

    /// Calls the `sys` remote `route` on frontend `frontend_id` (spec 6.6).
    pub(crate) async fn call_sys(
        &self,
        app: &AppHandle,
        frontend_id: &str,
        route: &str,
        arg: Vec<u8>,
    ) -> Result<Bytes, Error> {
        let frontend = self
            .discovery()?
            .server(frontend_id)
            .ok_or_else(|| Error::internal(format!("frontend {frontend_id} not found")))?;
        self.call_user(app, &frontend, route, Bytes::from(arg))
            .await
    }

    /// Sends a push to frontend `frontend_id`, which holds its user (spec 6.6).
    pub(crate) async fn push_to_frontend(
        &self,
        frontend_id: &str,
        push: Push,
    ) -> Result<(), Error> {
        let frontend = self
            .discovery()?
            .server(frontend_id)
            .ok_or_else(|| Error::internal(format!("frontend {frontend_id} not found")))?;
        Ok(self.client()?.push_to_server(&frontend, push).await?)
    }

    /// Returns once the pushes to `uid` sent to frontend `frontend_id` so far are
    /// delivered or failed.
    pub(crate) async fn pushes_flushed(&self, frontend_id: &str, uid: &str) {
        let frontend = self.discovery().ok().and_then(|d| d.server(frontend_id));
        if let (Some(frontend), Ok(client)) = (frontend, self.client()) {
            client.pushes_flushed(&frontend, uid).await;
        }
    }

    /// Publishes pushes to users on the frontends of `frontend_type`; returns the uids
    /// they could not be sent to.
    pub(crate) async fn publish_pushes(
        &self,
        frontend_type: &str,
        pushes: Vec<Push>,
    ) -> Vec<String> {
        let client = match self.client() {
            Ok(client) => client,
            Err(_) => return pushes.into_iter().map(|p| p.uid).collect(),
        };
        let failed = client.publish_pushes(frontend_type, pushes).await;
        failed
            .into_iter()
            .map(|(uid, e)| {
                tracing::debug!(uid, error = %e, "push not sent to the cluster");
                uid
            })
            .collect()
    }

    /// Publishes a kick of `uid` to the frontends of `frontend_type`.
    pub(crate) async fn publish_kick(&self, frontend_type: &str, uid: &str) -> Result<(), Error> {
        Ok(self.client()?.publish_kick(frontend_type, uid).await?)
    }
}

impl AppHandle {
    /// Returns the cluster link, or an error in standalone mode.
    pub(crate) fn cluster_link(&self) -> Result<&ClusterLink, Error> {
        self.shared
            .cluster
            .as_ref()
            .ok_or_else(|| Error::internal("not in cluster mode"))
    }

    /// Subscribes a frontend to the pushes and kicks of `uid`; a no-op standalone.
    pub(crate) async fn cluster_subscribe_user(&self, uid: &str) -> Result<(), Error> {
        let Some(link) = self.frontend_link() else {
            return Ok(());
        };
        Ok(link.server()?.subscribe_user(uid).await?)
    }

    /// Drops a frontend's subscriptions of `uid`; failures are logged.
    pub(crate) async fn cluster_unsubscribe_user(&self, uid: &str) {
        let Some(Ok(server)) = self.frontend_link().map(ClusterLink::server) else {
            return;
        };
        if let Err(e) = server.unsubscribe_user(uid).await {
            tracing::warn!(uid, error = %e, "could not unsubscribe a user");
        }
    }

    /// Tells the other frontends of this type that `uid` bound here, so that they kick
    /// their session of it (spec 6.8); only with `pitaya.session.unique`.
    pub(crate) async fn cluster_announce_bind(&self, uid: &str) {
        if !self.config().session.unique {
            return;
        }
        let Some(Ok(client)) = self.frontend_link().map(ClusterLink::client) else {
            return;
        };
        let bind = BindMsg {
            uid: uid.to_owned(),
            fid: self.server_id().to_owned(),
        };
        if let Err(e) = client.publish_bind(self.server_type(), bind).await {
            tracing::warn!(uid, error = %e, "could not announce a bind to the cluster");
        }
    }

    fn frontend_link(&self) -> Option<&ClusterLink> {
        let link = self.shared.cluster.as_ref()?;
        self.server_info().frontend.then_some(link)
    }
}
