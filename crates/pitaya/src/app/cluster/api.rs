//! The cluster API of [`AppHandle`]: user RPCs and what discovery knows.

use std::sync::Arc;

use bytes::Bytes;

use crate::cluster::{ServerInfo, ServiceDiscovery};
use crate::{AppHandle, Error};

impl AppHandle {
    /// Returns this server's record as service discovery publishes it.
    pub fn server_info(&self) -> &Arc<ServerInfo> {
        &self.shared.info
    }

    /// Returns service discovery, once the app runs in cluster mode.
    pub fn discovery(&self) -> Option<&Arc<dyn ServiceDiscovery>> {
        self.shared.cluster.as_ref()?.discovery().ok()
    }

    /// Returns the known servers of `server_type`; empty in standalone mode.
    pub fn servers_by_type(&self, server_type: &str) -> Vec<Arc<ServerInfo>> {
        self.discovery()
            .map(|sd| sd.servers_by_type(server_type))
            .unwrap_or_default()
    }

    /// Returns the reply of remote `route` (`serverType.remote.method`) on a random
    /// server of that type (spec 6.5).
    ///
    /// # Errors
    ///
    /// `PIT-408` when the call times out; the remote's own error; `PIT-500` when no
    /// server of the type is known, the route has no server type, or it names this
    /// server's own type; `PIT-000` for a transport failure.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the remote may still run it.
    pub async fn rpc<R>(&self, route: &str, arg: &impl prost::Message) -> Result<R, Error>
    where
        R: prost::Message + Default,
    {
        let reply = self
            .rpc_raw(None, route, Bytes::from(arg.encode_to_vec()))
            .await?;
        decode_reply(reply)
    }

    /// Returns the reply of remote `route` on the server with id `server_id`.
    ///
    /// # Errors
    ///
    /// As [`rpc`](Self::rpc), and `PIT-500` when no server has that id or it is this
    /// server.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the remote may still run it.
    pub async fn rpc_to<R>(
        &self,
        server_id: &str,
        route: &str,
        arg: &impl prost::Message,
    ) -> Result<R, Error>
    where
        R: prost::Message + Default,
    {
        let reply = self
            .rpc_raw(Some(server_id), route, Bytes::from(arg.encode_to_vec()))
            .await?;
        decode_reply(reply)
    }

    /// Returns the raw reply of remote `route` called with the raw argument `arg`, on
    /// `server_id` or else a random server of the route's type.
    ///
    /// # Errors
    ///
    /// As [`rpc_to`](Self::rpc_to).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the remote may still run it.
    pub async fn rpc_raw(
        &self,
        server_id: Option<&str>,
        route: &str,
        arg: Bytes,
    ) -> Result<Bytes, Error> {
        let link = self.cluster_link()?;
        let mut parts = route.split('.');
        let server_type = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(s), Some(m), None) if ![t, s, m].iter().any(|p| p.is_empty()) => t,
            _ => {
                return Err(Error::internal(format!(
                    "rpc route {route:?} is not serverType.remote.method"
                )))
            }
        };
        let sd = link.discovery()?;
        let Some(id) = server_id else {
            if server_type == self.server_type() {
                return Err(Error::internal(format!(
                    "rpc to this server's own type {server_type}: call the code directly \
                     or name a server with rpc_to"
                )));
            }
            let servers = sd.servers_by_type(server_type);
            if servers.is_empty() {
                return Err(Error::internal(format!(
                    "no server of type {server_type} available"
                )));
            }
            return link.call_user_any(self, &servers, route, arg).await;
        };
        let target = sd
            .server(id)
            .ok_or_else(|| Error::internal(format!("server {id} not found")))?;
        if target.id == self.server_id() {
            return Err(Error::internal("rpc to this very server"));
        }
        link.call_user(self, &target, route, arg).await
    }
}

fn decode_reply<R: prost::Message + Default>(reply: Bytes) -> Result<R, Error> {
    R::decode(reply).map_err(|e| Error::internal(format!("rpc reply did not decode: {e}")))
}
