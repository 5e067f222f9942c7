//! Cluster mode: servers that find each other and call each other.
//!
//! Every server describes itself with a [`ServerInfo`]; service discovery
//! ([`discovery`]) publishes it and keeps the list of the others. RPC between
//! servers ([`rpc`]; NATS or gRPC, spec sections 7 and 8) builds on this list.
//! gRPC also needs to know which frontend holds each user ([`bindings`]).

pub mod bindings;
pub mod discovery;
pub mod rpc;
mod setup;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(feature = "etcd")]
pub use discovery::EtcdDiscovery;
pub use discovery::{BoxError, DiscoveryError};
pub use discovery::{DiscoveryEvent, ServiceDiscovery, StaticDiscovery};
#[cfg(feature = "grpc")]
pub use rpc::GrpcRpc;
pub use rpc::{RpcClient, RpcError, RpcHandler, RpcServer};
#[cfg(feature = "etcd")]
pub use setup::EtcdSd;
#[cfg(feature = "nats")]
pub use setup::NatsRpc;
pub use setup::{configured_transport, DiscoveryBackend, RouteRequest, Router, RpcTransport};

// Public only so integration tests can read etcd directly without a
// dev-dependency, which would need `protoc` even without this feature.
#[cfg(feature = "etcd")]
#[doc(hidden)]
pub use etcd_client;

/// A server of the cluster as service discovery records it (spec 9.2).
///
/// Serialized as Go Pitaya writes it, keys in this order:
/// `{"id":…,"type":…,"metadata":{…},"frontend":…,"hostname":…}`. Metadata
/// keys are written sorted, as Go's JSON encoder does; a `null` metadata
/// (what Go writes for a nil map) reads as empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Unique id, a UUID v4 per process start in Go Pitaya.
    pub id: String,
    /// Server type, the first part of a route such as `room.room.join`.
    #[serde(rename = "type")]
    pub server_type: String,
    /// Free-form metadata; gRPC reads its address from it (spec 8).
    #[serde(
        default,
        serialize_with = "sorted_map",
        deserialize_with = "null_as_empty"
    )]
    pub metadata: HashMap<String, String>,
    /// Whether the server accepts client connections.
    #[serde(default)]
    pub frontend: bool,
    /// OS host name of the server.
    #[serde(default)]
    pub hostname: String,
}

impl ServerInfo {
    /// Returns the info of a new server of `server_type` with a random UUID
    /// v4 id, this machine's host name and no metadata.
    pub fn new(server_type: impl Into<String>, frontend: bool) -> ServerInfo {
        ServerInfo {
            id: uuid::Uuid::new_v4().to_string(),
            server_type: server_type.into(),
            metadata: HashMap::new(),
            frontend,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }

    /// Returns `self` with `id` in place of the random one.
    pub fn with_id(mut self, id: impl Into<String>) -> ServerInfo {
        self.id = id.into();
        self
    }

    /// Returns `self` with the metadata entry `key` set to `value`.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> ServerInfo {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Returns the record as the JSON that discovery stores (spec 9.2).
    pub fn to_json(&self) -> String {
        // Serializing strings, bools and a string map cannot fail.
        serde_json::to_string(self).expect("ServerInfo serializes to JSON")
    }

    /// Returns the record read from discovery's JSON.
    ///
    /// # Errors
    ///
    /// Returns the JSON error when `bytes` is not a server record.
    pub fn from_json(bytes: &[u8]) -> Result<ServerInfo, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn sorted_map<S: Serializer>(map: &HashMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    map.iter().collect::<BTreeMap<_, _>>().serialize(s)
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, String>, D::Error> {
    Ok(Option::<HashMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ServerInfo {
        ServerInfo::new("connector", true)
            .with_id("c-1")
            .with_metadata("region", "eu")
            .with_metadata("grpcHost", "10.0.0.1")
    }

    #[test]
    fn json_has_go_key_names_in_go_order_with_sorted_metadata() {
        let mut info = sample();
        info.hostname = "host-a".into();
        assert_eq!(
            info.to_json(),
            concat!(
                r#"{"id":"c-1","type":"connector","#,
                r#""metadata":{"grpcHost":"10.0.0.1","region":"eu"},"#,
                r#""frontend":true,"hostname":"host-a"}"#
            )
        );
    }

    #[test]
    fn json_round_trips() {
        let info = sample();
        assert_eq!(
            ServerInfo::from_json(info.to_json().as_bytes()).unwrap(),
            info
        );
    }

    #[test]
    fn null_or_missing_metadata_reads_as_empty() {
        let go_nil = br#"{"id":"r","type":"room","metadata":null,"frontend":false,"hostname":"h"}"#;
        let info = ServerInfo::from_json(go_nil).unwrap();
        assert!(info.metadata.is_empty());
        assert_eq!((info.id.as_str(), info.server_type.as_str()), ("r", "room"));
        assert!(!info.frontend);

        let info = ServerInfo::from_json(br#"{"id":"r","type":"room"}"#).unwrap();
        assert!(info.metadata.is_empty());
        assert_eq!(info.hostname, "");
    }

    #[test]
    fn record_without_id_or_type_is_an_error() {
        assert!(ServerInfo::from_json(br#"{"type":"room"}"#).is_err());
        assert!(ServerInfo::from_json(br#"{"id":"r"}"#).is_err());
        assert!(ServerInfo::from_json(b"not json").is_err());
    }

    #[test]
    fn new_servers_get_distinct_uuid_ids_and_the_host_name() {
        let a = ServerInfo::new("room", false);
        let b = ServerInfo::new("room", false);
        assert_ne!(a.id, b.id);
        assert!(uuid::Uuid::parse_str(&a.id).is_ok(), "{}", a.id);
        assert_eq!(
            a.hostname,
            gethostname::gethostname().to_string_lossy().into_owned()
        );
    }
}
