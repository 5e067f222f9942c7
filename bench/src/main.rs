//! `pitaya-bench`: pitaya-rs side by side with a raw tokio baseline and Go Pitaya.
//!
//! Subcommands:
//!
//! - `run`: the runner; starts the servers each scenario needs, drives them with the
//!   load generator, and writes the summary (see `docs/benchmarks.md`).
//! - `load`: the load generator alone, one JSON line per point.
//! - `baseline`, `nats-echo`: the raw baseline server and its NATS responder.
//! - `rs-server`: the pitaya-rs bench server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod baseline;
mod conn;
mod load;
mod rs_server;
mod runner;
mod wire;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pitaya-bench",
    about = "Benchmarks pitaya-rs against a baseline and Go Pitaya"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the scenarios against every server and writes the summary.
    Run(runner::RunArgs),
    /// Runs one load point and prints its JSON line.
    Load(load::LoadArgs),
    /// Runs the raw baseline server.
    Baseline(baseline::BaselineArgs),
    /// Runs the NATS responder of the baseline's relay route.
    NatsEcho {
        /// NATS URL.
        #[arg(long)]
        nats: String,
    },
    /// Runs the pitaya-rs bench server.
    RsServer(rs_server::ServerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pitaya-bench: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => runner::run(args).await,
            Command::Load(args) => load::run(args).await,
            Command::Baseline(args) => Ok(baseline::run(args).await?),
            Command::NatsEcho { nats } => Ok(baseline::nats_echo(&nats).await?),
            Command::RsServer(args) => rs_server::run(args).await,
        }
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pitaya-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
