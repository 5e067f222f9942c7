//! Idle connections (memory and heartbeat cost) and the connect + handshake rate.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitaya_protocol::PacketType;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::rr::{join_tallies, Tally};
use super::stats::{self, Point};
use super::{run_window, Control, LoadArgs};
use crate::conn::Conn;
use crate::wire;

/// Connection attempts in flight while the idle clients are opened.
const CONNECTING: usize = 100;

/// Opens `--conns` connections that only answer heartbeats, then measures the server's
/// memory per connection and CPU per heartbeat over the window.
pub(crate) async fn idle(args: &LoadArgs) -> io::Result<Point> {
    let rss_before = stats::rss_total(&args.pids);
    let stop = CancellationToken::new();
    let beats = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut set = JoinSet::new();
    for _ in 0..args.conns {
        let (gate, stop, beats) = (gate.clone(), stop.clone(), beats.clone());
        let ready_tx = ready_tx.clone();
        let (transport, addr) = (args.transport, args.addr);
        set.spawn(async move {
            let mut t = Tally::new();
            let permit = gate.acquire_owned().await;
            let opened = Conn::open(transport, addr).await;
            let _ = ready_tx.send(());
            let mut conn = match opened {
                Ok((conn, _)) => conn,
                Err(e) => {
                    t.error(1, || format!("connect: {e}"));
                    return t;
                }
            };
            drop(permit);
            t.ops = 1;
            answer_heartbeats(&mut conn, &stop, &beats, &mut t).await;
            t
        });
    }
    drop(ready_tx);
    for _ in 0..args.conns {
        let _ = ready.recv().await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let rss_after = stats::rss_total(&args.pids);

    let cpu = stats::CpuMark::now(&args.pids);
    let beats_before = beats.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    let secs = start.elapsed().as_secs_f64();
    let heartbeats = beats.load(Ordering::Relaxed) - beats_before;
    let (server_cpu, client_cpu) = cpu.per_op(&args.pids, heartbeats);
    stop.cancel();

    let mut total = Tally::new();
    join_tallies(set, &mut total).await;
    let open = total.ops;
    let mut point = Tally {
        ops: heartbeats,
        ..total
    }
    .point("heartbeats", secs);
    point.server_cpu_us = server_cpu;
    point.client_cpu_us = client_cpu;
    point.mem_per_conn = rss_after.saturating_sub(rss_before) as f64 / open.max(1) as f64;
    Ok(point)
}

/// Answers heartbeats until `stop`; anything else, or a closed connection, is an error.
async fn answer_heartbeats(
    conn: &mut Conn,
    stop: &CancellationToken,
    beats: &AtomicU64,
    t: &mut Tally,
) {
    let heartbeat = wire::packet(PacketType::Heartbeat, &[]);
    loop {
        let got = tokio::select! {
            got = conn.recv() => got,
            () = stop.cancelled() => return,
        };
        match got {
            Ok(p) if p.kind == PacketType::Heartbeat => {
                beats.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = conn.send(&heartbeat).await {
                    t.error(1, || format!("heartbeat: {e}"));
                    return;
                }
            }
            Ok(p) => t.error(1, || format!("idle client got a {:?} packet", p.kind)),
            Err(e) => {
                t.error(1, || format!("idle connection lost: {e}"));
                return;
            }
        }
    }
}

/// Connect + handshake + ack, then reset, by `--conns` workers in a loop.
pub(crate) async fn connect(args: &LoadArgs, ctl: Arc<Control>) -> io::Result<Point> {
    let mut set = JoinSet::new();
    for _ in 0..args.conns {
        let (ctl, transport, addr) = (ctl.clone(), args.transport, args.addr);
        set.spawn(async move {
            let mut t = Tally::new();
            while !ctl.stopped() {
                let began = Instant::now();
                match Conn::open(transport, addr).await {
                    Ok(_) if ctl.measuring() => {
                        t.ops += 1;
                        stats::record(&mut t.hist, began.elapsed());
                    }
                    Ok(_) => {}
                    Err(e) => t.error(1, || format!("connect: {e}")),
                }
            }
            t
        });
    }
    let window = run_window(args, &ctl).await;
    let mut total = Tally::new();
    join_tallies(set, &mut total).await;
    let mut point = total.point("connects", window.secs);
    (point.server_cpu_us, point.client_cpu_us) = window.cpu.per_op(&args.pids, point.ops);
    Ok(point)
}
