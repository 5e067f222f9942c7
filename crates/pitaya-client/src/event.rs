//! What the connection reports on its own: pushes, kicks, disconnects, reconnects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::body::{self, Serializer};
use crate::ClientError;

/// One thing that happened on the connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The server pushed a message.
    Push(Push),
    /// The server kicked the client; [`Event::Disconnected`] follows.
    Kicked,
    /// The connection ended. Unless a reconnect follows, this is the last event.
    Disconnected(DisconnectReason),
    /// A reconnect attempt will start after `delay`.
    Reconnecting {
        /// Attempt number, from 1.
        attempt: u32,
        /// Wait before the attempt.
        delay: Duration,
    },
    /// A reconnect succeeded: a new session is up, with a new handshake.
    Reconnected,
    /// This stream fell behind and missed this many events, oldest first.
    Lagged(u64),
}

/// Why a connection ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server closed the connection without a kick.
    ServerClosed,
    /// The server sent a kick.
    Kicked,
    /// Nothing arrived for longer than the watchdog allows.
    HeartbeatTimeout {
        /// How long the connection was silent before it was given up.
        silent_for: Duration,
    },
    /// A read or write failed, or the server sent invalid data.
    Error(Arc<ClientError>),
    /// [`Client::close`](crate::Client::close) was called or every handle was dropped.
    ClientClosed,
}

/// A message pushed by the server.
#[derive(Clone, Debug)]
pub struct Push {
    route: String,
    body: Bytes,
    serializer: Serializer,
}

// ===== impl Push =====

impl Push {
    pub(crate) fn new(route: String, body: Bytes, serializer: Serializer) -> Self {
        Self {
            route,
            body,
            serializer,
        }
    }

    /// Returns the push route, such as `onMessage`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Returns the raw body, already inflated if it came compressed.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Returns the serializer of the session the push came on.
    pub fn serializer(&self) -> &Serializer {
        &self.serializer
    }

    /// Returns the body deserialized from JSON.
    ///
    /// # Errors
    ///
    /// [`ClientError::Deserialize`] when the body is not JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        body::from_json(&self.body)
    }

    /// Returns the body decoded as the protobuf message `T`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Deserialize`] when the body is not a valid `T`.
    #[cfg(feature = "protobuf")]
    pub fn proto<T: prost::Message + Default>(&self) -> Result<T, ClientError> {
        body::from_proto(self.body.clone())
    }
}

/// The events of a client, from [`Client::events`](crate::Client::events): the first
/// stream of a client from the handshake on, later ones from the moment they were asked
/// for.
///
/// The connection never waits for a reader: a reader that falls
/// [`event_capacity`](crate::ConnectOptions::event_capacity) events behind gets
/// [`Event::Lagged`] in place of what it missed.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Event>,
    done: CancellationToken,
}

// ===== impl Events =====

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<Event>, done: CancellationToken) -> Self {
        Self { rx, done }
    }

    /// Returns the next event, or `None` once the connection is closed for good and
    /// every event before that has been read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it returns, no event is lost.
    pub async fn recv(&mut self) -> Option<Event> {
        tokio::select! {
            biased;
            ev = self.rx.recv() => match ev {
                Ok(ev) => Some(ev),
                Err(RecvError::Lagged(n)) => Some(Event::Lagged(n)),
                Err(RecvError::Closed) => None,
            },
            // The task sends its last event before it signals, so whatever is still
            // queued now is all that is left.
            () = self.done.cancelled() => match self.rx.try_recv() {
                Ok(ev) => Some(ev),
                Err(TryRecvError::Lagged(n)) => Some(Event::Lagged(n)),
                Err(_) => None,
            },
        }
    }

    /// Returns the events as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Event> + Send + Unpin {
        Box::pin(futures_util::stream::unfold(
            self,
            |mut events| async move { events.recv().await.map(|ev| (ev, events)) },
        ))
    }
}

/// The pushes of one route, from [`Client::pushes`](crate::Client::pushes).
#[derive(Debug)]
pub struct Pushes {
    events: Events,
    route: String,
    missed: u64,
}

// ===== impl Pushes =====

impl Pushes {
    pub(crate) fn new(events: Events, route: String) -> Self {
        Self {
            events,
            route,
            missed: 0,
        }
    }

    /// Returns the route this stream follows.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Returns how many events this stream missed by falling behind (see [`Events`]);
    /// some of them may have been pushes of this route.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Returns the next push on the route, or `None` once the connection is closed for
    /// good. Reconnects are transparent: pushes of the new session follow.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it returns, no push is lost.
    pub async fn recv(&mut self) -> Option<Push> {
        loop {
            match self.events.recv().await? {
                Event::Push(p) if p.route == self.route => return Some(p),
                Event::Lagged(n) => {
                    self.missed += n;
                    tracing::warn!(route = %self.route, missed = n, "push reader fell behind");
                }
                _ => {}
            }
        }
    }

    /// Returns the pushes as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Push> + Send + Unpin {
        Box::pin(futures_util::stream::unfold(
            self,
            |mut pushes| async move { pushes.recv().await.map(|p| (p, pushes)) },
        ))
    }
}
