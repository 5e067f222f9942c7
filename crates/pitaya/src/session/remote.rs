//! Backend copies of frontend sessions (spec 6.4 and 6.6).
//!
//! A backend handling a forwarded client message sees a copy of the client's session.
//! The copy cannot write to the client itself: binding, kicking and sending the data
//! back go to the frontend that holds the connection as `sys.*` user RPCs, and a push
//! goes to the user's push subject like any push by uid.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use pitaya_protos::{KickMsg, Push};
use prost::Message as _;
use serde_json::{Map, Value};

use super::{Link, Pool, Session, SessionError};
use crate::app::cluster::{SYS_BIND, SYS_KICK, SYS_PUSH_SESSION};

/// Where a backend copy's client is: which frontend, and its session there.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) frontend_id: String,
    pub(crate) frontend_session_id: i64,
}

impl Pool {
    /// Returns a backend copy of the frontend session described by a sys request.
    ///
    /// The copy gets an id of its own, as Pitaya's remote sessions do, and is not
    /// indexed: it lives as long as the handler holding it.
    pub(crate) fn create_remote(
        self: &Arc<Self>,
        origin: Origin,
        uid: &str,
        data: Map<String, Value>,
    ) -> Session {
        let id = self.next_session_id();
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let wire = self.wire().clone();
        let session = Session::with_link(
            id,
            addr,
            Link::Remote(Box::new(origin)),
            wire,
            Arc::downgrade(self),
        );
        if !uid.is_empty() {
            session.set_uid(Some(uid.into()));
        }
        *super::lock(&session.inner.data) = data.into();
        session
    }
}

fn cluster_error(e: crate::Error) -> SessionError {
    SessionError::Cluster(e)
}

/// Binds a backend copy: the backend's bind callbacks, then `sys.bindsession` on the
/// frontend, which runs a normal frontend bind.
pub(super) async fn bind(
    pool: &Arc<Pool>,
    session: &Session,
    origin: &Origin,
    uid: String,
) -> Result<(), SessionError> {
    if uid.is_empty() {
        return Err(SessionError::IllegalUid);
    }
    let app = pool.app().ok_or(SessionError::Closed)?;
    let uid: Arc<str> = uid.into();
    if !session.try_set_uid(uid.clone()) {
        return Err(SessionError::AlreadyBound);
    }
    if let Err(e) = pool.run_bind_hooks(&app, session).await {
        session.set_uid(None);
        return Err(SessionError::BindRefused(e));
    }
    let arg = pitaya_protos::Session {
        id: origin.frontend_session_id,
        uid: uid.to_string(),
        data: Bytes::new(),
    };
    let called = app
        .cluster_link()
        .map_err(cluster_error)?
        .call_sys(&app, &origin.frontend_id, SYS_BIND, arg.encode_to_vec())
        .await;
    if let Err(e) = called {
        session.set_uid(None);
        return Err(cluster_error(e));
    }
    Ok(())
}

/// Sends the copy's whole data map to the frontend (`sys.pushsession`).
pub(super) async fn push_to_front(
    pool: &Arc<Pool>,
    session: &Session,
    origin: &Origin,
) -> Result<(), SessionError> {
    let app = pool.app().ok_or(SessionError::Closed)?;
    let arg = pitaya_protos::Session {
        id: origin.frontend_session_id,
        uid: session.uid().unwrap_or_default(),
        data: Bytes::from(Value::Object(session.data()).to_string()),
    };
    app.cluster_link()
        .map_err(cluster_error)?
        .call_sys(
            &app,
            &origin.frontend_id,
            SYS_PUSH_SESSION,
            arg.encode_to_vec(),
        )
        .await
        .map(drop)
        .map_err(cluster_error)
}

/// Kicks the copy's client through its frontend (`sys.kick`).
pub(super) async fn kick(
    pool: &Arc<Pool>,
    session: &Session,
    origin: &Origin,
) -> Result<(), SessionError> {
    let uid = session.uid().ok_or(SessionError::NotBound)?;
    let app = pool.app().ok_or(SessionError::Closed)?;
    let link = app.cluster_link().map_err(cluster_error)?;
    // Pushes sent to this client before the kick go first.
    link.pushes_flushed(&origin.frontend_id, &uid).await;
    let arg = KickMsg { user_id: uid };
    link.call_sys(&app, &origin.frontend_id, SYS_KICK, arg.encode_to_vec())
        .await
        .map(drop)
        .map_err(cluster_error)
}

/// Pushes to the copy's client through the frontend holding it.
pub(super) async fn push(
    pool: &Arc<Pool>,
    session: &Session,
    origin: &Origin,
    route: &str,
    body: Bytes,
) -> Result<(), SessionError> {
    let uid = session.uid().ok_or(SessionError::NotBound)?;
    let app = pool.app().ok_or(SessionError::Closed)?;
    let link = app.cluster_link().map_err(cluster_error)?;
    let push = Push {
        route: route.to_owned(),
        uid,
        data: body,
    };
    link.push_to_frontend(&origin.frontend_id, push)
        .await
        .map_err(cluster_error)
}
