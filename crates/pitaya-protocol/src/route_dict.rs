//! Route-compression dictionary (spec 4.5).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Returned when a route dictionary cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DictError {
    /// Two entries name the same route (after trimming).
    #[error("route {0:?} appears more than once in the dictionary")]
    DuplicateRoute(String),
    /// Two entries use the same code.
    #[error("route code {0} appears more than once in the dictionary")]
    DuplicateCode(u16),
    /// An entry's route is empty or only whitespace.
    #[error("dictionary route is empty")]
    EmptyRoute,
}

/// Route-compression dictionary mapping routes to `u16` codes and back.
///
/// Routed messages whose route is in the dictionary travel as a 2-byte code
/// instead of the string. The dictionary is immutable once built and cheap to
/// clone, since every connection of a process shares it (spec 4.5).
#[derive(Clone, Debug, Default)]
pub struct RouteDict {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, u16>,
    routes: HashMap<u16, String>,
}

impl RouteDict {
    /// Returns a dictionary with no entries, so every route is sent as a string.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Returns a dictionary built from `(route, code)` entries.
    ///
    /// Routes are trimmed of surrounding whitespace, as Go Pitaya does.
    ///
    /// # Errors
    ///
    /// [`DictError::EmptyRoute`] for a blank route, [`DictError::DuplicateRoute`]
    /// and [`DictError::DuplicateCode`] when a route or code is given twice.
    pub fn new<I: IntoIterator<Item = (String, u16)>>(entries: I) -> Result<Self, DictError> {
        let mut inner = Inner::default();
        for (route, code) in entries {
            let route = route.trim();
            if route.is_empty() {
                return Err(DictError::EmptyRoute);
            }
            if inner.codes.contains_key(route) {
                return Err(DictError::DuplicateRoute(route.to_owned()));
            }
            if inner.routes.contains_key(&code) {
                return Err(DictError::DuplicateCode(code));
            }
            inner.codes.insert(route.to_owned(), code);
            inner.routes.insert(code, route.to_owned());
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Returns the code of `route`, matched exactly (no trimming), if it has one.
    pub fn code(&self, route: &str) -> Option<u16> {
        self.inner.codes.get(route).copied()
    }

    /// Returns the route that `code` stands for, if any.
    pub fn route(&self, code: u16) -> Option<&str> {
        self.inner.routes.get(&code).map(String::as_str)
    }

    /// Returns whether the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.inner.codes.is_empty()
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.inner.codes.len()
    }

    /// Returns the entries as a sorted map, the form sent in the handshake's `sys.dict`.
    pub fn to_map(&self) -> BTreeMap<String, u16> {
        self.inner
            .codes
            .iter()
            .map(|(r, c)| (r.clone(), *c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(r, c)| (r.to_string(), *c)).collect()
    }

    #[test]
    fn looks_up_both_ways_with_trimmed_routes() {
        let dict =
            RouteDict::new(entries(&[(" chat.room.join ", 1), ("chat.room.say", 2)])).unwrap();
        assert_eq!(dict.code("chat.room.join"), Some(1));
        assert_eq!(dict.code(" chat.room.join "), None);
        assert_eq!(dict.route(2), Some("chat.room.say"));
        assert_eq!(dict.route(3), None);
        assert_eq!(dict.len(), 2);
        assert!(!dict.is_empty());
        let map = dict.to_map();
        assert_eq!(
            map.keys().collect::<Vec<_>>(),
            ["chat.room.join", "chat.room.say"]
        );
    }

    #[test]
    fn empty_dictionary_has_no_entries() {
        let dict = RouteDict::empty();
        assert!(dict.is_empty());
        assert_eq!(dict.len(), 0);
        assert_eq!(dict.code("a"), None);
        assert!(dict.to_map().is_empty());
    }

    #[test]
    fn rejects_duplicate_routes_after_trimming() {
        let err = RouteDict::new(entries(&[("a.b", 1), ("a.b ", 2)])).unwrap_err();
        assert!(matches!(err, DictError::DuplicateRoute(r) if r == "a.b"));
    }

    #[test]
    fn rejects_duplicate_codes() {
        let err = RouteDict::new(entries(&[("a.b", 1), ("a.c", 1)])).unwrap_err();
        assert!(matches!(err, DictError::DuplicateCode(1)));
    }

    #[test]
    fn rejects_blank_routes() {
        assert!(matches!(
            RouteDict::new(entries(&[("", 1)])),
            Err(DictError::EmptyRoute)
        ));
        assert!(matches!(
            RouteDict::new(entries(&[(" \t", 1)])),
            Err(DictError::EmptyRoute)
        ));
    }
}
