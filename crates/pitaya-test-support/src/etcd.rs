//! A real single-member `etcd` on free loopback ports, for discovery tests.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::daemon::{self, Daemon};

/// Longest wait for etcd to elect itself leader and report healthy.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// An `etcd` process with its own data directory, killed and removed on drop.
///
/// The client listens on `127.0.0.1:<free port>`, the peer URL on another free
/// port; the member is named `default`, as etcd names a lone member.
///
/// # Examples
///
/// ```no_run
/// let etcd = pitaya_test_support::EtcdServer::start()?;
/// println!("etcd at {}", etcd.endpoint());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EtcdServer {
    daemon: Daemon,
    client_port: u16,
    data_dir: PathBuf,
    // Holds the data directory and the log; dropped after the daemon.
    _dir: TempDir,
}

impl EtcdServer {
    /// Returns a running etcd once its `/health` endpoint reports healthy.
    ///
    /// # Errors
    ///
    /// Returns [`io::ErrorKind::NotFound`] when `etcd` is not installed (the
    /// message says to run `scripts/test.sh`), or an error quoting etcd's log
    /// when it exits or is not healthy within 30 s.
    pub fn start() -> io::Result<EtcdServer> {
        daemon::start_with_retry(Self::start_once)
    }

    fn start_once() -> io::Result<EtcdServer> {
        let dir = tempfile::Builder::new().prefix("pitaya-etcd-").tempdir()?;
        let data_dir = dir.path().join("data");
        let client_port = daemon::free_port()?;
        let peer_port = daemon::free_port()?;
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let args: Vec<OsString> = [
            "--name".into(),
            "default".into(),
            "--data-dir".into(),
            data_dir.clone().into_os_string(),
            "--listen-client-urls".into(),
            client.clone().into(),
            "--advertise-client-urls".into(),
            client.into(),
            "--listen-peer-urls".into(),
            peer.clone().into(),
            "--initial-advertise-peer-urls".into(),
            peer.clone().into(),
            "--initial-cluster".into(),
            format!("default={peer}").into(),
        ]
        .to_vec();
        let daemon = Daemon::new("etcd", args, &dir.path().join("etcd.log"))?;
        let mut server = EtcdServer {
            daemon,
            client_port,
            data_dir,
            _dir: dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let addr = self.addr();
        self.daemon.spawn(START_DEADLINE, || is_healthy(addr))
    }

    /// Returns the client endpoint, `127.0.0.1:<port>`, as etcd clients take it.
    pub fn endpoint(&self) -> String {
        self.addr().to_string()
    }

    /// Returns the client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// Kills etcd and waits for it to exit, keeping its data; see
    /// [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Returns whether the etcd process is running.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// Kills etcd if it runs and starts it again on the same ports with the same
    /// data, so keys and leases survive (etcd renews every lease's TTL on start).
    ///
    /// # Errors
    ///
    /// Returns an error quoting the log when the new process exits or is not
    /// healthy within 30 s.
    pub fn restart(&mut self) -> io::Result<()> {
        self.daemon.stop();
        self.spawn()
    }

    /// Kills etcd if it runs, deletes its data and starts an empty etcd on the
    /// same ports: what clients see when their etcd is replaced.
    ///
    /// # Errors
    ///
    /// Returns an error when the data cannot be removed or the new process is
    /// not healthy within 30 s.
    pub fn restart_empty(&mut self) -> io::Result<()> {
        self.daemon.stop();
        std::fs::remove_dir_all(&self.data_dir)?;
        self.spawn()
    }
}

/// Returns whether etcd at `addr` answers its health check; it reports healthy
/// only once it has a leader, so a true answer means it serves requests.
fn is_healthy(addr: SocketAddr) -> bool {
    match daemon::http(addr, "GET", "/health", "") {
        Ok((200, body)) => body.contains(r#""health":"true""#),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::*;

    // The JSON gateway takes keys and values in base64: "a" and "b".
    const PUT_A_B: &str = r#"{"key":"YQ==","value":"Yg=="}"#;
    const RANGE_A: &str = r#"{"key":"YQ=="}"#;
    const VALUE_B: &str = r#""value":"Yg==""#;

    fn call(etcd: &EtcdServer, path: &str, body: &str) -> String {
        let (status, body) = daemon::http(etcd.addr(), "POST", path, body).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    #[test]
    fn start_serves_the_kv_api_and_drop_removes_process_and_data() {
        let etcd = EtcdServer::start().unwrap();
        let addr = etcd.addr();
        assert_eq!(etcd.endpoint(), format!("127.0.0.1:{}", addr.port()));

        call(&etcd, "/v3/kv/put", PUT_A_B);
        assert!(call(&etcd, "/v3/kv/range", RANGE_A).contains(VALUE_B));

        let data_dir = etcd.data_dir.clone();
        assert!(data_dir.exists());
        drop(etcd);
        assert!(TcpStream::connect(addr).is_err());
        assert!(!data_dir.exists());
    }

    #[test]
    fn restart_keeps_the_data() {
        let mut etcd = EtcdServer::start().unwrap();
        call(&etcd, "/v3/kv/put", PUT_A_B);

        etcd.stop();
        assert!(!etcd.is_running());
        assert!(TcpStream::connect(etcd.addr()).is_err());

        etcd.restart().unwrap();
        assert!(etcd.is_running());
        assert!(call(&etcd, "/v3/kv/range", RANGE_A).contains(VALUE_B));
    }

    #[test]
    fn restart_empty_starts_without_the_old_keys() {
        let mut etcd = EtcdServer::start().unwrap();
        call(&etcd, "/v3/kv/put", PUT_A_B);

        etcd.restart_empty().unwrap();
        let range = call(&etcd, "/v3/kv/range", RANGE_A);
        assert!(range.contains(r#""header""#), "{range}");
        assert!(!range.contains(VALUE_B), "{range}");
    }
}
