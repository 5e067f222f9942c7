//! Groups kept in this process, Pitaya's default group service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{GroupError, GroupStore};

/// Shortest sweep interval; `tokio::time::interval` panics on zero.
const MIN_TICK: Duration = Duration::from_millis(1);

/// A [`GroupStore`] that keeps groups in memory.
///
/// Members are listed in insertion order, except that removing one moves the
/// last member into its place, as Pitaya does. Groups created with a TTL are
/// deleted by [`sweep_expired`](Self::sweep_expired), which
/// [`spawn_sweeper`](Self::spawn_sweeper) runs on an interval; until a sweep
/// runs, an expired group still answers calls.
///
/// Unlike Go Pitaya, whose memory groups are one process-wide map, each store
/// is independent; share one by cloning its `Arc`.
#[derive(Debug, Default)]
pub struct MemoryGroupStore {
    groups: Mutex<HashMap<String, Group>>,
}

#[derive(Debug)]
struct Group {
    /// Uids in order; `index` maps each to its position.
    members: Vec<String>,
    index: HashMap<String, usize>,
    /// Time to live; `None` for groups that never expire.
    ttl: Option<Duration>,
    last_refresh: Instant,
}

// ===== impl Group =====

impl Group {
    fn new(ttl: Option<Duration>) -> Self {
        Self {
            members: Vec::new(),
            index: HashMap::new(),
            ttl,
            last_refresh: Instant::now(),
        }
    }

    fn add(&mut self, uid: &str) -> Result<(), GroupError> {
        if self.index.contains_key(uid) {
            return Err(GroupError::MemberExists);
        }
        self.index.insert(uid.to_owned(), self.members.len());
        self.members.push(uid.to_owned());
        Ok(())
    }

    fn remove(&mut self, uid: &str) -> Result<(), GroupError> {
        let pos = self.index.remove(uid).ok_or(GroupError::MemberNotFound)?;
        self.members.swap_remove(pos);

        // The former last member now sits at `pos`.
        if let Some(moved) = self.members.get(pos) {
            self.index.insert(moved.clone(), pos);
        }
        Ok(())
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.ttl
            .is_some_and(|ttl| now.saturating_duration_since(self.last_refresh) > ttl)
    }
}

// ===== impl MemoryGroupStore =====

impl MemoryGroupStore {
    /// Returns an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes every TTL group not renewed within its TTL and returns how
    /// many were deleted.
    pub fn sweep_expired(&self) -> usize {
        let now = Instant::now();
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|name, group| {
            let expired = group.is_expired(now);
            if expired {
                tracing::debug!(group = %name, "deleting expired group");
            }
            !expired
        });
        before - groups.len()
    }

    /// Returns a task that calls [`sweep_expired`](Self::sweep_expired)
    /// every `tick` until `shutdown` is cancelled.
    ///
    /// The task holds only a weak reference, so it also ends at the first
    /// tick after the last `Arc` to the store is dropped. A zero `tick` is
    /// raised to one millisecond.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        tick: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let store = Arc::downgrade(self);
        let tick = tick.max(MIN_TICK);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(Instant::now() + tick, tick);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let Some(store) = store.upgrade() else { break };
                let deleted = store.sweep_expired();
                if deleted > 0 {
                    tracing::debug!(deleted, "swept expired groups");
                }
            }
        })
    }

    /// Returns the map, recovering it if another thread panicked while
    /// holding the lock: every update below leaves it consistent.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns `f` applied to the named group, or `NotFound`.
    fn with_group<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Group) -> Result<T, GroupError>,
    ) -> Result<T, GroupError> {
        self.lock()
            .get_mut(name)
            .ok_or(GroupError::NotFound)
            .and_then(f)
    }

    fn insert(&self, name: &str, ttl: Option<Duration>) -> Result<(), GroupError> {
        let mut groups = self.lock();
        if groups.contains_key(name) {
            return Err(GroupError::AlreadyExists);
        }
        groups.insert(name.to_owned(), Group::new(ttl));
        Ok(())
    }
}

#[async_trait::async_trait]
impl GroupStore for MemoryGroupStore {
    async fn create(&self, name: &str) -> Result<(), GroupError> {
        self.insert(name, None)
    }

    async fn create_with_ttl(&self, name: &str, ttl: Duration) -> Result<(), GroupError> {
        self.insert(name, Some(ttl))
    }

    async fn members(&self, name: &str) -> Result<Vec<String>, GroupError> {
        self.with_group(name, |g| Ok(g.members.clone()))
    }

    async fn contains_member(&self, name: &str, uid: &str) -> Result<bool, GroupError> {
        // Pitaya checks the uid before looking the group up.
        if uid.is_empty() {
            return Err(GroupError::EmptyUid);
        }
        self.with_group(name, |g| Ok(g.index.contains_key(uid)))
    }

    async fn add_member(&self, name: &str, uid: &str) -> Result<(), GroupError> {
        if uid.is_empty() {
            return Err(GroupError::EmptyUid);
        }
        self.with_group(name, |g| g.add(uid))
    }

    async fn remove_member(&self, name: &str, uid: &str) -> Result<(), GroupError> {
        self.with_group(name, |g| g.remove(uid))
    }

    async fn remove_all(&self, name: &str) -> Result<(), GroupError> {
        self.with_group(name, |g| {
            g.members.clear();
            g.index.clear();
            Ok(())
        })
    }

    async fn count_members(&self, name: &str) -> Result<usize, GroupError> {
        self.with_group(name, |g| Ok(g.members.len()))
    }

    async fn renew_ttl(&self, name: &str) -> Result<(), GroupError> {
        self.with_group(name, |g| {
            if g.ttl.is_none() {
                return Err(GroupError::NoTtl);
            }
            g.last_refresh = Instant::now();
            Ok(())
        })
    }

    async fn delete(&self, name: &str) -> Result<(), GroupError> {
        self.lock()
            .remove(name)
            .map(drop)
            .ok_or(GroupError::NotFound)
    }
}

#[cfg(test)]
mod tests;
