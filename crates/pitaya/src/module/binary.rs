//! A child process run beside the server, its output in the server's log.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::Module;
use crate::cluster::BoxError;
use crate::AppHandle;

/// Runs a program for as long as the app runs (spec 14.5).
///
/// Its standard output becomes info log lines and its standard error error lines, both
/// under the target `pitaya::module::binary`. If it exits on its own, that is logged and
/// [`exited`](Self::exited) reports the status. At shutdown it gets SIGTERM, then, after
/// the grace period (default 15 s), SIGKILL; being killed is reported as an error.
///
/// # Examples
///
/// ```no_run
/// use pitaya::module::BinaryModule;
///
/// let sidecar = BinaryModule::new("/usr/local/bin/matchmaker", ["--port", "7000"]);
/// # let _ = sidecar;
/// ```
#[derive(Debug)]
pub struct BinaryModule {
    program: OsString,
    args: Vec<OsString>,
    grace: Duration,
    child: Mutex<Option<Child>>,
    pid: Mutex<Option<u32>>,
    exit_tx: watch::Sender<Option<ExitStatus>>,
}

impl BinaryModule {
    /// Returns a module that runs `program` with `args`.
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        BinaryModule {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            grace: Duration::from_secs(15),
            child: Mutex::new(None),
            pid: Mutex::new(None),
            exit_tx: watch::channel(None).0,
        }
    }

    /// Returns the module with this wait between SIGTERM and SIGKILL at shutdown.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Returns a receiver of the child's exit status: `None` while it runs.
    pub fn exited(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit_tx.subscribe()
    }

    /// Returns the child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        // Once reaped, the number may belong to another process: never hand it out.
        if self.exit_tx.borrow().is_some() {
            return None;
        }
        *self.pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn program(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

#[async_trait]
impl Module for BinaryModule {
    async fn init(&self, _app: &AppHandle) -> Result<(), BoxError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program()))?;
        let program = self.program();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(log_lines(out, program.clone(), false));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(log_lines(err, program.clone(), true));
        }
        let pid = child.id();
        tracing::info!(program, pid, "child process started");
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = pid;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    async fn after_init(&self, _app: &AppHandle) {
        // The waiter owns the child from here; `shutdown` signals it by pid.
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut child) = child else { return };
        let (tx, program) = (self.exit_tx.clone(), self.program());
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => {
                    // `send` drops the value when nobody listens; later callers of
                    // `exited` and `shutdown` must still see it.
                    tx.send_replace(Some(status));
                    tracing::warn!(program, %status, "child process exited");
                }
                Err(e) => tracing::error!(program, error = %e, "child process lost"),
            }
        });
    }

    async fn shutdown(&self, _app: &AppHandle) -> Result<(), BoxError> {
        let mut exited = self.exited();
        if exited.borrow().is_some() {
            return Ok(());
        }
        let Some(pid) = self.pid() else { return Ok(()) };
        signal(pid, false);
        let ended = tokio::time::timeout(self.grace, wait_exit(&mut exited)).await;
        if ended.is_ok() {
            return Ok(());
        }

        // A waiter that lost the child never reports: bound the wait after SIGKILL too.
        if exited.borrow().is_none() {
            signal(pid, true);
        }
        let killed = tokio::time::timeout(KILL_WAIT, wait_exit(&mut exited)).await;
        let program = self.program();
        match killed {
            Ok(()) => Err(format!(
                "{program} did not stop within {:?} of SIGTERM: killed",
                self.grace
            )
            .into()),
            Err(_) => {
                Err(format!("{program} not seen exiting within {KILL_WAIT:?} of SIGKILL").into())
            }
        }
    }
}

/// How long shutdown waits for the child to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Completes once the child has exited (or its waiter is gone).
async fn wait_exit(exited: &mut watch::Receiver<Option<ExitStatus>>) {
    // The guard `wait_for` returns is not `Send`: drop it before any other await.
    let done = exited.wait_for(Option::is_some).await.is_ok();
    let _ = done;
}

/// Sends SIGTERM, or SIGKILL when `kill`, to `pid`.
#[cfg(unix)]
fn signal(pid: u32, kill: bool) {
    use nix::sys::signal::{kill as send, Signal};
    use nix::unistd::Pid;
    let sig = if kill {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(e) = send(Pid::from_raw(pid), sig) {
        tracing::debug!(pid, error = %e, "signal not delivered: child already gone");
    }
}

#[cfg(not(unix))]
fn signal(_pid: u32, _kill: bool) {}

/// Longest output line we buffer; a longer one is logged in pieces of this size.
const MAX_LINE: u64 = 64 * 1024;

/// Logs every line of `out`, at error level when `errors`, until end of file.
///
/// Lines are bytes, logged lossily: one stray byte must not stop the reading, or the
/// child would die of SIGPIPE on its next write.
async fn log_lines(out: impl AsyncRead + Unpin, program: String, errors: bool) {
    let mut out = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut out).take(MAX_LINE).read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(program, error = %e, "child output unreadable");
                return;
            }
        }
        let end = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let end = end.strip_suffix(b"\r").unwrap_or(end);
        let line = String::from_utf8_lossy(end);
        if errors {
            tracing::error!(target: "pitaya::module::binary", program, "{line}");
        } else {
            tracing::info!(target: "pitaya::module::binary", program, "{line}");
        }
    }
}
