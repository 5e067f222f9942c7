//! The session pool: indexes by id and uid, bind and close bookkeeping, callbacks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use std::panic::{catch_unwind, AssertUnwindSafe};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{QueueSender, Session, SessionError, Wire};
use crate::app::Shared;
use crate::{AppHandle, Error};

/// An app-wide bind callback: runs on every bind and may refuse it.
pub type BindHook =
    Arc<dyn Fn(AppHandle, Session) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// An app-wide close callback: runs once for every session that closes.
pub type CloseHook = Arc<dyn Fn(AppHandle, Session) -> BoxFuture<'static, ()> + Send + Sync>;

/// Callbacks registered on the app builder; fixed once the app runs.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) on_bind: Vec<BindHook>,
    pub(crate) after_bind: Vec<BindHook>,
    pub(crate) on_close: Vec<CloseHook>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_bind", &self.on_bind.len())
            .field("after_bind", &self.after_bind.len())
            .field("on_close", &self.on_close.len())
            .finish()
    }
}

#[derive(Default)]
struct Index {
    by_id: HashMap<u64, Session>,
    by_uid: HashMap<Arc<str>, Session>,
}

/// Every live session of this server.
pub(crate) struct Pool {
    index: Mutex<Index>,
    next_id: AtomicU64,
    callbacks: Callbacks,
    wire: Arc<Wire>,
    app: Weak<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("sessions", &self.len())
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(wire: Arc<Wire>, callbacks: Callbacks, app: Weak<Shared>) -> Arc<Self> {
        Arc::new(Pool {
            index: Mutex::new(Index::default()),
            next_id: AtomicU64::new(1),
            callbacks,
            wire,
            app,
        })
    }

    pub(crate) fn app(&self) -> Option<AppHandle> {
        self.app.upgrade().map(|shared| AppHandle { shared })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wire(&self) -> &Arc<Wire> {
        &self.wire
    }

    /// Returns the next session id; backend copies take one too (spec 10.1).
    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs the app's bind callbacks; the first error refuses the bind.
    pub(crate) async fn run_bind_hooks(
        &self,
        app: &AppHandle,
        session: &Session,
    ) -> Result<(), Error> {
        for hook in &self.callbacks.on_bind {
            hook(app.clone(), session.clone()).await?;
        }
        Ok(())
    }

    /// Returns a new session registered by id.
    pub(crate) fn create(self: &Arc<Self>, remote_addr: SocketAddr, out: QueueSender) -> Session {
        let id = self.next_session_id();
        let session = Session::new(
            id,
            remote_addr,
            out,
            self.wire.clone(),
            Arc::downgrade(self),
        );
        self.index().by_id.insert(id, session.clone());
        session
    }

    pub(crate) fn len(&self) -> usize {
        self.index().by_id.len()
    }

    pub(crate) fn by_id(&self, id: u64) -> Option<Session> {
        self.index().by_id.get(&id).cloned()
    }

    pub(crate) fn by_uid(&self, uid: &str) -> Option<Session> {
        self.index().by_uid.get(uid).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Session> {
        self.index().by_id.values().cloned().collect()
    }

    pub(crate) fn bound_count(&self) -> usize {
        self.index().by_uid.len()
    }

    /// Binds `session` to `uid` following spec 10.2.
    pub(crate) async fn bind(&self, session: &Session, uid: String) -> Result<(), SessionError> {
        if uid.is_empty() {
            return Err(SessionError::IllegalUid);
        }
        if session.is_closed() {
            return Err(SessionError::Closed);
        }
        let Some(app) = self.app() else {
            return Err(SessionError::Closed);
        };
        let uid: Arc<str> = uid.into();
        if !session.try_set_uid(uid.clone()) {
            return Err(SessionError::AlreadyBound);
        }

        if let Err(e) = self.run_bind_hooks(&app, session).await {
            session.set_uid(None);
            return Err(SessionError::BindRefused(e));
        }
        // In cluster mode the frontend listens for this user's pushes and kicks from
        // now on; the app's callbacks ran first, as they do in Pitaya (spec 10.2).
        if let Err(e) = app.cluster_subscribe_user(&uid).await {
            session.set_uid(None);
            return Err(SessionError::Cluster(e));
        }

        // Checking `closed` under the index lock is what keeps a bind racing a close
        // from leaving a dead session in the uid index: close marks and unindexes under
        // the same lock.
        let stored = {
            let mut index = self.index();
            if session.is_closed() {
                Err(index.by_uid.contains_key(&uid))
            } else {
                Ok(index.by_uid.insert(uid.clone(), session.clone()))
            }
        };
        let older = match stored {
            Ok(older) => older,
            Err(other_bound) => {
                session.set_uid(None);
                if !other_bound {
                    app.cluster_unsubscribe_user(&uid).await;
                }
                return Err(SessionError::Closed);
            }
        };
        if let Some(older) = older.filter(|o| o != session) {
            tracing::debug!(
                uid = %uid,
                old_session_id = older.id(),
                session_id = session.id(),
                "uid bound again: closing the older session"
            );
            older.mark_replaced();
            older.close();
        }
        app.cluster_announce_bind(&uid).await;

        for hook in &self.callbacks.after_bind {
            if let Err(e) = hook(app.clone(), session.clone()).await {
                self.unindex_uid(session, &uid);
                session.set_uid(None);
                if self.by_uid(&uid).is_none() {
                    app.cluster_unsubscribe_user(&uid).await;
                }
                return Err(SessionError::BindRefused(e));
            }
        }
        Ok(())
    }

    fn unindex_uid(&self, session: &Session, uid: &Arc<str>) {
        let mut index = self.index();
        if index.by_uid.get(uid).is_some_and(|s| s == session) {
            index.by_uid.remove(uid);
        }
    }

    /// Marks `session` closed and drops it from the indexes; false if it already was.
    pub(crate) fn mark_closed(&self, session: &Session) -> bool {
        let mut index = self.index();
        if !session.set_closed() {
            return false;
        }
        index.by_id.remove(&session.id());
        if let Some(uid) = session.uid_arc() {
            // Only if the index still points at this session: a newer session bound to
            // the same uid keeps its binding.
            if index.by_uid.get(&uid).is_some_and(|s| s == session) {
                index.by_uid.remove(&uid);
            }
        }
        true
    }

    /// Runs the session's own close callbacks, then the app-wide ones.
    ///
    /// Called exactly once per session, by the task that owned its connection.
    pub(crate) async fn run_close_callbacks(&self, session: &Session) {
        // A panicking callback is the app's bug; it must not skip the others.
        for f in session.take_close_callbacks() {
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                tracing::error!(session_id = session.id(), "session close callback panicked");
            }
        }
        let Some(app) = self.app() else { return };
        if let Some(uid) = session.uid_arc() {
            // A newer session bound to the same uid keeps the subscriptions.
            if self.by_uid(&uid).is_none() {
                app.cluster_unsubscribe_user(&uid).await;
            }
        }
        for hook in &self.callbacks.on_close {
            let run = AssertUnwindSafe(hook(app.clone(), session.clone())).catch_unwind();
            if run.await.is_err() {
                tracing::error!(
                    session_id = session.id(),
                    "on-session-close callback panicked"
                );
            }
        }
    }
}
