//! Body formats: the session serializer announced in the handshake, and error payloads
//! decoded with it (spec 4.7).

use std::fmt;

use bytes::Bytes;
use pitaya_protocol::ErrorPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ClientError;

/// Serializer of the session, as the server names it in the handshake (`sys.serializer`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Serializer {
    /// JSON, Pitaya's serializer type 1 (its default).
    Json,
    /// Protobuf, Pitaya's serializer type 2.
    Protobuf,
    /// A name this client does not know; bodies can still be sent and read raw.
    Other(String),
}

impl Serializer {
    /// Returns the serializer for the handshake name: `json`, `protobuf`, or another.
    pub fn from_name(name: &str) -> Self {
        match name {
            "json" => Self::Json,
            "protobuf" => Self::Protobuf,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Returns the name as the handshake carries it.
    pub fn name(&self) -> &str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for Serializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Returns the server error in an error Response body, decoded with the session serializer.
pub(crate) fn server_error(serializer: &Serializer, data: &[u8]) -> ClientError {
    let payload = match serializer {
        #[cfg(feature = "protobuf")]
        Serializer::Protobuf => proto_error(data),
        // Unknown serializers get JSON: the only other format Pitaya has.
        _ => ErrorPayload::from_json(data).map_err(|e| ClientError::Deserialize(Box::new(e))),
    };
    match payload {
        Ok(p) => ClientError::Server {
            code: p.code,
            message: p.msg,
            metadata: p.metadata,
        },
        Err(e) => e,
    }
}

/// `protos.Error` (spec 6.2), the error payload of protobuf sessions.
#[cfg(feature = "protobuf")]
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoError {
    #[prost(string, tag = "1")]
    code: String,
    #[prost(string, tag = "2")]
    msg: String,
    #[prost(btree_map = "string, string", tag = "3")]
    metadata: std::collections::BTreeMap<String, String>,
}

#[cfg(feature = "protobuf")]
fn proto_error(data: &[u8]) -> Result<ErrorPayload, ClientError> {
    let e: ProtoError =
        prost::Message::decode(data).map_err(|e| ClientError::Deserialize(Box::new(e)))?;
    Ok(ErrorPayload {
        code: e.code,
        msg: e.msg,
        metadata: e.metadata,
    })
}

/// Returns `value` as JSON bytes.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, ClientError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ClientError::Serialize(Box::new(e)))
}

/// Returns the JSON `body` deserialized as `T`.
pub(crate) fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Deserialize(Box::new(e)))
}

/// Returns the protobuf `body` decoded as `T`.
#[cfg(feature = "protobuf")]
pub(crate) fn from_proto<T: prost::Message + Default>(body: Bytes) -> Result<T, ClientError> {
    T::decode(body).map_err(|e| ClientError::Deserialize(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_payload_becomes_server_error() {
        let body = br#"{"code":"PIT-404","msg":"not found","metadata":{"route":"a.b"}}"#;
        match server_error(&Serializer::Json, body) {
            ClientError::Server {
                code,
                message,
                metadata,
            } => {
                assert_eq!((code.as_str(), message.as_str()), ("PIT-404", "not found"));
                assert_eq!(metadata.get("route").map(String::as_str), Some("a.b"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn protobuf_error_payload_becomes_server_error() {
        let msg = ProtoError {
            code: "PIT-400".into(),
            msg: "bad".into(),
            metadata: [("k".to_owned(), "v".to_owned())].into(),
        };
        let body = prost::Message::encode_to_vec(&msg);
        let err = server_error(&Serializer::Protobuf, &body);
        assert_eq!(err.code(), Some("PIT-400"));
    }

    #[test]
    fn undecodable_error_payload_is_a_deserialize_error() {
        let err = server_error(&Serializer::Json, b"\x00\x01");
        assert!(matches!(err, ClientError::Deserialize(_)), "{err:?}");
    }

    #[test]
    fn serializer_names_round_trip() {
        for name in ["json", "protobuf", "msgpack"] {
            assert_eq!(Serializer::from_name(name).name(), name);
        }
    }
}
