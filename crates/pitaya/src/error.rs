//! The Pitaya error: what a client or a calling server sees when a request fails.

use std::collections::BTreeMap;
use std::fmt;

use pitaya_protocol::ErrorPayload;

/// Pitaya error codes used by the framework (spec 4.8). Applications may use any string.
pub mod codes {
    /// A plain error that carried no Pitaya code.
    pub const UNKNOWN: &str = "PIT-000";
    /// The request could not be understood: bad route, bad body, wrong message kind.
    pub const BAD_REQUEST: &str = "PIT-400";
    /// No handler for the route.
    pub const NOT_FOUND: &str = "PIT-404";
    /// A remote call timed out.
    pub const REQUEST_TIMEOUT: &str = "PIT-408";
    /// The server failed: a handler panicked, or no server could take the request.
    pub const INTERNAL: &str = "PIT-500";
}

/// An error with a Pitaya code, a message and string metadata.
///
/// This is data for the peer: it is sent back to the client with the error bit set,
/// serialized with the session's serializer as `{"code", "msg", "metadata"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: String,
    message: String,
    metadata: BTreeMap<String, String>,
}

impl Error {
    /// Returns an error with an application-defined code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            code: code.into(),
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// Returns a `PIT-400` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(codes::BAD_REQUEST, message)
    }

    /// Returns a `PIT-404` error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(codes::NOT_FOUND, message)
    }

    /// Returns a `PIT-500` error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(codes::INTERNAL, message)
    }

    /// Returns the error with one metadata entry added.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Returns the Pitaya code, such as `PIT-404`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Returns the human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Returns the metadata map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Returns the wire payload of this error.
    pub fn to_payload(&self) -> ErrorPayload {
        ErrorPayload {
            code: self.code.clone(),
            msg: self.message.clone(),
            metadata: self.metadata.clone(),
        }
    }

    /// Returns the error a payload received from a peer describes.
    ///
    /// An empty code becomes `PIT-000`, as Pitaya does.
    pub fn from_payload(payload: ErrorPayload) -> Self {
        let code = if payload.code.is_empty() {
            codes::UNKNOWN.to_owned()
        } else {
            payload.code
        };
        Error {
            code,
            message: payload.msg,
            metadata: payload.metadata,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<crate::session::SessionError> for Error {
    fn from(e: crate::session::SessionError) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<crate::groups::GroupError> for Error {
    fn from(e: crate::groups::GroupError) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<crate::serialize::SerializeError> for Error {
    fn from(e: crate::serialize::SerializeError) -> Self {
        Error::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_code_from_peer_becomes_unknown() {
        let e = Error::from_payload(ErrorPayload {
            code: String::new(),
            msg: "boom".into(),
            metadata: BTreeMap::new(),
        });
        assert_eq!(e.code(), codes::UNKNOWN);
        assert_eq!(e.message(), "boom");
    }

    #[test]
    fn payload_keeps_code_message_and_metadata() {
        let e = Error::new("GAME-1", "full").with_metadata("room", "7");
        let p = e.to_payload();
        assert_eq!(p.code, "GAME-1");
        assert_eq!(p.msg, "full");
        assert_eq!(p.metadata.get("room").map(String::as_str), Some("7"));
        assert_eq!(Error::from_payload(p), e);
    }
}
