//! A chat app plus test handlers on ephemeral ports, TLS certificates, and a raw
//! scripted server for what a real server will not do.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pitaya::acceptor::{TcpAcceptor, TlsConfig, WsAcceptor};
use pitaya::{AppHandle, Component, Config, Context, Error};
use pitaya_client::{Event, Events};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

/// Longest a test waits for anything; only a broken client ever reaches it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Installs a test tracing subscriber once (honours `RUST_LOG`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A chat app with the `room.test.*` handlers; shut down on drop.
pub struct Server {
    addrs: Vec<(&'static str, SocketAddr)>,
    app: AppHandle,
    /// One message each time `room.test.slow` starts.
    pub started: mpsc::UnboundedReceiver<()>,
    /// Lets every waiting `room.test.slow` answer.
    pub release: Arc<Notify>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.release.notify_waiters();
        self.app.shutdown();
    }
}

impl Server {
    /// Returns a server with the default config on TCP and WebSocket.
    pub async fn start() -> Server {
        Self::with_config(Config::default()).await
    }

    /// Returns a server with `config` on TCP and WebSocket.
    pub async fn with_config(config: Config) -> Server {
        let tcp = TcpAcceptor::bind("127.0.0.1:0").await.expect("bind tcp");
        let ws = WsAcceptor::bind("127.0.0.1:0").await.expect("bind ws");
        Self::build(config, tcp, ws).await
    }

    /// Returns a server on TLS and WebSocket over TLS with `cert`.
    pub async fn tls(cert: &TestCert) -> Server {
        let tls = cert.server_config();
        let tcp = TcpAcceptor::bind("127.0.0.1:0").await.expect("bind tls");
        let ws = WsAcceptor::bind("127.0.0.1:0").await.expect("bind wss");
        Self::build(
            Config::default(),
            tcp.with_tls(tls.clone()),
            ws.with_tls(tls),
        )
        .await
    }

    async fn build(config: Config, tcp: TcpAcceptor, ws: WsAcceptor) -> Server {
        init_tracing();
        let (started_tx, started) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let builder = chat::builder(config)
            .acceptor(tcp)
            .acceptor(ws)
            .register(test_component(started_tx, release.clone()));
        let app = chat::build(builder).await.expect("app builds");
        let addrs = app.local_addrs();
        let handle = app.handle();
        tokio::spawn(app.run_until(std::future::pending()));
        Server {
            addrs,
            app: handle,
            started,
            release,
        }
    }

    /// Returns the URL of the acceptor for `scheme` (`tcp`, `ws`, `tls`, `wss`).
    pub fn url(&self, scheme: &str) -> String {
        let addr = self
            .addrs
            .iter()
            .find(|(t, _)| *t == scheme)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("no {scheme} acceptor"));
        match scheme {
            "ws" | "wss" => format!("{scheme}://{addr}/"),
            _ => format!("{scheme}://{addr}"),
        }
    }
}

/// Handlers the chat room lacks: echo, handshake data, kick, close, a slow answer,
/// a big answer.
fn test_component(started: mpsc::UnboundedSender<()>, release: Arc<Notify>) -> Component {
    Component::new("test")
        .request(
            "echo",
            |_: Context, v: Value| async move { Ok::<_, Error>(v) },
        )
        .request("whoami", |ctx: Context, _: Value| async move {
            let user = ctx.session().handshake().and_then(|h| h.user.clone());
            Ok::<_, Error>(json!({ "user": user }))
        })
        .request("big", |_: Context, n: usize| async move {
            Ok::<_, Error>(json!({ "text": "pitaya ".repeat(n) }))
        })
        .request("slow", move |_: Context, v: Value| {
            let (started, release) = (started.clone(), release.clone());
            async move {
                let released = release.notified();
                let _ = started.send(());
                released.await;
                Ok::<_, Error>(v)
            }
        })
        .notify("kick", |ctx: Context, _: Value| async move {
            ctx.session()
                .kick()
                .await
                .map_err(|e| Error::internal(e.to_string()))
        })
        .notify("close", |ctx: Context, _: Value| async move {
            ctx.session().close();
            Ok(())
        })
}

/// Returns the next event, failing the test when none comes.
pub async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time")
        .expect("the connection is still open")
}

/// A self-signed certificate for `localhost` in a fresh temporary directory.
pub struct TestCert {
    dir: PathBuf,
}

impl TestCert {
    pub fn new(name: &str) -> TestCert {
        let unique = format!("pitaya-client-{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        TestCert { dir }
    }

    /// Returns the path of the certificate, usable as a CA file by clients.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn server_config(&self) -> TlsConfig {
        TlsConfig::from_pem_files(self.cert_path(), self.dir.join("key.pem")).unwrap()
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
