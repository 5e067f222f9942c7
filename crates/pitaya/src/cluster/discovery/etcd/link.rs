//! One live registration in etcd: client, lease, keep-alive and watch.
//!
//! A [`Link`] is built whole or not at all. When any part of it fails, the
//! discovery task drops it and builds a new one, which re-registers this
//! server and re-reads the list (spec 9.3).

use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions,
    WatchOptions, WatchResponse, WatchStream,
};

use super::Shared;
use crate::cluster::discovery::BoxError;

/// A registration that is working, as far as we know.
pub(super) struct Link {
    pub(super) client: Client,
    pub(super) lease: i64,
    keeper: LeaseKeeper,
    keep_alive: LeaseKeepAliveStream,
    pub(super) watch: WatchStream,
}

// etcd-client's streams have no Debug; the lease id is what matters.
impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connects, registers this server and reads the server list.
    ///
    /// `lease` is a lease from an earlier link: kept if etcd still knows it
    /// (etcd restarted with its data), replaced by a new one otherwise.
    pub(super) async fn establish(shared: &Shared, lease: Option<i64>) -> Result<Link, BoxError> {
        let config = &shared.config;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_timeout(config.dial_timeout);
        if !config.user.is_empty() && !config.pass.is_empty() {
            options = options.with_user(config.user.clone(), config.pass.clone());
        }
        let mut client = Client::connect(&config.endpoints, Some(options)).await?;

        // An earlier lease is kept while etcd knows it; else we need a new one.
        let reused = match lease {
            Some(id) => keep_alive_once(&mut client, id).await?,
            None => None,
        };
        let (lease, keeper, keep_alive) = match reused {
            Some(parts) => parts,
            None => {
                let ttl = config.heartbeat.ttl.as_secs() as i64;
                let id = client.lease_grant(ttl, None).await?.id();
                let (keeper, stream) = client.lease_keep_alive(id).await?;
                (id, keeper, stream)
            }
        };

        // A put on a known key only moves it to the new lease; watchers
        // ignore PUTs of known servers.
        let put = PutOptions::new().with_lease(lease);
        client
            .put(
                shared.own_key.clone(),
                shared.cache.local().to_json(),
                Some(put),
            )
            .await?;

        let revision = full_sync(shared, &mut client).await?;
        let from = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let watch = client
            .watch(shared.servers_prefix.clone(), Some(from))
            .await?;
        Ok(Link {
            client,
            lease,
            keeper,
            keep_alive,
            watch,
        })
    }

    /// Renews the lease once, failing when etcd does not answer in `limit`.
    pub(super) async fn keep_alive(&mut self, log: bool, limit: Duration) -> Result<(), BoxError> {
        self.keeper.keep_alive().await?;
        // A stream on a dead connection may never end; the limit keeps one
        // renewal from holding up the watch.
        let answer = tokio::time::timeout(limit, self.keep_alive.message())
            .await
            .map_err(|_| format!("no lease renewal answer within {limit:?}"))??;
        match answer {
            Some(answer) if answer.ttl() > 0 => {
                if log {
                    tracing::info!(lease = self.lease, ttl = answer.ttl(), "etcd lease renewed");
                }
                Ok(())
            }
            Some(_) => Err(format!("etcd lease {:x} expired", self.lease).into()),
            None => Err("etcd closed the keep-alive stream".into()),
        }
    }
}

/// Returns the lease `id` with a running keep-alive if etcd still has it.
async fn keep_alive_once(
    client: &mut Client,
    id: i64,
) -> Result<Option<(i64, LeaseKeeper, LeaseKeepAliveStream)>, BoxError> {
    // etcd answers a keep-alive for an unknown lease with an error, which
    // we could not tell from a dead link; asking for the TTL first can.
    if client.lease_time_to_live(id, None).await?.ttl() <= 0 {
        return Ok(None);
    }
    let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
    keeper.keep_alive().await?;
    match stream.message().await? {
        Some(answer) if answer.ttl() > 0 => Ok(Some((id, keeper, stream))),
        _ => Ok(None),
    }
}

/// Reads every record under `servers/`, makes the cache match, and returns
/// the revision of the read so a watch can start right after it.
pub(super) async fn full_sync(shared: &Shared, client: &mut Client) -> Result<i64, BoxError> {
    let options = GetOptions::new().with_prefix();
    let response = client
        .get(shared.servers_prefix.clone(), Some(options))
        .await?;
    let revision = response.header().map_or(0, |h| h.revision());
    let found = response
        .kvs()
        .iter()
        .filter_map(|kv| shared.record(kv.key(), kv.value()))
        .collect();
    shared.cache.sync(found);
    Ok(revision)
}

/// What a watch message asks the task to do next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum WatchOutcome {
    /// Keep watching.
    Continue,
    /// Our own record was deleted behind our back: register again.
    OwnRecordDeleted,
}

/// Applies one watch message to the cache.
///
/// # Errors
///
/// Returns an error when etcd cancelled the watch (for example after a
/// compaction), so the caller builds a new link and re-reads the list.
pub(super) fn apply_watch(
    shared: &Shared,
    response: &WatchResponse,
) -> Result<WatchOutcome, BoxError> {
    if response.canceled() {
        return Err(format!("etcd cancelled the watch: {}", response.cancel_reason()).into());
    }
    let mut outcome = WatchOutcome::Continue;
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        match event.event_type() {
            EventType::Put => {
                if let Some(info) = shared.record(kv.key(), kv.value()) {
                    if shared.cache.add(info) {
                        tracing::debug!(key = %String::from_utf8_lossy(kv.key()), "server added");
                    }
                }
            }
            EventType::Delete => {
                let Some((_, id)) = shared.split_key(kv.key()) else {
                    continue;
                };
                if id == shared.cache.local().id {
                    outcome = WatchOutcome::OwnRecordDeleted;
                } else if shared.cache.remove(id) {
                    tracing::debug!(server_id = id, "server removed");
                }
            }
        }
    }
    Ok(outcome)
}

/// Returns the pause between lease renewals: a third of the TTL, as etcd's
/// own clients renew, so two renewals may fail before the lease expires.
pub(super) fn renew_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(100))
}
