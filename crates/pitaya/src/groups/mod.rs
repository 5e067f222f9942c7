//! Named groups of user ids, for pushing one message to many users.
//!
//! A group is a named, ordered set of uids, optionally with a time-to-live
//! after which it is deleted unless renewed (spec section 11). The
//! [`GroupStore`] trait is the API; [`MemoryGroupStore`] keeps groups in the
//! process, and `EtcdGroupStore` (feature `etcd`) keeps them in etcd, shared by
//! every server on the same key prefix, Go Pitaya's included.

#[cfg(feature = "etcd")]
mod etcd;
mod memory;

use std::time::Duration;

#[cfg(feature = "etcd")]
pub use etcd::EtcdGroupStore;
pub use memory::MemoryGroupStore;

/// Returned by [`GroupStore`] calls; messages are Pitaya's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// A group with that name already exists.
    #[error("group already exists")]
    AlreadyExists,
    /// No group has that name.
    #[error("group not found")]
    NotFound,
    /// The uid was the empty string.
    #[error("empty uid")]
    EmptyUid,
    /// The uid is already a member of the group.
    #[error("member already exists in group")]
    MemberExists,
    /// The uid is not a member of the group.
    #[error("member not found in the group")]
    MemberNotFound,
    /// The group was created without a TTL, so there is nothing to renew.
    #[error("group has no ttl")]
    NoTtl,
    /// The group name cannot be stored: the etcd store refuses empty names and
    /// names with `/`, which would overlap other groups' keys.
    #[error("invalid group name {0:?}")]
    InvalidName(String),
    /// The storage behind the store failed.
    #[error("group backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage of named groups of uids.
///
/// Implementations are shared between tasks behind an `Arc`, so every method
/// takes `&self`.
#[async_trait::async_trait]
pub trait GroupStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates an empty group that lives until deleted.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::AlreadyExists`] if `name` is taken.
    async fn create(&self, name: &str) -> Result<(), GroupError>;

    /// Creates an empty group deleted once `ttl` passes without a renewal.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::AlreadyExists`] if `name` is taken.
    async fn create_with_ttl(&self, name: &str, ttl: Duration) -> Result<(), GroupError>;

    /// Returns the uids in the group.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::NotFound`] if there is no such group.
    async fn members(&self, name: &str) -> Result<Vec<String>, GroupError>;

    /// Returns whether `uid` is in the group.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::EmptyUid`] for an empty `uid` and
    /// [`GroupError::NotFound`] if there is no such group.
    async fn contains_member(&self, name: &str, uid: &str) -> Result<bool, GroupError>;

    /// Adds `uid` to the group.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::EmptyUid`] for an empty `uid`,
    /// [`GroupError::NotFound`] if there is no such group and
    /// [`GroupError::MemberExists`] if `uid` is already in it.
    async fn add_member(&self, name: &str, uid: &str) -> Result<(), GroupError>;

    /// Removes `uid` from the group.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::NotFound`] if there is no such group and
    /// [`GroupError::MemberNotFound`] if `uid` is not in it. The etcd store, as
    /// Pitaya's, checks only the member and returns `MemberNotFound` for both.
    async fn remove_member(&self, name: &str, uid: &str) -> Result<(), GroupError>;

    /// Removes every member, keeping the group.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::NotFound`] if there is no such group.
    async fn remove_all(&self, name: &str) -> Result<(), GroupError>;

    /// Returns the number of members.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::NotFound`] if there is no such group. The etcd
    /// store, as Pitaya's, returns 0 instead.
    async fn count_members(&self, name: &str) -> Result<usize, GroupError>;

    /// Restarts the group's TTL from now.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::NotFound`] if there is no such group and
    /// [`GroupError::NoTtl`] if it was created without a TTL.
    async fn renew_ttl(&self, name: &str) -> Result<(), GroupError>;

    /// Deletes the group and its members.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::NotFound`] if there is no such group.
    async fn delete(&self, name: &str) -> Result<(), GroupError>;
}
