//! Server addresses: `tcp://host:port`, `tls://host:port`, `ws://host:port/path`,
//! `wss://host:port/path`; a bare `host:port` means TCP.

use std::fmt;
use std::str::FromStr;

use crate::ClientError;

/// Transport named by a URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Plain TCP (`tcp://`).
    Tcp,
    /// TLS over TCP (`tls://`).
    Tls,
    /// WebSocket (`ws://`).
    Ws,
    /// WebSocket over TLS (`wss://`).
    Wss,
}

impl Scheme {
    /// Returns the scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Returns whether the transport runs over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

/// A parsed server address.
///
/// The port is required for every scheme: Pitaya has no default port (spec 1.4). The path
/// matters only for WebSocket; Pitaya accepts any path (spec 1.6), and `/` is used when
/// none is given.
///
/// # Examples
///
/// ```
/// use pitaya_client::{Scheme, ServerUrl};
///
/// let url: ServerUrl = "ws://[::1]:3251/game".parse()?;
/// assert_eq!(url.scheme(), Scheme::Ws);
/// assert_eq!(url.host(), "::1");
/// assert_eq!(url.port(), 3251);
/// assert_eq!(url.path(), "/game");
/// # Ok::<(), pitaya_client::ClientError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

// ===== impl ServerUrl =====

impl ServerUrl {
    /// Returns the transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Returns the host name or IP address, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the WebSocket path (with query, if any), `/` when none was given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Returns `host:port`, with brackets around an IPv6 address, for connecting.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerUrl {
    type Err = ClientError;

    fn from_str(url: &str) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        // Pitaya's own CLI takes bare `host:port` addresses; they mean TCP.
        let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url));
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            _ => return Err(bad("scheme is not tcp, tls, ws or wss")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !path.is_empty() && !scheme_has_path(scheme) {
            return Err(bad("only ws and wss urls take a path"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("expected host:port"))?;
        let port = port.parse().map_err(|_| bad("port is not a number"))?;
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())?;
        if scheme_has_path(self.scheme) {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

fn scheme_has_path(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Ws | Scheme::Wss)
}

/// Returns host and port of `host:port` or `[v6]:port`; `None` when either is missing.
fn split_host_port(authority: &str) -> Option<(&str, &str)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        (host, rest.strip_prefix(':')?)
    } else {
        authority.rsplit_once(':')?
    };
    if host.is_empty() || port.is_empty() || host.contains(['@', ' ']) {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ServerUrl {
        s.parse().unwrap()
    }

    #[test]
    fn parses_each_scheme() {
        let tcp = parse("tcp://127.0.0.1:3250");
        assert_eq!(
            (tcp.scheme(), tcp.host(), tcp.port()),
            (Scheme::Tcp, "127.0.0.1", 3250)
        );
        assert_eq!(parse("TLS://example.com:443").scheme(), Scheme::Tls);
        assert_eq!(parse("ws://h:1").path(), "/");
        assert_eq!(parse("wss://h:1/a/b?x=1").path(), "/a/b?x=1");
        assert_eq!(parse("ws://h:1?x=1").path(), "/?x=1");
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let url = parse("tcp://[::1]:3250");
        assert_eq!(url.host(), "::1");
        assert_eq!(url.authority(), "[::1]:3250");
        assert_eq!(url.to_string(), "tcp://[::1]:3250");
    }

    #[test]
    fn displays_path_only_for_websocket() {
        assert_eq!(parse("ws://h:1/p").to_string(), "ws://h:1/p");
        assert_eq!(parse("tls://h:1").to_string(), "tls://h:1");
    }

    #[test]
    fn bare_host_and_port_mean_tcp() {
        let url = parse("127.0.0.1:3250");
        assert_eq!(url.scheme(), Scheme::Tcp);
        assert_eq!(url.to_string(), "tcp://127.0.0.1:3250");
    }

    #[test]
    fn rejects_malformed_urls() {
        for bad in [
            "127.0.0.1",
            "http://h:1",
            "tcp://h",
            "tcp://:1",
            "tcp://h:",
            "tcp://h:70000",
            "tcp://h:x",
            "tcp://h:1/path",
            "tcp://[::1:1",
            "tcp://user@h:1",
        ] {
            let err = bad.parse::<ServerUrl>().unwrap_err();
            assert!(
                matches!(err, ClientError::InvalidUrl { .. }),
                "{bad}: {err}"
            );
        }
    }
}
