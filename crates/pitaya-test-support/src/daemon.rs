//! A server process started for a test: spawned, awaited until ready, killed on drop.
//!
//! Shared by [`NatsServer`](crate::NatsServer) and [`EtcdServer`](crate::EtcdServer).
//! Output goes to a log file in the server's temporary directory rather than a pipe,
//! because nobody reads a pipe during the test and a full pipe would stall the server.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Largest tail of the log quoted in a start-up error.
const LOG_TAIL: usize = 2_000;

/// Returns a loopback port that was free a moment ago.
///
/// We bind port 0, read the port the kernel chose and release it, so another
/// process may take it before the server binds it. That race is tiny on a test
/// machine; [`start_with_retry`] covers it by trying once more with new ports.
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Returns the path of the executable `name`, searched on `PATH`, then in
/// `/usr/bin` and `/usr/sbin` (Debian puts `nats-server` in `sbin`, which is
/// not on every user's `PATH`).
pub(crate) fn find_binary(name: &str) -> io::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = [PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")];
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "`{name}` not found on PATH, in /usr/bin or /usr/sbin: \
                     run scripts/test.sh, which installs it"
                ),
            )
        })
}

/// Runs `start` and, if it fails, once more: a second try draws new free ports,
/// which covers the race described on [`free_port`].
pub(crate) fn start_with_retry<T>(mut start: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match start() {
        Ok(server) => Ok(server),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => start(),
    }
}

/// A child process and what is needed to start it again the same way.
#[derive(Debug)]
pub(crate) struct Daemon {
    name: &'static str,
    binary: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Returns a daemon that is not running yet; `log` receives its output.
    pub(crate) fn new(name: &'static str, args: Vec<OsString>, log: &Path) -> io::Result<Self> {
        Ok(Daemon {
            name,
            binary: find_binary(name)?,
            args,
            log: log.to_owned(),
            child: None,
        })
    }

    /// Spawns the process and returns once `ready` says so.
    ///
    /// Fails, killing the process, when it exits first or `ready` is still false
    /// after `deadline`; the error quotes the end of the log.
    pub(crate) fn spawn(&mut self, deadline: Duration, ready: impl Fn() -> bool) -> io::Result<()> {
        self.stop();
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let child = self.child.insert(child);

        let give_up = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Err(self.failure(format!("exited during start-up ({status})")));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= give_up {
                self.stop();
                return Err(self.failure(format!("was not ready within {deadline:?}")));
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Kills the process, if running, and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine; either way `wait` reaps it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns the process id while the process runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns whether the process is running.
    pub(crate) fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Returns an error naming the daemon, `what` went wrong and its last log lines.
    fn failure(&self, what: String) -> io::Error {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        let mut start = text.len().saturating_sub(LOG_TAIL);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        io::Error::other(format!(
            "{} {what}; end of its log {}:\n{}",
            self.name,
            self.log.display(),
            &text[start..]
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Returns whether something accepts TCP connections at `addr`.
pub(crate) fn accepts_tcp(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Sends a small HTTP/1.1 request and returns the status code and body.
///
/// Enough for the health and JSON gateway endpoints of etcd; the connection is
/// closed by the server after one answer, so we read to the end.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> io::Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;

    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let (_, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_error_says_to_run_the_test_script() {
        let err = find_binary("pitaya-no-such-server").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("scripts/test.sh"), "{err}");
    }

    #[test]
    fn missing_binary_is_not_retried() {
        let mut tries = 0;
        let result: io::Result<()> = start_with_retry(|| {
            tries += 1;
            find_binary("pitaya-no-such-server").map(drop)
        });
        assert!(result.is_err());
        assert_eq!(tries, 1);
    }

    #[test]
    fn a_failed_start_is_tried_once_more() {
        let mut tries = 0;
        let result = start_with_retry(|| {
            tries += 1;
            if tries == 1 {
                Err(io::Error::other("port taken"))
            } else {
                Ok(tries)
            }
        });
        assert_eq!(result.unwrap(), 2);
    }

    #[test]
    fn process_that_exits_early_fails_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        // nats-server reports a missing config file and exits at once.
        let args = vec!["-c".into(), dir.path().join("missing.conf").into()];
        let mut daemon = Daemon::new("nats-server", args, &dir.path().join("log")).unwrap();
        let err = daemon.spawn(Duration::from_secs(10), || false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("nats-server exited during start-up"),
            "{text}"
        );
        assert!(text.contains("missing.conf"), "{text}");
        assert!(!daemon.is_running());
    }
}
