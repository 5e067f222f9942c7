//! JSON form of the error payload carried by error Responses (spec 4.7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::handshake::null_as_default;
use crate::DecodeError;

/// Error sent to a client in a Response with the error bit, as `protos.Error` in JSON.
///
/// Empty fields are left out of the JSON, as Go's `omitempty` does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// Pitaya error code such as `PIT-404`, or an application code.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub code: String,
    /// Human-readable message.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub msg: String,
    /// Extra string details, such as `route` or `timeout`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub metadata: BTreeMap<String, String>,
}

impl ErrorPayload {
    /// Returns a payload with the given code and message and no metadata.
    pub fn new(code: impl Into<String>, msg: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            msg: msg.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// Returns the payload as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and a string map: serialization cannot fail.
        serde_json::to_vec(self).expect("error payload is always serializable")
    }

    /// Returns the payload parsed from JSON.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidErrorPayload`] when the JSON does not parse or a
    /// field has the wrong type.
    pub fn from_json(body: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(body).map_err(DecodeError::InvalidErrorPayload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_go_and_omits_empty_metadata() {
        let p = ErrorPayload::new("PIT-404", "pitaya/handler: connector.foo.bar not found");
        assert_eq!(
            String::from_utf8(p.to_json()).unwrap(),
            r#"{"code":"PIT-404","msg":"pitaya/handler: connector.foo.bar not found"}"#
        );
        assert_eq!(ErrorPayload::default().to_json(), b"{}");
    }

    #[test]
    fn metadata_round_trips() {
        let mut p = ErrorPayload::new("PIT-408", "rpc client: request timeout");
        p.metadata.insert("timeout".into(), "5s".into());
        let json = p.to_json();
        assert!(String::from_utf8_lossy(&json).contains(r#""metadata":{"timeout":"5s"}"#));
        assert_eq!(ErrorPayload::from_json(&json).unwrap(), p);
    }

    #[test]
    fn missing_and_null_fields_become_empty() {
        let p = ErrorPayload::from_json(br#"{"msg":"x","metadata":null}"#).unwrap();
        assert_eq!(p, ErrorPayload::new("", "x"));
    }

    #[test]
    fn wrong_types_are_invalid() {
        let err = ErrorPayload::from_json(br#"{"code":404}"#);
        assert!(matches!(err, Err(DecodeError::InvalidErrorPayload(_))));
        let err = ErrorPayload::from_json(br#"{"metadata":{"a":1}}"#);
        assert!(matches!(err, Err(DecodeError::InvalidErrorPayload(_))));
    }
}
