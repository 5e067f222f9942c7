//! Errors returned by the client.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use pitaya_protocol::{DecodeError, EncodeError};

/// Boxed error from a body codec (serde_json or prost) or a TLS setting.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Code of a request that timed out on the client, as Pitaya's Go client reports it.
///
/// Servers never send it (spec 4.8): it only ever comes from [`ClientError::Timeout`].
pub const CLIENT_TIMEOUT_CODE: &str = "PIT-504";

/// Returned when a connection, a request or a notify fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered the request with a Pitaya error (spec 4.7).
    #[error("server error {code}: {message}")]
    Server {
        /// Pitaya error code such as `PIT-400`, or an application code.
        code: String,
        /// Human-readable message from the server.
        message: String,
        /// Extra details from the server, such as `route`.
        metadata: BTreeMap<String, String>,
    },
    /// No response arrived within the request timeout.
    #[error("request to {route} timed out after {timeout:?}")]
    Timeout {
        /// Route of the request.
        route: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection is gone, or went away before the response arrived.
    #[error("disconnected")]
    Disconnected,
    /// The server kicked the client before the response arrived.
    #[error("kicked by the server")]
    Kicked,
    /// The handshake failed, so no session was established.
    // Transparent: each handshake error already says it is one, and keeping the cause
    // out of our own message means printing the chain of sources says it once.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The URL is not one of `tcp://`, `tls://`, `ws://`, `wss://` with a host and port,
    /// or names a transport this build leaves out.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting or writing failed at the socket level.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// TLS settings could not be built (a CA file is unreadable or holds no certificate).
    #[error("tls setup failed")]
    Tls(#[source] BoxError),
    /// The WebSocket upgrade or a WebSocket read or write failed.
    #[error("websocket error")]
    WebSocket(#[source] BoxError),
    /// The server sent bytes that are not a valid packet or message.
    #[error("invalid data from the server")]
    Protocol(#[from] DecodeError),
    /// A request or notify cannot be put on the wire (for example a route over 255 bytes).
    #[error("cannot encode the message")]
    Encode(#[from] EncodeError),
    /// The argument could not be serialized.
    #[error("cannot serialize the argument")]
    Serialize(#[source] BoxError),
    /// The response body could not be deserialized into the expected type.
    #[error("cannot deserialize the response")]
    Deserialize(#[source] BoxError),
}

// ===== impl ClientError =====

impl ClientError {
    /// Returns the Pitaya code of the error, if it has one.
    ///
    /// Server errors carry the server's code; a client-side timeout reports
    /// [`CLIENT_TIMEOUT_CODE`] (`PIT-504`), as Pitaya's Go client does.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            Self::Timeout { .. } => Some(CLIENT_TIMEOUT_CODE),
            _ => None,
        }
    }

    /// Returns whether the server answered with a Pitaya error.
    pub fn is_server(&self) -> bool {
        matches!(self, Self::Server { .. })
    }

    /// Returns whether the request timed out on the client.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Returns whether the connection is gone (closed, dropped or kicked).
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Self::Disconnected | Self::Kicked)
    }

    /// Returns whether the server kicked the client.
    pub fn is_kicked(&self) -> bool {
        matches!(self, Self::Kicked)
    }
}

/// Returned when the handshake does not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server answered with a code other than 200 (Pitaya sends 400).
    #[error("server refused the handshake with code {0}")]
    Rejected(u16),
    /// The response is not valid (bad JSON, bad compression, bad dictionary).
    #[error("invalid handshake response")]
    InvalidResponse(#[source] BoxError),
    /// The server announced a heartbeat interval over
    /// [`MAX_HEARTBEAT`](crate::MAX_HEARTBEAT) (one day).
    #[error("server announced a heartbeat of {0:?}, over the one-day maximum")]
    InvalidHeartbeat(Duration),
    /// The server sent a packet other than a handshake response first.
    #[error("expected a handshake response, got a {0} packet")]
    UnexpectedPacket(&'static str),
    /// The server closed the connection before answering.
    #[error("connection closed during the handshake")]
    Closed,
    /// No response arrived within the handshake timeout.
    #[error("no handshake response within {0:?}")]
    Timeout(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_reports_the_go_client_code() {
        let err = ClientError::Timeout {
            route: "a.b".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(err.code(), Some("PIT-504"));
        assert!(err.is_timeout());
        assert!(!err.is_server());
    }

    #[test]
    fn server_error_keeps_code_and_message() {
        let err = ClientError::Server {
            code: "PIT-400".into(),
            message: "bad".into(),
            metadata: BTreeMap::new(),
        };
        assert_eq!(err.code(), Some("PIT-400"));
        assert_eq!(err.to_string(), "server error PIT-400: bad");
        assert!(ClientError::Kicked.is_disconnected());
        assert_eq!(ClientError::Disconnected.code(), None);
    }
}
