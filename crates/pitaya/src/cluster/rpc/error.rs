//! [`RpcError`]: why a transport operation failed, and the Pitaya error it becomes.

use std::time::Duration;

use super::{BoxError, PEER_ID, TIMEOUT_MESSAGE};
use crate::config::duration;
use crate::error::codes;

/// Returned when an RPC transport operation fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The target did not answer within the timeout.
    #[error("rpc client: request timeout")]
    Timeout {
        /// The timeout that ran out.
        timeout: Duration,
        /// Route of the call, `msg.route` of the request.
        route: String,
        /// Id of the calling server.
        caller_id: String,
        /// Id of the target server.
        target_id: String,
    },
    /// Nobody listens on the target's subject: the server is gone.
    #[error("no responders on {subject}")]
    NoResponders {
        /// The subject the request went to.
        subject: String,
    },
    /// Nothing listens at the target's address: the server is gone.
    #[error("server {server_id} unreachable at {address}")]
    Unreachable {
        /// Id of the target server.
        server_id: String,
        /// The address dialled.
        address: String,
    },
    /// The target's record names no address this transport can dial.
    #[error("server {server_id} publishes no address for this transport")]
    NoAddress {
        /// Id of the target server.
        server_id: String,
    },
    /// Service discovery knows no server with this id.
    #[error("server {server_id} not found")]
    UnknownServer {
        /// The id looked up.
        server_id: String,
    },
    /// No frontend of the type is recorded as holding the user.
    #[error("binding for user {uid} was not found")]
    NotBound {
        /// The user looked up.
        uid: String,
    },
    /// The connection to the transport is down; the call was not sent.
    #[error("rpc transport disconnected")]
    Disconnected,
    /// The message is larger than the transport carries; it was not sent.
    #[error("message of {size} bytes is over the cluster's limit of {max} bytes")]
    TooLarge {
        /// Encoded size of the message.
        size: usize,
        /// The transport's limit (NATS: the server's `max_payload`).
        max: usize,
    },
    /// A payload was not the protobuf message it should be.
    #[error("malformed rpc payload: {0}")]
    Decode(String),
    /// Any other transport failure.
    #[error("rpc transport: {0}")]
    Transport(#[source] BoxError),
}

impl RpcError {
    /// Returns whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RpcError::Timeout { .. })
    }
}

impl From<RpcError> for crate::Error {
    /// Returns the Pitaya error a caller reports: `PIT-408` for a timeout,
    /// with Pitaya's metadata, `PIT-400` for a message too large to send, else
    /// `PIT-000`, as Go Pitaya reports transport errors without a code (spec 4.8
    /// and 7.3).
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Timeout {
                timeout,
                route,
                caller_id,
                target_id,
            } => crate::Error::new(codes::REQUEST_TIMEOUT, TIMEOUT_MESSAGE)
                .with_metadata("timeout", duration::format(timeout))
                .with_metadata("route", route)
                .with_metadata("server", caller_id)
                .with_metadata(PEER_ID, target_id),
            // The caller's message is at fault, not the cluster.
            RpcError::TooLarge { .. } => crate::Error::bad_request(e.to_string()),
            // Subjects and addresses are the transport's internals; clients need none.
            RpcError::NoResponders { .. } | RpcError::Unreachable { .. } => {
                crate::Error::new(codes::UNKNOWN, "the chosen server is not answering")
            }
            other => crate::Error::new(codes::UNKNOWN, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_becomes_pit_408_with_pitaya_metadata() {
        let e = crate::Error::from(RpcError::Timeout {
            timeout: Duration::from_secs(5),
            route: "room.room.join".into(),
            caller_id: "c-1".into(),
            target_id: "r-1".into(),
        });
        assert_eq!(e.code(), "PIT-408");
        assert_eq!(e.message(), "rpc client: request timeout");
        let m = e.metadata();
        assert_eq!(m["timeout"], "5s");
        assert_eq!(m["route"], "room.room.join");
        assert_eq!(m["server"], "c-1");
        assert_eq!(m["peer.id"], "r-1");
    }

    #[test]
    fn other_transport_errors_become_pit_000() {
        let no_one = RpcError::NoResponders {
            subject: "pitaya/servers/room/r-1".into(),
        };
        let e = crate::Error::from(no_one);
        assert_eq!(e.code(), "PIT-000");
        assert!(!e.message().contains("pitaya/servers"), "{e}");
        let big = crate::Error::from(RpcError::TooLarge { size: 2, max: 1 });
        assert_eq!(big.code(), "PIT-400");
        assert_eq!(crate::Error::from(RpcError::Disconnected).code(), "PIT-000");
    }
}
