//! Binding storage in etcd, Go Pitaya's `ETCDBindingStorage` (spec 8.1).
//!
//! ```text
//! <prefix>bindings/<frontendType>/<uid>   ->   id of the frontend, plain text
//! ```
//!
//! A frontend puts all its keys on one lease of `leasettl` and renews it every
//! few seconds, so the bindings of a frontend that dies expire with it, and a
//! lease etcd lost is noticed within seconds rather than a third of the TTL.
//! The lease is granted at the first bind: backends only read and hold none.
//! When etcd no longer knows the lease (it expired while etcd was away, or
//! etcd lost its data) we grant a new one and put this frontend's bindings on
//! it again, as far as no other frontend has taken them meanwhile.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{BindingError, BindingStorage};
use crate::cluster::ServerInfo;
use crate::config::EtcdBindingStorageConfig;

/// Most operations etcd takes in one transaction, its `--max-txn-ops` default.
const MAX_TXN_OPS: usize = 128;

/// Pause before renewing again after a failure, Pitaya's.
const RETRY: Duration = Duration::from_secs(5);

/// Longest time between two renewals, whatever the TTL.
///
/// Spec 8.1 keeps the lease alive continuously: with the 5 h default a third
/// of the TTL would leave the bindings missing for up to 1 h 40 min after etcd
/// lost its data, and kicks and pushes by uid would fail meanwhile.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Binding storage in etcd with Pitaya's key layout.
///
/// # Examples
///
/// ```no_run
/// use pitaya::cluster::bindings::{BindingStorage, EtcdBindingStorage};
/// use pitaya::cluster::ServerInfo;
/// use pitaya::config::EtcdBindingStorageConfig;
///
/// # async fn run() -> Result<(), pitaya::cluster::bindings::BindingError> {
/// let me = ServerInfo::new("connector", true);
/// let bindings = EtcdBindingStorage::connect(&EtcdBindingStorageConfig::default(), &me).await?;
/// bindings.put("alice").await?;
/// assert_eq!(bindings.frontend_id("alice", "connector").await?, Some(me.id.clone()));
/// bindings.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct EtcdBindingStorage {
    inner: Arc<Inner>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    client: Client,
    /// `<prefix>bindings/`.
    root: String,
    server_id: String,
    server_type: String,
    timeout: Duration,
    ttl: Duration,
    /// This server's lease, once the first bind granted it.
    lease: tokio::sync::Mutex<Option<i64>>,
    /// The users this server recorded, to put again on a new lease.
    bound: Mutex<HashSet<String>>,
}

// etcd-client's Client has no Debug.
impl std::fmt::Debug for EtcdBindingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBindingStorage")
            .field("root", &self.inner.root)
            .field("server_id", &self.inner.server_id)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

// ===== impl EtcdBindingStorage =====

impl EtcdBindingStorage {
    /// Returns the storage of server `me`, connected to the etcd of `config`.
    ///
    /// # Errors
    ///
    /// Returns a [`BindingError`] when etcd does not answer within
    /// `dial_timeout`.
    pub async fn connect(
        config: &EtcdBindingStorageConfig,
        me: &ServerInfo,
    ) -> Result<Self, BindingError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_timeout(config.dial_timeout);
        let connect = Client::connect(&config.endpoints, Some(options));
        let client = within(config.dial_timeout, "connect", connect).await?;
        let inner = Arc::new(Inner {
            client,
            root: format!("{}bindings/", config.prefix),
            server_id: me.id.clone(),
            server_type: me.server_type.clone(),
            timeout: config.dial_timeout,
            ttl: config.lease_ttl,
            lease: tokio::sync::Mutex::new(None),
            bound: Mutex::new(HashSet::new()),
        });

        // The client connects lazily; one read tells an unreachable etcd now, as
        // Go's blocking dial does, instead of at the first bind.
        let mut client = inner.client.clone();
        let probe = client.get(
            inner.root.clone(),
            Some(GetOptions::new().with_count_only()),
        );
        within(inner.timeout, "connect", probe).await?;

        let stop = CancellationToken::new();
        let task = tokio::spawn(renew(Arc::clone(&inner), stop.clone()));
        Ok(EtcdBindingStorage {
            inner,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Returns the etcd key of `uid` on frontends of `frontend_type`.
    pub fn key(&self, frontend_type: &str, uid: &str) -> String {
        self.inner.key(frontend_type, uid)
    }
}

#[async_trait]
impl BindingStorage for EtcdBindingStorage {
    async fn frontend_id(
        &self,
        uid: &str,
        frontend_type: &str,
    ) -> Result<Option<String>, BindingError> {
        let mut client = self.inner.client.clone();
        let get = client.get(self.inner.key(frontend_type, uid), None);
        let resp = within(self.inner.timeout, "get binding", get).await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// Reads the bindings in transactions of up to 128 reads (etcd's limit), all
    /// sent at once: one round trip for a room instead of one per member.
    async fn frontend_ids(
        &self,
        uids: &[String],
        frontend_type: &str,
    ) -> Result<HashMap<String, String>, BindingError> {
        let reads = uids.chunks(MAX_TXN_OPS).map(|chunk| {
            let gets = chunk
                .iter()
                .map(|uid| TxnOp::get(self.inner.key(frontend_type, uid), None));
            let txn = Txn::new().and_then(gets.collect::<Vec<_>>());
            let mut client = self.inner.client.clone();
            async move {
                let resp = within(self.inner.timeout, "get bindings", client.txn(txn)).await?;
                // etcd answers the reads of a transaction in their order.
                let found = chunk
                    .iter()
                    .zip(resp.op_responses())
                    .filter_map(|(uid, op)| {
                        let TxnOpResponse::Get(get) = op else {
                            return None;
                        };
                        let kv = get.kvs().first()?;
                        Some((
                            uid.clone(),
                            String::from_utf8_lossy(kv.value()).into_owned(),
                        ))
                    });
                Ok::<_, BindingError>(found.collect::<Vec<_>>())
            }
        });
        let found = futures_util::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn put(&self, uid: &str) -> Result<Option<String>, BindingError> {
        let inner = &self.inner;
        let lease = inner.lease().await?;
        let previous = match inner.put_on(uid, lease).await {
            Err(e) if is_lease_gone(&e) => {
                let lease = inner.regrant(lease).await?;
                inner.put_on(uid, lease).await?
            }
            other => other?,
        };
        lock(&inner.bound).insert(uid.to_owned());
        Ok(previous.filter(|id| *id != inner.server_id))
    }

    async fn remove(&self, uid: &str) -> Result<(), BindingError> {
        let inner = &self.inner;
        lock(&inner.bound).remove(uid);
        let key = inner.key(&inner.server_type, uid);
        // Go Pitaya deletes unconditionally, which can erase the binding of a
        // newer session on another frontend; we delete only our own.
        let txn = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                inner.server_id.clone(),
            )])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = inner.client.clone();
        within(inner.timeout, "remove binding", client.txn(txn)).await?;
        Ok(())
    }

    /// Stops renewing and revokes the lease, which deletes every binding of
    /// this server at once.
    async fn shutdown(&self) {
        self.stop.cancel();
        let task = lock(&self.task).take();
        if let Some(task) = task {
            // The task only ends by cancellation; a join error means it panicked.
            let _ = task.await;
        }
        let lease = self.inner.lease.lock().await.take();
        lock(&self.inner.bound).clear();
        let Some(lease) = lease else { return };
        let mut client = self.inner.client.clone();
        let revoke = client.lease_revoke(lease);
        if let Err(e) = within(self.inner.timeout, "revoke lease", revoke).await {
            tracing::warn!(lease, error = %e, "bindings stay in etcd until their lease expires");
        }
    }
}

impl Drop for EtcdBindingStorage {
    /// Stops renewing without revoking: the bindings live until the lease
    /// expires, as when the process dies.
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

// ===== impl Inner =====

impl Inner {
    fn key(&self, frontend_type: &str, uid: &str) -> String {
        format!("{}{frontend_type}/{uid}", self.root)
    }

    /// Returns this server's lease, granting it on first use.
    async fn lease(&self) -> Result<i64, BindingError> {
        let mut lease = self.lease.lock().await;
        if let Some(id) = *lease {
            return Ok(id);
        }
        let id = self.grant().await?;
        *lease = Some(id);
        Ok(id)
    }

    async fn grant(&self) -> Result<i64, BindingError> {
        let mut client = self.client.clone();
        let ttl = self.ttl.as_secs().max(1) as i64;
        let grant = client.lease_grant(ttl, None);
        let id = within(self.timeout, "grant lease", grant).await?.id();
        tracing::debug!(lease = id, ttl, "binding storage lease granted");
        Ok(id)
    }

    /// Returns a lease replacing `stale`, with this server's bindings put on it
    /// again; when another caller replaced it already, returns theirs.
    async fn regrant(&self, stale: i64) -> Result<i64, BindingError> {
        let mut lease = self.lease.lock().await;
        if let Some(id) = (*lease).filter(|id| *id != stale) {
            return Ok(id);
        }
        let id = self.grant().await?;
        *lease = Some(id);
        drop(lease);

        let uids: Vec<String> = lock(&self.bound).iter().cloned().collect();
        tracing::info!(
            lease = id,
            bindings = uids.len(),
            "binding storage lease replaced"
        );
        for uid in uids {
            // A key still present belongs to another frontend: our old lease
            // took ours with it.
            let key = self.key(&self.server_type, &uid);
            let put = PutOptions::new().with_lease(id);
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, self.server_id.clone(), Some(put))]);
            let mut client = self.client.clone();
            if let Err(e) = within(self.timeout, "put binding", client.txn(txn)).await {
                tracing::warn!(uid, error = %e, "binding not restored on the new lease");
            }
        }
        Ok(id)
    }

    /// Puts the binding of `uid` on `lease`; returns the frontend id it replaced.
    async fn put_on(&self, uid: &str, lease: i64) -> Result<Option<String>, BindingError> {
        let key = self.key(&self.server_type, uid);
        let options = PutOptions::new().with_lease(lease).with_prev_key();
        let mut client = self.client.clone();
        let put = client.put(key, self.server_id.clone(), Some(options));
        let resp = within(self.timeout, "put binding", put).await?;
        Ok(resp
            .prev_key()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// Renews the lease once; returns whether etcd still had it.
    async fn keep_alive(&self, lease: i64) -> Result<bool, BindingError> {
        let mut client = self.client.clone();
        // etcd answers a keep-alive of an unknown lease with an error that
        // looks like a dead link; its time to live tells the two apart.
        let ttl = client.lease_time_to_live(lease, None);
        if within(self.timeout, "renew lease", ttl).await?.ttl() <= 0 {
            return Ok(false);
        }
        let renewal = async {
            let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        let answer = within(self.timeout, "renew lease", renewal).await?;
        Ok(answer.is_some_and(|a| a.ttl() > 0))
    }
}

/// Renews the lease every few seconds (a third of a shorter TTL) until `stop`,
/// replacing it when etcd lost it; after a failure, tries again sooner.
async fn renew(inner: Arc<Inner>, stop: CancellationToken) {
    let every = (inner.ttl / 3)
        .min(RENEW_EVERY)
        .max(Duration::from_millis(100));
    let mut wait = every;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some(lease) = *inner.lease.lock().await else {
            continue;
        };
        let renewed = match inner.keep_alive(lease).await {
            Ok(true) => Ok(()),
            Ok(false) => inner.regrant(lease).await.map(drop),
            Err(e) => Err(e),
        };
        wait = match renewed {
            Ok(()) => every,
            Err(e) => {
                tracing::warn!(lease, error = %e, "binding storage lease not renewed; retrying");
                RETRY.min(every)
            }
        };
    }
}

/// Returns whether `e` is etcd refusing a put because the lease is gone.
fn is_lease_gone(e: &BindingError) -> bool {
    match e {
        BindingError::Backend { source, .. } => source.to_string().contains("lease not found"),
        BindingError::Timeout { .. } => false,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is one call, so the data stays consistent after a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `op` within `limit`, naming it in the error.
async fn within<T>(
    limit: Duration,
    op: &'static str,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, BindingError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(BindingError::Backend {
            op,
            source: e.into(),
        }),
        Err(_) => Err(BindingError::Timeout { op, after: limit }),
    }
}
