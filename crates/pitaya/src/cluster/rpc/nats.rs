//! Cluster RPC over NATS (spec section 7).
//!
//! Subjects, all starting with `pitaya/` whatever the etcd prefix (7.2):
//!
//! ```text
//! pitaya/servers/<serverType>/<serverID>     Request -> Response, request/reply
//! pitaya/<frontendType>/user/<uid>/push      Push, publish only
//! pitaya/<frontendType>/user/<uid>/kick      KickMsg, publish only
//! pitaya/<serverType>/bindings               BindMsg, publish only
//! ```
//!
//! Like Pitaya, the client and the server side each own a connection.
//! async-nats reconnects on its own and subscribes again on the new
//! connection; while the connection is down, calls and publishes fail at once
//! with [`RpcError::Disconnected`] instead of waiting for their timeout.

mod server;

pub use server::NatsRpcServer;

use std::time::{Duration, Instant};

use async_nats::client::RequestErrorKind;
use async_nats::connection::State;
use async_trait::async_trait;
use pitaya_protos::{BindMsg, KickMsg, Push, Request, Response};
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{with_timeout, RpcClient, RpcError};
use crate::cluster::ServerInfo;
use crate::config::{NatsClientConfig, NatsConnectionConfig};

/// Returns the subject a server receives its calls on.
pub(crate) fn server_subject(server_type: &str, server_id: &str) -> String {
    format!("pitaya/servers/{server_type}/{server_id}")
}

/// Returns the subject of the pushes to `uid` on frontends of `frontend_type`.
pub(crate) fn push_subject(frontend_type: &str, uid: &str) -> String {
    format!("pitaya/{frontend_type}/user/{uid}/push")
}

/// Returns the subject of the kicks of `uid` on frontends of `frontend_type`.
pub(crate) fn kick_subject(frontend_type: &str, uid: &str) -> String {
    format!("pitaya/{frontend_type}/user/{uid}/kick")
}

/// Returns the subject bind announcements of `server_type` go to.
pub(crate) fn bindings_subject(server_type: &str) -> String {
    format!("pitaya/{server_type}/bindings")
}

/// Returns the time we keep retrying the first connection.
///
/// Pitaya waits about twice the worst case of its retries (spec 7.1): every
/// attempt may take the connection timeout plus the wait and jitter after it.
fn start_deadline(config: &NatsConnectionConfig) -> Duration {
    let per_attempt = config.connection_timeout + config.reconnect_wait + config.reconnect_jitter;
    per_attempt * config.max_reconnection_retries.max(1) * 2
}

/// Returns the async-nats options of `config`, logging connection events
/// under `name`.
fn options(
    config: &NatsConnectionConfig,
    name: &str,
    events: &ConnEvents,
) -> async_nats::ConnectOptions {
    let (wait, jitter) = (config.reconnect_wait, config.reconnect_jitter);
    let role = name.to_owned();
    let events = events.clone();
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(config.connection_timeout)
        .ping_interval(config.ping_interval)
        .max_reconnects(config.max_reconnection_retries as usize)
        // The first reconnection is immediate, the next ones wait, as nats.go does.
        .reconnect_delay_callback(move |attempts| match attempts {
            0 | 1 => Duration::ZERO,
            _ => wait + random_part(jitter),
        })
        .event_callback(move |event| {
            let role = role.clone();
            match &event {
                e if is_final(e) => events.lost.cancel(),
                async_nats::Event::SlowConsumer(_) => {
                    events.slow.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            async move { log_event(&role, event) }
        })
}

/// Returns a random duration below `max`, so servers that lost NATS together
/// do not all come back in the same instant.
fn random_part(max: Duration) -> Duration {
    // A v4 UUID is 122 random bits; we need no more than a fraction.
    let fraction = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
    max * fraction / 1_000
}

/// What a connection's event callback reports to its owner.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnEvents {
    /// Cancelled when reconnections are exhausted: the connection is lost for good.
    pub(crate) lost: CancellationToken,
    /// How many times NATS dropped messages because a subscription's buffer was full.
    pub(crate) slow: Arc<AtomicU64>,
}

/// Returns whether `event` means the connection will not come back.
///
/// `Closed` is not: it follows our own `drain` at shutdown.
fn is_final(event: &async_nats::Event) -> bool {
    use async_nats::{ClientError, Event};
    matches!(event, Event::ClientError(ClientError::MaxReconnects))
}

fn log_event(role: &str, event: async_nats::Event) {
    use async_nats::Event;
    if is_final(&event) {
        // Nobody else sees this, so we report it loudly.
        tracing::error!(role, event = %event, "nats connection lost for good");
        return;
    }
    match event {
        Event::Connected => tracing::info!(role, "nats connected"),
        Event::Disconnected => tracing::warn!(role, "nats disconnected, reconnecting"),
        Event::SlowConsumer(sid) => tracing::warn!(role, sid, "nats slow consumer"),
        other => tracing::debug!(role, event = %other, "nats event"),
    }
}

/// Returns a client connected to `config.connect`, retrying until the
/// start-up deadline of spec 7.1.
pub(crate) async fn connect(
    config: &NatsConnectionConfig,
    name: &str,
    events: &ConnEvents,
) -> Result<async_nats::Client, RpcError> {
    let give_up = Instant::now() + start_deadline(config);
    let mut attempt = 1u32;
    loop {
        match options(config, name, events)
            .connect(config.connect.as_str())
            .await
        {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() + config.reconnect_wait < give_up => {
                tracing::warn!(
                    role = name, url = %config.connect, attempt, error = %e,
                    "nats not reachable yet, retrying"
                );
            }
            Err(e) => return Err(RpcError::Transport(e.into())),
        }
        tokio::time::sleep(config.reconnect_wait).await;
        attempt += 1;
    }
}

/// Returns `Err(Disconnected)` unless `client` is connected.
fn ensure_connected(client: &async_nats::Client) -> Result<(), RpcError> {
    match client.connection_state() {
        State::Connected => Ok(()),
        _ => Err(RpcError::Disconnected),
    }
}

/// Returns `Err(TooLarge)` when `size` is over what the NATS server accepts.
fn check_size(client: &async_nats::Client, size: usize) -> Result<(), RpcError> {
    let max = client.server_info().max_payload;
    if max > 0 && size > max {
        return Err(RpcError::TooLarge { size, max });
    }
    Ok(())
}

// ===== NatsRpcClient =====

/// The calling side of cluster RPC over NATS.
///
/// A cheap handle: clones share one connection.
///
/// # Examples
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
///
/// use pitaya::cluster::rpc::{request_metadata, response_error, NatsRpcClient};
/// use pitaya::cluster::{RpcClient, ServerInfo};
/// use pitaya::config::NatsClientConfig;
/// use pitaya::cluster::rpc::protos::{Msg, Request, RpcType};
///
/// # async fn run() -> Result<(), pitaya::Error> {
/// let me = ServerInfo::new("connector", true);
/// let client = NatsRpcClient::connect(&NatsClientConfig::default(), &me).await?;
///
/// let room = ServerInfo::new("room", false).with_id("room-1");
/// let route = "room.room.join";
/// let timeout = client.request_timeout();
/// let req = Request {
///     r#type: RpcType::User.into(),
///     msg: Some(Msg { route: route.into(), ..Msg::default() }),
///     metadata: request_metadata(&me, "req-1", route, SystemTime::now(), timeout),
///     ..Request::default()
/// };
/// let response = client.call(&room, req, timeout).await?;
/// if let Some(err) = response_error(&response) {
///     return Err(err);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NatsRpcClient {
    client: async_nats::Client,
    closed: CancellationToken,
    caller_id: String,
    request_timeout: Duration,
}

impl NatsRpcClient {
    /// Returns a client connected to `config.connection.connect` for the
    /// server `caller`.
    ///
    /// While NATS is unreachable we retry every `reconnect_wait`, logging each
    /// attempt, for about twice Pitaya's worst-case retry time (spec 7.1).
    ///
    /// # Errors
    ///
    /// Returns [`RpcError::Transport`] when NATS stayed unreachable.
    pub async fn connect(
        config: &NatsClientConfig,
        caller: &ServerInfo,
    ) -> Result<NatsRpcClient, RpcError> {
        let events = ConnEvents::default();
        let client = connect(&config.connection, "pitaya-rpc-client", &events).await?;
        Ok(NatsRpcClient {
            client,
            closed: events.lost,
            caller_id: caller.id.clone(),
            request_timeout: config.request_timeout,
        })
    }

    /// Returns the configured timeout of calls that propagate none.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Returns whether the connection to NATS is up.
    pub fn is_connected(&self) -> bool {
        ensure_connected(&self.client).is_ok()
    }

    async fn publish(&self, subject: String, payload: Vec<u8>) -> Result<(), RpcError> {
        ensure_connected(&self.client)?;
        check_size(&self.client, payload.len())?;
        self.client
            .publish(subject, payload.into())
            .await
            .map_err(|e| RpcError::Transport(e.into()))
    }
}

#[async_trait]
impl RpcClient for NatsRpcClient {
    async fn call(
        &self,
        server: &ServerInfo,
        mut req: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        ensure_connected(&self.client)?;

        let subject = server_subject(&server.server_type, &server.id);
        req.metadata = with_timeout(&req.metadata, timeout);
        let route = req
            .msg
            .as_ref()
            .map(|m| m.route.clone())
            .unwrap_or_default();
        let payload = req.encode_to_vec();
        check_size(&self.client, payload.len())?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(timeout));

        let reply = match self.client.send_request(subject.clone(), request).await {
            Ok(reply) => reply,
            Err(e) => {
                return Err(match e.kind() {
                    RequestErrorKind::TimedOut => RpcError::Timeout {
                        timeout,
                        route,
                        caller_id: self.caller_id.clone(),
                        target_id: server.id.clone(),
                    },
                    RequestErrorKind::NoResponders => RpcError::NoResponders { subject },
                    _ if !self.is_connected() => RpcError::Disconnected,
                    _ => RpcError::Transport(e.into()),
                })
            }
        };
        Response::decode(reply.payload).map_err(|e| RpcError::Decode(e.to_string()))
    }

    async fn publish_push(&self, frontend_type: &str, push: Push) -> Result<(), RpcError> {
        let subject = push_subject(frontend_type, &push.uid);
        self.publish(subject, push.encode_to_vec()).await
    }

    async fn publish_kick(&self, frontend_type: &str, uid: &str) -> Result<(), RpcError> {
        let kick = KickMsg {
            user_id: uid.to_owned(),
        };
        self.publish(kick_subject(frontend_type, uid), kick.encode_to_vec())
            .await
    }

    async fn publish_bind(&self, server_type: &str, bind: BindMsg) -> Result<(), RpcError> {
        self.publish(bindings_subject(server_type), bind.encode_to_vec())
            .await
    }

    async fn closed(&self) {
        self.closed.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_the_spec_ones() {
        assert_eq!(server_subject("room", "r-1"), "pitaya/servers/room/r-1");
        assert_eq!(
            push_subject("connector", "u1"),
            "pitaya/connector/user/u1/push"
        );
        assert_eq!(
            kick_subject("connector", "u1"),
            "pitaya/connector/user/u1/kick"
        );
        assert_eq!(bindings_subject("connector"), "pitaya/connector/bindings");
    }

    #[test]
    fn reconnect_jitter_stays_below_its_maximum() {
        let max = Duration::from_millis(100);
        assert!((0..100).all(|_| random_part(max) < max));
        assert_eq!(random_part(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn start_deadline_is_about_twice_the_worst_case_retry_time() {
        // Pitaya's defaults: 15 tries of 2s + 1s + 100ms, doubled.
        let d = start_deadline(&NatsConnectionConfig::default());
        assert_eq!(d, Duration::from_millis(93_000));
    }
}
