//! Groups kept in etcd, shared by every server on the same prefix (spec 11).
//!
//! The key layout is Go Pitaya's, so Go and Rust servers can share groups:
//!
//! ```text
//! <prefix>groups/<name>              ""    the group exists
//! <prefix>groups/<name>/uids/<uid>   ""    one key per member
//! ```
//!
//! A group created with a TTL holds an etcd lease of that many whole seconds; its
//! members are put on the same lease, so the group and its members expire together.
//! Every operation is one transaction conditioned on the keys it depends on, so two
//! servers racing on one group never leave it half changed.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};

use super::{GroupError, GroupStore};
use crate::config::EtcdGroupsConfig;

/// Times an add is tried when the group is replaced under it; more means a storm.
const ADD_ATTEMPTS: usize = 3;

/// A [`GroupStore`] in etcd, Pitaya's `EtcdGroupService`.
///
/// Members are listed in key order (etcd's), not insertion order. As in Pitaya,
/// [`count_members`](GroupStore::count_members) of a missing group is 0 and
/// [`remove_member`](GroupStore::remove_member) checks only the member key. Group
/// names must be non-empty and free of `/`, which would let one group's keys fall
/// under another's.
///
/// # Examples
///
/// ```no_run
/// use pitaya::config::EtcdGroupsConfig;
/// use pitaya::groups::EtcdGroupStore;
/// use pitaya::GroupStore;
///
/// # async fn run() -> Result<(), pitaya::GroupError> {
/// let store = EtcdGroupStore::connect(&EtcdGroupsConfig::default()).await?;
/// store.create("room-1").await?;
/// store.add_member("room-1", "alice").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EtcdGroupStore {
    client: Client,
    /// `<prefix>groups/`.
    root: String,
    timeout: Duration,
}

// etcd-client's Client has no Debug.
impl std::fmt::Debug for EtcdGroupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdGroupStore")
            .field("root", &self.root)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

// ===== impl EtcdGroupStore =====

impl EtcdGroupStore {
    /// Returns a store connected to the etcd of `config`.
    ///
    /// # Errors
    ///
    /// Returns [`GroupError::Backend`] when etcd cannot be reached within
    /// `dial_timeout`.
    pub async fn connect(config: &EtcdGroupsConfig) -> Result<Self, GroupError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_timeout(config.transaction_timeout);
        let connect = Client::connect(&config.endpoints, Some(options));
        let mut client = within(config.dial_timeout, "connect", connect).await?;

        // The client connects lazily; one read tells an unreachable etcd now, as Go's
        // blocking dial does, instead of at the first group call.
        let store = Self::with_client(client.clone(), config);
        let probe = client.get(
            store.root.clone(),
            Some(GetOptions::new().with_count_only()),
        );
        within(config.dial_timeout, "connect", probe).await?;
        Ok(store)
    }

    /// Returns a store on an existing client, such as the one discovery uses.
    pub fn with_client(client: Client, config: &EtcdGroupsConfig) -> Self {
        EtcdGroupStore {
            client,
            root: format!("{}groups/", config.prefix),
            timeout: config.transaction_timeout,
        }
    }

    fn group_key(&self, name: &str) -> String {
        format!("{}{name}", self.root)
    }

    fn members_prefix(&self, name: &str) -> String {
        format!("{}{name}/uids/", self.root)
    }

    fn member_key(&self, name: &str, uid: &str) -> String {
        format!("{}{name}/uids/{uid}", self.root)
    }

    /// Runs `txn` within the transaction timeout.
    async fn txn(
        &self,
        op: &'static str,
        txn: Txn,
    ) -> Result<etcd_client::TxnResponse, GroupError> {
        let mut client = self.client.clone();
        within(self.timeout, op, client.txn(txn)).await
    }

    /// Returns the group key's lease, 0 for none, or `None` when there is no group.
    async fn group_lease(&self, name: &str) -> Result<Option<i64>, GroupError> {
        let mut client = self.client.clone();
        let resp = within(
            self.timeout,
            "get group",
            client.get(self.group_key(name), None),
        )
        .await?;
        Ok(resp.kvs().first().map(|kv| kv.lease()))
    }

    /// Creates the group key, on `lease` if not 0.
    async fn insert(&self, name: &str, lease: i64) -> Result<(), GroupError> {
        let key = self.group_key(name);
        let put = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, "", put)]);
        if self.txn("create group", txn).await?.succeeded() {
            Ok(())
        } else {
            Err(GroupError::AlreadyExists)
        }
    }

    /// Runs `ops` if the group exists; returns their responses or `NotFound`.
    async fn if_group_exists(
        &self,
        op: &'static str,
        name: &str,
        ops: Vec<TxnOp>,
    ) -> Result<Vec<TxnOpResponse>, GroupError> {
        check_name(name)?;
        let txn = Txn::new()
            .when([exists(self.group_key(name))])
            .and_then(ops);
        let resp = self.txn(op, txn).await?;
        if resp.succeeded() {
            Ok(resp.op_responses())
        } else {
            Err(GroupError::NotFound)
        }
    }
}

#[async_trait::async_trait]
impl GroupStore for EtcdGroupStore {
    async fn create(&self, name: &str) -> Result<(), GroupError> {
        check_name(name)?;
        self.insert(name, 0).await
    }

    async fn create_with_ttl(&self, name: &str, ttl: Duration) -> Result<(), GroupError> {
        check_name(name)?;
        let mut client = self.client.clone();
        let grant = client.lease_grant(lease_seconds(ttl), None);
        let lease = within(self.timeout, "grant lease", grant).await?.id();
        let created = self.insert(name, lease).await;
        if created.is_err() {
            // The lease holds nothing; let it go now rather than at its expiry.
            let revoke = client.lease_revoke(lease);
            if let Err(e) = within(self.timeout, "revoke lease", revoke).await {
                tracing::debug!(lease, error = %e, "unused group lease not revoked");
            }
        }
        created
    }

    async fn members(&self, name: &str) -> Result<Vec<String>, GroupError> {
        let prefix = self.members_prefix(name);
        let list = GetOptions::new().with_prefix().with_keys_only();
        let resps = self
            .if_group_exists(
                "list members",
                name,
                vec![TxnOp::get(prefix.clone(), Some(list))],
            )
            .await?;
        let mut uids = Vec::new();
        for resp in resps {
            if let TxnOpResponse::Get(get) = resp {
                for kv in get.kvs() {
                    let uid = kv.key().strip_prefix(prefix.as_bytes()).unwrap_or_default();
                    uids.push(String::from_utf8_lossy(uid).into_owned());
                }
            }
        }
        Ok(uids)
    }

    async fn contains_member(&self, name: &str, uid: &str) -> Result<bool, GroupError> {
        if uid.is_empty() {
            return Err(GroupError::EmptyUid);
        }
        let count = GetOptions::new().with_count_only();
        let get = TxnOp::get(self.member_key(name, uid), Some(count));
        let resps = self
            .if_group_exists("check member", name, vec![get])
            .await?;
        Ok(resps
            .iter()
            .any(|r| matches!(r, TxnOpResponse::Get(get) if get.count() > 0)))
    }

    async fn add_member(&self, name: &str, uid: &str) -> Result<(), GroupError> {
        if uid.is_empty() {
            return Err(GroupError::EmptyUid);
        }
        check_name(name)?;
        let (group, member) = (self.group_key(name), self.member_key(name, uid));
        for _ in 0..ADD_ATTEMPTS {
            let lease = self.group_lease(name).await?.ok_or(GroupError::NotFound)?;

            // The member joins on the group's lease; comparing the lease makes sure
            // the group was not replaced by one with another TTL in the meantime.
            let put = (lease != 0).then(|| PutOptions::new().with_lease(lease));
            let txn = Txn::new()
                .when([
                    exists(group.clone()),
                    Compare::lease(group.clone(), CompareOp::Equal, lease),
                    Compare::create_revision(member.clone(), CompareOp::Equal, 0),
                ])
                .and_then([TxnOp::put(member.clone(), "", put)])
                .or_else([
                    TxnOp::get(group.clone(), None),
                    TxnOp::get(member.clone(), None),
                ]);
            let resp = self.txn("add member", txn).await?;
            if resp.succeeded() {
                return Ok(());
            }
            let found: Vec<bool> = resp
                .op_responses()
                .iter()
                .map(|r| matches!(r, TxnOpResponse::Get(get) if !get.kvs().is_empty()))
                .collect();
            match found.as_slice() {
                [false, _] => return Err(GroupError::NotFound),
                [true, true] => return Err(GroupError::MemberExists),
                _ => tracing::debug!(group = %name, "group replaced during add; trying again"),
            }
        }
        Err(GroupError::Backend(
            format!("group {name:?} kept changing during add").into(),
        ))
    }

    async fn remove_member(&self, name: &str, uid: &str) -> Result<(), GroupError> {
        check_name(name)?;
        // As Pitaya: only the member key is checked, not the group's.
        let member = self.member_key(name, uid);
        let txn = Txn::new()
            .when([exists(member.clone())])
            .and_then([TxnOp::delete(member, None)]);
        if self.txn("remove member", txn).await?.succeeded() {
            Ok(())
        } else {
            Err(GroupError::MemberNotFound)
        }
    }

    async fn remove_all(&self, name: &str) -> Result<(), GroupError> {
        let all = DeleteOptions::new().with_prefix();
        let delete = TxnOp::delete(self.members_prefix(name), Some(all));
        self.if_group_exists("remove members", name, vec![delete])
            .await
            .map(drop)
    }

    async fn count_members(&self, name: &str) -> Result<usize, GroupError> {
        check_name(name)?;
        let mut client = self.client.clone();
        let count = GetOptions::new().with_prefix().with_count_only();
        let get = client.get(self.members_prefix(name), Some(count));
        let resp = within(self.timeout, "count members", get).await?;
        Ok(usize::try_from(resp.count()).unwrap_or(0))
    }

    async fn renew_ttl(&self, name: &str) -> Result<(), GroupError> {
        check_name(name)?;
        let lease = self.group_lease(name).await?.ok_or(GroupError::NotFound)?;
        if lease == 0 {
            return Err(GroupError::NoTtl);
        }
        let mut client = self.client.clone();
        match within(self.timeout, "renew lease", client.lease_keep_alive(lease)).await {
            Ok(_keeper_and_stream) => Ok(()),
            // The lease ran out between the read and the renewal: so did the group.
            Err(GroupError::Backend(e)) if is_lease_gone(&*e) => Err(GroupError::NotFound),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), GroupError> {
        let all = DeleteOptions::new().with_prefix();
        let ops = vec![
            TxnOp::delete(self.members_prefix(name), Some(all)),
            TxnOp::delete(self.group_key(name), None),
        ];
        self.if_group_exists("delete group", name, ops)
            .await
            .map(drop)
    }
}

/// Returns the comparison "the key exists".
fn exists(key: String) -> Compare {
    Compare::version(key, CompareOp::Greater, 0)
}

/// Returns an error for names that would break the key layout.
fn check_name(name: &str) -> Result<(), GroupError> {
    if name.is_empty() || name.contains('/') {
        return Err(GroupError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Returns `ttl` in the whole seconds etcd leases count, rounded up, at least one.
fn lease_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// Returns whether an etcd error says a lease no longer exists.
fn is_lease_gone(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        e.downcast_ref::<etcd_client::Error>(),
        Some(etcd_client::Error::LeaseKeepAliveError(_))
    )
}

/// Returns the result of `call`, or a backend error naming `op` after `limit`.
async fn within<T>(
    limit: Duration,
    op: &'static str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, GroupError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(GroupError::Backend(Box::new(e))),
        Err(_) => Err(GroupError::Backend(
            format!("etcd {op} timed out after {limit:?}").into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_seconds_round_up_to_at_least_one() {
        assert_eq!(lease_seconds(Duration::ZERO), 1);
        assert_eq!(lease_seconds(Duration::from_millis(300)), 1);
        assert_eq!(lease_seconds(Duration::from_secs(5)), 5);
        assert_eq!(lease_seconds(Duration::from_millis(5_001)), 6);
    }

    #[test]
    fn names_with_a_slash_or_empty_are_refused() {
        assert!(check_name("room-1").is_ok());
        assert!(matches!(check_name(""), Err(GroupError::InvalidName(_))));
        assert!(matches!(
            check_name("a/uids/b"),
            Err(GroupError::InvalidName(n)) if n == "a/uids/b"
        ));
    }
}
