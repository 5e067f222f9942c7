//! Cluster RPC over gRPC (spec section 8).
//!
//! Every server runs the gRPC service `protos.Pitaya` on
//! `pitaya.cluster.rpc.server.grpc.port` and publishes where to reach it in its
//! discovery metadata:
//!
//! ```text
//! grpcHost, grpcPort                        internal address
//! grpc-external-host, grpc-external-port    external address (set by the app)
//! region                                    pitaya.cluster.info.region
//! ```
//!
//! | method | request | answer |
//! |---|---|---|
//! | `/protos.Pitaya/Call` | `Request` | `Response`; handler errors inside it |
//! | `/protos.Pitaya/PushToUser` | `Push` | `Response{data: "ack"}` |
//! | `/protos.Pitaya/KickUser` | `KickMsg` | `KickAnswer{kicked: true}` |
//! | `/protos.Pitaya/SessionBindRemote` | `BindMsg` | `Response{data: "ack"}` |
//!
//! A call goes straight to the server chosen. Pushes and kicks by uid first ask
//! the binding storage ([`crate::cluster::bindings`]) which frontend holds the
//! user; frontends record there every user that binds on them. Connections to
//! peers are tonic channels, made on first use and dropped when discovery says
//! the peer left. Pushes go through a queue per peer and are sent in the
//! background, in order per user, as NATS delivers them (`pusher.rs`).

mod client;
mod pusher;
mod server;
mod transport;

pub use transport::GrpcRpc;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tonic::{Code, Status};

use crate::cluster::bindings::BindingStorage;
use crate::cluster::ServerInfo;

/// Metadata key of a server's internal gRPC host (spec 8).
pub const GRPC_HOST: &str = "grpcHost";
/// Metadata key of a server's internal gRPC port.
pub const GRPC_PORT: &str = "grpcPort";
/// Metadata key of a server's external gRPC host.
pub const GRPC_EXTERNAL_HOST: &str = "grpc-external-host";
/// Metadata key of a server's external gRPC port.
pub const GRPC_EXTERNAL_PORT: &str = "grpc-external-port";
/// Metadata key of a server's region.
pub const REGION: &str = "region";

/// Message of the gRPC error for a push or kick of a user not here, Pitaya's.
const SESSION_NOT_FOUND: &str = "session not found";

/// What the client and server sides of one app share.
#[derive(Debug)]
struct Shared {
    bindings: Arc<dyn BindingStorage>,
    /// Users who just bound here, with the frontend that held them before, if
    /// any, as the binding storage answered: the bind announcement (spec 6.8)
    /// goes there without reading the storage again.
    displaced: Mutex<HashMap<String, Option<String>>>,
}

impl Shared {
    fn displaced(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        // Each update is one call, so the map stays consistent after a panic.
        self.displaced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Returns the `host:port` at which a caller in `my_region` reaches `server`,
/// or `None` when its metadata lacks one (spec 8).
///
/// Within one region the internal address is used; across regions, or for a
/// server without a region, the external one when it is published.
fn address(server: &ServerInfo, my_region: &str) -> Option<String> {
    let meta = |key| server.metadata.get(key).filter(|v| !v.is_empty());
    let external = meta(GRPC_EXTERNAL_HOST).is_some();
    let internal = match meta(REGION) {
        None => !external,
        Some(region) => region == my_region || !external,
    };
    let (host, port) = if internal {
        (meta(GRPC_HOST)?, meta(GRPC_PORT)?)
    } else {
        (meta(GRPC_EXTERNAL_HOST)?, meta(GRPC_EXTERNAL_PORT)?)
    };
    // An IPv6 literal needs brackets inside a URI.
    if host.contains(':') && !host.starts_with('[') {
        Some(format!("[{host}]:{port}"))
    } else {
        Some(format!("{host}:{port}"))
    }
}

/// Returns whether `status` reports a deadline that passed, on either side.
fn is_timeout(status: &Status) -> bool {
    // tonic's own deadline layer answers Cancelled with this message.
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled && status.message() == "Timeout expired")
}

/// Returns whether `status` means no connection could be made: the request
/// never reached the server.
fn is_connect_error(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A gRPC error status as an error of ours, shown as code and message only.
#[derive(Debug)]
struct StatusError(Status);

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc {:?}: {}", self.0.code(), self.0.message())
    }
}

impl std::error::Error for StatusError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(pairs: &[(&str, &str)]) -> ServerInfo {
        pairs
            .iter()
            .fold(ServerInfo::new("room", false), |s, (k, v)| {
                s.with_metadata(*k, *v)
            })
    }

    const INTERNAL: [(&str, &str); 2] = [(GRPC_HOST, "10.0.0.1"), (GRPC_PORT, "3434")];
    const EXTERNAL: [(&str, &str); 2] = [
        (GRPC_EXTERNAL_HOST, "game.example"),
        (GRPC_EXTERNAL_PORT, "443"),
    ];

    #[test]
    fn server_without_region_is_reached_outside_when_it_publishes_an_external_host() {
        let internal_only = server(&INTERNAL);
        assert_eq!(
            address(&internal_only, "").as_deref(),
            Some("10.0.0.1:3434")
        );
        let both = server(&[INTERNAL, EXTERNAL].concat());
        assert_eq!(address(&both, "eu").as_deref(), Some("game.example:443"));
    }

    #[test]
    fn server_with_region_is_reached_inside_from_its_region_or_without_external_host() {
        let both = server(&[&INTERNAL[..], &EXTERNAL[..], &[(REGION, "eu")]].concat());
        assert_eq!(address(&both, "eu").as_deref(), Some("10.0.0.1:3434"));
        assert_eq!(address(&both, "us").as_deref(), Some("game.example:443"));
        let internal_only = server(&[&INTERNAL[..], &[(REGION, "eu")]].concat());
        assert_eq!(
            address(&internal_only, "us").as_deref(),
            Some("10.0.0.1:3434")
        );
    }

    #[test]
    fn missing_host_or_port_leaves_a_server_unreachable() {
        assert_eq!(address(&server(&[(GRPC_HOST, "h")]), ""), None);
        assert_eq!(address(&server(&[(GRPC_PORT, "1")]), ""), None);
        assert_eq!(
            address(&server(&[(GRPC_HOST, ""), (GRPC_PORT, "1")]), ""),
            None
        );
        // The external pair is chosen, and it has no port.
        let broken = server(&[&INTERNAL[..], &[(GRPC_EXTERNAL_HOST, "x")]].concat());
        assert_eq!(address(&broken, ""), None);
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        let v6 = server(&[(GRPC_HOST, "::1"), (GRPC_PORT, "3434")]);
        assert_eq!(address(&v6, "").as_deref(), Some("[::1]:3434"));
    }

    #[test]
    fn deadline_statuses_are_timeouts_and_others_are_not() {
        assert!(is_timeout(&Status::deadline_exceeded("late")));
        assert!(is_timeout(&Status::cancelled("Timeout expired")));
        assert!(!is_timeout(&Status::cancelled("client went away")));
        assert!(!is_timeout(&Status::unknown("no context found")));
        assert!(!is_connect_error(&Status::unavailable("draining")));
        let shown = StatusError(Status::unknown("no context found")).to_string();
        assert_eq!(shown, "grpc Unknown: no context found");
    }
}
