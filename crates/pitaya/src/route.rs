//! Routes: `serverType.service.method`, or `service.method` for the local server type.

use std::fmt;

use crate::Error;

/// A parsed route (spec 5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    server_type: String,
    service: String,
    method: String,
}

impl Route {
    /// Returns the route `raw` names; a two-part route gets `local_type`.
    ///
    /// # Errors
    ///
    /// `PIT-400` for anything but two or three non-blank, dot-separated parts.
    pub fn parse(raw: &str, local_type: &str) -> Result<Route, Error> {
        if raw.is_empty() {
            return Err(Error::bad_request("route field can not be empty"));
        }
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(Error::bad_request(format!("invalid route: {raw}")));
        }
        let (server_type, service, method) = match parts[..] {
            [service, method] => (local_type, service, method),
            [server_type, service, method] => (server_type, service, method),
            _ => return Err(Error::bad_request(format!("invalid route: {raw}"))),
        };
        Ok(Route {
            server_type: server_type.to_owned(),
            service: service.to_owned(),
            method: method.to_owned(),
        })
    }

    /// Returns the server type segment.
    pub fn server_type(&self) -> &str {
        &self.server_type
    }

    /// Returns the service (component) segment.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Returns the method segment.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Returns `service.method`, the key handlers are looked up by.
    pub fn short(&self) -> String {
        format!("{}.{}", self.service, self.method)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.server_type, self.service, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_parts_keep_their_server_type() {
        let r = Route::parse("room.room.join", "connector").unwrap();
        assert_eq!(
            (r.server_type(), r.service(), r.method()),
            ("room", "room", "join")
        );
        assert_eq!(r.to_string(), "room.room.join");
    }

    #[test]
    fn two_parts_get_the_local_type() {
        let r = Route::parse("room.join", "chat").unwrap();
        assert_eq!(r.to_string(), "chat.room.join");
        assert_eq!(r.short(), "room.join");
    }

    #[test]
    fn malformed_routes_are_bad_requests() {
        for raw in ["", "join", "a.b.c.d", "a..b", "a. .b", ".a.b"] {
            let err = Route::parse(raw, "x").unwrap_err();
            assert_eq!(err.code(), "PIT-400", "{raw:?}");
        }
    }
}
