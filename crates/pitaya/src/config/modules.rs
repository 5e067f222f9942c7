//! Module settings (key `pitaya.modules`, spec 12.4).

use serde::{Deserialize, Serialize};

use super::EtcdBindingStorageConfig;

/// Module settings (key `pitaya.modules`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ModulesConfig {
    /// Where frontends record the users bound on them.
    #[serde(rename = "bindingstorage")]
    pub binding_storage: BindingStorageConfig,
}

/// Binding storage settings (key `pitaya.modules.bindingstorage`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BindingStorageConfig {
    /// Binding storage in etcd.
    pub etcd: EtcdBindingStorageConfig,
}
