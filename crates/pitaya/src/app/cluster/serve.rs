//! Answering other servers: forwarded client messages, user RPCs, the frontend's `sys`
//! remotes, and pushes, kicks and bind announcements for users connected here.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use pitaya_protocol::Message;
use pitaya_protos::{BindMsg, KickAnswer, KickMsg, MsgType, Push, Request, Response, RpcType};
use prost::Message as _;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::{SYS_BIND, SYS_KICK, SYS_PUSH_SESSION};
use crate::app::Shared;
use crate::cluster::rpc::error_response;
use crate::cluster::RpcHandler;
use crate::handler::dispatch::run_handler;
use crate::handler::RemoteContext;
use crate::route::Route;
use crate::session::Origin;
use crate::{telemetry, AppHandle, Error, Session};

/// The app as other servers reach it. Holds the app weakly: the RPC server it is
/// handed to lives inside the app.
pub(crate) struct AppRpcHandler {
    app: Weak<Shared>,
}

impl AppRpcHandler {
    pub(crate) fn new(app: &AppHandle) -> Self {
        AppRpcHandler {
            app: Arc::downgrade(&app.shared),
        }
    }

    fn app(&self) -> Option<AppHandle> {
        self.app.upgrade().map(|shared| AppHandle { shared })
    }
}

#[async_trait]
impl RpcHandler for AppRpcHandler {
    async fn handle(&self, req: Request) -> Response {
        let Some(app) = self.app() else {
            return error_response(&Error::internal("server is shutting down"));
        };
        let span = telemetry::span::rpc_server(&app, &req);
        let work = async {
            match RpcType::try_from(req.r#type) {
                Ok(RpcType::Sys) => handle_sys(&app, req).await,
                Ok(RpcType::User) => handle_user(&app, req).await,
                Err(_) => Err(Error::bad_request(format!(
                    "unknown rpc type {}",
                    req.r#type
                ))),
            }
        };
        let result = AssertUnwindSafe(work.instrument(span.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Error::internal("handler panicked")));
        telemetry::span::record_outcome(&span, None, &result);
        if result
            .as_ref()
            .is_err_and(|e| e.code() == crate::codes::NOT_FOUND)
        {
            telemetry::span::rename(&span, crate::metrics::UNKNOWN_ROUTE);
        }
        match result {
            Ok(data) => Response { data, error: None },
            Err(e) => error_response(&e),
        }
    }

    async fn on_push(&self, push: Push) -> bool {
        let Some(app) = self.app() else { return false };
        let Some(session) = app.pool().by_uid(&push.uid) else {
            tracing::debug!(uid = %push.uid, route = %push.route, "push for a user not here");
            return false;
        };
        let packet = match app
            .pool()
            .wire()
            .data_packet(&Message::push(&push.route, push.data))
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(uid = %push.uid, error = %e, "push could not be encoded, dropped");
                return true;
            }
        };
        if let Err(e) = session.send_packet_nowait(packet) {
            tracing::debug!(uid = %push.uid, error = %e, "push not delivered");
        }
        true
    }

    async fn on_kick(&self, kick: KickMsg) -> KickAnswer {
        let kicked = match self.app() {
            Some(app) => kick_local(&app, &kick.user_id).await,
            None => false,
        };
        KickAnswer { kicked }
    }

    async fn on_bind(&self, bind: BindMsg) {
        let Some(app) = self.app() else { return };
        if bind.fid == app.server_id() {
            return;
        }
        let Some(session) = app.pool().by_uid(&bind.uid) else {
            return;
        };
        session.mark_replaced();
        kick_session(&bind.uid, &session).await;
        tracing::info!(
            uid = %bind.uid, frontend_id = %bind.fid,
            "user bound on another frontend: kicked the session here"
        );
    }
}

/// Kicks the local session of `uid`; returns whether there was one.
async fn kick_local(app: &AppHandle, uid: &str) -> bool {
    match app.pool().by_uid(uid) {
        Some(session) => {
            kick_session(uid, &session).await;
            true
        }
        None => false,
    }
}

/// Kicks `session`, closing it when the kick cannot be delivered.
async fn kick_session(uid: &str, session: &Session) {
    if let Err(e) = session.kick().await {
        tracing::debug!(uid, error = %e, "kick not delivered; closing");
        session.close();
    }
}

/// Runs a client message forwarded by a frontend on a copy of the client's session.
async fn handle_sys(app: &AppHandle, req: Request) -> Result<Bytes, Error> {
    let msg = req.msg.unwrap_or_default();
    let route = Route::parse(&msg.route, app.server_type())?;
    if route.server_type() != app.server_type() {
        return Err(Error::not_found(format!(
            "pitaya/handler: {route} not found: this server is of type {}",
            app.server_type()
        )));
    }
    let snapshot = req.session.unwrap_or_default();
    let data = if snapshot.data.is_empty() {
        Map::new()
    } else {
        serde_json::from_slice::<Map<String, Value>>(&snapshot.data)
            .map_err(|e| Error::bad_request(format!("session data is not a JSON object: {e}")))?
    };
    let origin = Origin {
        frontend_id: req.frontend_id,
        frontend_session_id: snapshot.id,
    };
    let session = app.pool().create_remote(origin, &snapshot.uid, data);
    let is_request = msg.r#type != i32::from(MsgType::MsgNotify);
    let result = run_handler(app, &session, route, msg.id, msg.data, is_request).await;
    session.close();
    if is_request {
        result
    } else {
        // Pitaya answers a forwarded notify with these bytes; the frontend drops them.
        result.map(|_| Bytes::from_static(b"ack"))
    }
}

/// Runs a user RPC: a remote of this app, or a frontend's `sys` remote.
async fn handle_user(app: &AppHandle, req: Request) -> Result<Bytes, Error> {
    let msg = req.msg.unwrap_or_default();
    // `sys.*` calls come with two-part routes (spec 6.6): they are this server's.
    let route = Route::parse(&msg.route, app.server_type())?;
    if route.service() == "sys" {
        return sys_remote(app, &route, msg.data).await;
    }
    let metadata = serde_json::from_slice::<Map<String, Value>>(&req.metadata).unwrap_or_default();
    let ctx = RemoteContext::new(app.clone(), route, metadata);
    app.remotes().call(ctx, msg.data).await
}

fn decode<M: prost::Message + Default>(data: Bytes) -> Result<M, Error> {
    M::decode(data).map_err(|e| Error::bad_request(format!("malformed sys argument: {e}")))
}

fn ack() -> Bytes {
    let ack = Response {
        data: Bytes::from_static(b"ack"),
        error: None,
    };
    Bytes::from(ack.encode_to_vec())
}

/// Answers the session calls backends make to the frontend holding a client.
async fn sys_remote(app: &AppHandle, route: &Route, data: Bytes) -> Result<Bytes, Error> {
    if !app.server_info().frontend {
        return Err(Error::not_found(format!(
            "pitaya/remote: {route} not found: sys remotes live on frontends"
        )));
    }
    let short = route.short();
    match short.as_str() {
        SYS_BIND | SYS_PUSH_SESSION => {
            let snapshot: pitaya_protos::Session = decode(data)?;
            let session = u64::try_from(snapshot.id)
                .ok()
                .and_then(|id| app.pool().by_id(id))
                .ok_or_else(|| Error::not_found(format!("session {} not found", snapshot.id)))?;
            if short == SYS_BIND {
                session
                    .bind(snapshot.uid)
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?;
            } else {
                let map = if snapshot.data.is_empty() {
                    Map::new()
                } else {
                    serde_json::from_slice(&snapshot.data).map_err(|e| {
                        Error::bad_request(format!("session data is not a JSON object: {e}"))
                    })?
                };
                session.replace_data(map);
            }
            Ok(ack())
        }
        SYS_KICK => {
            let kick: KickMsg = decode(data)?;
            let kicked = kick_local(app, &kick.user_id).await;
            Ok(Bytes::from(KickAnswer { kicked }.encode_to_vec()))
        }
        _ => Err(Error::not_found(format!(
            "pitaya/remote: {route} not found"
        ))),
    }
}
