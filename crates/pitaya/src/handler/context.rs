//! The request context handed to handlers and hooks.

use std::sync::Arc;

use crate::route::Route;
use crate::serialize::Serializer;
use crate::session::Session;
use crate::AppHandle;

/// What a handler knows about the request it serves: the session, the route, the app.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    route: Route,
    id: u64,
    app: AppHandle,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("route", &self.inner.route.to_string())
            .field("id", &self.inner.id)
            .field("session_id", &self.inner.session.id())
            .finish()
    }
}

impl Context {
    pub(crate) fn new(session: Session, route: Route, id: u64, app: AppHandle) -> Self {
        Context {
            inner: Arc::new(Inner {
                session,
                route,
                id,
                app,
            }),
        }
    }

    /// Returns the session of the client that sent the message.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Returns the route being served.
    pub fn route(&self) -> &Route {
        &self.inner.route
    }

    /// Returns the message id of the request, 0 for a notify.
    pub fn message_id(&self) -> u64 {
        self.inner.id
    }

    /// Returns the app: groups, pushes by uid, other sessions.
    pub fn app(&self) -> &AppHandle {
        &self.inner.app
    }

    /// Returns the serializer bodies are decoded and encoded with.
    pub fn serializer(&self) -> &dyn Serializer {
        self.inner.session.serializer()
    }
}
