//! Typed configuration with Pitaya's keys and defaults.
//!
//! A [`Config`] is built in three layers, each overriding the one before:
//!
//! 1. the defaults documented on every field (Pitaya's, spec section 12);
//! 2. an optional file, YAML when its name ends in `.yaml` or `.yml` and TOML
//!    otherwise, with everything under the root key `pitaya`;
//! 3. environment variables starting with `PITAYA_`.
//!
//! An environment variable names a key as Pitaya does: the key path
//! upper-cased with `.` turned into `_`, so `PITAYA_HEARTBEAT_INTERVAL=10s`
//! sets `pitaya.heartbeat.interval`. Our keys contain no `_`, so every `_`
//! splits the path. Keys this crate does not know are ignored, which lets
//! Go Pitaya's settings for other components live in the same file.
//!
//! Booleans are what Go's `strconv.ParseBool` reads, as in Pitaya: `true`,
//! `false`, `1`, `0`, `t`, `f`, `T`, `F`, `TRUE`, `FALSE`, `True`, `False`.
//!
//! Durations are Go strings such as `500ms`, `1m30s` or `6h`, or integers of
//! nanoseconds (see [`duration`]).
//!
//! # Examples
//!
//! ```no_run
//! # fn main() -> Result<(), pitaya::config::ConfigError> {
//! // pitaya.toml:
//! //   [pitaya.heartbeat]
//! //   interval = "10s"
//! let config = pitaya::config::Config::from_file("pitaya.toml")?;
//! assert_eq!(config.heartbeat.interval, std::time::Duration::from_secs(10));
//! # Ok(())
//! # }
//! ```

mod cluster;
pub mod duration;
mod etcd;
pub(crate) mod go_bool;
mod metrics;
mod modules;
mod sections;

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::telemetry::TracingConfig;
pub use cluster::{
    ClusterConfig, ClusterInfoConfig, GrpcClientConfig, GrpcServerConfig, NatsBufferConfig,
    NatsClientConfig, NatsConnectionConfig, NatsServerConfig, RpcClientConfig, RpcConfig,
    RpcServerConfig, TransportKind,
};
pub use etcd::{
    EtcdBindingStorageConfig, EtcdGrantLeaseConfig, EtcdGroupsConfig, EtcdHeartbeatConfig,
    EtcdRevokeConfig, EtcdSdConfig, EtcdShutdownConfig, EtcdSyncConfig, SdConfig,
};
pub use metrics::{
    CustomMetric, CustomMetricsConfig, HealthConfig, MetricsConfig, PrometheusConfig, StatsdConfig,
};
pub use modules::{BindingStorageConfig, ModulesConfig};
pub use sections::{
    AcceptorConfig, AgentBufferConfig, BufferConfig, ConcurrencyConfig, ConnConfig, DrainConfig,
    GroupsConfig, HandlerBufferConfig, HandlerConcurrencyConfig, HandlerConfig,
    HandlerMessagesConfig, HeartbeatConfig, MemoryGroupsConfig, RateLimitingConfig, SessionConfig,
    ShutdownConfig,
};

/// The root key of every Pitaya setting.
const ROOT_KEY: &str = "pitaya";

/// Prefix of the environment variables we read, lower-cased as figment
/// hands keys to us.
const ENV_PREFIX: &str = "pitaya_";

/// Largest packet body the 3-byte length of a packet header can describe
/// (spec section 1).
const MAX_PACKET_SIZE: usize = 0xFF_FFFF;

/// The framework configuration, under Pitaya's root key `pitaya`.
///
/// `Default` gives the documented defaults; [`Config::load`] and
/// [`Config::from_file`] add a file and the environment on top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Config {
    /// Serializer for handler payloads: 1 = JSON, 2 = protobuf. Key
    /// `pitaya.serializertype`, default 1 (Pitaya's).
    #[serde(rename = "serializertype")]
    pub serializer_type: u16,
    /// Heartbeat settings (`pitaya.heartbeat`).
    pub heartbeat: HeartbeatConfig,
    /// Handler settings (`pitaya.handler`).
    pub handler: HandlerConfig,
    /// Queue sizes (`pitaya.buffer`).
    pub buffer: BufferConfig,
    /// Concurrency settings (`pitaya.concurrency`).
    pub concurrency: ConcurrencyConfig,
    /// Client connection settings (`pitaya.conn`).
    pub conn: ConnConfig,
    /// Acceptor settings (`pitaya.acceptor`).
    pub acceptor: AcceptorConfig,
    /// Session settings (`pitaya.session`).
    pub session: SessionConfig,
    /// Group settings (`pitaya.groups`).
    pub groups: GroupsConfig,
    /// Graceful shutdown settings (`pitaya.shutdown`).
    pub shutdown: ShutdownConfig,
    /// Cluster settings: RPC and service discovery (`pitaya.cluster`).
    pub cluster: ClusterConfig,
    /// Module settings (`pitaya.modules`).
    pub modules: ModulesConfig,
    /// Metrics reporters (`pitaya.metrics`).
    pub metrics: MetricsConfig,
    /// HTTP readiness and liveness endpoint (`pitaya.health`).
    pub health: HealthConfig,
    /// Span export settings (`pitaya.tracing`), a pitaya-rs addition.
    pub tracing: TracingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            serializer_type: 1,
            heartbeat: HeartbeatConfig::default(),
            handler: HandlerConfig::default(),
            buffer: BufferConfig::default(),
            concurrency: ConcurrencyConfig::default(),
            conn: ConnConfig::default(),
            acceptor: AcceptorConfig::default(),
            session: SessionConfig::default(),
            groups: GroupsConfig::default(),
            shutdown: ShutdownConfig::default(),
            cluster: ClusterConfig::default(),
            modules: ModulesConfig::default(),
            metrics: MetricsConfig::default(),
            health: HealthConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

/// The document root; only the `pitaya` key is ours.
#[derive(Deserialize)]
struct Root {
    #[serde(default)]
    pitaya: Config,
}

/// Returned when configuration cannot be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A source could not be read or a value had the wrong type; the message
    /// names the key and the source.
    #[error("config: {}", describe(.0))]
    Load(Box<figment::Error>),
    /// A value was read but is out of range; the message names the key.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Load(Box::new(e))
    }
}

// ===== impl Config =====

impl Config {
    /// Returns the defaults overlaid with `PITAYA_*` environment variables.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Load`] when a variable has the wrong type for
    /// its key and [`ConfigError::Invalid`] when a value is out of range.
    pub fn load() -> Result<Config, ConfigError> {
        Self::from_figment(&Self::figment(None))
    }

    /// Returns the defaults, then the file at `path`, then `PITAYA_*`
    /// environment variables, later layers winning.
    ///
    /// The file is YAML when its name ends in `.yaml` or `.yml`, TOML
    /// otherwise.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Load`] when the file is missing or malformed or
    /// a value has the wrong type, and [`ConfigError::Invalid`] when a value
    /// is out of range.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::from_figment(&Self::figment(Some(path.as_ref())))
    }

    /// Returns the figment behind [`Config::load`] and [`Config::from_file`].
    ///
    /// Applications can merge their own providers into it and keep their
    /// settings beside ours, then call [`Config::from_figment`]. A missing
    /// `file` is reported when the figment is extracted.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::default(ROOT_KEY, Config::default()));
        if let Some(path) = file {
            figment = if is_yaml(path) {
                figment.merge(Yaml::file_exact(path))
            } else {
                figment.merge(Toml::file_exact(path))
            };
        }
        figment.merge(pitaya_env())
    }

    /// Returns the config found under the key `pitaya` of `figment`, checked.
    ///
    /// Keys the figment lacks, including `pitaya` itself, take their
    /// defaults.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Load`] when a value has the wrong type and
    /// [`ConfigError::Invalid`] when a value is out of range.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
        // Extracting the root instead of `extract_inner` keeps figment's key
        // paths in order, so errors name `pitaya.heartbeat.interval`.
        let config = figment.extract::<Root>()?.pitaya;
        config.validate()?;
        Ok(config)
    }

    /// Returns an error naming the first value that is out of range.
    ///
    /// The loaders call this; a config built or changed in code can call it
    /// before use.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Invalid`] naming the key of the bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));

        if !matches!(self.serializer_type, 1 | 2) {
            return invalid(format!(
                "pitaya.serializertype must be 1 (json) or 2 (protobuf), got {}",
                self.serializer_type
            ));
        }
        if self.heartbeat.interval.is_zero() {
            return invalid("pitaya.heartbeat.interval must be greater than zero".into());
        }
        if self.conn.max_packet_size == 0 || self.conn.max_packet_size > MAX_PACKET_SIZE {
            return invalid(format!(
                "pitaya.conn.maxpacketsize must be between 1 and {MAX_PACKET_SIZE}, got {}",
                self.conn.max_packet_size
            ));
        }
        if self.conn.rate_limiting.limit == 0 {
            return invalid("pitaya.conn.ratelimiting.limit must be greater than zero".into());
        }
        if self.groups.etcd.endpoints.is_empty() {
            return invalid("pitaya.groups.etcd.endpoints must name at least one endpoint".into());
        }
        if self.groups.memory.tick_duration.is_zero() {
            return invalid("pitaya.groups.memory.tickduration must be greater than zero".into());
        }
        self.validate_cluster()?;
        self.metrics.check().map_err(ConfigError::Invalid)?;
        if self.health.host.trim().is_empty() {
            return invalid("pitaya.health.host must name a host or IP address".into());
        }

        // These size bounded channels and worker pools; zero would stall
        // every connection, so we refuse it up front.
        let counts = [
            ("pitaya.buffer.agent.messages", self.buffer.agent.messages),
            (
                "pitaya.buffer.handler.localprocess",
                self.buffer.handler.local_process,
            ),
            (
                "pitaya.buffer.handler.remoteprocess",
                self.buffer.handler.remote_process,
            ),
            (
                "pitaya.concurrency.handler.dispatch",
                self.concurrency.handler.dispatch,
            ),
        ];
        match counts.iter().find(|(_, n)| *n == 0) {
            Some((key, _)) => invalid(format!("{key} must be greater than zero")),
            None => Ok(()),
        }
    }
}

// ===== cluster checks =====

impl Config {
    /// Returns an error naming the first cluster value that is out of range.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        let etcd = &self.cluster.sd.etcd;
        let rpc = &self.cluster.rpc;

        if etcd.endpoints.is_empty() {
            return invalid("pitaya.cluster.sd.etcd.endpoints must name at least one endpoint");
        }
        // etcd leases count whole seconds; below one second there is no lease.
        if etcd.heartbeat.ttl < std::time::Duration::from_secs(1) {
            return invalid("pitaya.cluster.sd.etcd.heartbeat.ttl must be at least 1s");
        }
        let bindings = &self.modules.binding_storage.etcd;
        if bindings.endpoints.is_empty() {
            return invalid(
                "pitaya.modules.bindingstorage.etcd.endpoints must name at least one endpoint",
            );
        }
        if bindings.lease_ttl < std::time::Duration::from_secs(1) {
            return invalid("pitaya.modules.bindingstorage.etcd.leasettl must be at least 1s");
        }
        let durations = [
            (
                "pitaya.cluster.sd.etcd.syncservers.interval",
                etcd.sync_servers.interval,
            ),
            (
                "pitaya.cluster.sd.etcd.grantlease.retryinterval",
                etcd.grant_lease.retry_interval,
            ),
            (
                "pitaya.cluster.rpc.client.nats.requesttimeout",
                rpc.client.nats.request_timeout,
            ),
            (
                "pitaya.cluster.rpc.client.grpc.requesttimeout",
                rpc.client.grpc.request_timeout,
            ),
        ];
        let counts = [
            (
                "pitaya.cluster.rpc.server.nats.buffer.messages",
                rpc.server.nats.buffer.messages,
            ),
            (
                "pitaya.cluster.rpc.server.nats.buffer.push",
                rpc.server.nats.buffer.push,
            ),
        ];
        let zero = durations
            .iter()
            .find(|(_, d)| d.is_zero())
            .map(|(key, _)| key)
            .or_else(|| counts.iter().find(|(_, n)| *n == 0).map(|(key, _)| key));
        match zero {
            Some(key) => Err(ConfigError::Invalid(format!(
                "{key} must be greater than zero"
            ))),
            None => Ok(()),
        }
    }
}

/// Returns figment's errors, one per line, each naming its key and source.
///
/// We write our own text because figment prefixes keys with its profile
/// (`default.pitaya...`), which means nothing to a Pitaya user.
fn describe(error: &figment::Error) -> String {
    let lines: Vec<String> = error
        .clone()
        .into_iter()
        .map(|e| {
            let mut line = e.kind.to_string().trim_end().to_owned();
            if !e.path.is_empty() {
                let key = e.path.join(".");
                line.push_str(&format!(" for key `{key}`"));
                if e.metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains("environment"))
                {
                    line.push_str(&format!(" (${})", key.replace('.', "_").to_uppercase()));
                }
            }
            if let Some(md) = &e.metadata {
                match &md.source {
                    Some(source) => line.push_str(&format!(" in {} {source}", md.name)),
                    None => line.push_str(&format!(" in {}", md.name)),
                }
            }
            line
        })
        .collect();
    lines.join("; ")
}

/// Returns whether `path` names a YAML file by its extension.
fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Returns the provider of `PITAYA_*` variables, each mapped to its key path.
fn pitaya_env() -> Env {
    Env::raw().filter_map(|name| {
        let lower = name.as_str().to_ascii_lowercase();
        let rest = lower.strip_prefix(ENV_PREFIX)?;
        Some(format!("{ROOT_KEY}.{}", rest.replace('_', ".")).into())
    })
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;
