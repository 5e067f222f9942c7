//! Sessions: one per client connection, the handle handlers use to reach that client.
//!
//! A [`Session`] is a cheap clone. It owns no socket: it holds the sending side of the
//! connection's bounded write queue, so anything written through it (responses, pushes,
//! the kick packet) reaches the socket through the one task that owns it, in order.
//!
//! The pool indexes sessions by id and, once bound, by uid. Binding follows spec 10.2:
//! a second local session binding the same uid closes the older one, and a closing
//! session leaves the uid index only if the index still points at it, so a client that
//! reconnected and bound again keeps its binding.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use bytes::Bytes;
use pitaya_protocol::{HandshakeRequest, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::serialize::{IntoBody, SerializeError};

mod closing;
mod data;
mod pool;
mod queue;
mod remote;
mod wire;

pub use pool::{BindHook, CloseHook};
pub(crate) use pool::{Callbacks, Pool};
use queue::QueueError;
pub(crate) use queue::{write_queue, QueueReceiver, QueueSender};
pub(crate) use remote::Origin;
pub(crate) use wire::Wire;

/// What goes through a session's write queue.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One encoded packet, header included.
    Packet(Bytes),
    /// Close the connection once everything queued before this is written.
    Close,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Binding an empty uid.
    #[error("illegal uid")]
    IllegalUid,
    /// Binding a session that already has a uid.
    #[error("session is already bound to an uid")]
    AlreadyBound,
    /// The session is closed.
    #[error("session is closed")]
    Closed,
    /// The client did not drain its write queue in time; the session was closed.
    #[error("client too slow: write queue full for {0:?}")]
    SlowConsumer(std::time::Duration),
    /// A bind callback refused the bind.
    #[error("bind refused: {0}")]
    BindRefused(crate::Error),
    /// The value could not be encoded for this session.
    #[error(transparent)]
    Serialize(#[from] SerializeError),
    /// The message could not be encoded (route too long, body too large).
    #[error(transparent)]
    Encode(#[from] pitaya_protocol::EncodeError),
    /// The operation needs a bound uid and the session has none.
    #[error("session is not bound to an uid")]
    NotBound,
    /// The operation exists only on one side: close callbacks on frontend sessions,
    /// `push_to_front` on backend copies.
    #[error("{0}")]
    WrongSide(&'static str),
    /// The frontend holding the session could not be reached or refused.
    #[error("frontend call failed: {0}")]
    Cluster(crate::Error),
}

/// A client's session: identity, data, and the way to push to it.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    remote_addr: SocketAddr,
    uid: RwLock<Option<Arc<str>>>,
    data: Mutex<data::Data>,
    handshake: Mutex<Option<Arc<HandshakeRequest>>>,
    link: Link,
    closing: closing::Closing,
    closed: AtomicBool,
    replaced: AtomicBool,
    on_close: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    wire: Arc<Wire>,
    pool: Weak<Pool>,
}

/// Where a session's client is: on this server's socket, or behind a frontend.
enum Link {
    /// A frontend session: the sending side of the connection's write queue.
    Local(QueueSender),
    /// A backend's copy of a frontend session (spec 6.4).
    // Boxed: every frontend session is `Local`, and would pay for the larger variant.
    Remote(Box<Origin>),
}

// Poisoning only says another thread panicked while holding the lock; the data it
// guards (maps and options) is still consistent, so we go on with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    pub(crate) fn new(
        id: u64,
        remote_addr: SocketAddr,
        out: QueueSender,
        wire: Arc<Wire>,
        pool: Weak<Pool>,
    ) -> Self {
        Self::with_link(id, remote_addr, Link::Local(out), wire, pool)
    }

    fn with_link(
        id: u64,
        remote_addr: SocketAddr,
        link: Link,
        wire: Arc<Wire>,
        pool: Weak<Pool>,
    ) -> Self {
        Session {
            inner: Arc::new(Inner {
                id,
                remote_addr,
                uid: RwLock::new(None),
                data: Mutex::new(data::Data::default()),
                handshake: Mutex::new(None),
                link,
                closing: closing::Closing::default(),
                closed: AtomicBool::new(false),
                replaced: AtomicBool::new(false),
                on_close: Mutex::new(Vec::new()),
                wire,
                pool,
            }),
        }
    }

    /// Returns the session id, unique in this process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Returns the bound uid, if any.
    pub fn uid(&self) -> Option<String> {
        self.uid_arc().map(|u| u.to_string())
    }

    pub(crate) fn uid_arc(&self) -> Option<Arc<str>> {
        self.inner
            .uid
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_uid(&self, uid: Option<Arc<str>>) {
        *self
            .inner
            .uid
            .write()
            .unwrap_or_else(PoisonError::into_inner) = uid;
    }

    /// Sets the uid only if none is set; returns whether it did.
    pub(crate) fn try_set_uid(&self, uid: Arc<str>) -> bool {
        let mut slot = self
            .inner
            .uid
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return false;
        }
        *slot = Some(uid);
        true
    }

    /// Returns the client's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_addr
    }

    /// Returns the handshake the client sent, once it has sent one.
    pub fn handshake(&self) -> Option<Arc<HandshakeRequest>> {
        lock(&self.inner.handshake).clone()
    }

    pub(crate) fn set_handshake(&self, hs: HandshakeRequest) {
        *lock(&self.inner.handshake) = Some(Arc::new(hs));
    }

    /// Stores `value` under `key` in the session data.
    ///
    /// # Errors
    ///
    /// When the value does not serialize to JSON.
    pub fn set<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|e| {
            SessionError::Serialize(SerializeError::Invalid {
                format: "json",
                message: e.to_string(),
            })
        })?;
        lock(&self.inner.data).insert(key.into(), value);
        Ok(())
    }

    /// Returns the value under `key`, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = lock(&self.inner.data).get(key).cloned()?;
        serde_json::from_value(value).ok()
    }

    /// Returns whether `key` is in the session data.
    pub fn contains_key(&self, key: &str) -> bool {
        lock(&self.inner.data).get(key).is_some()
    }

    /// Removes `key` from the session data, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        lock(&self.inner.data).remove(key)
    }

    /// Replaces the whole session data (`sys.pushsession` from a backend).
    pub(crate) fn replace_data(&self, data: Map<String, Value>) {
        *lock(&self.inner.data) = data.into();
    }

    /// Returns a copy of the whole session data.
    pub fn data(&self) -> Map<String, Value> {
        lock(&self.inner.data).to_map()
    }

    /// Binds the session to `uid` (spec 10.2).
    ///
    /// Runs the app's bind callbacks; if another session of this server is bound to the
    /// same uid, that one is closed; then the after-bind callbacks run.
    ///
    /// # Errors
    ///
    /// An empty uid, a session already bound or closed, or a callback refusing the bind.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the bind callbacks may have run.
    pub async fn bind(&self, uid: impl Into<String>) -> Result<(), SessionError> {
        let Some(pool) = self.inner.pool.upgrade() else {
            return Err(SessionError::Closed);
        };
        match &self.inner.link {
            Link::Local(_) => pool.bind(self, uid.into()).await,
            Link::Remote(origin) => remote::bind(&pool, self, origin, uid.into()).await,
        }
    }

    /// Returns the id of the frontend holding this session's client, on a backend copy.
    pub fn frontend_id(&self) -> Option<&str> {
        match &self.inner.link {
            Link::Local(_) => None,
            Link::Remote(origin) => Some(&origin.frontend_id),
        }
    }

    /// Returns the session's id on its frontend, on a backend copy.
    pub fn frontend_session_id(&self) -> Option<i64> {
        match &self.inner.link {
            Link::Local(_) => None,
            Link::Remote(origin) => Some(origin.frontend_session_id),
        }
    }

    /// Returns whether this is a backend's copy of a frontend session.
    pub fn is_remote(&self) -> bool {
        matches!(self.inner.link, Link::Remote(_))
    }

    /// Sends this copy's data to the frontend, which replaces the session's whole data
    /// map with it (spec 6.6, `sys.pushsession`).
    ///
    /// Changes made on a backend copy stay there until this is called.
    ///
    /// # Errors
    ///
    /// On a frontend session ([`SessionError::WrongSide`]), or when the frontend cannot
    /// be reached or refuses.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the frontend may or may not have the data.
    pub async fn push_to_front(&self) -> Result<(), SessionError> {
        let Some(pool) = self.inner.pool.upgrade() else {
            return Err(SessionError::Closed);
        };
        match &self.inner.link {
            Link::Local(_) => Err(SessionError::WrongSide(
                "push_to_front is for backend sessions: a frontend session is the original",
            )),
            Link::Remote(origin) => remote::push_to_front(&pool, self, origin).await,
        }
    }

    /// Pushes `value` to the client on `route`.
    ///
    /// # Errors
    ///
    /// When the session is closed, the value does not encode, or the client is too slow
    /// to drain its queue within `pitaya.buffer.agent.conntimeout` (then it is closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before the push is queued, nothing is sent.
    pub async fn push(&self, route: &str, value: impl IntoBody) -> Result<(), SessionError> {
        let body = value.into_body(self.serializer())?;
        if let Link::Remote(origin) = &self.inner.link {
            let pool = self.inner.pool.upgrade().ok_or(SessionError::Closed)?;
            return remote::push(&pool, self, origin, route, body).await;
        }
        let packet = self.inner.wire.data_packet(&Message::push(route, body))?;
        self.send_packet(packet).await
    }

    /// Sends a kick packet to the client, then closes the connection.
    ///
    /// # Errors
    ///
    /// When the session is already closed or too slow to take the packet.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn kick(&self) -> Result<(), SessionError> {
        if let Link::Remote(origin) = &self.inner.link {
            let pool = self.inner.pool.upgrade().ok_or(SessionError::Closed)?;
            return remote::kick(&pool, self, origin).await;
        }
        let kick = pitaya_protocol::Packet::kick();
        let bytes = kick.to_bytes().map_err(SessionError::Encode)?;
        self.send_packet(bytes).await?;
        self.enqueue(Outbound::Close).await
    }

    /// Closes the connection now, dropping anything not yet written.
    ///
    /// Closing twice is harmless; close callbacks run once. On a backend copy this only
    /// retires the copy: use [`kick`](Self::kick) to disconnect the client.
    pub fn close(&self) {
        if self.is_remote() {
            self.inner.closed.store(true, Ordering::SeqCst);
        } else if let Some(pool) = self.inner.pool.upgrade() {
            pool.mark_closed(self);
        } else {
            self.inner.closed.store(true, Ordering::SeqCst);
        }
        self.inner.closing.cancel();
    }

    /// Returns whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Returns whether a newer session of the same uid replaced this one: the uid was
    /// bound again on this server, or on another frontend with `pitaya.session.unique`.
    ///
    /// Close callbacks use it to tell a user who logged in again from one who left, so
    /// that the older connection's cleanup does not undo the newer one's state.
    pub fn is_replaced(&self) -> bool {
        self.inner.replaced.load(Ordering::SeqCst)
    }

    /// Marks the session as replaced by a newer one of its uid, before it is closed.
    pub(crate) fn mark_replaced(&self) {
        self.inner.replaced.store(true, Ordering::SeqCst);
    }

    /// Registers `f` to run once when this session closes.
    ///
    /// # Errors
    ///
    /// When the session is already closed (the callback would never run).
    pub fn on_close(&self, f: impl FnOnce() + Send + 'static) -> Result<(), SessionError> {
        if self.is_remote() {
            return Err(SessionError::WrongSide(
                "close callbacks can only be set on frontend sessions",
            ));
        }
        // Checked under the lock the callbacks are taken with: the session is marked
        // closed before they are taken, so a callback accepted here is always run.
        let mut callbacks = lock(&self.inner.on_close);
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        callbacks.push(Box::new(f));
        Ok(())
    }

    pub(crate) fn take_close_callbacks(&self) -> Vec<Box<dyn FnOnce() + Send>> {
        std::mem::take(&mut *lock(&self.inner.on_close))
    }

    /// Marks the session closed; returns false if it already was.
    pub(crate) fn set_closed(&self) -> bool {
        !self.inner.closed.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn closing(&self) -> &closing::Closing {
        &self.inner.closing
    }

    pub(crate) fn serializer(&self) -> &dyn crate::serialize::Serializer {
        &*self.inner.wire.serializer
    }

    pub(crate) fn wire(&self) -> &Wire {
        &self.inner.wire
    }

    /// Queues an encoded packet, waiting at most the send timeout for room.
    pub(crate) async fn send_packet(&self, packet: Bytes) -> Result<(), SessionError> {
        self.enqueue(Outbound::Packet(packet)).await
    }

    pub(crate) async fn enqueue(&self, item: Outbound) -> Result<(), SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        let timeout = self.inner.wire.send_timeout;
        match self.out()?.send(item, timeout).await {
            Ok(()) => Ok(()),
            Err(QueueError::Closed) => Err(SessionError::Closed),
            Err(QueueError::Full) => {
                tracing::info!(
                    session_id = self.id(),
                    uid = ?self.uid_arc(),
                    "closing slow client: write queue full for the send timeout"
                );
                self.close();
                Err(SessionError::SlowConsumer(timeout))
            }
        }
    }

    /// Queues a packet without waiting, past the queue's bound if need be.
    ///
    /// Used for fan-out (broadcasts, pushes to many users), where waiting on one slow
    /// client would hold up every other recipient. A client whose queue holds ten times
    /// its bound is too slow: its session is closed.
    pub(crate) fn send_packet_nowait(&self, packet: Bytes) -> Result<(), SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        match self.out()?.send_overflowing(Outbound::Packet(packet)) {
            Ok(()) => Ok(()),
            Err(QueueError::Closed) => Err(SessionError::Closed),
            Err(QueueError::Full) => {
                tracing::info!(
                    session_id = self.id(),
                    uid = ?self.uid_arc(),
                    "closing slow client: write queue overflowed during a fan-out push"
                );
                self.close();
                Err(SessionError::SlowConsumer(std::time::Duration::ZERO))
            }
        }
    }

    /// Queues a close marker behind whatever is queued, however full the queue is.
    pub(crate) fn enqueue_close(&self) -> bool {
        self.out()
            .is_ok_and(|out| out.send_free(Outbound::Close).is_ok())
    }

    /// Queues a packet only if there is room now (heartbeats: one lost is harmless).
    pub(crate) fn try_send_packet(&self, packet: Bytes) -> bool {
        self.out()
            .is_ok_and(|out| out.try_send(Outbound::Packet(packet)).is_ok())
    }

    /// Returns the connection's write queue; a backend copy has none.
    fn out(&self) -> Result<&QueueSender, SessionError> {
        match &self.inner.link {
            Link::Local(out) => Ok(out),
            Link::Remote(_) => Err(SessionError::WrongSide(
                "a backend session has no connection of its own",
            )),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("uid", &self.uid_arc())
            .field("remote_addr", &self.inner.remote_addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Session {}
