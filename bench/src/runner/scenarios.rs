//! The scenarios S1-S7, sized for a 2-core machine where client and servers share the
//! cores, and their one-point smoke versions.

use crate::conn::Transport;
use crate::load::{Mode, ECHO, REMOTE_ECHO};

/// One load point of a scenario.
#[derive(Debug, Clone)]
pub(crate) struct PointSpec {
    /// Label in the summary, such as `tcp c=100`.
    pub(crate) label: String,
    pub(crate) mode: Mode,
    pub(crate) transport: Transport,
    pub(crate) conns: usize,
    pub(crate) inflight: usize,
    pub(crate) rate: f64,
    pub(crate) route: &'static str,
    pub(crate) warmup: f64,
    pub(crate) secs: f64,
}

/// A scenario: the servers it needs and its points.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// `S1` to `S7`, `S1-pinned` for the one-core variant.
    pub(crate) id: &'static str,
    /// What it measures, for the summary.
    pub(crate) title: &'static str,
    /// Frontend + NATS + backend instead of one standalone server.
    pub(crate) cluster: bool,
    /// Servers and load generator all on CPU 0.
    pub(crate) pinned: bool,
    /// Heartbeat interval of the servers, seconds.
    pub(crate) heartbeat: u64,
    pub(crate) points: Vec<PointSpec>,
}

fn point(label: &str, mode: Mode, transport: Transport, conns: usize) -> PointSpec {
    PointSpec {
        label: label.into(),
        mode,
        transport,
        conns,
        inflight: 1,
        rate: 0.0,
        route: ECHO,
        warmup: 1.0,
        secs: 3.0,
    }
}

fn scenario(id: &'static str, title: &'static str, points: Vec<PointSpec>) -> Scenario {
    Scenario {
        id,
        title,
        cluster: false,
        pinned: false,
        heartbeat: 30,
        points,
    }
}

/// Returns every scenario at full size.
pub(crate) fn all() -> Vec<Scenario> {
    use Mode::*;
    use Transport::*;
    let rr = |label: &str, t, c| point(label, Rr, t, c);
    let open = PointSpec {
        rate: 5000.0,
        ..rr("tcp c=100 open 5k/s", Tcp, 100)
    };
    let bcast = |label: &str, members, rate| PointSpec {
        inflight: 8,
        rate,
        ..point(label, Bcast, Tcp, members)
    };
    let remote = |label: &str, c| PointSpec {
        route: REMOTE_ECHO,
        ..rr(label, Tcp, c)
    };
    let idle = |label: &str, t| PointSpec {
        warmup: 3.0,
        secs: 4.0,
        ..point(label, Idle, t, 10_000)
    };
    vec![
        scenario(
            "S1",
            "TCP request/response, 128 B JSON echo",
            vec![
                rr("tcp c=1", Tcp, 1),
                rr("tcp c=100", Tcp, 100),
                rr("tcp c=1000", Tcp, 1000),
                open,
            ],
        ),
        Scenario {
            pinned: true,
            ..scenario(
                "S1-pinned",
                "S1 with servers and client on one core",
                vec![
                    rr("tcp c=1 pinned", Tcp, 1),
                    rr("tcp c=100 pinned", Tcp, 100),
                ],
            )
        },
        scenario(
            "S2",
            "WebSocket request/response, 128 B JSON echo",
            vec![
                rr("ws c=1", Ws, 1),
                rr("ws c=100", Ws, 100),
                rr("ws c=1000", Ws, 1000),
            ],
        ),
        scenario(
            "S3",
            "notify throughput",
            vec![point("tcp c=100", Notify, Tcp, 100)],
        ),
        scenario(
            "S4",
            "group broadcast",
            vec![
                bcast("100 members saturated", 100, 0.0),
                bcast("1000 members saturated", 1000, 0.0),
                bcast("100 members 20/s", 100, 20.0),
                bcast("1000 members 20/s", 1000, 20.0),
            ],
        ),
        Scenario {
            cluster: true,
            ..scenario(
                "S5",
                "cluster forward: client, frontend, NATS, backend and back",
                vec![
                    remote("tcp c=1", 1),
                    remote("tcp c=100", 100),
                    remote("tcp c=1000", 1000),
                ],
            )
        },
        // One server per transport: memory freed by the first point's connections stays
        // in the process and would be reused, unseen, by the second's.
        Scenario {
            heartbeat: 2,
            ..scenario(
                "S6",
                "10,000 idle handshaken TCP connections",
                vec![idle("tcp 10k idle", Tcp)],
            )
        },
        Scenario {
            heartbeat: 2,
            ..scenario(
                "S6-ws",
                "10,000 idle handshaken WebSocket connections",
                vec![idle("ws 10k idle", Ws)],
            )
        },
        scenario(
            "S7",
            "connect + handshake rate",
            vec![point("tcp 16 workers", Connect, Tcp, 16)],
        ),
    ]
}

/// Returns one short point per scenario: the harness's own check, not a measurement.
pub(crate) fn smoke() -> Vec<Scenario> {
    all()
        .into_iter()
        .map(|mut s| {
            let mut p = s.points.swap_remove(0);
            p.conns = p.conns.min(20);
            p.warmup = 0.2;
            p.secs = 0.5;
            if p.mode == Mode::Idle {
                p.conns = 100;
                p.secs = 2.5;
                s.heartbeat = 1;
            }
            s.points = vec![p];
            s
        })
        .collect()
}
