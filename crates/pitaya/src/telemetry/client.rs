//! Every outgoing RPC in an `rpc` span whose trace context the request carries.
//!
//! Wrapping the transport's client, rather than each place that calls, covers
//! forwarded client messages, user RPCs and the `sys` remotes alike, whatever the
//! transport, and gives each attempt its own span.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pitaya_protos::{BindMsg, Push, Request, Response};
use tracing::Instrument;

use super::{propagate, span};
use crate::cluster::{RpcClient, RpcError, ServerInfo, ServiceDiscovery};

/// An [`RpcClient`] that traces the calls of the one it wraps.
#[derive(Debug)]
pub(crate) struct TracedClient(Arc<dyn RpcClient>);

impl TracedClient {
    /// Returns `client` with its calls traced.
    pub(crate) fn wrap(client: Arc<dyn RpcClient>) -> Arc<dyn RpcClient> {
        Arc::new(TracedClient(client))
    }
}

#[async_trait]
impl RpcClient for TracedClient {
    async fn call(
        &self,
        server: &ServerInfo,
        mut req: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let route = req
            .msg
            .as_ref()
            .map_or_else(String::new, |m| m.route.clone());
        let span = span::rpc_client(&route, &server.id);
        let metadata = std::mem::take(&mut req.metadata);
        req.metadata = span.in_scope(|| propagate::inject(metadata));

        let result = self
            .0
            .call(server, req, timeout)
            .instrument(span.clone())
            .await;
        span::record_rpc_outcome(&span, &route, &result);
        result
    }

    async fn publish_push(&self, frontend_type: &str, push: Push) -> Result<(), RpcError> {
        self.0.publish_push(frontend_type, push).await
    }

    async fn publish_pushes(
        &self,
        frontend_type: &str,
        pushes: Vec<Push>,
    ) -> Vec<(String, RpcError)> {
        self.0.publish_pushes(frontend_type, pushes).await
    }

    async fn push_to_server(&self, server: &ServerInfo, push: Push) -> Result<(), RpcError> {
        self.0.push_to_server(server, push).await
    }

    async fn pushes_flushed(&self, server: &ServerInfo, uid: &str) {
        self.0.pushes_flushed(server, uid).await;
    }

    async fn publish_kick(&self, frontend_type: &str, uid: &str) -> Result<(), RpcError> {
        self.0.publish_kick(frontend_type, uid).await
    }

    async fn publish_bind(&self, server_type: &str, bind: BindMsg) -> Result<(), RpcError> {
        self.0.publish_bind(server_type, bind).await
    }

    async fn closed(&self) {
        self.0.closed().await;
    }

    // Every method is forwarded, provided ones included: a provided default here would
    // hide the wrapped transport's own (gRPC needs discovery to find frontends).
    fn attach_discovery(&self, discovery: Arc<dyn ServiceDiscovery>) {
        self.0.attach_discovery(discovery);
    }
}
