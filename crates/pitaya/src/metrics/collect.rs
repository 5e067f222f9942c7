//! The periodic reports: every `pitaya.metrics.period`, what Pitaya samples on a timer
//! (tasks, worker pools, queues) and what we sample instead of reporting it as it
//! happens (servers by type, NATS drops, rate-limit drops).

use std::collections::BTreeMap;

use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{
    Metrics, BUSY_WORKERS, COUNT_SERVERS, DROPPED_MESSAGES, EXCEEDED_RATE_LIMITING, GOROUTINES,
    TOTAL_WORKERS,
};
use crate::acceptor::ExceededCounter;
use crate::AppHandle;

/// Pitaya's pool label of the tasks running client messages.
const HANDLER_POOL: &str = "handler_dispatch";
/// Pitaya's pool label of the RPC server's workers.
const RPC_POOL: &str = "rpc_server_remote";

/// Spawns the periodic reports of `app`, the first one at once, until `stop`.
pub(crate) fn spawn_periodic(
    app: AppHandle,
    rate_limited: Vec<ExceededCounter>,
    stop: CancellationToken,
) {
    let mut state = Sampler {
        rate_limited,
        reported_drops: None,
        server_types: BTreeMap::new(),
    };
    tokio::spawn(async move {
        let mut tick = interval(app.config().metrics.period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => state.report(&app),
            }
        }
    });
}

/// What one report needs from the one before.
#[derive(Debug)]
struct Sampler {
    rate_limited: Vec<ExceededCounter>,
    /// Drops reported so far; `None` before the first report.
    reported_drops: Option<u64>,
    /// Server types seen in discovery, with their last count.
    server_types: BTreeMap<String, usize>,
}

impl Sampler {
    fn report(&mut self, app: &AppHandle) {
        let metrics = app.metrics();
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        metrics.gauge(GOROUTINES, &[], tasks as f64);
        let handlers = app.tasks().len();
        metrics.gauge(BUSY_WORKERS, &[("pool", HANDLER_POOL)], handlers as f64);
        if app.server_info().frontend {
            metrics.connected_clients(app.session_count());
        }

        // Counters take increments: report what was dropped since the last time, and
        // once at 0 so that the series exists before the first drop.
        let drops: u64 = self.rate_limited.iter().map(ExceededCounter::get).sum();
        let before = self.reported_drops.replace(drops);
        if before != Some(drops) {
            let new = drops.saturating_sub(before.unwrap_or(0));
            metrics.count(EXCEEDED_RATE_LIMITING, &[], new as f64);
        }

        self.report_cluster(app, metrics);
    }

    fn report_cluster(&mut self, app: &AppHandle, metrics: &Metrics) {
        let Some(link) = app.shared.cluster.as_ref() else {
            return;
        };
        if let Ok(sd) = link.discovery() {
            for count in self.server_types.values_mut() {
                *count = 0;
            }
            for server in sd.servers() {
                *self
                    .server_types
                    .entry(server.server_type.clone())
                    .or_default() += 1;
            }
            // A type whose last server left is reported as 0, not left at its old count.
            for (server_type, count) in &self.server_types {
                metrics.gauge(COUNT_SERVERS, &[("type", server_type)], *count as f64);
            }
        }
        if let Ok(server) = link.server() {
            let stats = server.stats();
            metrics.gauge(DROPPED_MESSAGES, &[], stats.dropped_messages as f64);
            let pool = [("pool", RPC_POOL)];
            metrics.gauge(BUSY_WORKERS, &pool, stats.busy_workers as f64);
            metrics.gauge(TOTAL_WORKERS, &pool, stats.total_workers as f64);
            for (channel, free) in stats.free_slots {
                metrics.channel_capacity(channel, free);
            }
        }
    }
}
