//! Service discovery in etcd, compatible with Go Pitaya's (spec 9).
//!
//! Each server writes its [`ServerInfo`] as JSON under
//! `<prefix>servers/<type>/<id>`, attached to a lease that it renews every
//! third of the TTL, so a server that dies disappears when its lease expires.
//! Everyone reads the whole prefix at start, then follows a prefix watch: a
//! PUT of an unknown id adds a server, a DELETE removes it. A full re-read
//! every `syncservers.interval` repairs anything the watch missed.
//!
//! When etcd goes away we keep serving the cached list and retry every
//! `grantlease.retryinterval`; once etcd answers, we re-register (reusing the
//! lease if etcd kept it, else with a new one), re-read the list and watch
//! again.

mod link;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use self::link::{Link, WatchOutcome};
use super::{BoxError, DiscoveryError, DiscoveryEvent, ServerCache, ServiceDiscovery};
use crate::cluster::ServerInfo;
use crate::config::EtcdSdConfig;

/// Pause between connection attempts while starting up.
const STARTUP_RETRY: Duration = Duration::from_millis(500);

/// Service discovery backed by etcd.
///
/// # Examples
///
/// ```no_run
/// use pitaya::cluster::{EtcdDiscovery, ServerInfo, ServiceDiscovery};
/// use pitaya::config::EtcdSdConfig;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let me = ServerInfo::new("connector", true);
/// let discovery = EtcdDiscovery::start(EtcdSdConfig::default(), me).await?;
/// let rooms = discovery.servers_by_type("room");
/// discovery.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EtcdDiscovery {
    shared: Arc<Shared>,
    lease: Arc<Mutex<i64>>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What the discovery task and the handle share.
#[derive(Debug)]
struct Shared {
    config: EtcdSdConfig,
    cache: ServerCache,
    /// `<prefix>servers/`, the watched prefix.
    servers_prefix: String,
    /// `<prefix>servers/<type>/<id>` of this server.
    own_key: String,
    /// Whether the last link to etcd holds our record: false from a lost link until
    /// the next re-registration.
    registered: AtomicBool,
}

// ===== impl EtcdDiscovery =====

impl EtcdDiscovery {
    /// Returns discovery running for `me`: registered, with the current list
    /// read and a watch following it.
    ///
    /// An unreachable etcd is retried, with a warning per attempt, until
    /// `config.startup_timeout` has passed.
    ///
    /// # Errors
    ///
    /// Returns [`DiscoveryError::InvalidServer`] when the id or type of `me`
    /// is empty or contains `/`, and [`DiscoveryError::Unreachable`] when etcd
    /// did not answer before the start-up deadline.
    pub async fn start(config: EtcdSdConfig, me: ServerInfo) -> Result<Self, DiscoveryError> {
        for (what, value) in [("id", &me.id), ("type", &me.server_type)] {
            if value.is_empty() || value.contains('/') {
                let msg = format!("server {what} {value:?} must be non-empty and without '/'");
                return Err(DiscoveryError::InvalidServer(msg));
            }
        }
        let servers_prefix = format!("{}servers/", config.prefix);
        let own_key = format!("{servers_prefix}{}/{}", me.server_type, me.id);
        let shared = Arc::new(Shared {
            config,
            cache: ServerCache::new(me),
            servers_prefix,
            own_key,
            registered: AtomicBool::new(false),
        });

        let link = connect_at_startup(&shared).await?;
        shared.registered.store(true, Ordering::Release);
        tracing::info!(
            server_id = %shared.cache.local().id,
            key = %shared.own_key,
            lease = link.lease,
            servers = shared.cache.servers().len(),
            "registered in etcd"
        );
        let lease = Arc::new(Mutex::new(link.lease));
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(shared.clone(), link, lease.clone(), stop.clone()));
        Ok(EtcdDiscovery {
            shared,
            lease,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Returns the etcd key of this server's record.
    pub fn key(&self) -> &str {
        &self.shared.own_key
    }

    /// Stops the background task without revoking the lease.
    async fn stop_task(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            // The task only ends by cancellation; a panic there was logged.
            let _ = task.await;
        }
    }

    async fn revoke(&self) -> Result<(), DiscoveryError> {
        let config = &self.shared.config;
        let lease = *self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        let revoke = async {
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(config.dial_timeout)
                .with_timeout(config.revoke.timeout);
            let mut client = etcd_client::Client::connect(&config.endpoints, Some(options)).await?;
            client.lease_revoke(lease).await?;
            Ok::<_, etcd_client::Error>(())
        };
        match tokio::time::timeout(config.revoke.timeout, revoke).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DiscoveryError::Backend {
                op: "revoke lease",
                source: e.into(),
            }),
            Err(_) => Err(DiscoveryError::Timeout {
                op: "revoke lease",
                after: config.revoke.timeout,
            }),
        }
    }
}

#[async_trait]
impl ServiceDiscovery for EtcdDiscovery {
    fn local(&self) -> Arc<ServerInfo> {
        self.shared.cache.local()
    }

    fn servers_by_type(&self, server_type: &str) -> Vec<Arc<ServerInfo>> {
        self.shared.cache.servers_by_type(server_type)
    }

    fn server(&self, id: &str) -> Option<Arc<ServerInfo>> {
        self.shared.cache.server(id)
    }

    fn servers(&self) -> Vec<Arc<ServerInfo>> {
        self.shared.cache.servers()
    }

    fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent> {
        self.shared.cache.subscribe()
    }

    fn is_registered(&self) -> bool {
        self.shared.registered.load(Ordering::Acquire)
    }

    /// Stops following changes, revokes the lease, which deletes this
    /// server's record at once, then waits `shutdown.delay` so others see the
    /// removal before this server stops answering.
    async fn shutdown(&self) -> Result<(), DiscoveryError> {
        self.stop_task().await;
        self.revoke().await?;
        tracing::info!(key = %self.shared.own_key, "deregistered from etcd");
        tokio::time::sleep(self.shared.config.shutdown.delay).await;
        Ok(())
    }
}

impl Drop for EtcdDiscovery {
    /// Stops renewing without revoking: the record lives until its lease
    /// expires, as when the process dies. Call `shutdown` to leave at once.
    fn drop(&mut self) {
        self.stop.cancel();
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

// ===== impl Shared =====

impl Shared {
    /// Returns `(type, id)` of a key under `servers/`, or `None` for keys of
    /// another shape, which Pitaya ignores (spec 9.1).
    fn split_key<'k>(&self, key: &'k [u8]) -> Option<(&'k str, &'k str)> {
        let rest = key.strip_prefix(self.servers_prefix.as_bytes())?;
        let (server_type, id) = std::str::from_utf8(rest).ok()?.split_once('/')?;
        let well_formed = !server_type.is_empty() && !id.is_empty() && !id.contains('/');
        well_formed.then_some((server_type, id))
    }

    /// Returns the record stored at `key`, or `None` (logged) when the key is
    /// not a server key, the type is blacklisted or the value is not a
    /// record matching its key.
    fn record(&self, key: &[u8], value: &[u8]) -> Option<ServerInfo> {
        let (server_type, id) = self.split_key(key)?;
        let own_type = server_type == self.cache.local().server_type;
        let blacklist = &self.config.server_types_blacklist;
        if !own_type && blacklist.iter().any(|t| t == server_type) {
            return None;
        }
        let key = String::from_utf8_lossy(key);
        match ServerInfo::from_json(value) {
            Ok(info) if info.id == id && info.server_type == server_type => Some(info),
            Ok(_) => {
                tracing::warn!(%key, "server record does not match its key");
                None
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "malformed server record");
                None
            }
        }
    }
}

// ===== the discovery task =====

/// Returns the first link, retrying until the start-up deadline.
async fn connect_at_startup(shared: &Shared) -> Result<Link, DiscoveryError> {
    let config = &shared.config;
    let started = Instant::now();
    loop {
        let error: BoxError = match attempt(shared, None, config.dial_timeout).await {
            Ok(link) => return Ok(link),
            Err(e) => e,
        };
        let waited = started.elapsed();
        if waited + STARTUP_RETRY >= config.startup_timeout {
            return Err(DiscoveryError::Unreachable {
                endpoints: config.endpoints.join(","),
                waited,
                source: error,
            });
        }
        tracing::warn!(
            endpoints = %config.endpoints.join(","),
            error = %error,
            waited = ?waited,
            deadline = ?config.startup_timeout,
            "etcd unreachable; retrying until the start-up deadline"
        );
        tokio::time::sleep(STARTUP_RETRY).await;
    }
}

/// Returns a new link, or an error when it failed or took longer than `limit`.
async fn attempt(shared: &Shared, lease: Option<i64>, limit: Duration) -> Result<Link, BoxError> {
    match tokio::time::timeout(limit, Link::establish(shared, lease)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer from etcd within {limit:?}").into()),
    }
}

/// Follows changes until `stop`: renews the lease, applies the watch, re-reads
/// the list periodically, and rebuilds the link whenever etcd fails.
async fn run(shared: Arc<Shared>, mut link: Link, lease: Arc<Mutex<i64>>, stop: CancellationToken) {
    let config = &shared.config;
    let mut renew = tokio::time::interval(link::renew_interval(config.heartbeat.ttl));
    let mut resync = tokio::time::interval(config.sync_servers.interval);
    // After a stall, one renewal is enough; a burst of them would not help.
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Both intervals fire at once; the link was just renewed and synced.
    renew.tick().await;
    resync.tick().await;

    loop {
        let result: Result<(), BoxError> = tokio::select! {
            () = stop.cancelled() => return,
            _ = renew.tick() => link.keep_alive(config.heartbeat.log, config.dial_timeout).await,
            _ = resync.tick() => link::full_sync(&shared, &mut link.client).await.map(drop),
            message = link.watch.message() => match message {
                Ok(Some(response)) => match link::apply_watch(&shared, &response) {
                    Ok(WatchOutcome::Continue) => Ok(()),
                    Ok(WatchOutcome::OwnRecordDeleted) => Err("our record was deleted".into()),
                    Err(e) => Err(e),
                },
                Ok(None) => Err("etcd closed the watch".into()),
                Err(e) => Err(e.into()),
            },
        };
        let Err(error) = result else { continue };

        shared.registered.store(false, Ordering::Release);
        tracing::warn!(error = %error, "lost etcd; serving the cached server list meanwhile");
        let Some(new_link) = reconnect(&shared, link.lease, &stop).await else {
            return;
        };
        link = new_link;
        shared.registered.store(true, Ordering::Release);
        *lease.lock().unwrap_or_else(PoisonError::into_inner) = link.lease;
        renew.reset();
        resync.reset();
    }
}

/// Returns a new link once etcd answers again, or `None` when stopped first.
async fn reconnect(shared: &Shared, lease: i64, stop: &CancellationToken) -> Option<Link> {
    let config = &shared.config.grant_lease;
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            result = attempt(shared, Some(lease), config.timeout) => match result {
                Ok(link) => {
                    tracing::info!(
                        key = %shared.own_key,
                        lease = link.lease,
                        renewed = link.lease == lease,
                        "re-registered in etcd"
                    );
                    return Some(link);
                }
                Err(e) if failures + 1 == config.max_retries => {
                    tracing::error!(
                        error = %e,
                        attempts = failures + 1,
                        "etcd still unreachable; serving the cached server list and retrying"
                    );
                }
                Err(e) => tracing::debug!(error = %e, "etcd re-registration failed"),
            },
        }
        failures = failures.saturating_add(1);
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(config.retry_interval) => {}
        }
    }
}
