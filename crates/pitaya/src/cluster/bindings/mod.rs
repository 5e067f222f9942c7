//! Binding storage: which frontend each user is bound on (spec 8.1).
//!
//! NATS reaches a user through subjects named after the uid, so it needs no
//! record of where users are. gRPC calls one server at a time, so a server
//! that pushes to or kicks a user must first learn which frontend holds it:
//! frontends record every bind here, and everyone reads.
//!
//! | implementation | feature | what it is |
//! |---|---|---|
//! | `EtcdBindingStorage` | `etcd` | Go Pitaya's keys, `<prefix>bindings/<frontendType>/<uid>` |

#[cfg(feature = "etcd")]
mod etcd;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "etcd")]
pub use etcd::EtcdBindingStorage;

use super::BoxError;

/// Where frontends record the users bound on them.
///
/// One instance belongs to one server: [`put`](Self::put) and
/// [`remove`](Self::remove) speak for that server, lookups may name any
/// frontend type.
#[async_trait]
pub trait BindingStorage: Send + Sync + fmt::Debug + 'static {
    /// Returns the id of the frontend of `frontend_type` that `uid` is bound
    /// on, or `None` when no such binding is recorded.
    ///
    /// # Errors
    ///
    /// Returns a [`BindingError`] when the store cannot be read.
    async fn frontend_id(
        &self,
        uid: &str,
        frontend_type: &str,
    ) -> Result<Option<String>, BindingError>;

    /// Returns the frontend of `frontend_type` of each of `uids` that has a
    /// binding; the others are left out.
    ///
    /// By default one [`frontend_id`](Self::frontend_id) after the other; a
    /// store that can read many keys at once should, since a push to a whole
    /// room asks for every member.
    ///
    /// # Errors
    ///
    /// Returns a [`BindingError`] when the store cannot be read.
    async fn frontend_ids(
        &self,
        uids: &[String],
        frontend_type: &str,
    ) -> Result<HashMap<String, String>, BindingError> {
        let mut found = HashMap::with_capacity(uids.len());
        for uid in uids {
            if let Some(id) = self.frontend_id(uid, frontend_type).await? {
                found.insert(uid.clone(), id);
            }
        }
        Ok(found)
    }

    /// Records that `uid` is bound on this server; returns the id of the
    /// frontend that held it before, when that was another one.
    ///
    /// # Errors
    ///
    /// Returns a [`BindingError`] when the store cannot be written.
    async fn put(&self, uid: &str) -> Result<Option<String>, BindingError>;

    /// Forgets the binding of `uid` to this server; a binding that another
    /// frontend has taken over since is left alone.
    ///
    /// # Errors
    ///
    /// Returns a [`BindingError`] when the store cannot be written.
    async fn remove(&self, uid: &str) -> Result<(), BindingError>;

    /// Returns once this server's bindings are dropped and nothing runs in
    /// the background any more.
    async fn shutdown(&self);
}

/// Returned when the binding storage cannot be reached or refuses an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// A backend operation failed.
    #[error("binding storage {op} failed")]
    Backend {
        /// What was being done, such as `put binding`.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A backend operation took longer than allowed.
    #[error("binding storage {op} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The limit.
        after: Duration,
    },
}
