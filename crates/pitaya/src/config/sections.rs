//! The sections of [`Config`](super::Config), one struct per Pitaya key group.
//!
//! Field names are Rust's; each is renamed to Pitaya's lower-case key so files
//! written for Go Pitaya load unchanged. Defaults are Pitaya's (spec section
//! 12.1) unless a field says it is a pitaya-rs addition.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::serde_go;

/// Heartbeat settings (key `pitaya.heartbeat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// Interval between heartbeats; a client silent for twice this long is
    /// dropped. Key `pitaya.heartbeat.interval`, default 30s (Pitaya's).
    #[serde(with = "serde_go")]
    pub interval: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
        }
    }
}

/// Handler settings (key `pitaya.handler`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerConfig {
    /// Settings for messages sent to clients.
    pub messages: HandlerMessagesConfig,
    /// Route-compression dictionary, route to code, sent in the handshake.
    /// Key `pitaya.handler.dictionary`, default empty. A pitaya-rs addition:
    /// Go Pitaya builds it from code, not config.
    pub dictionary: BTreeMap<String, u16>,
}

/// Outgoing message settings (key `pitaya.handler.messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerMessagesConfig {
    /// Whether outgoing bodies and the handshake are zlib-compressed when
    /// that makes them smaller. Key `pitaya.handler.messages.compression`,
    /// default true (Pitaya's).
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub compression: bool,
}

impl Default for HandlerMessagesConfig {
    fn default() -> Self {
        Self { compression: true }
    }
}

/// Queue sizes (key `pitaya.buffer`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BufferConfig {
    /// Per-connection queues.
    pub agent: AgentBufferConfig,
    /// Queues in front of the handlers.
    pub handler: HandlerBufferConfig,
}

/// Per-connection queue settings (key `pitaya.buffer.agent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AgentBufferConfig {
    /// Capacity, in messages, of each connection's outgoing queue; must be
    /// above zero. Key `pitaya.buffer.agent.messages`, default 100 (Pitaya's).
    pub messages: usize,
    /// Deadline for one write to a client. Key `pitaya.buffer.agent.conntimeout`,
    /// default 10s (Pitaya's; its docs call it `writetimeout`).
    #[serde(rename = "conntimeout", with = "serde_go")]
    pub conn_timeout: Duration,
}

impl Default for AgentBufferConfig {
    fn default() -> Self {
        Self {
            messages: 100,
            conn_timeout: Duration::from_secs(10),
        }
    }
}

/// Handler queue settings (key `pitaya.buffer.handler`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerBufferConfig {
    /// Capacity, in messages, of the queue for local handlers; must be above
    /// zero. Key `pitaya.buffer.handler.localprocess`, default 20 (Pitaya's).
    #[serde(rename = "localprocess")]
    pub local_process: usize,
    /// Capacity, in messages, of the queue forwarded to other servers; must
    /// be above zero. Key `pitaya.buffer.handler.remoteprocess`, default 20
    /// (Pitaya's).
    #[serde(rename = "remoteprocess")]
    pub remote_process: usize,
}

impl Default for HandlerBufferConfig {
    fn default() -> Self {
        Self {
            local_process: 20,
            remote_process: 20,
        }
    }
}

/// Concurrency settings (key `pitaya.concurrency`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ConcurrencyConfig {
    /// Handler workers.
    pub handler: HandlerConcurrencyConfig,
}

/// Handler worker settings (key `pitaya.concurrency.handler`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerConcurrencyConfig {
    /// Number of tasks processing client messages, local and forwarded; must
    /// be above zero. Key `pitaya.concurrency.handler.dispatch`, default 25
    /// (Pitaya's).
    pub dispatch: usize,
}

impl Default for HandlerConcurrencyConfig {
    fn default() -> Self {
        Self { dispatch: 25 }
    }
}

/// Client connection settings (key `pitaya.conn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ConnConfig {
    /// Time a new connection has to complete the handshake before it is
    /// closed. Key `pitaya.conn.handshaketimeout`, default 15s. A pitaya-rs
    /// addition: Go Pitaya waits without limit.
    #[serde(rename = "handshaketimeout", with = "serde_go")]
    pub handshake_timeout: Duration,
    /// Largest packet body, in bytes, accepted from a client; between 1 and
    /// 16_777_215 (the 24-bit length limit of the packet header). Key
    /// `pitaya.conn.maxpacketsize`, default 16_777_215. A pitaya-rs addition.
    #[serde(rename = "maxpacketsize")]
    pub max_packet_size: usize,
    /// Per-connection rate limiting.
    #[serde(rename = "ratelimiting")]
    pub rate_limiting: RateLimitingConfig,
}

impl Default for ConnConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(15),
            max_packet_size: super::MAX_PACKET_SIZE,
            rate_limiting: RateLimitingConfig::default(),
        }
    }
}

/// Rate limiting of client packets (key `pitaya.conn.ratelimiting`, spec 1.8).
///
/// Read by [`RateLimitingAcceptor`](crate::acceptor::RateLimitingAcceptor). As in
/// Pitaya, it applies to acceptors the application wraps in it; `enabled` (ours)
/// has the app wrap every acceptor itself, so config alone turns it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RateLimitingConfig {
    /// Whether the app wraps each of its acceptors in a
    /// [`RateLimitingAcceptor`](crate::acceptor::RateLimitingAcceptor), those
    /// the application wrapped already excepted. Key
    /// `pitaya.conn.ratelimiting.enabled`, default false. A pitaya-rs addition:
    /// Go Pitaya applies the wrapper only in code.
    pub enabled: bool,
    /// Packets accepted per `interval`; must be above zero. Key
    /// `pitaya.conn.ratelimiting.limit`, default 20 (Pitaya's).
    pub limit: u32,
    /// Length of the rate window. Key `pitaya.conn.ratelimiting.interval`,
    /// default 1s (Pitaya's).
    #[serde(with = "serde_go")]
    pub interval: Duration,
    /// Whether to turn rate limiting off. Key
    /// `pitaya.conn.ratelimiting.forcedisable`, default false (Pitaya's).
    #[serde(rename = "forcedisable")]
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub force_disable: bool,
}

impl Default for RateLimitingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            limit: 20,
            interval: Duration::from_secs(1),
            force_disable: false,
        }
    }
}

/// Acceptor settings (key `pitaya.acceptor`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AcceptorConfig {
    /// Whether TCP acceptors expect a PROXY protocol header (v1 or v2) first on
    /// every connection; WebSocket acceptors ignore it, as Pitaya's do. Key
    /// `pitaya.acceptor.proxyprotocol`, default false (Pitaya's).
    #[serde(rename = "proxyprotocol")]
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub proxy_protocol: bool,
    /// Most client connections this server holds at once, over all its
    /// acceptors, counted from accept (so TLS and PROXY handshakes count) to
    /// the end of the close callbacks; 0 means no limit. A connection over the
    /// limit is closed as soon as it is accepted, with a warning. Key
    /// `pitaya.acceptor.maxconnections`, default 0. A pitaya-rs addition: Go
    /// Pitaya has no such limit.
    #[serde(rename = "maxconnections")]
    pub max_connections: usize,
}

/// Session settings (key `pitaya.session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Whether a second login with the same uid kicks the first. Key
    /// `pitaya.session.unique`, default true (Pitaya's).
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub unique: bool,
    /// Draining sessions on shutdown.
    pub drain: DrainConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            unique: true,
            drain: DrainConfig::default(),
        }
    }
}

/// Session draining on shutdown (key `pitaya.session.drain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DrainConfig {
    /// Whether shutdown waits for sessions to close. Key
    /// `pitaya.session.drain.enabled`, default false (Pitaya's).
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub enabled: bool,
    /// Longest time to wait for sessions. Key `pitaya.session.drain.timeout`,
    /// default 6h (Pitaya's).
    #[serde(with = "serde_go")]
    pub timeout: Duration,
    /// Interval between progress logs while draining. Key
    /// `pitaya.session.drain.period`, default 5s (Pitaya's).
    #[serde(with = "serde_go")]
    pub period: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            timeout: Duration::from_secs(6 * 3600),
            period: Duration::from_secs(5),
        }
    }
}

/// Group settings (key `pitaya.groups`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GroupsConfig {
    /// The in-memory group store.
    pub memory: MemoryGroupsConfig,
    /// The etcd group store.
    pub etcd: super::EtcdGroupsConfig,
}

/// In-memory group store settings (key `pitaya.groups.memory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MemoryGroupsConfig {
    /// Interval between sweeps for expired TTL groups; must be above zero.
    /// Key `pitaya.groups.memory.tickduration`, default 30s (Pitaya's).
    #[serde(rename = "tickduration", with = "serde_go")]
    pub tick_duration: Duration,
}

impl Default for MemoryGroupsConfig {
    fn default() -> Self {
        Self {
            tick_duration: Duration::from_secs(30),
        }
    }
}

/// Graceful shutdown settings (key `pitaya.shutdown`, a pitaya-rs addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ShutdownConfig {
    /// Longest time graceful shutdown waits for requests in flight. Key
    /// `pitaya.shutdown.timeout`, default 10s.
    #[serde(with = "serde_go")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
        }
    }
}
