//! `pitaya-cli`: a command-line client for Pitaya servers.
//!
//! Interactive by default, with line editing and history; scripted when given a file,
//! `-`, or a standard input that is not a terminal. See `pitaya-cli --help`.

mod command;
mod interactive;
mod script;
mod session;

use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pitaya_client::ConnectOptions;

use crate::command::{parse_seconds, Command};
use crate::session::Session;

/// Talks to a Pitaya server: connect, request, notify, and watch pushes.
///
/// Without a script and on a terminal, opens a prompt (type `help`). With a script
/// file, `-`, or piped input, runs one command per line and prints one result line
/// per command: `ok <json>`, `push <route> <json>`, `connected <url>`, or
/// `error <code> <message>`; it exits with status 1 at the first error.
#[derive(Debug, Parser)]
#[command(name = "pitaya-cli", version)]
struct Args {
    /// Script to run, `-` for standard input.
    #[arg(value_name = "SCRIPT")]
    script: Option<PathBuf>,

    /// Script to run (same as the positional argument).
    #[arg(long = "script", value_name = "FILE", conflicts_with = "script")]
    script_flag: Option<PathBuf>,

    /// Connect to this URL before the first command (tcp://, tls://, ws://, wss://).
    #[arg(long, value_name = "URL")]
    connect: Option<String>,

    /// In scripted mode, run every command even after an error (exit status is still 1).
    #[arg(long)]
    keep_going: bool,

    /// Request timeout, and default `wait` timeout, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    timeout: Duration,

    /// Handshake user data, a JSON object.
    #[arg(long, value_name = "JSON", value_parser = json_value)]
    user: Option<serde_json::Value>,

    /// Trust the CA certificates of this PEM file for tls:// and wss:// (repeatable).
    #[arg(long = "ca", value_name = "FILE")]
    ca_files: Vec<PathBuf>,

    /// Name to check the server certificate against, instead of the URL's host.
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,

    /// DANGEROUS: accept any TLS certificate. For development servers only.
    #[arg(long)]
    insecure: bool,
}

/// Prints a result line; a closed standard output (`| head -1`) is no reason to panic,
/// and the scripted mode notices it on its own next write.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn seconds(s: &str) -> Result<Duration, String> {
    parse_seconds(s).ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

fn json_value(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("invalid json: {e}"))
}

impl Args {
    fn options(&self) -> ConnectOptions {
        let mut opts = ConnectOptions::new()
            .request_timeout(self.timeout)
            .insecure(self.insecure);
        if let Some(user) = &self.user {
            opts = opts.user_data(user.clone());
        }
        for ca in &self.ca_files {
            opts = opts.add_ca_file(ca);
        }
        if let Some(name) = &self.tls_server_name {
            opts = opts.tls_server_name(name);
        }
        opts
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();

    let script = args.script.clone().or_else(|| args.script_flag.clone());
    let scripted = script.is_some() || !std::io::stdin().is_terminal();
    let mut session = Session::new(args.options(), args.timeout);

    if let Some(url) = &args.connect {
        let connected = session.run(Command::Connect(url.clone())).await;
        match (&connected, scripted) {
            // Scripts print one line per command; the flag is not one of them.
            (Ok(_), true) => {}
            (Ok(line), false) => say(line),
            (Err(error), _) => {
                say(error);
                if scripted {
                    return ExitCode::FAILURE;
                }
            }
        }
    }

    if !scripted {
        return match interactive::run(session).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pitaya-cli: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let lines = match script.as_deref() {
        Some(path) if path.as_os_str() != "-" => match std::fs::File::open(path) {
            Ok(file) => script::spawn_reader(BufReader::new(file)),
            Err(e) => {
                eprintln!("pitaya-cli: cannot open {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        _ => script::spawn_reader(BufReader::new(std::io::stdin())),
    };
    let result = script::run(&mut session, lines, args.keep_going).await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // Whoever read the results stopped (`| head -1`): nothing left to tell anyone.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pitaya-cli: {e}");
            ExitCode::FAILURE
        }
    }
}
