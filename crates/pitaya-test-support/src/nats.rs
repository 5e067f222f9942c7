//! A real `nats-server` on a free loopback port, for cluster tests.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tempfile::TempDir;

use crate::daemon::{self, Daemon};

/// Longest wait for the server to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A `nats-server` process listening on `127.0.0.1:<free port>`, killed on drop.
///
/// # Examples
///
/// ```no_run
/// let nats = pitaya_test_support::NatsServer::start()?;
/// println!("connect to {}", nats.url());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct NatsServer {
    daemon: Daemon,
    port: u16,
    // Holds the log file; dropped after the daemon, which is declared first.
    _dir: TempDir,
}

impl NatsServer {
    /// Returns a running server once it accepts TCP connections.
    ///
    /// # Errors
    ///
    /// Returns [`io::ErrorKind::NotFound`] when `nats-server` is not installed
    /// (the message says to run `scripts/test.sh`), or an error quoting the
    /// server's log when it exits or is not ready within 10 s.
    pub fn start() -> io::Result<NatsServer> {
        daemon::start_with_retry(Self::start_once)
    }

    fn start_once() -> io::Result<NatsServer> {
        let dir = tempfile::Builder::new().prefix("pitaya-nats-").tempdir()?;
        let port = daemon::free_port()?;
        let args = ["-a", "127.0.0.1", "-p", &port.to_string()]
            .map(Into::into)
            .to_vec();
        let daemon = Daemon::new("nats-server", args, &dir.path().join("nats.log"))?;
        let mut server = NatsServer {
            daemon,
            port,
            _dir: dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let addr = self.addr();
        self.daemon
            .spawn(START_DEADLINE, || daemon::accepts_tcp(addr))
    }

    /// Returns the client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr())
    }

    /// Returns the address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server and waits for it to exit; [`NatsServer::restart`] brings
    /// it back on the same port.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Returns the server's process id while it runs, for benchmarks that read its CPU
    /// time from `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Returns whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// Kills the server if it runs and starts it again on the same port, for
    /// tests of clients that must reconnect.
    ///
    /// # Errors
    ///
    /// Returns an error quoting the log when the new process exits or is not
    /// ready within 10 s (for example when another process took the port).
    pub fn restart(&mut self) -> io::Result<()> {
        self.daemon.stop();
        self.spawn()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpStream;

    use super::*;

    /// Returns the first line the server sends a new client: NATS's `INFO`.
    fn greeting(addr: SocketAddr) -> io::Result<String> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    }

    #[test]
    fn start_speaks_nats_on_its_url_and_drop_stops_it() {
        let nats = NatsServer::start().unwrap();
        let addr = nats.addr();
        assert_eq!(nats.url(), format!("nats://127.0.0.1:{}", addr.port()));

        let info = greeting(addr).unwrap();
        assert!(info.starts_with("INFO {"), "{info}");
        assert!(
            info.contains(&format!(r#""port":{}"#, addr.port())),
            "{info}"
        );

        drop(nats);
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn stop_then_restart_serves_again_on_the_same_port() {
        let mut nats = NatsServer::start().unwrap();
        let url = nats.url();

        nats.stop();
        assert!(!nats.is_running());
        assert!(TcpStream::connect(nats.addr()).is_err());

        nats.restart().unwrap();
        assert!(nats.is_running());
        assert_eq!(nats.url(), url);
        assert!(greeting(nats.addr()).unwrap().starts_with("INFO {"));
    }

    #[test]
    fn two_servers_listen_on_different_ports() {
        let a = NatsServer::start().unwrap();
        let b = NatsServer::start().unwrap();
        assert_ne!(a.url(), b.url());
        assert!(greeting(a.addr()).unwrap().starts_with("INFO {"));
        assert!(greeting(b.addr()).unwrap().starts_with("INFO {"));
    }
}
