//! An in-memory server list changed by code.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{DiscoveryError, DiscoveryEvent, ServerCache, ServiceDiscovery};
use crate::cluster::ServerInfo;

/// Service discovery over a list that code fills: for tests, and for fixed
/// clusters that need no etcd.
///
/// # Examples
///
/// ```
/// use pitaya::cluster::{ServerInfo, ServiceDiscovery, StaticDiscovery};
///
/// let discovery = StaticDiscovery::new(ServerInfo::new("connector", true));
/// discovery.add(ServerInfo::new("room", false).with_id("room-1"));
/// assert_eq!(discovery.servers_by_type("room")[0].id, "room-1");
/// ```
#[derive(Debug)]
pub struct StaticDiscovery {
    cache: ServerCache,
}

impl StaticDiscovery {
    /// Returns a list holding only this server, `me`.
    pub fn new(me: ServerInfo) -> StaticDiscovery {
        StaticDiscovery {
            cache: ServerCache::new(me),
        }
    }

    /// Adds `server` and returns true, or returns false when its id is
    /// already known (the known record is kept).
    pub fn add(&self, server: ServerInfo) -> bool {
        self.cache.add(server)
    }

    /// Removes the server `id` and returns whether it was known; this
    /// server's own record cannot be removed.
    pub fn remove(&self, id: &str) -> bool {
        self.cache.remove(id)
    }

    /// Replaces the list with `servers` (this server stays): announces the
    /// ids that appear and those that disappear; known ids keep their record.
    pub fn replace(&self, servers: Vec<ServerInfo>) {
        self.cache.sync(servers);
    }
}

#[async_trait]
impl ServiceDiscovery for StaticDiscovery {
    fn local(&self) -> Arc<ServerInfo> {
        self.cache.local()
    }

    fn servers_by_type(&self, server_type: &str) -> Vec<Arc<ServerInfo>> {
        self.cache.servers_by_type(server_type)
    }

    fn server(&self, id: &str) -> Option<Arc<ServerInfo>> {
        self.cache.server(id)
    }

    fn servers(&self) -> Vec<Arc<ServerInfo>> {
        self.cache.servers()
    }

    fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent> {
        self.cache.subscribe()
    }

    async fn shutdown(&self) -> Result<(), DiscoveryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;

    fn room(id: &str) -> ServerInfo {
        ServerInfo::new("room", false).with_id(id)
    }

    fn discovery() -> StaticDiscovery {
        StaticDiscovery::new(ServerInfo::new("connector", true).with_id("me"))
    }

    fn ids(servers: Vec<Arc<ServerInfo>>) -> Vec<String> {
        let mut ids: Vec<String> = servers.iter().map(|s| s.id.clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn own_record_is_listed_but_never_announced_or_removed() {
        let d = discovery();
        let mut events = d.subscribe();
        assert_eq!(d.local().id, "me");
        assert_eq!(ids(d.servers_by_type("connector")), ["me"]);
        assert!(d.server("me").is_some());
        assert!(!d.remove("me"));
        assert!(d.server("me").is_some());
        assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn add_and_remove_announce_each_change_once() {
        let d = discovery();
        let mut events = d.subscribe();

        assert!(d.add(room("r1")));
        assert!(d.add(room("r2")));
        assert_eq!(ids(d.servers_by_type("room")), ["r1", "r2"]);
        assert_eq!(ids(d.servers()), ["me", "r1", "r2"]);
        assert!(d.remove("r1"));
        assert!(!d.remove("r1"));

        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(match event {
                DiscoveryEvent::Added(s) => format!("+{}", s.id),
                DiscoveryEvent::Removed(s) => format!("-{}", s.id),
            });
        }
        assert_eq!(seen, ["+r1", "+r2", "-r1"]);
        assert!(d.server("r1").is_none());
    }

    #[test]
    fn a_known_id_keeps_its_first_record() {
        let d = discovery();
        assert!(d.add(room("r1")));
        assert!(!d.add(room("r1").with_metadata("k", "v")));
        assert!(d.server("r1").unwrap().metadata.is_empty());
    }

    #[test]
    fn replace_announces_only_the_difference() {
        let d = discovery();
        d.add(room("r1"));
        d.add(room("r2"));
        let mut events = d.subscribe();

        d.replace(vec![room("r2"), room("r3")]);
        assert_eq!(ids(d.servers()), ["me", "r2", "r3"]);
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(match event {
                DiscoveryEvent::Added(s) => format!("+{}", s.id),
                DiscoveryEvent::Removed(s) => format!("-{}", s.id),
            });
        }
        assert_eq!(seen, ["-r1", "+r3"]);
    }

    #[test]
    fn lookups_by_type_and_id_find_only_matches() {
        let d = discovery();
        d.add(room("r1"));
        assert!(d.servers_by_type("chat").is_empty());
        assert!(d.server("nobody").is_none());
    }

    #[tokio::test]
    async fn works_as_a_trait_object() {
        let d: Arc<dyn ServiceDiscovery> = Arc::new(discovery());
        assert_eq!(d.servers().len(), 1);
        d.shutdown().await.unwrap();
    }
}
