//! Service discovery: which servers form the cluster, and changes to that set.
//!
//! A [`ServiceDiscovery`] publishes this server's [`ServerInfo`] and keeps a
//! local list of the others, so lookups never wait on the network. Changes
//! arrive as [`DiscoveryEvent`]s, one per server added or removed, keyed by id.
//!
//! | implementation | feature | what it is |
//! |---|---|---|
//! | [`StaticDiscovery`] | always | an in-memory list changed by code; tests and fixed setups |
//! | `EtcdDiscovery` | `etcd` | Go Pitaya's etcd records, leases and watch (spec 9) |

mod cache;
#[cfg(feature = "etcd")]
mod etcd;
mod memory;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::ServerInfo;

pub(crate) use cache::ServerCache;
#[cfg(feature = "etcd")]
pub use etcd::EtcdDiscovery;
pub use memory::StaticDiscovery;

/// A change to the set of known servers.
///
/// This server's own record never produces an event, as in Go Pitaya, where
/// listeners are not told about their own server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryEvent {
    /// A server joined, or was seen again after it had been removed.
    Added(Arc<ServerInfo>),
    /// A server left: its record was deleted or its lease expired.
    Removed(Arc<ServerInfo>),
}

/// The cluster's server list, published and kept current.
///
/// Lookups read a local copy and never block on the network. To follow
/// changes without missing one, call [`subscribe`](Self::subscribe) first,
/// then read the current list. A receiver that falls more than its buffer
/// behind gets [`broadcast::error::RecvError::Lagged`] and should read the
/// list again.
#[async_trait]
pub trait ServiceDiscovery: Send + Sync + fmt::Debug + 'static {
    /// Returns this server's own record.
    fn local(&self) -> Arc<ServerInfo>;

    /// Returns every known server of `server_type`, this one included when
    /// its type matches, in no particular order.
    fn servers_by_type(&self, server_type: &str) -> Vec<Arc<ServerInfo>>;

    /// Returns the server with `id`, if known.
    fn server(&self, id: &str) -> Option<Arc<ServerInfo>>;

    /// Returns every known server, this one included.
    fn servers(&self) -> Vec<Arc<ServerInfo>>;

    /// Returns a receiver of the changes made from now on.
    fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent>;

    /// Returns whether this server's record is known to be published now.
    ///
    /// False while a backend has lost its link and not yet published the record
    /// again; the record may still be there until its lease expires, but nobody
    /// can tell. The default, for backends that cannot lose it, is true.
    fn is_registered(&self) -> bool {
        true
    }

    /// Withdraws this server from the cluster and stops following changes.
    ///
    /// # Errors
    ///
    /// Returns a [`DiscoveryError`] when the backend could not be told; the
    /// record then disappears when its lease expires.
    async fn shutdown(&self) -> Result<(), DiscoveryError>;
}

/// A boxed error from a discovery backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Returned when discovery cannot start, publish or withdraw this server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The backend did not answer before the start-up deadline.
    #[error("service discovery unreachable at {endpoints} after {waited:?}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// How long start-up kept trying.
        waited: Duration,
        /// The last failure.
        #[source]
        source: BoxError,
    },
    /// This server's record cannot be published.
    #[error("invalid server info: {0}")]
    InvalidServer(String),
    /// A backend operation failed.
    #[error("service discovery {op} failed")]
    Backend {
        /// What was being done, such as `revoke lease`.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A backend operation took longer than allowed.
    #[error("service discovery {op} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The limit.
        after: Duration,
    },
}
