//! Sys RPC, frontend side: a client message for another server type goes to a server
//! of that type, and its answer comes back to the client untouched (spec 6.4).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use pitaya_protocol::{Message, MessageType};
use pitaya_protos::{Msg, MsgType, Request, RpcType};
use serde_json::Value;

use super::ClusterLink;
use crate::cluster::rpc::response_error;
use crate::cluster::{RouteRequest, RpcError, ServerInfo};
use crate::metrics::ResponseKind;
use crate::route::Route;
use crate::{codes, AppHandle, Error, Session};

impl ClusterLink {
    /// Returns the answer of a server of `route`'s type to a client message.
    ///
    /// The data is the backend's handler result, already serialized for the client.
    pub(crate) async fn forward(
        &self,
        app: &AppHandle,
        session: &Session,
        route: Route,
        msg: &Message,
    ) -> Result<Bytes, Error> {
        let start = SystemTime::now();
        let started = Instant::now();
        let servers = self.discovery()?.servers_by_type(route.server_type());
        let target = self.pick(session, &route, &msg.data, &servers)?;
        let req = sys_request(
            app,
            session,
            &route,
            msg,
            self.metadata(app, &msg.route, start),
        );
        let answer = match self.call_raw(&target, req.clone()).await {
            // Discovery still lists a server that is gone (killed, its lease not yet
            // expired): one other server of the type gets a chance. Neither error
            // means the gone server saw the request.
            Err(RpcError::NoResponders { .. } | RpcError::Unreachable { .. })
                if servers.len() > 1 =>
            {
                tracing::debug!(server_id = %target.id, %route, "server gone, trying another");
                let rest: Vec<_> = servers.into_iter().filter(|s| s.id != target.id).collect();
                let other = self.pick(session, &route, &msg.data, &rest)?;
                self.call_raw(&other, req).await
            }
            other => other,
        };
        let metrics = app.metrics();
        let route = route.to_string();
        // Span names follow these labels too, so we confirm with metrics off.
        if serves_route(&answer) {
            app.route_labels().confirm(&route);
        }
        let result =
            answer
                .map_err(Error::from)
                .and_then(|response| match response_error(&response) {
                    Some(e) => Err(e),
                    None => Ok(response.data),
                });
        let label = app.route_labels().label(&route);
        metrics.response_time(ResponseKind::Rpc, label, started, result.as_ref().err());
        result
    }

    /// Returns the server chosen by the type's router, or a random one.
    fn pick(
        &self,
        session: &Session,
        route: &Route,
        body: &Bytes,
        servers: &[Arc<ServerInfo>],
    ) -> Result<Arc<ServerInfo>, Error> {
        if servers.is_empty() {
            return Err(Error::internal(format!(
                "no server of type {} available",
                route.server_type()
            ))
            .with_metadata("route", route.to_string()));
        }
        let Some(router) = self.router(route.server_type()) else {
            return Ok(servers[fastrand::usize(..servers.len())].clone());
        };
        let request = RouteRequest {
            route,
            session,
            body,
        };
        router(&request, servers).ok_or_else(|| {
            Error::internal(format!(
                "the router of {} chose no server",
                route.server_type()
            ))
            .with_metadata("route", route.to_string())
        })
    }

    pub(super) async fn call_raw(
        &self,
        server: &ServerInfo,
        req: Request,
    ) -> Result<pitaya_protos::Response, RpcError> {
        let client = self.client().map_err(|_| RpcError::Disconnected)?;
        client.call(server, req, self.request_timeout).await
    }
}

/// Returns whether `answer` came from a handler of the route: any answer but the
/// `PIT-404` of a server that has none.
fn serves_route(answer: &Result<pitaya_protos::Response, RpcError>) -> bool {
    answer
        .as_ref()
        .is_ok_and(|r| r.error.as_ref().is_none_or(|e| e.code != codes::NOT_FOUND))
}

/// Returns the sys `Request` carrying a client message and its session snapshot.
fn sys_request(
    app: &AppHandle,
    session: &Session,
    route: &Route,
    msg: &Message,
    metadata: Bytes,
) -> Request {
    let is_request = msg.kind == MessageType::Request;
    let data = session.data();
    // A session that never had data sends none (spec 10.1).
    let data = if data.is_empty() {
        Bytes::new()
    } else {
        Bytes::from(Value::Object(data).to_string())
    };
    Request {
        r#type: RpcType::Sys.into(),
        session: Some(pitaya_protos::Session {
            id: i64::try_from(session.id()).unwrap_or(i64::MAX),
            uid: session.uid().unwrap_or_default(),
            data,
        }),
        msg: Some(Msg {
            id: if is_request { msg.id } else { 0 },
            route: route.to_string(),
            data: msg.data.clone(),
            reply: String::new(),
            r#type: if is_request {
                MsgType::MsgRequest.into()
            } else {
                MsgType::MsgNotify.into()
            },
        }),
        frontend_id: app.server_id().to_owned(),
        metadata,
    }
}
