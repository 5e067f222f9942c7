//! The Protobuf serializer (Pitaya serializer type 2), on `prost`.

use std::collections::HashMap;

use bytes::Bytes;
use pitaya_protocol::ErrorPayload;

use super::{DeserializeFn, FromBody, IntoBody, SerializeError, Serializer};

/// Protobuf bodies: handler types are `prost` messages wrapped in [`Proto`].
///
/// Plain serde values have no protobuf encoding, so this serializer refuses them with a
/// message that names the fix.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtobufSerializer;

/// A `prost` message used as a handler argument, reply or push body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proto<T>(pub T);

/// `protos.Error` (spec 6.2): the error payload in protobuf form.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoError {
    #[prost(string, tag = "1")]
    code: String,
    #[prost(string, tag = "2")]
    msg: String,
    #[prost(map = "string, string", tag = "3")]
    metadata: HashMap<String, String>,
}

impl Serializer for ProtobufSerializer {
    fn name(&self) -> &'static str {
        "protobuf"
    }

    fn serialize(&self, _: &dyn erased_serde::Serialize) -> Result<Vec<u8>, SerializeError> {
        Err(SerializeError::Unsupported(
            "the protobuf serializer encodes prost messages only: wrap the value in Proto".into(),
        ))
    }

    fn deserialize_with(&self, _: &[u8], _: &mut DeserializeFn<'_>) -> Result<(), SerializeError> {
        Err(SerializeError::Unsupported(
            "the protobuf serializer decodes prost messages only: take Proto<T> as argument".into(),
        ))
    }

    fn serialize_error(&self, payload: &ErrorPayload) -> Vec<u8> {
        let msg = ProtoError {
            code: payload.code.clone(),
            msg: payload.msg.clone(),
            metadata: payload.metadata.clone().into_iter().collect(),
        };
        prost::Message::encode_to_vec(&msg)
    }

    fn deserialize_error(&self, data: &[u8]) -> Result<ErrorPayload, SerializeError> {
        let msg: ProtoError = prost::Message::decode(data).map_err(invalid)?;
        Ok(ErrorPayload {
            code: msg.code,
            msg: msg.msg,
            metadata: msg.metadata.into_iter().collect(),
        })
    }
}

fn invalid(e: prost::DecodeError) -> SerializeError {
    SerializeError::Invalid {
        format: "protobuf",
        message: e.to_string(),
    }
}

impl<T: prost::Message + Default + 'static> FromBody for Proto<T> {
    fn from_body(_: &dyn Serializer, body: Bytes) -> Result<Self, SerializeError> {
        T::decode(body).map(Proto).map_err(invalid)
    }
}

impl<T: prost::Message> IntoBody for Proto<T> {
    fn into_body(self, _: &dyn Serializer) -> Result<Bytes, SerializeError> {
        Ok(Bytes::from(self.0.encode_to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serialize::{decode, encode, JsonSerializer};

    #[derive(Clone, PartialEq, prost::Message)]
    struct Join {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn proto_values_round_trip_as_protobuf_binary() {
        let body = Proto(Join { name: "ana".into() })
            .into_body(&JsonSerializer)
            .unwrap();
        assert_eq!(&body[..], &[0x0a, 3, b'a', b'n', b'a']);
        let back = Proto::<Join>::from_body(&ProtobufSerializer, body).unwrap();
        assert_eq!(back.0.name, "ana");
    }

    #[test]
    fn serde_values_are_refused_with_a_hint() {
        let err = encode(&ProtobufSerializer, &1u32).unwrap_err();
        assert!(err.to_string().contains("Proto"));
        assert!(decode::<u32>(&ProtobufSerializer, b"").is_err());
    }

    #[test]
    fn error_payload_round_trips() {
        let mut p = ErrorPayload {
            code: "PIT-500".into(),
            msg: "boom".into(),
            metadata: Default::default(),
        };
        p.metadata.insert("k".into(), "v".into());
        let bytes = ProtobufSerializer.serialize_error(&p);
        assert_eq!(ProtobufSerializer.deserialize_error(&bytes).unwrap(), p);
    }

    #[test]
    fn garbage_is_an_invalid_body() {
        let err = Proto::<Join>::from_body(&ProtobufSerializer, Bytes::from_static(&[0xff]));
        assert!(matches!(
            err,
            Err(SerializeError::Invalid {
                format: "protobuf",
                ..
            })
        ));
    }
}
