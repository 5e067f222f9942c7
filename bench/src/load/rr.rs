//! Request/response (closed and open loop) and notify throughput.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use pitaya_protocol::{Packet, PacketType};
use tokio::task::JoinSet;

use super::stats::{self, Point};
use super::{echo_body, run_window, Control, LoadArgs, COUNT, NOTIFY};
use crate::conn::Conn;
use crate::wire::{self, KIND_NOTIFY, KIND_REQUEST, KIND_RESPONSE};

/// How long a connection waits for an answer before counting what is missing as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What one connection did.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Operations completed inside the measured window.
    pub(crate) ops: u64,
    /// Everything that went wrong.
    pub(crate) errors: u64,
    /// The first thing that went wrong.
    pub(crate) first_error: Option<String>,
    /// Latencies recorded inside the measured window.
    pub(crate) hist: Histogram<u64>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            ops: 0,
            errors: 0,
            first_error: None,
            hist: stats::histogram(),
        }
    }

    /// Counts `n` errors described by `what`.
    pub(crate) fn error(&mut self, n: u64, what: impl FnOnce() -> String) {
        self.errors += n;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Both histograms share the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Returns the point for `self` over `secs`.
    pub(crate) fn point(self, unit: &str, secs: f64) -> Point {
        let mut p = Point {
            unit: unit.into(),
            ops: self.ops,
            secs,
            rate: self.ops as f64 / secs,
            errors: self.errors,
            first_error: self.first_error,
            ..Point::default()
        };
        p.latency(&self.hist);
        p
    }
}

/// Opens `args.conns` connections, counting those that fail in `tally`.
pub(crate) async fn open_all(args: &LoadArgs, tally: &mut Tally) -> Vec<Conn> {
    let mut set = JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    for _ in 0..args.conns {
        let (transport, addr, gate) = (args.transport, args.addr, gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            Conn::open(transport, addr).await
        });
    }
    let mut conns = Vec::with_capacity(args.conns);
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok((conn, _))) => conns.push(conn),
            Ok(Err(e)) => tally.error(1, || format!("connect: {e}")),
            Err(e) => tally.error(1, || format!("connect task: {e}")),
        }
    }
    conns
}

/// Collects the tallies of `set` into `total`.
pub(crate) async fn join_tallies(mut set: JoinSet<Tally>, total: &mut Tally) {
    while let Some(done) = set.join_next().await {
        match done {
            Ok(t) => total.merge(t),
            Err(e) => total.error(1, || format!("connection task: {e}")),
        }
    }
}

/// Returns the next packet within [`ANSWER_TIMEOUT`].
async fn recv(conn: &mut Conn) -> io::Result<Packet> {
    tokio::time::timeout(ANSWER_TIMEOUT, conn.recv())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
}

/// Closed loop: every connection keeps `inflight` requests outstanding.
pub(crate) async fn closed_loop(args: &LoadArgs, ctl: Arc<Control>) -> io::Result<Point> {
    let mut total = Tally::new();
    let conns = open_all(args, &mut total).await;
    let body: Arc<[u8]> = echo_body(args.body).into();
    let route: Arc<[u8]> = args.route.as_bytes().into();
    let mut set = JoinSet::new();
    for conn in conns {
        let (ctl, body, route, k) = (ctl.clone(), body.clone(), route.clone(), args.inflight);
        set.spawn(async move { closed_conn(conn, k, &route, &body, &ctl).await });
    }
    let window = run_window(args, &ctl).await;
    join_tallies(set, &mut total).await;
    let mut point = total.point("requests", window.secs);
    (point.server_cpu_us, point.client_cpu_us) = window.cpu.per_op(&args.pids, point.ops);
    Ok(point)
}

async fn closed_conn(mut conn: Conn, k: usize, route: &[u8], body: &[u8], ctl: &Control) -> Tally {
    let mut t = Tally::new();
    let mut out = BytesMut::with_capacity(256 * k);
    let mut pending: Vec<(u64, Instant)> = Vec::with_capacity(k);
    let mut next_id = 1u64;
    for _ in 0..k {
        wire::put_routed(&mut out, KIND_REQUEST, next_id, route, body);
        pending.push((next_id, Instant::now()));
        next_id += 1;
    }
    while !pending.is_empty() {
        if !out.is_empty() && !conn.has_buffered() {
            if let Err(e) = conn.send(&out).await {
                t.error(pending.len() as u64, || format!("send: {e}"));
                return t;
            }
            out.clear();
        }
        let packet = match recv(&mut conn).await {
            Ok(p) => p,
            Err(e) => {
                t.error(pending.len() as u64, || format!("recv: {e}"));
                return t;
            }
        };
        match packet.kind {
            PacketType::Heartbeat => {
                out.extend_from_slice(&wire::packet(PacketType::Heartbeat, &[]))
            }
            PacketType::Data => {}
            other => {
                t.error(pending.len() as u64, || {
                    format!("unexpected {other:?} packet")
                });
                return t;
            }
        }
        if packet.kind != PacketType::Data {
            continue;
        }
        let Some(msg) = wire::parse(&packet.body) else {
            t.error(1, || "malformed message".into());
            continue;
        };
        let Some(at) = pending.iter().position(|(id, _)| *id == msg.id) else {
            t.error(1, || format!("response id {} matches no request", msg.id));
            continue;
        };
        let (_, sent) = pending.swap_remove(at);
        if msg.kind != KIND_RESPONSE || msg.error || !msg.body_is(body) {
            t.error(1, || {
                format!("bad answer: {}", String::from_utf8_lossy(msg.body))
            });
        } else if ctl.measuring() {
            t.ops += 1;
            stats::record(&mut t.hist, sent.elapsed());
        }
        if !ctl.stopped() {
            wire::put_routed(&mut out, KIND_REQUEST, next_id, route, body);
            pending.push((next_id, Instant::now()));
            next_id += 1;
        }
    }
    t
}

/// Open loop: requests leave on a fixed schedule whatever the answers do.
pub(crate) async fn open_loop(args: &LoadArgs, ctl: Arc<Control>) -> io::Result<Point> {
    let mut total = Tally::new();
    let conns = open_all(args, &mut total).await;
    let body: Arc<[u8]> = echo_body(args.body).into();
    let route: Arc<[u8]> = args.route.as_bytes().into();
    let interval = Duration::from_secs_f64(conns.len() as f64 / args.rate);
    let mut set = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let (ctl, body, route) = (ctl.clone(), body.clone(), route.clone());
        // Connections start staggered so the total rate is even, not in bursts.
        let start = Instant::now() + interval.mul_f64(i as f64 / args.conns as f64);
        set.spawn(async move { open_conn(conn, start, interval, &route, &body, &ctl).await });
    }
    let window = run_window(args, &ctl).await;
    join_tallies(set, &mut total).await;
    let mut point = total.point("requests", window.secs);
    (point.server_cpu_us, point.client_cpu_us) = window.cpu.per_op(&args.pids, point.ops);
    Ok(point)
}

async fn open_conn(
    mut conn: Conn,
    start: Instant,
    interval: Duration,
    route: &[u8],
    body: &[u8],
    ctl: &Control,
) -> Tally {
    let mut t = Tally::new();
    let mut out = BytesMut::new();
    let mut pending = HashSet::new();
    let mut sent = 0u64;
    // Request n (from 1) is due at start + (n - 1) * interval; latency counts from there.
    let due = |id: u64| start + interval * (id - 1) as u32;
    loop {
        let stopped = ctl.stopped();
        if stopped && pending.is_empty() {
            return t;
        }
        let next = due(sent + 1);
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()), if !stopped => {
                while due(sent + 1) <= Instant::now() {
                    sent += 1;
                    wire::put_routed(&mut out, KIND_REQUEST, sent, route, body);
                    pending.insert(sent);
                }
                if let Err(e) = conn.send(&out).await {
                    t.error(pending.len() as u64, || format!("send: {e}"));
                    return t;
                }
                out.clear();
            }
            got = recv(&mut conn) => {
                let packet = match got {
                    Ok(p) => p,
                    Err(e) => {
                        t.error(pending.len() as u64, || format!("recv: {e}"));
                        return t;
                    }
                };
                if packet.kind == PacketType::Heartbeat {
                    let hb = wire::packet(PacketType::Heartbeat, &[]);
                    if conn.send(&hb).await.is_err() {
                        t.error(pending.len() as u64, || "send heartbeat".into());
                        return t;
                    }
                    continue;
                }
                let msg = wire::parse(&packet.body);
                match msg {
                    Some(m) if m.kind == KIND_RESPONSE && pending.remove(&m.id) => {
                        if m.error || !m.body_is(body) {
                            t.error(1, || "bad answer".into());
                        } else if ctl.measuring() {
                            t.ops += 1;
                            stats::record(&mut t.hist, due(m.id).elapsed());
                        }
                    }
                    _ => t.error(1, || "answer matching no request".into()),
                }
            }
        }
    }
}

/// Notify throughput: send notifies flat out, then wait for the server to count them.
pub(crate) async fn notify(args: &LoadArgs, ctl: Arc<Control>) -> io::Result<Point> {
    let mut total = Tally::new();
    let (mut probe, _) = Conn::open(args.transport, args.addr).await?;
    let before = read_count(&mut probe).await?;
    let conns = open_all(args, &mut total).await;
    let body: Arc<[u8]> = echo_body(args.body).into();
    let cpu = stats::CpuMark::now(&args.pids);
    let start = Instant::now();
    let mut set = JoinSet::new();
    for mut conn in conns {
        let (ctl, body) = (ctl.clone(), body.clone());
        set.spawn(async move {
            let mut out = BytesMut::new();
            for _ in 0..32 {
                wire::put_routed(&mut out, KIND_NOTIFY, 0, NOTIFY.as_bytes(), &body);
            }
            let mut t = Tally::new();
            while !ctl.stopped() {
                if let Err(e) = conn.send(&out).await {
                    t.error(1, || format!("send: {e}"));
                    break;
                }
                t.ops += 32;
            }
            (t, conn)
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    ctl.stop.cancel();
    // The connections stay open until the count is read: our close resets them, and a
    // reset throws away what the server has not read yet.
    let mut open = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((t, conn)) => {
                total.merge(t);
                open.push(conn);
            }
            Err(e) => total.error(1, || format!("connection task: {e}")),
        }
    }

    // The server has them once its counter has moved by exactly what was sent.
    let want = before + total.ops;
    let mut got = before;
    let mut last_move = Instant::now();
    while got < want && last_move.elapsed() < ANSWER_TIMEOUT {
        let now = read_count(&mut probe).await?;
        if now != got {
            last_move = Instant::now();
        }
        got = now;
        if got < want {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(open);
    if got != want {
        let (sent, counted) = (total.ops, got - before);
        total.error(sent.abs_diff(counted), || {
            format!("sent {sent} notifies, server counted {counted}")
        });
    }
    let mut point = total.point("notifies", secs);
    (point.server_cpu_us, point.client_cpu_us) = cpu.per_op(&args.pids, point.ops);
    Ok(point)
}

/// Returns the server's notify counter.
async fn read_count(conn: &mut Conn) -> io::Result<u64> {
    let mut out = BytesMut::new();
    wire::put_routed(&mut out, KIND_REQUEST, 1, COUNT.as_bytes(), b"{}");
    conn.send(&out).await?;
    loop {
        let packet = recv(conn).await?;
        if packet.kind != PacketType::Data {
            continue;
        }
        let msg = wire::parse(&packet.body).filter(|m| m.kind == KIND_RESPONSE && !m.error);
        let count = msg.and_then(|m| json_u64(m.body, "count"));
        return count.ok_or_else(|| io::Error::other("bad count answer"));
    }
}

/// Returns the unsigned integer under `key` in a flat JSON object.
pub(crate) fn json_u64(body: &[u8], key: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(key)?.as_u64()
}
