//! The answering side over NATS: subscriptions, bounded queues, workers.
//!
//! Every subscription is read by a forwarding task that moves messages into a
//! bounded queue (`buffer.messages`, `buffer.push`). Unlike Pitaya, which drops
//! what does not fit (spec 7.3), a full queue holds the forwarder back: messages
//! wait in NATS's per-subscription buffer and are dropped, and counted, only
//! when that overflows as well. Calls are answered by `services` workers sharing
//! one queue; pushes, kicks and bind announcements each have one consumer, so a
//! user's pushes keep their order.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::{Message, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use pitaya_protos::{BindMsg, KickMsg, Push, Request, Response};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{bindings_subject, connect, kick_subject, push_subject, server_subject, ConnEvents};
use crate::cluster::rpc::{
    error_response, has_context, metadata_timeout, RpcError, RpcHandler, RpcServer, RpcServerStats,
    TIMEOUT_MESSAGE,
};
use crate::cluster::ServerInfo;
use crate::config::NatsServerConfig;

/// Longest wait for NATS to confirm subscription changes.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a one-way message carries, so one consumer shape serves all three.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Push,
    Kick,
    Bind,
}

/// The per-user subscriptions of one bound session.
#[derive(Debug)]
struct UserSubscriptions {
    stop: CancellationToken,
    forwarders: Vec<JoinHandle<()>>,
}

struct Inner {
    client: async_nats::Client,
    events: ConnEvents,
    server_type: String,
    handler: Arc<dyn RpcHandler>,
    push_tx: mpsc::Sender<Message>,
    kick_tx: mpsc::Sender<Message>,
    users: Mutex<HashMap<String, UserSubscriptions>>,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Weak, so that the queues still close when their forwarders end.
    call_queue: OnceLock<mpsc::WeakSender<Message>>,
    bind_queue: OnceLock<mpsc::WeakSender<Message>>,
    busy: AtomicUsize,
    workers: usize,
}

/// The answering side of cluster RPC over NATS.
///
/// Receives calls on `pitaya/servers/<type>/<id>` and bind announcements on
/// `pitaya/<type>/bindings`, plus the push and kick subjects of the users
/// passed to [`RpcServer::subscribe_user`].
pub struct NatsRpcServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for NatsRpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsRpcServer")
            .field("server_type", &self.inner.server_type)
            .field("dropped", &self.dropped_messages())
            .finish_non_exhaustive()
    }
}

impl NatsRpcServer {
    /// Returns a server of `info` that answers with `handler`, subscribed and
    /// ready: a call sent after this returns is received.
    ///
    /// While NATS is unreachable we retry every `reconnect_wait`, logging each
    /// attempt, for about twice Pitaya's worst-case retry time (spec 7.1).
    ///
    /// # Errors
    ///
    /// Returns [`RpcError::Transport`] when NATS stayed unreachable or refused
    /// a subscription.
    pub async fn start(
        config: &NatsServerConfig,
        info: &ServerInfo,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<NatsRpcServer, RpcError> {
        let events = ConnEvents::default();
        let client = connect(&config.connection, "pitaya-rpc-server", &events).await?;
        let calls = subscribe(&client, server_subject(&info.server_type, &info.id)).await?;
        let binds = subscribe(&client, bindings_subject(&info.server_type)).await?;

        // Zero capacities are refused by tokio; Pitaya refuses them in config.
        let messages = config.buffer.messages.max(1);
        let (call_tx, call_rx) = mpsc::channel(messages);
        let (push_tx, push_rx) = mpsc::channel(config.buffer.push.max(1));
        let (kick_tx, kick_rx) = mpsc::channel(messages);
        let (bind_tx, bind_rx) = mpsc::channel(messages);
        let inner = Arc::new(Inner {
            client,
            events,
            server_type: info.server_type.clone(),
            handler,
            push_tx,
            kick_tx,
            users: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            call_queue: OnceLock::new(),
            bind_queue: OnceLock::new(),
            busy: AtomicUsize::new(0),
            workers: config.services.max(1),
        });
        let _ = inner.call_queue.set(call_tx.downgrade());
        let _ = inner.bind_queue.set(bind_tx.downgrade());

        let stop = inner.stop.clone();
        inner.tasks.spawn(forward(calls, call_tx, stop.clone()));
        inner.tasks.spawn(forward(binds, bind_tx, stop));
        let call_rx = Arc::new(tokio::sync::Mutex::new(call_rx));
        for _ in 0..config.services.max(1) {
            inner
                .tasks
                .spawn(work(Arc::clone(&inner), Arc::clone(&call_rx)));
        }
        for (kind, rx) in [
            (Kind::Push, push_rx),
            (Kind::Kick, kick_rx),
            (Kind::Bind, bind_rx),
        ] {
            inner.tasks.spawn(consume(Arc::clone(&inner), kind, rx));
        }

        // The SUBs must reach NATS before we say we are ready.
        flush(&inner.client).await?;
        let (server_id, server_type) = (&info.id, &info.server_type);
        tracing::info!(%server_id, %server_type, "nats rpc server ready");
        Ok(NatsRpcServer { inner })
    }

    /// Returns how many times NATS dropped messages for this server because it fell
    /// behind by more than a subscription's buffer.
    pub fn dropped_messages(&self) -> u64 {
        self.inner.events.slow.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl RpcServer for NatsRpcServer {
    async fn subscribe_user(&self, uid: &str) -> Result<(), RpcError> {
        let inner = &self.inner;
        let push = subscribe(&inner.client, push_subject(&inner.server_type, uid)).await?;
        let kick = subscribe(&inner.client, kick_subject(&inner.server_type, uid)).await?;
        let stop = inner.stop.child_token();
        let forwarders = vec![
            inner
                .tasks
                .spawn(forward(push, inner.push_tx.clone(), stop.clone())),
            inner
                .tasks
                .spawn(forward(kick, inner.kick_tx.clone(), stop.clone())),
        ];
        let old = lock(&inner.users).insert(uid.to_owned(), UserSubscriptions { stop, forwarders });
        if let Some(old) = old {
            end_user(old).await;
        }
        flush(&inner.client).await
    }

    async fn unsubscribe_user(&self, uid: &str) -> Result<(), RpcError> {
        let Some(subs) = lock(&self.inner.users).remove(uid) else {
            return Ok(());
        };
        end_user(subs).await;
        flush(&self.inner.client).await
    }

    async fn closed(&self) {
        self.inner.events.lost.cancelled().await;
    }

    fn stats(&self) -> RpcServerStats {
        let inner = &self.inner;
        let free = |q: &OnceLock<mpsc::WeakSender<Message>>| {
            q.get()
                .and_then(|w| w.upgrade())
                .map_or(0, |tx| tx.capacity())
        };
        RpcServerStats {
            dropped_messages: self.dropped_messages(),
            busy_workers: inner.busy.load(Ordering::Relaxed),
            total_workers: inner.workers,
            // Pitaya's names for its NATS server's channels (spec 13.1).
            free_slots: vec![
                ("rpc_server_subchan", free(&inner.call_queue)),
                ("rpc_server_bindingschan", free(&inner.bind_queue)),
                ("rpc_server_userpushchan", inner.push_tx.capacity()),
                ("rpc_server_userkickchan", inner.kick_tx.capacity()),
            ],
        }
    }

    async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stop.cancel();
        inner.tasks.close();
        inner.tasks.wait().await;
        if let Err(e) = inner.client.drain().await {
            tracing::debug!(error = %e, "nats drain after shutdown failed");
        }
        tracing::info!(server_type = %inner.server_type, "nats rpc server stopped");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map stays consistent even if a holder panicked: every update is one call.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn subscribe(client: &async_nats::Client, subject: String) -> Result<Subscriber, RpcError> {
    client
        .subscribe(subject)
        .await
        .map_err(|e| RpcError::Transport(e.into()))
}

/// Returns once NATS has processed every subscription change sent before.
///
/// async-nats's `flush` only writes the socket. NATS handles one connection's
/// commands in order, so a message that we publish to a fresh inbox and get
/// back proves the earlier SUBs and UNSUBs took effect; without this, a
/// publisher on another connection could race our new subscription.
async fn flush(client: &async_nats::Client) -> Result<(), RpcError> {
    let transport = |e: Box<dyn std::error::Error + Send + Sync>| RpcError::Transport(e);
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| transport(e.into()))?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(|e| transport(e.into()))?;
    match tokio::time::timeout(FLUSH_TIMEOUT, echo.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(RpcError::Disconnected),
    }
}

async fn end_user(subs: UserSubscriptions) {
    subs.stop.cancel();
    for task in subs.forwarders {
        // A forwarder only ends by returning; a join error would mean it panicked.
        let _ = task.await;
    }
}

// ===== tasks =====

/// Moves messages of `sub` into `tx` until `stop`.
///
/// A full queue holds the forwarder back rather than dropping: the messages wait in
/// the subscription's own buffer, and NATS drops (counted as slow-consumer events)
/// only once that overflows too.
async fn forward(mut sub: Subscriber, tx: mpsc::Sender<Message>, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            message = sub.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let sent = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            sent = tx.send(message) => sent,
        };
        if sent.is_err() {
            break;
        }
    }
    if let Err(e) = sub.unsubscribe().await {
        tracing::debug!(error = %e, "nats unsubscribe failed");
    }
}

/// Answers calls from the shared queue until it is closed and empty.
async fn work(inner: Arc<Inner>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Message>>>) {
    loop {
        let message = rx.lock().await.recv().await;
        match message {
            Some(message) => {
                inner.busy.fetch_add(1, Ordering::Relaxed);
                serve(&inner, message).await;
                inner.busy.fetch_sub(1, Ordering::Relaxed);
            }
            None => break,
        }
    }
}

/// Answers one call: decode, run the handler, publish the Response to the reply inbox.
async fn serve(inner: &Inner, message: Message) {
    let mut req = match Request::decode(message.payload) {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!(subject = %message.subject, error = %e, "malformed rpc request dropped");
            return;
        }
    };
    let reply = message.reply.map(|s| s.to_string());
    let Some(msg) = req.msg.as_mut() else {
        tracing::warn!(subject = %message.subject, "rpc request without msg dropped");
        return;
    };
    msg.reply = reply.clone().unwrap_or_default();
    let route = msg.route.clone();

    let response = answer(inner, req).await;

    let Some(reply) = reply else {
        tracing::debug!(%route, "rpc request had no reply subject, answer discarded");
        return;
    };
    if let Err(e) = inner
        .client
        .publish(reply, response.encode_to_vec().into())
        .await
    {
        tracing::debug!(%route, error = %e, "rpc reply not sent");
    }
}

/// Returns the handler's answer to `req`, or the error Pitaya's receiver gives
/// for missing context, an expired `reqTimeout` or a panic (spec 6.3, 4.8).
async fn answer(inner: &Inner, req: Request) -> Response {
    if !has_context(&req.metadata) {
        return error_response(&crate::Error::internal("no context found"));
    }

    let limit = metadata_timeout(&req.metadata);
    let handled = AssertUnwindSafe(inner.handler.handle(req)).catch_unwind();
    let result = match limit {
        Some(limit) => match tokio::time::timeout(limit, handled).await {
            Ok(result) => result,
            Err(_) => return error_response(&crate::Error::internal(TIMEOUT_MESSAGE)),
        },
        None => handled.await,
    };
    result.unwrap_or_else(|_| {
        error_response(&crate::Error::new(
            crate::codes::UNKNOWN,
            "rpc handler panicked",
        ))
    })
}

/// Hands one-way messages of `kind` to the handler, one at a time, until shutdown.
async fn consume(inner: Arc<Inner>, kind: Kind, mut rx: mpsc::Receiver<Message>) {
    loop {
        let message = tokio::select! {
            biased;
            () = inner.stop.cancelled() => break,
            message = rx.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let handler = &inner.handler;
        let delivered = match kind {
            Kind::Push => Push::decode(message.payload).map(|p| {
                async move {
                    handler.on_push(p).await;
                }
                .boxed()
            }),
            // A NATS kick is published without a reply inbox (spec 7.2), so
            // the answer has nowhere to go; gRPC is where it is returned.
            Kind::Kick => KickMsg::decode(message.payload).map(|k| {
                async move {
                    handler.on_kick(k).await;
                }
                .boxed()
            }),
            Kind::Bind => BindMsg::decode(message.payload).map(|b| handler.on_bind(b).boxed()),
        };
        match delivered {
            Ok(delivery) => {
                if AssertUnwindSafe(delivery).catch_unwind().await.is_err() {
                    tracing::warn!(subject = %message.subject, ?kind, "rpc handler panicked");
                }
            }
            Err(e) => {
                let subject = &message.subject;
                tracing::warn!(%subject, ?kind, error = %e, "malformed message dropped");
            }
        }
    }
}
