//! Serializers: how message bodies become values and back.
//!
//! The app uses one [`Serializer`] for every client, chosen by config
//! (`pitaya.serializertype`: 1 = JSON, 2 = Protobuf) or set in code, and announced in the
//! handshake. Handlers name their argument and reply types; the glue between those types
//! and the serializer is [`FromBody`] and [`IntoBody`]:
//!
//! | type | encoded as |
//! |---|---|
//! | any `serde` type | by the app's serializer (JSON, or a custom serde format) |
//! | [`Proto<T>`] for a `prost` message | protobuf binary, whatever the app's serializer |
//! | [`Raw`] | the body bytes, untouched |

use std::fmt;

use bytes::Bytes;
use pitaya_protocol::ErrorPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod json;
#[cfg(feature = "protobuf")]
mod protobuf;

pub use json::JsonSerializer;
#[cfg(feature = "protobuf")]
pub use protobuf::{Proto, ProtobufSerializer};

/// Returns the deserializer callback type used by [`Serializer::deserialize_with`].
pub type DeserializeFn<'a> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error> + 'a;

/// A message-body format.
///
/// Object safe so the app can pick one at run time; serde values travel through
/// `erased_serde`.
pub trait Serializer: Send + Sync + fmt::Debug + 'static {
    /// Returns the name sent in the handshake (`json`, `protobuf`).
    fn name(&self) -> &'static str;

    /// Returns the encoding of a serde value.
    ///
    /// # Errors
    ///
    /// When the value cannot be represented in this format.
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, SerializeError>;

    /// Runs `visit` with a deserializer reading `data`.
    ///
    /// # Errors
    ///
    /// When `data` is not valid in this format or does not fit the visited type.
    fn deserialize_with(
        &self,
        data: &[u8],
        visit: &mut DeserializeFn<'_>,
    ) -> Result<(), SerializeError>;

    /// Returns the body of an error response (spec 4.7).
    fn serialize_error(&self, payload: &ErrorPayload) -> Vec<u8>;

    /// Returns the error an error-response body describes.
    ///
    /// # Errors
    ///
    /// When the body is not an error payload in this format.
    fn deserialize_error(&self, data: &[u8]) -> Result<ErrorPayload, SerializeError>;
}

/// Why a body could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeError {
    /// The bytes are not valid for the format or the expected type.
    #[error("invalid {format} body: {message}")]
    Invalid {
        /// The serializer's name.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The serializer cannot carry this kind of value.
    #[error("{0}")]
    Unsupported(String),
}

/// Returns the serializer Pitaya's `serializertype` number names, if compiled in.
pub fn by_type(serializer_type: u16) -> Option<std::sync::Arc<dyn Serializer>> {
    match serializer_type {
        1 => Some(std::sync::Arc::new(JsonSerializer)),
        #[cfg(feature = "protobuf")]
        2 => Some(std::sync::Arc::new(ProtobufSerializer)),
        _ => None,
    }
}

/// Returns a value decoded from `data` with `ser`.
///
/// # Errors
///
/// When the bytes do not decode into `T`.
pub fn decode<T: DeserializeOwned>(ser: &dyn Serializer, data: &[u8]) -> Result<T, SerializeError> {
    let mut out = None;
    ser.deserialize_with(data, &mut |d| {
        out = Some(erased_serde::deserialize::<T>(d)?);
        Ok(())
    })?;
    out.ok_or_else(|| SerializeError::Unsupported("deserializer produced no value".into()))
}

/// Returns `value` encoded with `ser`.
///
/// # Errors
///
/// When the serializer cannot carry the value.
pub fn encode<T: Serialize + ?Sized>(
    ser: &dyn Serializer,
    value: &T,
) -> Result<Vec<u8>, SerializeError> {
    ser.serialize(&value as &dyn erased_serde::Serialize)
}

/// A handler argument type: built from a request body.
pub trait FromBody: Sized + Send + 'static {
    /// Returns the value decoded from a message body.
    ///
    /// # Errors
    ///
    /// When the body does not decode; the client gets `PIT-400`.
    fn from_body(ser: &dyn Serializer, body: Bytes) -> Result<Self, SerializeError>;
}

/// A reply or push type: turned into a message body.
pub trait IntoBody {
    /// Returns the message body for this value.
    ///
    /// # Errors
    ///
    /// When the value cannot be encoded.
    fn into_body(self, ser: &dyn Serializer) -> Result<Bytes, SerializeError>;
}

impl<T: DeserializeOwned + Send + 'static> FromBody for T {
    fn from_body(ser: &dyn Serializer, body: Bytes) -> Result<Self, SerializeError> {
        decode(ser, &body)
    }
}

impl<T: Serialize> IntoBody for T {
    fn into_body(self, ser: &dyn Serializer) -> Result<Bytes, SerializeError> {
        encode(ser, &self).map(Bytes::from)
    }
}

/// A body passed through as bytes, not serialized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Raw(pub Bytes);

impl FromBody for Raw {
    fn from_body(_: &dyn Serializer, body: Bytes) -> Result<Self, SerializeError> {
        Ok(Raw(body))
    }
}

impl IntoBody for Raw {
    fn into_body(self, _: &dyn Serializer) -> Result<Bytes, SerializeError> {
        Ok(self.0)
    }
}
