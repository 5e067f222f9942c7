//! [`Client`]: the cheap, cloneable handle on a connection.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::body;
use crate::connection::{self, Command, Reply, SessionInfo};
use crate::event::{Event, Events, Pushes};
use crate::options::ConnectOptions;
use crate::transport::Connector;
use crate::url::ServerUrl;
use crate::ClientError;

/// A connection to a Pitaya server.
///
/// Cloning is cheap: every clone talks to the same connection task, which owns the
/// socket, sends heartbeats and matches responses to requests by id. The connection
/// closes when [`close`](Self::close) is called or the last clone is dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pitaya_client::ClientError> {
/// use pitaya_client::Client;
/// use serde_json::{json, Value};
///
/// let client = Client::connect("tcp://127.0.0.1:3250").await?;
/// let mut messages = client.pushes("onMessage");
/// let reply: Value = client.request("room.room.join", &json!({ "name": "ann" })).await?;
/// client.notify("room.room.message", &json!({ "name": "ann", "content": "hi" })).await?;
/// if let Some(push) = messages.recv().await {
///     println!("{}: {}", push.route(), String::from_utf8_lossy(push.body()));
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    /// The stream holding every event since the handshake, until someone asks for it.
    first_events: Arc<Mutex<Option<broadcast::Receiver<Event>>>>,
    session: watch::Receiver<Option<Arc<SessionInfo>>>,
    done: CancellationToken,
    url: Arc<ServerUrl>,
    timeout: Duration,
}

// ===== impl Client =====

impl Client {
    /// Connects to `url` with default [`ConnectOptions`] and completes the handshake.
    ///
    /// `url` is `tcp://host:port`, `tls://host:port`, `ws://host:port/path` or
    /// `wss://host:port/path`.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`], connection, TLS and WebSocket errors, and
    /// [`ClientError::Handshake`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it returns, the half-open connection is closed.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Self::connect_with(url, ConnectOptions::new()).await
    }

    pub(crate) async fn connect_with(
        url: &str,
        opts: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let url: ServerUrl = url.parse()?;
        let timeout = opts.request_timeout;
        let connector = Connector::new(url.clone(), &opts)?;
        let shared = connection::start(connector, opts).await?;
        Ok(Client {
            commands: shared.commands,
            events: shared.events,
            first_events: Arc::new(Mutex::new(Some(shared.first_events))),
            session: shared.session,
            done: shared.done,
            url: Arc::new(url),
            timeout,
        })
    }

    /// Returns a handle on the same connection whose requests time out after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// Returns the request timeout of this handle.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Returns the URL the client connects to.
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// Returns the settings of the current session, or `None` while disconnected.
    pub fn session(&self) -> Option<Arc<SessionInfo>> {
        self.session.borrow().clone()
    }

    /// Returns whether a session is up (handshake done, not yet disconnected).
    pub fn is_connected(&self) -> bool {
        self.session.borrow().is_some()
    }

    /// Returns the events of the connection: pushes, kick, disconnects, reconnects.
    ///
    /// The first stream asked for on a client, by this method or by
    /// [`pushes`](Self::pushes) on any of its handles, starts right after the
    /// handshake: a push sent as soon as the session is up, or a disconnect that came
    /// before [`connect`](Self::connect) returned, is in it. Later streams start when
    /// they are asked for. See [Events from the handshake on](crate#events-from-the-handshake-on).
    pub fn events(&self) -> Events {
        let first = self
            .first_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let rx = first.unwrap_or_else(|| self.events.subscribe());
        Events::new(rx, self.done.clone())
    }

    /// Returns the pushes on `route`; the first stream of a client starts at the
    /// handshake, as for [`events`](Self::events).
    pub fn pushes(&self, route: impl Into<String>) -> Pushes {
        Pushes::new(self.events(), route.into())
    }

    /// Sends a JSON request and returns the JSON response as `R`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Server`] when the server answers with a Pitaya error,
    /// [`ClientError::Timeout`] when no answer comes in time,
    /// [`ClientError::Disconnected`] or [`ClientError::Kicked`] when the connection
    /// goes first, and (de)serialization errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the request may already be sent, and its
    /// response is then discarded.
    pub async fn request<A, R>(&self, route: &str, arg: &A) -> Result<R, ClientError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let reply = self.request_raw(route, body::to_json(arg)?).await?;
        body::from_json(&reply)
    }

    /// Sends a request with a body already encoded and returns the raw response body.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request), without the (de)serialization errors; the error
    /// payload of a server error is still decoded with the session serializer.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the request may already be sent.
    pub async fn request_raw(
        &self,
        route: &str,
        body: impl Into<Bytes>,
    ) -> Result<Bytes, ClientError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request {
            route: route.to_owned(),
            body: body.into(),
            reply,
        };
        let exchange = async {
            self.commands
                .send(cmd)
                .await
                .map_err(|_| ClientError::Disconnected)?;
            rx.await.map_err(|_| ClientError::Disconnected)?
        };
        let reply = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                route: route.to_owned(),
                timeout: self.timeout,
            })??;
        into_result(reply)
    }

    /// Sends a protobuf request and returns the protobuf response as `R`.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the request may already be sent.
    #[cfg(feature = "protobuf")]
    pub async fn request_proto<A, R>(&self, route: &str, arg: &A) -> Result<R, ClientError>
    where
        A: prost::Message,
        R: prost::Message + Default,
    {
        let reply = self.request_raw(route, arg.encode_to_vec()).await?;
        body::from_proto(reply)
    }

    /// Sends a JSON notify; returns once it is written to the connection.
    ///
    /// The server sends nothing back for a notify, not even an error (spec 4.7).
    ///
    /// # Errors
    ///
    /// [`ClientError::Disconnected`] when there is no connection, serialization and
    /// encoding errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the notify may still be sent.
    pub async fn notify<A: Serialize + ?Sized>(
        &self,
        route: &str,
        arg: &A,
    ) -> Result<(), ClientError> {
        self.notify_raw(route, body::to_json(arg)?).await
    }

    /// Sends a notify with a body already encoded; returns once it is written.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify), without serialization errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the notify may still be sent.
    pub async fn notify_raw(&self, route: &str, body: impl Into<Bytes>) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        let cmd = Command::Notify {
            route: route.to_owned(),
            body: body.into(),
            done,
        };
        self.commands
            .send(cmd)
            .await
            .map_err(|_| ClientError::Disconnected)?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Sends a protobuf notify; returns once it is written.
    ///
    /// # Errors
    ///
    /// As [`notify_raw`](Self::notify_raw).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped half way, the notify may still be sent.
    #[cfg(feature = "protobuf")]
    pub async fn notify_proto<A: prost::Message>(
        &self,
        route: &str,
        arg: &A,
    ) -> Result<(), ClientError> {
        self.notify_raw(route, arg.encode_to_vec()).await
    }

    /// Closes the connection for every handle; no reconnect follows.
    ///
    /// Pending requests fail with [`ClientError::Disconnected`] and the event streams
    /// end after [`Event::Disconnected`]. Closing a closed client does nothing.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once the close is queued, it happens whether or not this is awaited.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Close { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Waits until the connection task has stopped for good.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) {
        self.done.cancelled().await;
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.to_string())
            .field("timeout", &self.timeout)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

fn into_result(reply: Reply) -> Result<Bytes, ClientError> {
    if reply.error {
        Err(body::server_error(&reply.serializer, &reply.data))
    } else {
        Ok(reply.data)
    }
}
