//! The `route` label of forwarded client messages, bounded whatever clients send.
//!
//! A frontend cannot tell from its own registry whether `room.x.y` exists: only a
//! `room` server knows its handlers. So a forwarded route keeps its name in metrics
//! only once a server of its type has answered it with something other than
//! `PIT-404`; until then it is [`UNKNOWN_ROUTE`]. The set of such routes grows no
//! larger than the cluster's handlers, since a server without the handler answers
//! `PIT-404`; the cap guards against a peer that answers every route.

use std::collections::HashSet;
use std::sync::{PoisonError, RwLock};

use super::UNKNOWN_ROUTE;

/// Most routes kept; beyond it new routes stay [`UNKNOWN_ROUTE`].
const MAX_CONFIRMED: usize = 4096;

/// Forwarded routes that a server of their type confirmed it serves.
#[derive(Debug, Default)]
pub(crate) struct RouteLabels {
    confirmed: RwLock<HashSet<String>>,
}

impl RouteLabels {
    /// Records that a server of `route`'s type answered it from a handler.
    pub(crate) fn confirm(&self, route: &str) {
        if self.is_confirmed(route) {
            return;
        }
        let mut confirmed = self
            .confirmed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if confirmed.len() < MAX_CONFIRMED {
            confirmed.insert(route.to_owned());
        } else {
            tracing::debug!(route, "route not added to metric labels: too many routes");
        }
    }

    /// Returns the label of forwarded `route`: itself once confirmed, else
    /// [`UNKNOWN_ROUTE`].
    pub(crate) fn label<'a>(&self, route: &'a str) -> &'a str {
        if self.is_confirmed(route) {
            route
        } else {
            UNKNOWN_ROUTE
        }
    }

    fn is_confirmed(&self, route: &str) -> bool {
        let confirmed = self
            .confirmed
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        confirmed.contains(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confirmed_routes_keep_their_name() {
        let labels = RouteLabels::default();
        assert_eq!(labels.label("room.room.join"), UNKNOWN_ROUTE);
        labels.confirm("room.room.join");
        assert_eq!(labels.label("room.room.join"), "room.room.join");
        assert_eq!(labels.label("room.room.other"), UNKNOWN_ROUTE);
    }

    #[test]
    fn confirmed_routes_are_capped() {
        let labels = RouteLabels::default();
        for i in 0..MAX_CONFIRMED + 10 {
            labels.confirm(&format!("room.r.m{i}"));
        }
        let last = format!("room.r.m{}", MAX_CONFIRMED + 9);
        assert_eq!(labels.label(&last), UNKNOWN_ROUTE);
        assert_eq!(labels.label("room.r.m0"), "room.r.m0");
        assert_eq!(labels.confirmed.read().unwrap().len(), MAX_CONFIRMED);
    }
}
