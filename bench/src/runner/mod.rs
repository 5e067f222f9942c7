//! The runner: starts what each scenario needs, runs the three servers interleaved
//! (A B C C B A per round), and writes the JSON lines, the summary and the chart.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use pitaya_test_support::{EtcdServer, NatsServer};
use tokio::process::Command;

use crate::load::Mode;

mod report;
mod report_svg;
mod scenarios;
mod servers;

use scenarios::{PointSpec, Scenario};
use servers::{Kind, Running, Setup};

/// A load point that has not finished by then is killed and counted as failed.
const POINT_DEADLINE: Duration = Duration::from_secs(180);

/// Command line of `pitaya-bench run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// One short point per scenario, to check the harness; ratios mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Rounds of A B C C B A; each gives every server two samples per point.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Scenarios to run (S1, S1-pinned, S2 ... S7); all by default.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Servers to run, among baseline, rs, go.
    #[arg(long, value_delimiter = ',', default_value = "baseline,rs,go")]
    servers: Vec<String>,
    /// Prebuilt Go Pitaya bench server; by default `go build` makes one.
    #[arg(long)]
    go_bin: Option<PathBuf>,
    /// Where results, logs and the chart go.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
}

/// Runs the benchmark and writes `results.jsonl`, `summary.md`, `summary.json` and
/// `chart.svg` under `--out`.
pub(crate) async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let kinds = kinds(&args.servers)?;
    let mut scenarios = if args.smoke {
        scenarios::smoke()
    } else {
        scenarios::all()
    };
    if !args.scenarios.is_empty() {
        scenarios.retain(|s| args.scenarios.iter().any(|want| want == s.id));
    }
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let go_bin = match (kinds.contains(&Kind::Go), &args.go_bin) {
        (false, _) => None,
        (true, Some(bin)) => Some(bin.clone()),
        (true, None) => Some(build_go(&args.out).await?),
    };
    let needs_cluster = scenarios.iter().any(|s| s.cluster);
    // Kept alive for the whole run; stopped (by pid) when dropped.
    let nats = needs_cluster.then(NatsServer::start).transpose()?;
    let etcd = needs_cluster.then(EtcdServer::start).transpose()?;
    let mut setup = Setup {
        exe: std::env::current_exe()?,
        go_bin,
        logs,
        nats: nats.as_ref().map(NatsServer::url).unwrap_or_default(),
        etcd: etcd.as_ref().map(EtcdServer::endpoint).unwrap_or_default(),
    };
    setup.etcd = setup.etcd.trim_start_matches("http://").to_owned();
    let nats_pid = nats.as_ref().and_then(NatsServer::pid);

    let started = Instant::now();
    let mut results = Vec::new();
    for round in 0..args.rounds {
        // The smoke checks that every server runs every scenario: once each is enough,
        // and keeps the CI step under a minute.
        let order: Vec<Kind> = if args.smoke {
            kinds.clone()
        } else {
            kinds.iter().chain(kinds.iter().rev()).copied().collect()
        };
        for scenario in &scenarios {
            for (slot, &kind) in order.iter().enumerate() {
                let tag = format!("r{round}-{slot}-{}", kind.label());
                eprintln!(
                    "== {} {} (round {round}, slot {slot})",
                    scenario.id,
                    kind.label()
                );
                let running = match servers::start(&setup, kind, scenario, &tag).await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("   {e}");
                        for spec in &scenario.points {
                            results.push(report::failed(scenario, spec, kind, &e.to_string()));
                        }
                        continue;
                    }
                };
                let mut pids = running.pids.clone();
                if scenario.cluster {
                    pids.extend(nats_pid);
                }
                for spec in &scenario.points {
                    let line = load_point(&setup, &running, &pids, scenario, spec, kind).await;
                    let line = line.unwrap_or_else(|e| report::failed(scenario, spec, kind, &e));
                    eprintln!("   {}", report::brief(&line));
                    results.push(line);
                }
                running.stop().await;
            }
        }
    }
    report::write(&args.out, &scenarios, &kinds, &results, started.elapsed())?;
    let errors: u64 = results.iter().filter_map(|r| r["errors"].as_u64()).sum();
    eprintln!("summary in {}", args.out.join("summary.md").display());
    print!("{}", std::fs::read_to_string(args.out.join("summary.md"))?);
    if errors > 0 {
        return Err(format!("{errors} errors in the run").into());
    }
    Ok(())
}

/// Returns the server kinds in run order.
fn kinds(names: &[String]) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for name in names {
        kinds.push(match name.as_str() {
            "baseline" => Kind::Baseline,
            "rs" => Kind::Rs,
            "go" => Kind::Go,
            other => return Err(format!("unknown server {other:?}")),
        });
    }
    Ok(kinds)
}

/// Builds the Go Pitaya bench server into `out` and returns its path.
async fn build_go(out: &std::path::Path) -> io::Result<PathBuf> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/go-bench");
    let bin = std::path::absolute(out.join("go-bench"))?;
    eprintln!(
        "== building the Go Pitaya server (go build in {})",
        src.display()
    );
    let status = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-buildvcs=false")
        .status()
        .await?;
    if !status.success() {
        return Err(io::Error::other(format!("go build failed ({status})")));
    }
    Ok(bin)
}

/// Runs one load point in a child process and returns its JSON line.
async fn load_point(
    setup: &Setup,
    running: &Running,
    pids: &[u32],
    scenario: &Scenario,
    spec: &PointSpec,
    kind: Kind,
) -> Result<serde_json::Value, String> {
    let addr = match spec.transport {
        crate::conn::Transport::Tcp => running.tcp,
        crate::conn::Transport::Ws => running.ws,
    };
    let mode = match spec.mode {
        Mode::Rr => "rr",
        Mode::Notify => "notify",
        Mode::Bcast => "bcast",
        Mode::Idle => "idle",
        Mode::Connect => "connect",
    };
    let transport = match spec.transport {
        crate::conn::Transport::Tcp => "tcp",
        crate::conn::Transport::Ws => "ws",
    };
    let mut args = vec![
        "load".to_owned(),
        format!("--mode={mode}"),
        format!("--addr={addr}"),
        format!("--transport={transport}"),
        format!("--conns={}", spec.conns),
        format!("--inflight={}", spec.inflight),
        format!("--rate={}", spec.rate),
        format!("--route={}", spec.route),
        format!("--warmup={}", spec.warmup),
        format!("--secs={}", spec.secs),
        format!("--scenario={}", scenario.id),
        format!("--server={}", kind.label()),
        format!("--point={}", spec.label),
    ];
    args.extend(pids.iter().map(|p| format!("--pid={p}")));
    let mut cmd = if scenario.pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(&setup.exe);
        c
    } else {
        Command::new(&setup.exe)
    };
    cmd.args(&args).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(POINT_DEADLINE, cmd.output())
        .await
        .map_err(|_| format!("load point did not finish within {POINT_DEADLINE:?}"))?
        .map_err(|e| format!("load generator: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().last() else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("load generator failed: {}", stderr.trim()));
    };
    serde_json::from_str(line).map_err(|e| format!("bad load output {line:?}: {e}"))
}
