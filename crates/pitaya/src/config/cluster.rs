//! Cluster settings (key `pitaya.cluster`): server info and RPC.
//!
//! Defaults are Go Pitaya's (spec section 12.2). Discovery settings live in
//! [`etcd`](super::etcd).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::serde_go;
use super::etcd::SdConfig;

/// Cluster settings (key `pitaya.cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This server's placement.
    pub info: ClusterInfoConfig,
    /// Remote procedure calls between servers.
    pub rpc: RpcConfig,
    /// Service discovery.
    pub sd: SdConfig,
}

/// Server placement (key `pitaya.cluster.info`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClusterInfoConfig {
    /// Region of this server; gRPC prefers internal addresses within one
    /// region. Key `pitaya.cluster.info.region`, default empty (Pitaya's).
    pub region: String,
}

/// RPC settings (key `pitaya.cluster.rpc`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RpcConfig {
    /// The transport that `pitaya::cluster::configured_transport` starts. Key
    /// `pitaya.cluster.rpc.transport`, `nats` or `grpc`, default `nats`. A
    /// pitaya-rs addition: a Go Pitaya app picks its transport in code.
    pub transport: TransportKind,
    /// The calling side.
    pub client: RpcClientConfig,
    /// The answering side.
    pub server: RpcServerConfig,
}

/// The RPC transports a config can name (key `pitaya.cluster.rpc.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TransportKind {
    /// NATS (spec 7), settings under `pitaya.cluster.rpc.*.nats`.
    #[default]
    Nats,
    /// gRPC (spec 8), settings under `pitaya.cluster.rpc.*.grpc`, with the
    /// binding storage of `pitaya.modules.bindingstorage.etcd`.
    Grpc,
}

/// RPC client settings (key `pitaya.cluster.rpc.client`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RpcClientConfig {
    /// gRPC transport.
    pub grpc: GrpcClientConfig,
    /// NATS transport.
    pub nats: NatsClientConfig,
}

/// RPC server settings (key `pitaya.cluster.rpc.server`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RpcServerConfig {
    /// gRPC transport.
    pub grpc: GrpcServerConfig,
    /// NATS transport.
    pub nats: NatsServerConfig,
}

/// gRPC client settings (key `pitaya.cluster.rpc.client.grpc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GrpcClientConfig {
    /// Time allowed to dial a server. Key
    /// `pitaya.cluster.rpc.client.grpc.dialtimeout`, default 5s (Pitaya's,
    /// which stores it without using it).
    #[serde(rename = "dialtimeout", with = "serde_go")]
    pub dial_timeout: Duration,
    /// Deadline of one call; must be above zero. Key
    /// `pitaya.cluster.rpc.client.grpc.requesttimeout`, default 5s (Pitaya's).
    #[serde(rename = "requesttimeout", with = "serde_go")]
    pub request_timeout: Duration,
    /// Whether to dial a server on first use instead of when discovered. Key
    /// `pitaya.cluster.rpc.client.grpc.lazyconnection`, default false (Pitaya's).
    /// Read for compatibility: pitaya-rs always dials on first use.
    #[serde(rename = "lazyconnection")]
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub lazy_connection: bool,
}

impl Default for GrpcClientConfig {
    fn default() -> Self {
        Self {
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            lazy_connection: false,
        }
    }
}

/// gRPC server settings (key `pitaya.cluster.rpc.server.grpc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GrpcServerConfig {
    /// TCP port, on all interfaces; 0 picks a free one. Key
    /// `pitaya.cluster.rpc.server.grpc.port`, default 3434 (Pitaya's). The
    /// port bound is published as metadata `grpcPort`.
    pub port: u16,
    /// Host other servers dial, published as metadata `grpcHost`. Key
    /// `pitaya.cluster.rpc.server.grpc.host`, default empty: this machine's
    /// host name. A pitaya-rs addition: a Go Pitaya app writes the metadata in
    /// code.
    pub host: String,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        Self {
            port: 3434,
            host: String::new(),
        }
    }
}

/// Connection settings shared by the NATS client and server sides.
///
/// Flattened into [`NatsClientConfig`] and [`NatsServerConfig`], so each key
/// exists under both `pitaya.cluster.rpc.client.nats` and
/// `pitaya.cluster.rpc.server.nats`; defaults are Pitaya's for both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsConnectionConfig {
    /// NATS URL. Key `connect`, default `nats://localhost:4222`.
    pub connect: String,
    /// Time allowed to connect. Key `connectiontimeout`, default 2s (Pitaya's
    /// code; its docs say 5s).
    #[serde(rename = "connectiontimeout", with = "serde_go")]
    pub connection_timeout: Duration,
    /// Reconnection attempts before giving up. Key `maxreconnectionretries`,
    /// default 15.
    #[serde(rename = "maxreconnectionretries")]
    pub max_reconnection_retries: u32,
    /// Whether to compress `ws://` NATS connections. Key
    /// `websocketcompression`, default true.
    #[serde(rename = "websocketcompression")]
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub websocket_compression: bool,
    /// Random extra wait before a reconnection. Key `reconnectjitter`,
    /// default 100ms.
    #[serde(rename = "reconnectjitter", with = "serde_go")]
    pub reconnect_jitter: Duration,
    /// Random extra wait before a reconnection over TLS. Key
    /// `reconnectjittertls`, default 1s.
    #[serde(rename = "reconnectjittertls", with = "serde_go")]
    pub reconnect_jitter_tls: Duration,
    /// Wait between reconnection attempts. Key `reconnectwait`, default 1s.
    #[serde(rename = "reconnectwait", with = "serde_go")]
    pub reconnect_wait: Duration,
    /// Interval between pings. Key `pinginterval`, default 2m.
    #[serde(rename = "pinginterval", with = "serde_go")]
    pub ping_interval: Duration,
    /// Unanswered pings before the connection counts as lost. Key
    /// `maxpingsoutstanding`, default 3.
    #[serde(rename = "maxpingsoutstanding")]
    pub max_pings_outstanding: u32,
}

impl Default for NatsConnectionConfig {
    fn default() -> Self {
        Self {
            connect: "nats://localhost:4222".into(),
            connection_timeout: Duration::from_secs(2),
            max_reconnection_retries: 15,
            websocket_compression: true,
            reconnect_jitter: Duration::from_millis(100),
            reconnect_jitter_tls: Duration::from_secs(1),
            reconnect_wait: Duration::from_secs(1),
            ping_interval: Duration::from_secs(120),
            max_pings_outstanding: 3,
        }
    }
}

/// NATS RPC client settings (key `pitaya.cluster.rpc.client.nats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsClientConfig {
    /// Connection settings.
    #[serde(flatten)]
    pub connection: NatsConnectionConfig,
    /// Timeout of one request unless the caller propagated its own; must be
    /// above zero. Key `pitaya.cluster.rpc.client.nats.requesttimeout`,
    /// default 5s (Pitaya's).
    #[serde(rename = "requesttimeout", with = "serde_go")]
    pub request_timeout: Duration,
}

impl Default for NatsClientConfig {
    fn default() -> Self {
        Self {
            connection: NatsConnectionConfig::default(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// NATS RPC server settings (key `pitaya.cluster.rpc.server.nats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsServerConfig {
    /// Connection settings.
    #[serde(flatten)]
    pub connection: NatsConnectionConfig,
    /// Queue sizes.
    pub buffer: NatsBufferConfig,
    /// Tasks handling incoming requests. Key
    /// `pitaya.cluster.rpc.server.nats.services`, default 30 (Pitaya's).
    pub services: usize,
}

impl Default for NatsServerConfig {
    fn default() -> Self {
        Self {
            connection: NatsConnectionConfig::default(),
            buffer: NatsBufferConfig::default(),
            services: 30,
        }
    }
}

/// NATS server queue sizes (key `pitaya.cluster.rpc.server.nats.buffer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsBufferConfig {
    /// Capacity of the request, kick and bindings queues; must be above zero.
    /// Key `pitaya.cluster.rpc.server.nats.buffer.messages`, default 75
    /// (Pitaya's).
    pub messages: usize,
    /// Capacity of the push queue; must be above zero. Key
    /// `pitaya.cluster.rpc.server.nats.buffer.push`, default 100 (Pitaya's).
    pub push: usize,
}

impl Default for NatsBufferConfig {
    fn default() -> Self {
        Self {
            messages: 75,
            push: 100,
        }
    }
}
