//! Group broadcast: deliveries per second at saturation, delivery latency at a rate.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use pitaya_protocol::PacketType;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::rr::{join_tallies, open_all, Tally};
use super::stats::{self, Point};
use super::{Control, LoadArgs, BROADCAST, JOIN, ON_BCAST};
use crate::conn::Conn;
use crate::wire::{self, KIND_PUSH, KIND_REQUEST, KIND_RESPONSE};

/// Broadcasts whose deliveries are tracked one by one; more than any window.
const RING: usize = 64;

/// Deliveries seen by all members, per broadcast, with a wake-up for the controller.
#[derive(Debug)]
struct Deliveries {
    members: u64,
    count: AtomicU64,
    /// Deliveries of broadcast `seq` in slot `seq % RING`.
    slots: Vec<AtomicU64>,
    /// One more than the broadcast the controller waits for; 0 when it does not wait.
    waiting_for: AtomicU64,
    wake: Notify,
}

impl Deliveries {
    fn new(members: u64) -> Deliveries {
        Deliveries {
            members,
            count: AtomicU64::new(0),
            slots: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            waiting_for: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    fn slot(&self, seq: u64) -> &AtomicU64 {
        &self.slots[(seq % RING as u64) as usize]
    }

    fn add(&self, seq: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let n = self.slot(seq).fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.members && self.waiting_for.load(Ordering::Acquire) == seq + 1 {
            self.wake.notify_one();
        }
    }

    /// Readies the slot of broadcast `seq`, whose slot's previous user is complete.
    fn reset(&self, seq: u64) {
        self.slot(seq).store(0, Ordering::Release);
    }

    /// Completes once every member got broadcast `seq`; false after `limit`.
    async fn complete(&self, seq: u64, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.slot(seq).load(Ordering::Acquire) >= self.members {
                self.waiting_for.store(0, Ordering::Release);
                return true;
            }
            self.waiting_for.store(seq + 1, Ordering::Release);
            // The last delivery may have come between the check and the store.
            if self.slot(seq).load(Ordering::Acquire) >= self.members {
                continue;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let step = Duration::from_millis(20).min(left);
            let _ = tokio::time::timeout(step, self.wake.notified()).await;
        }
    }
}

/// Returns the current wall clock in nanoseconds, comparable across processes.
fn unix_nanos() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs the broadcast point: saturation with `--inflight` undelivered broadcasts, or
/// with `--rate`, broadcasts at that rate and delivery latency.
pub(crate) async fn run(args: &LoadArgs, ctl: Arc<Control>) -> io::Result<Point> {
    let mut total = Tally::new();
    let mut members = open_all(args, &mut total).await;
    for (i, conn) in members.iter_mut().enumerate() {
        join(conn, i).await?;
    }
    let seen = Arc::new(Deliveries::new(members.len() as u64));
    let mut set = JoinSet::new();
    for conn in members {
        let (ctl, seen) = (ctl.clone(), seen.clone());
        let latency = args.rate > 0.0;
        set.spawn(async move { member(conn, latency, &ctl, &seen).await });
    }
    let (mut controller, _) = Conn::open(args.transport, args.addr).await?;

    // Warm-up, then the measured window, then stop asking and let deliveries drain.
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let sent_before = drive(&mut controller, args, &seen, warm_until, 0).await?;
    drained(&seen, sent_before).await;
    let delivered_before = seen.count.load(Ordering::Relaxed);
    let cpu = stats::CpuMark::now(&args.pids);
    let start = Instant::now();
    ctl.measuring.store(true, Ordering::Relaxed);
    let end = start + Duration::from_secs_f64(args.secs);
    let sent = drive(&mut controller, args, &seen, end, sent_before).await?;
    let complete = drained(&seen, sent).await;
    let secs = start.elapsed().as_secs_f64();
    ctl.measuring.store(false, Ordering::Relaxed);
    let delivered = seen.count.load(Ordering::Relaxed) - delivered_before;
    ctl.stop.cancel();
    join_tallies(set, &mut total).await;
    if !complete {
        let want = (sent - sent_before) * seen.members;
        total.error(want.abs_diff(delivered).max(1), || {
            format!("{delivered} of {want} deliveries arrived")
        });
    }
    let latency = args.rate > 0.0;
    let ops = delivered;
    let hist = std::mem::replace(&mut total.hist, stats::histogram());
    let mut point = Tally { ops, ..total }.point("deliveries", secs);
    if latency {
        point.latency(&hist);
    }
    (point.server_cpu_us, point.client_cpu_us) = cpu.per_op(&args.pids, ops);
    Ok(point)
}

/// Completes once the first `sent` broadcasts reached every member; false after 10 s.
async fn drained(seen: &Deliveries, sent: u64) -> bool {
    // Broadcasts asked for together are handled concurrently by the servers and may
    // overtake each other, so the total is what tells, not the last one's arrival.
    let want = sent * seen.members;
    let until = Instant::now() + Duration::from_secs(10);
    while seen.count.load(Ordering::Relaxed) < want && Instant::now() < until {
        if let Some(seq) = sent.checked_sub(1) {
            seen.complete(seq, Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    seen.count.load(Ordering::Relaxed) == want
}

/// Joins member `i` to the group.
///
/// The uid carries this process's id: the members of an earlier point leave the group
/// when their sessions close, and the same uid joining again before that would be
/// refused, or removed by the late leave.
async fn join(conn: &mut Conn, i: usize) -> io::Result<()> {
    let mut out = BytesMut::new();
    let body = format!(r#"{{"uid":"m{}-{i}"}}"#, std::process::id());
    wire::put_routed(&mut out, KIND_REQUEST, 1, JOIN.as_bytes(), body.as_bytes());
    conn.send(&out).await?;
    loop {
        let packet = conn.recv().await?;
        if packet.kind != PacketType::Data {
            continue;
        }
        return match wire::parse(&packet.body) {
            Some(m) if m.kind == KIND_RESPONSE && m.id == 1 && !m.error => Ok(()),
            _ => Err(io::Error::other("join refused")),
        };
    }
}

/// Asks for broadcasts until `until`; returns how many were asked for in total.
///
/// At saturation a broadcast leaves only while fewer than `--inflight` earlier ones are
/// undelivered, so member queues stay short; with `--rate` they leave on a schedule.
async fn drive(
    conn: &mut Conn,
    args: &LoadArgs,
    seen: &Deliveries,
    until: Instant,
    mut sent: u64,
) -> io::Result<u64> {
    let window = args.inflight.max(1) as u64;
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let first = sent;
    let start = Instant::now();
    let mut acked = sent;
    let mut out = BytesMut::new();
    while Instant::now() < until {
        let ts = match interval {
            Some(every) => {
                let due = start + every * (sent - first) as u32;
                tokio::time::sleep_until(due.into()).await;
                let late = Instant::now().saturating_duration_since(due);
                unix_nanos() - u64::try_from(late.as_nanos()).unwrap_or(0)
            }
            None => {
                // Broadcast `sent - window` must have reached every member first, so no
                // member is ever more than `window` broadcasts behind.
                if let Some(before) = sent.checked_sub(window) {
                    if !seen.complete(before, Duration::from_secs(10)).await {
                        return Err(io::Error::other("broadcasts stopped arriving"));
                    }
                }
                unix_nanos()
            }
        };
        seen.reset(sent);
        let body = format!(r#"{{"ts":{ts},"seq":{sent}}}"#);
        sent += 1;
        out.clear();
        wire::put_routed(
            &mut out,
            KIND_REQUEST,
            sent,
            BROADCAST.as_bytes(),
            body.as_bytes(),
        );
        conn.send(&out).await?;
        // Answers are read as they come so the controller's socket never fills.
        while acked < sent.saturating_sub(window) || (interval.is_some() && acked < sent) {
            acked += read_ack(conn).await?;
        }
    }
    while acked < sent {
        acked += read_ack(conn).await?;
    }
    Ok(sent)
}

/// Returns 1 for a broadcast's answer, 0 for a heartbeat.
async fn read_ack(conn: &mut Conn) -> io::Result<u64> {
    let packet = conn.recv().await?;
    if packet.kind == PacketType::Heartbeat {
        conn.send(&wire::packet(PacketType::Heartbeat, &[])).await?;
        return Ok(0);
    }
    match wire::parse(&packet.body) {
        Some(m) if m.kind == KIND_RESPONSE && !m.error => Ok(1),
        _ => Err(io::Error::other("broadcast refused")),
    }
}

/// Returns the unsigned integer after `key` in a flat JSON body, without a JSON parser:
/// members read two numbers from every push, at tens of thousands of pushes a second.
fn field(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut value = 0u64;
    let mut any = false;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// One member: counts broadcasts and, during the window, their delivery latency.
async fn member(mut conn: Conn, latency: bool, ctl: &Control, seen: &Deliveries) -> Tally {
    let mut t = Tally::new();
    loop {
        let packet = tokio::select! {
            got = conn.recv() => got,
            () = ctl.stopping() => return t,
        };
        let packet = match packet {
            Ok(p) => p,
            Err(e) => {
                t.error(1, || format!("member connection: {e}"));
                return t;
            }
        };
        if packet.kind == PacketType::Heartbeat {
            let _ = conn.send(&wire::packet(PacketType::Heartbeat, &[])).await;
            continue;
        }
        match wire::parse(&packet.body) {
            Some(m) if m.kind == KIND_PUSH && m.route == ON_BCAST.as_bytes() => {
                if latency && ctl.measuring() {
                    if let Some(ts) = field(m.body, b"\"ts\":") {
                        let ns = unix_nanos().saturating_sub(ts);
                        stats::record(&mut t.hist, Duration::from_nanos(ns));
                    }
                }
                match field(m.body, b"\"seq\":") {
                    Some(seq) => seen.add(seq),
                    None => t.error(1, || "broadcast without a seq".into()),
                }
            }
            _ => t.error(1, || "unexpected message to a member".into()),
        }
    }
}
