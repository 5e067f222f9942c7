//! Handshake payloads (spec section 2).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{compression, DecodeError, MAX_BODY_LEN};

/// Client details sent under `sys` in the handshake request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HandshakeSys {
    /// Client platform, such as `android`, `ios` or libpitaya's default `desktop`.
    #[serde(deserialize_with = "null_as_default")]
    pub platform: String,
    /// Version of the client library.
    #[serde(deserialize_with = "null_as_default")]
    pub lib_version: String,
    /// Build number of the client application (libpitaya default `1`).
    #[serde(deserialize_with = "null_as_default")]
    pub client_build_number: String,
    /// Version of the client application (libpitaya default `0.1`).
    #[serde(deserialize_with = "null_as_default")]
    pub client_version: String,
}

/// Handshake request sent by the client as JSON (spec 2.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    /// Client details.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sys: HandshakeSys,
    /// Arbitrary application data, kept on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<serde_json::Map<String, serde_json::Value>>,
}

impl HandshakeRequest {
    /// Returns the request parsed from the client's JSON body.
    ///
    /// Missing keys become empty strings and unknown keys are ignored. A JSON
    /// `null` counts as missing, matching Go's `encoding/json`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidHandshake`] when the body is not JSON or a value
    /// has the wrong type (for example a number for `clientBuildNumber`).
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        // serde reads a struct from a JSON array as readily as from an object, so `[]`
        // would pass as an empty handshake; the request and its `sys` must be objects.
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(DecodeError::InvalidHandshake)?;
        let sys_ok = match value.get("sys") {
            None | Some(serde_json::Value::Null | serde_json::Value::Object(_)) => true,
            Some(_) => false,
        };
        if !value.is_object() || !sys_ok {
            let e = <serde_json::Error as serde::de::Error>::custom("expected a JSON object");
            return Err(DecodeError::InvalidHandshake(e));
        }
        serde_json::from_value(value).map_err(DecodeError::InvalidHandshake)
    }

    /// Returns the request as JSON, as a client sends it.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings and JSON values with string keys: serialization cannot fail.
        serde_json::to_vec(self).expect("handshake request is always serializable")
    }
}

/// Server settings sent under `sys` in the handshake response.
#[derive(Clone, Debug, PartialEq)]
pub struct HandshakeResponseSys {
    /// Route-compression dictionary, route to code.
    pub dict: BTreeMap<String, u16>,
    /// Heartbeat interval; sent in seconds, zero disables client heartbeats.
    pub heartbeat: Duration,
    /// Serializer name, `json` or `protobuf`.
    pub serializer: String,
}

/// Handshake response sent by the server (spec 2.2).
#[derive(Clone, Debug, PartialEq)]
pub struct HandshakeResponse {
    /// 200 when accepted, 400 when rejected.
    pub code: u16,
    /// Server settings; sent with both codes.
    pub sys: HandshakeResponseSys,
}

/// JSON shape of the response; field order is Go's alphabetical order.
#[derive(Serialize, Deserialize)]
struct Wire<S> {
    code: u16,
    sys: S,
}

#[derive(Serialize)]
struct WireSys<'a> {
    dict: &'a BTreeMap<String, u16>,
    heartbeat: serde_json::Number,
    serializer: &'a str,
}

#[derive(Deserialize)]
struct WireSysOwned {
    #[serde(default, deserialize_with = "null_as_default")]
    dict: BTreeMap<String, u16>,
    #[serde(default, deserialize_with = "null_as_default")]
    heartbeat: f64,
    #[serde(default, deserialize_with = "null_as_default")]
    serializer: String,
}

// ===== impl HandshakeResponse =====

impl HandshakeResponse {
    /// Returns an accepting response (code 200).
    pub fn accepted(sys: HandshakeResponseSys) -> Self {
        Self { code: 200, sys }
    }

    /// Returns a rejecting response (code 400).
    pub fn rejected(sys: HandshakeResponseSys) -> Self {
        Self { code: 400, sys }
    }

    /// Returns the response as JSON.
    ///
    /// The heartbeat is in seconds: a whole number prints as an integer
    /// (`30`, since libpitaya and Go clients read an integer) and a fraction as
    /// a float (`1.5`).
    pub fn to_json(&self) -> Vec<u8> {
        let hb = self.sys.heartbeat;
        let heartbeat = if hb.subsec_nanos() == 0 {
            hb.as_secs().into()
        } else {
            // A Duration's seconds are always finite, so from_f64 always succeeds.
            serde_json::Number::from_f64(hb.as_secs_f64()).expect("finite heartbeat")
        };
        let sys = WireSys {
            dict: &self.sys.dict,
            heartbeat,
            serializer: &self.sys.serializer,
        };
        // Plain structs with string keys: serialization cannot fail.
        serde_json::to_vec(&Wire {
            code: self.code,
            sys,
        })
        .expect("response is serializable")
    }

    /// Returns the packet body: the JSON, zlib-compressed when `compress` and strictly shorter.
    pub fn encode(&self, compress: bool) -> Vec<u8> {
        let json = self.to_json();
        if compress {
            let z = compression::deflate(&json);
            if z.len() < json.len() {
                return z;
            }
        }
        json
    }

    /// Returns the response decoded from a packet body, as a client does.
    ///
    /// A body starting with a zlib or gzip magic is inflated first (to at most
    /// [`MAX_BODY_LEN`] bytes). A heartbeat of zero or less becomes zero.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Inflate`] or [`DecodeError::InflatedTooLarge`] for a bad
    /// compressed body, [`DecodeError::InvalidHandshakeResponse`] when the JSON
    /// does not parse or lacks `code` or `sys`.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let inflated;
        let json = if compression::is_compressed(body) {
            inflated = compression::inflate(body, MAX_BODY_LEN)?;
            &inflated[..]
        } else {
            body
        };
        let wire: Wire<WireSysOwned> =
            serde_json::from_slice(json).map_err(DecodeError::InvalidHandshakeResponse)?;
        let secs = wire.sys.heartbeat.max(0.0);
        let heartbeat = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
        let sys = HandshakeResponseSys {
            dict: wire.sys.dict,
            heartbeat,
            serializer: wire.sys.serializer,
        };
        Ok(Self {
            code: wire.code,
            sys,
        })
    }
}

/// Deserializes `null` as the type's default, as Go's `encoding/json` leaves the field alone.
pub(crate) fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
