//! The local server list shared by every discovery implementation.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::broadcast;

use super::DiscoveryEvent;
use crate::cluster::ServerInfo;

/// Events a subscriber may fall behind by before it sees `Lagged`.
const EVENT_BUFFER: usize = 1024;

/// Known servers by id, with this server's own record pinned in.
#[derive(Debug)]
pub(crate) struct ServerCache {
    me: Arc<ServerInfo>,
    servers: RwLock<HashMap<String, Arc<ServerInfo>>>,
    events: broadcast::Sender<DiscoveryEvent>,
}

impl ServerCache {
    /// Returns a cache holding only `me`.
    pub(crate) fn new(me: ServerInfo) -> ServerCache {
        let me = Arc::new(me);
        let servers = HashMap::from([(me.id.clone(), me.clone())]);
        ServerCache {
            me,
            servers: RwLock::new(servers),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    pub(crate) fn local(&self) -> Arc<ServerInfo> {
        self.me.clone()
    }

    /// Adds `info` unless its id is known, and returns whether it did.
    ///
    /// A record for a known id is ignored, as Go Pitaya ignores PUTs of known
    /// servers: metadata changes show only after a remove and re-add.
    pub(crate) fn add(&self, info: ServerInfo) -> bool {
        let mut servers = self.servers.write().unwrap_or_else(PoisonError::into_inner);
        if servers.contains_key(&info.id) {
            return false;
        }
        let info = Arc::new(info);
        servers.insert(info.id.clone(), info.clone());
        // Sending under the lock keeps events in the order of the changes.
        let _ = self.events.send(DiscoveryEvent::Added(info));
        true
    }

    /// Removes the server `id`, never this one, and returns whether it did.
    pub(crate) fn remove(&self, id: &str) -> bool {
        if id == self.me.id {
            return false;
        }
        let mut servers = self.servers.write().unwrap_or_else(PoisonError::into_inner);
        match servers.remove(id) {
            Some(info) => {
                let _ = self.events.send(DiscoveryEvent::Removed(info));
                true
            }
            None => false,
        }
    }

    /// Makes the list equal to `found` plus this server: adds unknown ids and
    /// removes ids missing from `found`.
    pub(crate) fn sync(&self, found: Vec<ServerInfo>) {
        let found_ids: std::collections::HashSet<String> =
            found.iter().map(|info| info.id.clone()).collect();
        let gone: Vec<String> = self
            .servers()
            .into_iter()
            .filter(|info| info.id != self.me.id && !found_ids.contains(&info.id))
            .map(|info| info.id.clone())
            .collect();
        for id in gone {
            self.remove(&id);
        }
        for info in found {
            self.add(info);
        }
    }

    pub(crate) fn servers_by_type(&self, server_type: &str) -> Vec<Arc<ServerInfo>> {
        let servers = self.servers.read().unwrap_or_else(PoisonError::into_inner);
        servers
            .values()
            .filter(|info| info.server_type == server_type)
            .cloned()
            .collect()
    }

    pub(crate) fn server(&self, id: &str) -> Option<Arc<ServerInfo>> {
        let servers = self.servers.read().unwrap_or_else(PoisonError::into_inner);
        servers.get(id).cloned()
    }

    pub(crate) fn servers(&self) -> Vec<Arc<ServerInfo>> {
        let servers = self.servers.read().unwrap_or_else(PoisonError::into_inner);
        servers.values().cloned().collect()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent> {
        self.events.subscribe()
    }
}
