//! Scripted mode: commands from a file or standard input, one result line each.

use std::io::{self, BufRead, Write};

use tokio::sync::mpsc;

use crate::command::{self, Command};
use crate::session::Session;

/// Runs every command of `input`; returns whether all of them succeeded.
///
/// Stops at the first failure unless `keep_going`. Failures are printed as
/// `error ...` lines on standard output, in sequence with the results.
///
/// # Errors
///
/// When reading the script or writing the results fails.
pub(crate) async fn run(
    session: &mut Session,
    mut lines: mpsc::Receiver<io::Result<String>>,
    keep_going: bool,
) -> io::Result<bool> {
    let mut all_ok = true;
    while let Some(line) = lines.recv().await {
        let line = line?;
        let cmd = match command::parse(&line) {
            Ok(Some(Command::Quit)) => break,
            Ok(Some(cmd)) => cmd,
            Ok(None) => continue,
            Err(usage) => {
                all_ok = false;
                emit(&format!("error usage {usage}"))?;
                if keep_going {
                    continue;
                }
                break;
            }
        };
        match session.run(cmd).await {
            Ok(result) => emit(&result)?,
            Err(error) => {
                all_ok = false;
                emit(&error)?;
                if !keep_going {
                    break;
                }
            }
        }
    }
    session.close().await;
    Ok(all_ok)
}

/// Prints one result and flushes, so a reader on a pipe sees it at once.
fn emit(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Returns the lines of `input`, read on a thread of their own.
///
/// A plain thread rather than tokio's blocking pool: a read still waiting on an open
/// standard input would otherwise hold up the runtime's shutdown when we exit early.
pub(crate) fn spawn_reader(
    input: impl BufRead + Send + 'static,
) -> mpsc::Receiver<io::Result<String>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in input.lines() {
            let failed = line.is_err();
            if tx.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    rx
}
