//! Service discovery settings (key `pitaya.cluster.sd`).
//!
//! Defaults are Go Pitaya's (spec section 12.3) unless a field says it is a
//! pitaya-rs addition. Lists such as the endpoints are read from a file as
//! arrays or, as Pitaya's environment variables write them, as one
//! comma-separated string.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::serde_go;

/// Service discovery settings (key `pitaya.cluster.sd`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SdConfig {
    /// Discovery in etcd.
    pub etcd: EtcdSdConfig,
}

/// Service discovery in etcd (key `pitaya.cluster.sd.etcd`, spec 12.3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdSdConfig {
    /// etcd client endpoints, `host:port`. Key `pitaya.cluster.sd.etcd.endpoints`,
    /// default `[localhost:2379]` (Pitaya's).
    #[serde(with = "string_list")]
    pub endpoints: Vec<String>,
    /// User name; used only with a non-empty `pass`. Key
    /// `pitaya.cluster.sd.etcd.user`, default empty.
    pub user: String,
    /// Password; used only with a non-empty `user`. Key
    /// `pitaya.cluster.sd.etcd.pass`, default empty. Never logged.
    pub pass: String,
    /// Time allowed for one connection attempt. Key
    /// `pitaya.cluster.sd.etcd.dialtimeout`, default 5s (Pitaya's).
    #[serde(rename = "dialtimeout", with = "serde_go")]
    pub dial_timeout: Duration,
    /// Key prefix; servers see each other only under equal prefixes. Key
    /// `pitaya.cluster.sd.etcd.prefix`, default `pitaya/` (Pitaya's).
    pub prefix: String,
    /// Lease settings.
    pub heartbeat: EtcdHeartbeatConfig,
    /// Periodic full synchronisation.
    #[serde(rename = "syncservers")]
    pub sync_servers: EtcdSyncConfig,
    /// Lease revocation on shutdown.
    pub revoke: EtcdRevokeConfig,
    /// Lease re-grants after etcd was lost.
    #[serde(rename = "grantlease")]
    pub grant_lease: EtcdGrantLeaseConfig,
    /// Shutdown settings.
    pub shutdown: EtcdShutdownConfig,
    /// Server types to ignore, except this server's own. Key
    /// `pitaya.cluster.sd.etcd.servertypesblacklist`, default empty.
    #[serde(rename = "servertypesblacklist", with = "string_list")]
    pub server_types_blacklist: Vec<String>,
    /// How long start-up keeps retrying an unreachable etcd before failing.
    /// Key `pitaya.cluster.sd.etcd.startuptimeout`, default 30s. A pitaya-rs
    /// addition: Go Pitaya gives up after one dial of `dialtimeout`.
    #[serde(rename = "startuptimeout", with = "serde_go")]
    pub startup_timeout: Duration,
}

impl Default for EtcdSdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["localhost:2379".into()],
            user: String::new(),
            pass: String::new(),
            dial_timeout: Duration::from_secs(5),
            prefix: "pitaya/".into(),
            heartbeat: EtcdHeartbeatConfig::default(),
            sync_servers: EtcdSyncConfig::default(),
            revoke: EtcdRevokeConfig::default(),
            grant_lease: EtcdGrantLeaseConfig::default(),
            shutdown: EtcdShutdownConfig::default(),
            server_types_blacklist: Vec::new(),
            startup_timeout: Duration::from_secs(30),
        }
    }
}

// We write Debug by hand so the password never reaches a log.
impl fmt::Debug for EtcdSdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pass = if self.pass.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("EtcdSdConfig")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("pass", &pass)
            .field("dial_timeout", &self.dial_timeout)
            .field("prefix", &self.prefix)
            .field("heartbeat", &self.heartbeat)
            .field("sync_servers", &self.sync_servers)
            .field("revoke", &self.revoke)
            .field("grant_lease", &self.grant_lease)
            .field("shutdown", &self.shutdown)
            .field("server_types_blacklist", &self.server_types_blacklist)
            .field("startup_timeout", &self.startup_timeout)
            .finish()
    }
}

/// Lease settings (key `pitaya.cluster.sd.etcd.heartbeat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdHeartbeatConfig {
    /// Lease time to live, in whole seconds, at least 1s; a server that
    /// stops renewing disappears this long after. Key
    /// `pitaya.cluster.sd.etcd.heartbeat.ttl`, default 60s (Pitaya's).
    #[serde(with = "serde_go")]
    pub ttl: Duration,
    /// Whether to log every lease renewal. Key
    /// `pitaya.cluster.sd.etcd.heartbeat.log`, default false (Pitaya's).
    #[serde(deserialize_with = "super::go_bool::deserialize")]
    pub log: bool,
}

impl Default for EtcdHeartbeatConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            log: false,
        }
    }
}

/// Full synchronisation (key `pitaya.cluster.sd.etcd.syncservers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdSyncConfig {
    /// Interval between full reads of the server list; must be above zero.
    /// Key `pitaya.cluster.sd.etcd.syncservers.interval`, default 120s
    /// (Pitaya's).
    #[serde(with = "serde_go")]
    pub interval: Duration,
    /// Parallel fetches during a sync. Key
    /// `pitaya.cluster.sd.etcd.syncservers.parallelism`, default 10
    /// (Pitaya's). Read for compatibility: pitaya-rs reads keys and values in
    /// one range request, so it has nothing to parallelise.
    pub parallelism: usize,
}

impl Default for EtcdSyncConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(120),
            parallelism: 10,
        }
    }
}

/// Lease revocation (key `pitaya.cluster.sd.etcd.revoke`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdRevokeConfig {
    /// Time allowed to revoke the lease on shutdown. Key
    /// `pitaya.cluster.sd.etcd.revoke.timeout`, default 5s (Pitaya's).
    #[serde(with = "serde_go")]
    pub timeout: Duration,
}

impl Default for EtcdRevokeConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
        }
    }
}

/// Lease re-grants (key `pitaya.cluster.sd.etcd.grantlease`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdGrantLeaseConfig {
    /// Time allowed for one attempt to re-register. Key
    /// `pitaya.cluster.sd.etcd.grantlease.timeout`, default 60s (Pitaya's).
    #[serde(with = "serde_go")]
    pub timeout: Duration,
    /// Failed attempts after which an error is logged. Key
    /// `pitaya.cluster.sd.etcd.grantlease.maxretries`, default 15 (Pitaya's).
    /// Go Pitaya shuts down then; a library never ends the process, so
    /// pitaya-rs logs an error and keeps serving the cached list and retrying.
    #[serde(rename = "maxretries")]
    pub max_retries: u32,
    /// Wait between attempts. Key
    /// `pitaya.cluster.sd.etcd.grantlease.retryinterval`, default 5s (Pitaya's).
    #[serde(rename = "retryinterval", with = "serde_go")]
    pub retry_interval: Duration,
}

impl Default for EtcdGrantLeaseConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_retries: 15,
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// Discovery shutdown (key `pitaya.cluster.sd.etcd.shutdown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdShutdownConfig {
    /// Pause after revoking the lease, so other servers see the removal
    /// before this one stops answering. Key
    /// `pitaya.cluster.sd.etcd.shutdown.delay`, default 300ms (Pitaya's
    /// code; its docs say 10ms).
    #[serde(with = "serde_go")]
    pub delay: Duration,
}

impl Default for EtcdShutdownConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(300),
        }
    }
}

/// Group store in etcd (key `pitaya.groups.etcd`, spec 11 and 12.4).
///
/// Read by `EtcdGroupStore` (feature `etcd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdGroupsConfig {
    /// etcd client endpoints, `host:port`. Key `pitaya.groups.etcd.endpoints`,
    /// default `[localhost:2379]` (Pitaya's).
    #[serde(with = "string_list")]
    pub endpoints: Vec<String>,
    /// Key prefix; servers share groups only under equal prefixes. Key
    /// `pitaya.groups.etcd.prefix`, default `pitaya/` (Pitaya's).
    pub prefix: String,
    /// Time allowed to connect. Key `pitaya.groups.etcd.dialtimeout`, default
    /// 5s (Pitaya's).
    #[serde(rename = "dialtimeout", with = "serde_go")]
    pub dial_timeout: Duration,
    /// Time allowed for each group operation. Key
    /// `pitaya.groups.etcd.transactiontimeout`, default 5s (Pitaya's).
    #[serde(rename = "transactiontimeout", with = "serde_go")]
    pub transaction_timeout: Duration,
}

impl Default for EtcdGroupsConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["localhost:2379".into()],
            prefix: "pitaya/".into(),
            dial_timeout: Duration::from_secs(5),
            transaction_timeout: Duration::from_secs(5),
        }
    }
}

/// Binding storage in etcd (key `pitaya.modules.bindingstorage.etcd`, spec 8.1).
///
/// Read by the gRPC transport, which records there which frontend holds each user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdBindingStorageConfig {
    /// etcd client endpoints, `host:port`. Key
    /// `pitaya.modules.bindingstorage.etcd.endpoints`, default `[localhost:2379]`
    /// (Pitaya's).
    #[serde(with = "string_list")]
    pub endpoints: Vec<String>,
    /// Key prefix; servers see each other's bindings only under equal prefixes.
    /// Key `pitaya.modules.bindingstorage.etcd.prefix`, default `pitaya/`
    /// (Pitaya's).
    pub prefix: String,
    /// Time allowed to connect, and for each etcd operation. Key
    /// `pitaya.modules.bindingstorage.etcd.dialtimeout`, default 5s (Pitaya's).
    #[serde(rename = "dialtimeout", with = "serde_go")]
    pub dial_timeout: Duration,
    /// Time to live of the lease holding a frontend's bindings, at least 1s;
    /// the bindings of a frontend that dies disappear this long after. Key
    /// `pitaya.modules.bindingstorage.etcd.leasettl`, default 5h (Pitaya's
    /// code; its docs say 1h).
    #[serde(rename = "leasettl", with = "serde_go")]
    pub lease_ttl: Duration,
}

impl Default for EtcdBindingStorageConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["localhost:2379".into()],
            prefix: "pitaya/".into(),
            dial_timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(5 * 60 * 60),
        }
    }
}

/// Serde for lists given as arrays or as one comma-separated string, the
/// form Pitaya's environment variables use (`etcd1:2379,etcd2:2379`).
mod string_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Joined(String),
    }

    pub(super) fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Form::deserialize(d)? {
            Form::List(items) => items,
            Form::Joined(joined) => joined
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}
