//! The JSON serializer (Pitaya serializer type 1).

use pitaya_protocol::ErrorPayload;

use super::{DeserializeFn, SerializeError, Serializer};

/// JSON bodies through `serde_json`: Pitaya's default.
///
/// An empty body reads as `null`, so handlers taking `()` or an `Option` accept requests
/// sent without a body, as Pitaya's argument-less handlers do.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSerializer;

fn invalid(e: impl std::fmt::Display) -> SerializeError {
    SerializeError::Invalid {
        format: "json",
        message: e.to_string(),
    }
}

impl Serializer for JsonSerializer {
    fn name(&self) -> &'static str {
        "json"
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, SerializeError> {
        serde_json::to_vec(value).map_err(invalid)
    }

    fn deserialize_with(
        &self,
        data: &[u8],
        visit: &mut DeserializeFn<'_>,
    ) -> Result<(), SerializeError> {
        let data: &[u8] = if data.is_empty() { b"null" } else { data };
        let mut de = serde_json::Deserializer::from_slice(data);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de)).map_err(invalid)?;
        de.end().map_err(invalid)
    }

    fn serialize_error(&self, payload: &ErrorPayload) -> Vec<u8> {
        payload.to_json()
    }

    fn deserialize_error(&self, data: &[u8]) -> Result<ErrorPayload, SerializeError> {
        ErrorPayload::from_json(data).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::serialize::{decode, encode};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Join {
        name: String,
    }

    #[test]
    fn round_trips_a_struct() {
        let bytes = encode(&JsonSerializer, &Join { name: "ana".into() }).unwrap();
        assert_eq!(bytes, br#"{"name":"ana"}"#);
        let back: Join = decode(&JsonSerializer, &bytes).unwrap();
        assert_eq!(back.name, "ana");
    }

    #[test]
    fn empty_body_reads_as_null() {
        let unit: () = decode(&JsonSerializer, b"").unwrap();
        assert_eq!(unit, ());
        let none: Option<Join> = decode(&JsonSerializer, b"").unwrap();
        assert_eq!(none, None);
        assert!(decode::<Join>(&JsonSerializer, b"").is_err());
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let err = decode::<Join>(&JsonSerializer, br#"{"name":"a"} x"#).unwrap_err();
        assert!(matches!(
            err,
            SerializeError::Invalid { format: "json", .. }
        ));
    }

    #[test]
    fn error_payload_omits_empty_metadata() {
        let body = JsonSerializer.serialize_error(&ErrorPayload {
            code: "PIT-404".into(),
            msg: "nope".into(),
            metadata: Default::default(),
        });
        assert_eq!(body, br#"{"code":"PIT-404","msg":"nope"}"#);
    }
}
