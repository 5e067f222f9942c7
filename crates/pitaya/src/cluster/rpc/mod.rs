//! RPC between servers: the transport traits and what all transports share.
//!
//! A server calls another with an [`RpcClient`] and answers calls through an
//! [`RpcServer`] that hands every incoming message to an [`RpcHandler`]. The
//! payloads are the protobuf messages of spec section 6.2 ([`Request`],
//! [`Response`], [`Push`], [`KickMsg`], [`BindMsg`]); the transports only
//! move them.
//!
//! | item | role |
//! |---|---|
//! | [`RpcClient`] | calls a server, publishes pushes, kicks and binds |
//! | [`RpcServer`] | receives them; per-user subjects of bound sessions |
//! | [`RpcHandler`] | what the application does with a received message |
//! | [`RpcError`] | why a transport operation failed; converts to [`crate::Error`] |
//! | [`request_metadata`] | the propagated context of spec 6.3 |
//! | `NatsRpcClient`, `NatsRpcServer` | the NATS transport, feature `nats` |
//! | `GrpcRpc` | the gRPC transport, feature `grpc` |

mod error;
#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "nats")]
mod nats;

#[cfg(feature = "grpc")]
pub use grpc::{GrpcRpc, GRPC_EXTERNAL_HOST, GRPC_EXTERNAL_PORT, GRPC_HOST, GRPC_PORT, REGION};
#[cfg(feature = "nats")]
pub use nats::{NatsRpcClient, NatsRpcServer};

pub use error::RpcError;

/// Pushes of one [`RpcClient::publish_pushes`] under way at once by default.
///
/// Enough to hide a round trip per user behind the others for a room of
/// hundreds, few enough not to queue thousands of calls on one connection.
pub const PUSHES_IN_FLIGHT: usize = 64;

/// The protobuf cluster messages, so callers need no dependency of their own.
pub use pitaya_protos as protos;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{future, stream, StreamExt};
use pitaya_protos::{BindMsg, KickAnswer, KickMsg, Push, Request, Response};

use super::{BoxError, ServerInfo, ServiceDiscovery};
use crate::config::duration;
use crate::error::codes;

/// Metadata key of the caller's server id (spec 6.3).
pub const PEER_ID: &str = "peer.id";
/// Metadata key of the caller's server type.
pub const PEER_SERVICE: &str = "peer.service";
/// Metadata key of the request correlation id.
pub const REQUEST_ID: &str = "request.id";
/// Metadata key of the route as the client sent it.
pub const REQ_ROUTE: &str = "req-route";
/// Metadata key of the arrival time of the client message, Unix nanoseconds.
pub const REQ_START_TIME: &str = "req-start-time";
/// Metadata key of the RPC timeout, a Go duration string such as `5s`.
pub const REQ_TIMEOUT: &str = "reqTimeout";
/// Metadata key of the caller's trace context, an object of W3C `traceparent`,
/// `tracestate` and `baggage` strings (Pitaya v3); see [`crate::telemetry`].
pub const OTEL_SPAN: &str = "otel-span";

/// Message of a call that got no answer in time, as Pitaya words it (spec 4.8).
pub const TIMEOUT_MESSAGE: &str = "rpc client: request timeout";

/// Returns the Pitaya error carried by a [`Response`], if any.
///
/// An empty code becomes `PIT-000`, as Pitaya does (spec 6.5).
pub fn response_error(response: &Response) -> Option<crate::Error> {
    let e = response.error.as_ref()?;
    let code = if e.code.is_empty() {
        codes::UNKNOWN
    } else {
        &e.code
    };
    let metadata: BTreeMap<_, _> = e.metadata.iter().collect();
    Some(
        metadata
            .into_iter()
            .fold(crate::Error::new(code, e.msg.clone()), |err, (k, v)| {
                err.with_metadata(k.clone(), v.clone())
            }),
    )
}

/// Returns a [`Response`] carrying `error` (code, message and metadata).
pub fn error_response(error: &crate::Error) -> Response {
    Response {
        data: Bytes::new(),
        error: Some(pitaya_protos::Error {
            code: error.code().to_owned(),
            msg: error.message().to_owned(),
            metadata: error
                .metadata()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
    }
}

/// Returns the JSON metadata of a request (spec 6.3) as `Request.metadata` holds it.
///
/// Sets `peer.id` and `peer.service` from `caller`, `request.id`, `req-route`,
/// `req-start-time` in Unix nanoseconds and `reqTimeout` as a Go duration
/// string. A start time before the Unix epoch is written as 0.
pub fn request_metadata(
    caller: &ServerInfo,
    request_id: &str,
    route: &str,
    start: SystemTime,
    timeout: Duration,
) -> Bytes {
    let start_ns = start
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let map = serde_json::json!({
        PEER_ID: caller.id,
        PEER_SERVICE: caller.server_type,
        REQUEST_ID: request_id,
        REQ_ROUTE: route,
        REQ_START_TIME: start_ns,
        REQ_TIMEOUT: duration::format(timeout),
    });
    Bytes::from(map.to_string())
}

/// Returns whether request metadata carries a context: a JSON object, as the
/// receiver requires (spec 6.3).
#[cfg(any(feature = "nats", feature = "grpc"))]
pub(crate) fn has_context(metadata: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(metadata).is_ok_and(|v| v.is_object())
}

/// Returns the `reqTimeout` of JSON request metadata, when present and valid.
pub fn metadata_timeout(metadata: &[u8]) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_slice(metadata).ok()?;
    duration::parse(value.get(REQ_TIMEOUT)?.as_str()?).ok()
}

/// Returns `metadata` with `reqTimeout` set to `timeout`.
///
/// Empty metadata becomes an object with that one key. Metadata that is not
/// a JSON object is returned unchanged, so the receiver reports it.
pub fn with_timeout(metadata: &Bytes, timeout: Duration) -> Bytes {
    let mut map = if metadata.is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(metadata) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return metadata.clone(),
        }
    };
    map.insert(REQ_TIMEOUT.into(), duration::format(timeout).into());
    Bytes::from(serde_json::Value::Object(map).to_string())
}

// ===== traits =====

/// The calling side of cluster RPC.
///
/// Implementations are cheap to share behind an `Arc<dyn RpcClient>`.
#[async_trait]
pub trait RpcClient: Send + Sync + fmt::Debug {
    /// Returns the answer of `server` to `req`.
    ///
    /// The transport writes the effective `timeout` into the request's
    /// metadata as `reqTimeout` (spec 7.3).
    ///
    /// # Errors
    ///
    /// Returns [`RpcError::Timeout`] when no answer came within `timeout`,
    /// [`RpcError::NoResponders`] when the server is not listening,
    /// [`RpcError::Disconnected`] at once when the transport is down, and
    /// [`RpcError::Decode`] when the answer is not a `Response`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; a late answer is discarded.
    async fn call(
        &self,
        server: &ServerInfo,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError>;

    /// Returns once `push` is on its way to the frontends of `frontend_type`
    /// that hold its user: published (NATS) or queued for the frontend (gRPC);
    /// there is no delivery confirmation. Pushes to one user keep their order.
    ///
    /// # Errors
    ///
    /// Returns [`RpcError::Disconnected`] when the transport is down.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not send the message.
    async fn publish_push(&self, frontend_type: &str, push: Push) -> Result<(), RpcError>;

    /// Returns the uids of `pushes` that could not be sent, with why, once the
    /// others are sent to the frontends of `frontend_type` holding their users.
    ///
    /// Each push goes to a different user. By default they go through
    /// [`publish_push`](Self::publish_push), [`PUSHES_IN_FLIGHT`] at a time; a
    /// transport that must look its users up first does it for all at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave some users with the push and others not.
    async fn publish_pushes(
        &self,
        frontend_type: &str,
        pushes: Vec<Push>,
    ) -> Vec<(String, RpcError)> {
        let sends = pushes.into_iter().map(|push| async move {
            let uid = push.uid.clone();
            let sent = self.publish_push(frontend_type, push).await;
            sent.err().map(|e| (uid, e))
        });
        stream::iter(sends)
            .buffer_unordered(PUSHES_IN_FLIGHT)
            .filter_map(future::ready)
            .collect()
            .await
    }

    /// Returns once `push` is on its way to frontend `server`, known to hold its
    /// user, as [`publish_push`](Self::publish_push) says.
    ///
    /// Backend sessions push this way (spec 6.6); by default it is
    /// [`publish_push`](Self::publish_push) to the frontend's type.
    ///
    /// # Errors
    ///
    /// As [`publish_push`](Self::publish_push), and any error calling `server`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not send the message.
    async fn push_to_server(&self, server: &ServerInfo, push: Push) -> Result<(), RpcError> {
        self.publish_push(&server.server_type, push).await
    }

    /// Returns once the pushes to `uid` handed to this client for `server` so far
    /// are delivered or failed; at once by default, for transports that keep a
    /// user's pushes and calls in one order anyway.
    ///
    /// A kick waits for this first, so that a push sent before it is not lost.
    async fn pushes_flushed(&self, server: &ServerInfo, uid: &str) {
        let _ = (server, uid);
    }

    /// Returns once a kick of `uid` is sent to the frontends of `frontend_type`.
    ///
    /// # Errors
    ///
    /// Returns [`RpcError::Disconnected`] when the transport is down.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not send the message.
    async fn publish_kick(&self, frontend_type: &str, uid: &str) -> Result<(), RpcError>;

    /// Returns once `bind` is announced to every server of `server_type`
    /// (spec 6.8).
    ///
    /// # Errors
    ///
    /// Returns [`RpcError::Disconnected`] when the transport is down.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not send the message.
    async fn publish_bind(&self, server_type: &str, bind: BindMsg) -> Result<(), RpcError>;

    /// Completes if the transport's connection is lost for good (reconnections
    /// exhausted); never by default. A cluster app shuts down then, as Pitaya does.
    async fn closed(&self) {
        std::future::pending::<()>().await;
    }

    /// Hands the client the cluster's server list, once discovery runs.
    ///
    /// A transport that calls servers at their own addresses (gRPC) follows it to
    /// find frontends by id and to drop connections to servers that left.
    /// Ignored by default.
    fn attach_discovery(&self, discovery: Arc<dyn ServiceDiscovery>) {
        let _ = discovery;
    }
}

/// An [`RpcServer`]'s counters, reported as Pitaya's metrics (spec 13.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcServerStats {
    /// Messages dropped so far because a queue was full (`dropped_messages`).
    pub dropped_messages: u64,
    /// Workers answering a call now (`busy_workers`, pool `rpc_server_remote`).
    pub busy_workers: usize,
    /// Workers answering calls (`total_workers`, pool `rpc_server_remote`).
    pub total_workers: usize,
    /// Free slots of each receive queue, by Pitaya's channel name (`channel_capacity`).
    pub free_slots: Vec<(&'static str, usize)>,
}

/// What a server does with the messages its [`RpcServer`] receives.
#[async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Returns the answer to a call; `req.msg` is always present.
    async fn handle(&self, req: Request) -> Response;

    /// Delivers a push to the local session of `push.uid`; returns whether
    /// there was one.
    async fn on_push(&self, push: Push) -> bool;

    /// Kicks the local session of `kick.user_id`; returns whether one was kicked.
    async fn on_kick(&self, kick: KickMsg) -> KickAnswer;

    /// Handles the announcement that a user bound on another frontend.
    async fn on_bind(&self, bind: BindMsg);
}

/// The answering side of cluster RPC, started with an [`RpcHandler`].
#[async_trait]
pub trait RpcServer: Send + Sync + fmt::Debug {
    /// Returns once this server receives the pushes and kicks of `uid`.
    ///
    /// Frontends call it when a session binds (spec 7.2).
    ///
    /// # Errors
    ///
    /// Returns an error when the transport refuses the subscription.
    async fn subscribe_user(&self, uid: &str) -> Result<(), RpcError>;

    /// Returns once pushes and kicks of `uid` are no longer received here.
    ///
    /// Unknown users are ignored.
    ///
    /// # Errors
    ///
    /// Returns an error when the transport fails to unsubscribe.
    async fn unsubscribe_user(&self, uid: &str) -> Result<(), RpcError>;

    /// Completes if the transport's connection is lost for good; never by default.
    async fn closed(&self) {
        std::future::pending::<()>().await;
    }

    /// Returns the server's counters for metrics; empty by default.
    fn stats(&self) -> RpcServerStats {
        RpcServerStats::default()
    }

    /// Returns once the server stopped receiving and finished the calls in
    /// progress.
    async fn shutdown(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> ServerInfo {
        ServerInfo::new("connector", true).with_id("c-1")
    }

    #[test]
    fn metadata_has_the_spec_keys_and_types() {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let bytes = request_metadata(
            &caller(),
            "req-1",
            "room.room.join",
            start,
            Duration::from_millis(1500),
        );
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v[PEER_ID], "c-1");
        assert_eq!(v[PEER_SERVICE], "connector");
        assert_eq!(v[REQUEST_ID], "req-1");
        assert_eq!(v[REQ_ROUTE], "room.room.join");
        assert_eq!(v[REQ_START_TIME].as_u64(), Some(1_700_000_000_123_456_789));
        assert_eq!(v[REQ_TIMEOUT], "1.5s");
        assert_eq!(metadata_timeout(&bytes), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn timeout_is_written_into_object_or_empty_metadata_only() {
        let set = with_timeout(&Bytes::from_static(br#"{"a":1}"#), Duration::from_secs(5));
        let v: serde_json::Value = serde_json::from_slice(&set).unwrap();
        assert_eq!(
            (v["a"].as_i64(), v[REQ_TIMEOUT].as_str()),
            (Some(1), Some("5s"))
        );

        let empty = with_timeout(&Bytes::new(), Duration::from_secs(60));
        assert_eq!(&empty[..], br#"{"reqTimeout":"1m0s"}"#);

        let junk = Bytes::from_static(b"[1]");
        assert_eq!(with_timeout(&junk, Duration::from_secs(1)), junk);
        assert_eq!(metadata_timeout(b"not json"), None);
    }

    #[test]
    fn error_response_round_trips_and_empty_code_is_unknown() {
        let e = crate::Error::new("GAME-1", "full").with_metadata("room", "7");
        assert_eq!(response_error(&error_response(&e)), Some(e));

        let mut r = error_response(&crate::Error::new("", "boom"));
        assert_eq!(response_error(&r).unwrap().code(), "PIT-000");
        r.error = None;
        assert_eq!(response_error(&r), None);
    }
}
