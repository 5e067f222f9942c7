//! The cap on client connections one server holds at once (`pitaya.acceptor.maxconnections`).
//!
//! Connections over the cap are closed at accept rather than queued: a client told
//! "no" at once can retry elsewhere, one left waiting cannot tell a full server from a
//! dead one, and the kernel's queue would hold it only until its own timeout.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots for the connections of every acceptor of one app.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimit {
    /// `None` when there is no limit.
    slots: Option<Arc<Semaphore>>,
    max: usize,
}

/// A connection's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ConnectionLimit {
    /// Returns a limit of `max` connections at once; zero means no limit.
    pub(crate) fn new(max: usize) -> Self {
        // A semaphore holds at most MAX_PERMITS; more than that is no limit in practice.
        let slots = (max > 0).then(|| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
        ConnectionLimit { slots, max }
    }

    /// Returns a slot for a connection just accepted, or `None`, with a warning, when
    /// every slot is taken and the connection must be closed.
    pub(crate) fn admit(
        &self,
        remote: SocketAddr,
        transport: &'static str,
    ) -> Option<ConnectionSlot> {
        let Some(slots) = &self.slots else {
            return Some(ConnectionSlot { _permit: None });
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(ConnectionSlot {
                _permit: Some(permit),
            }),
            Err(_) => {
                tracing::warn!(
                    remote = %remote,
                    transport,
                    max_connections = self.max,
                    "connection limit reached; connection closed"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4000))
    }

    #[test]
    fn slots_run_out_and_come_back_when_dropped() {
        let limit = ConnectionLimit::new(2);
        let first = limit.admit(addr(), "tcp").unwrap();
        let _second = limit.admit(addr(), "tcp").unwrap();
        assert!(limit.admit(addr(), "tcp").is_none());

        drop(first);
        assert!(limit.admit(addr(), "tcp").is_some());
    }

    #[test]
    fn zero_means_no_limit() {
        let limit = ConnectionLimit::new(0);
        let slots: Vec<_> = (0..1000).map(|_| limit.admit(addr(), "tcp")).collect();
        assert!(slots.iter().all(Option::is_some));
    }

    #[test]
    fn clones_share_the_slots() {
        let limit = ConnectionLimit::new(1);
        let _slot = limit.admit(addr(), "tcp").unwrap();
        assert!(limit.clone().admit(addr(), "ws").is_none());
    }
}
