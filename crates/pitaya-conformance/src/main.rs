//! `pitaya-conformance`: runs the protocol checks against a server and prints one line
//! per check, then `N passed, N failed`. Exits 1 when a check failed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pitaya_conformance::{Config, DEFAULT_CLIENTS};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pitaya-conformance",
    version,
    about = "Checks a server against Pitaya's wire protocol and the chat example's contract"
)]
struct Args {
    /// TCP address of the server (host:port).
    #[arg(long, required_unless_present_any = ["ws", "list"])]
    tcp: Option<String>,
    /// WebSocket address (host:port, or a ws:// URL with a path).
    #[arg(long)]
    ws: Option<String>,
    /// Clients the load check connects at once.
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    clients: usize,
    /// How long one expected answer, push or close may take (5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The server's largest packet body in bytes, to check that a longer one is refused.
    #[arg(long)]
    max_packet_size: Option<usize>,
    /// Run only the checks whose id contains this; repeat for more.
    #[arg(long, value_name = "TEXT")]
    filter: Vec<String>,
    /// Leave out the check with this exact id (reported as skipped); repeat for more.
    #[arg(long, value_name = "ID")]
    skip: Vec<String>,
    /// Print the checks and what each expects, then exit.
    #[arg(long)]
    list: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for check in pitaya_conformance::checks() {
            println!("{:<32} {}", check.id, check.description);
        }
        return ExitCode::SUCCESS;
    }

    // A mistyped id would silently run the check it meant to leave out.
    let ids: Vec<_> = pitaya_conformance::checks()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if let Some(unknown) = args.skip.iter().find(|s| !ids.contains(&s.as_str())) {
        eprintln!("pitaya-conformance: --skip {unknown}: no such check (see --list)");
        return ExitCode::from(2);
    }

    let config = Config {
        tcp: args.tcp,
        ws: args.ws,
        clients: args.clients,
        timeout: args.timeout,
        max_packet_size: args.max_packet_size,
        filters: args.filter,
        skips: args.skip,
    };
    let report = pitaya_conformance::run(config, |result| {
        println!("{result}");
        // Lines are worth seeing as they come when the slow checks take minutes.
        let _ = std::io::stdout().flush();
    })
    .await;

    if report.results.is_empty() {
        eprintln!("pitaya-conformance: no check matches the filters (see --list)");
        return ExitCode::from(2);
    }
    println!("{report}");
    if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
