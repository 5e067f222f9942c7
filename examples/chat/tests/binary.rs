//! The built `chat` binary: addresses from the environment, `--heartbeat`, connection
//! logs, the browser page behind `--http`, and a clean exit on SIGTERM.

mod http;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use pitaya_test_support::{init_tracing, RawClient};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long the binary may take to start, log a line, or exit.
const WAIT: Duration = Duration::from_secs(30);

/// The running binary and every line it writes; killed on drop if still running.
struct Server {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Returns the binary started with `envs` and `args`, its output collected.
    fn start(envs: &[(&str, String)], args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat binary starts");
        let (tx, lines) = mpsc::unbounded_channel();
        forward(child.stdout.take().expect("piped stdout"), tx.clone());
        forward(child.stderr.take().expect("piped stderr"), tx);
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Returns the first line from now on that contains every one of `needles`.
    async fn line_with(&mut self, needles: &[&str]) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if needles.iter().all(|n| line.contains(n)) {
                    return line;
                }
            }
            panic!("chat exited without logging {needles:?}: {:#?}", self.seen);
        };
        match timeout(WAIT, wait).await {
            Ok(line) => line,
            Err(_) => panic!("chat logged no {needles:?} in time"),
        }
    }

    /// Sends SIGTERM and returns the exit status, with every line written until then.
    async fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");

        let exit = async {
            // The output ends when the process does; then its status is ready.
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line);
            }
            self.child.wait().expect("wait for chat")
        };
        let status = timeout(WAIT, exit).await.expect("chat exits after SIGTERM");
        (status, std::mem::take(&mut self.seen))
    }
}

/// Sends each line of `from` to `to` from a thread of its own.
fn forward(from: impl Read + Send + 'static, to: mpsc::UnboundedSender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = to.send(line);
        }
    });
}

/// Returns a local address that was free a moment ago.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

#[tokio::test]
async fn binary_serves_configured_addresses_logs_connections_and_exits_on_sigterm() {
    init_tracing();
    let (tcp, ws) = (free_addr(), free_addr());
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", tcp.to_string()),
            ("CHAT_WS_ADDR", ws.to_string()),
        ],
        &["--heartbeat", "1s"],
    );
    server.line_with(&["server started"]).await;

    let mut client = RawClient::tcp(tcp).await.expect("connect over tcp");
    let remote = client.local_addr().unwrap().to_string();
    let hello = client.handshake().await.expect("handshake over tcp");
    assert_eq!(hello.sys.heartbeat, Duration::from_secs(1));
    client
        .request(1, "room.room.join", br#"{"name":"bin"}"#)
        .await
        .unwrap();
    let answer = client.recv_response().await.expect("join answered");
    assert_eq!(
        pitaya_test_support::json(&answer),
        serde_json::json!({ "code": 0, "result": "success" })
    );

    let mut ws_client = RawClient::ws(ws).await.expect("connect over websocket");
    let hello = ws_client.handshake().await.expect("handshake over ws");
    assert_eq!(hello.sys.heartbeat, Duration::from_secs(1));

    drop(client);
    // The close line carries the connection's span, so it names the client's address.
    server.line_with(&["connection closed", &remote]).await;
    drop(ws_client);

    let (status, lines) = server.terminate().await;
    assert!(status.success(), "chat exited with {status}: {lines:#?}");
    let opened = lines
        .iter()
        .find(|l| l.contains("connection opened") && l.contains(&remote));
    assert!(opened.is_some(), "an open line names {remote}: {lines:#?}");
    let page = lines.iter().find(|l| l.contains("chat page"));
    assert!(page.is_none(), "no page without --http: {page:?}");
}

#[tokio::test]
async fn binary_serves_the_page_at_the_logged_url_pointing_at_its_websocket_port() {
    init_tracing();
    // Every port is picked by the kernel: the page must report the bound one.
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", "127.0.0.1:0".to_owned()),
            ("CHAT_WS_ADDR", "127.0.0.1:0".to_owned()),
        ],
        &["--http", "127.0.0.1:0"],
    );
    let line = server.line_with(&["chat page served"]).await;
    let url = line
        .split_once("url=http://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("no url in {line:?}"));
    let page: SocketAddr = url.parse().expect("the url names an address");

    assert_eq!(http::request(page, "GET", "/").await.status, 200);
    let reply = http::request(page, "GET", "/config.json").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let config: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    let ws_port = config["wsPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no port in {config}"));

    // The app's accept loops run once it logs this; a SIGTERM before would kill it.
    server.line_with(&["server started"]).await;
    let mut client = RawClient::ws(SocketAddr::from(([127, 0, 0, 1], ws_port)))
        .await
        .expect("connect to the page's websocket port");
    let hello = client.handshake().await.expect("handshake there");
    assert_eq!(hello.sys.serializer, "json");
    drop(client);

    let (status, lines) = server.terminate().await;
    assert!(status.success(), "chat exited with {status}: {lines:#?}");
}

#[test]
fn binary_refuses_the_page_together_with_tls() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .output()
        .expect("chat binary runs");
    assert!(!out.status.success(), "chat accepted --http with TLS");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--http"),
        "the refusal names --http: {stderr}"
    );
}

#[tokio::test]
async fn binary_logs_where_spans_go_and_takes_a_schemeless_endpoint_as_http() {
    init_tracing();
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", "127.0.0.1:0".to_owned()),
            ("CHAT_WS_ADDR", "127.0.0.1:0".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317".to_owned()),
        ],
        &[],
    );
    let line = server.line_with(&["exporting spans over OTLP/gRPC"]).await;
    assert!(
        line.contains("endpoint=http://127.0.0.1:4317")
            && line.contains("from=OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{line}"
    );
    server.line_with(&["server started"]).await;
    let (status, _) = server.terminate().await;
    assert!(status.success(), "{status}");
}

#[test]
fn binary_refuses_an_https_collector_at_startup_with_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat"))
        .env("CHAT_TCP_ADDR", "127.0.0.1:0")
        .env("CHAT_WS_ADDR", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")
        .output()
        .expect("chat binary runs");
    assert!(
        !out.status.success(),
        "chat started with an https collector"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("https://collector:4317") && stderr.contains("https needs TLS"),
        "{stderr}"
    );
}

#[tokio::test]
async fn binary_exposes_metrics_and_probes_with_one_env_switch() {
    init_tracing();
    let tcp = free_addr();
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", tcp.to_string()),
            ("CHAT_WS_ADDR", "127.0.0.1:0".to_owned()),
            ("PITAYA_METRICS_PROMETHEUS_ENABLED", "true".to_owned()),
            ("PITAYA_METRICS_PROMETHEUS_PORT", "0".to_owned()),
        ],
        &[],
    );
    // Port 0: the kernel picks one, and the log line says which.
    let line = server
        .line_with(&["metrics and health endpoint listening"])
        .await;
    let port: SocketAddr = line
        .split_once("addr=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let metrics = SocketAddr::from(([127, 0, 0, 1], port.port()));
    server.line_with(&["server started"]).await;

    let mut client = RawClient::tcp(tcp).await.expect("connect over tcp");
    client.handshake().await.expect("handshake");
    client
        .request(1, "room.room.join", br#"{"name":"metered"}"#)
        .await
        .unwrap();
    assert!(!client.recv_response().await.expect("join answered").error);

    let ready = http::request(metrics, "GET", "/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    // The answer is counted right after it is queued: poll for it.
    let counted = concat!(
        r#"pitaya_handler_response_time_seconds_count{code="",game="","#,
        r#"route="room.room.join",serverType="room",status="ok",type="handler"} 1"#
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let scrape = loop {
        let reply = http::request(metrics, "GET", "/metrics").await;
        assert_eq!(reply.status, 200);
        if reply.body.lines().any(|l| l == counted) {
            break reply.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{counted} not in\n{}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let clients = r#"pitaya_acceptor_connected_clients{game="",serverType="room"} 1"#;
    assert!(scrape.lines().any(|l| l == clients), "{scrape}");

    drop(client);
    let (status, lines) = server.terminate().await;
    assert!(status.success(), "chat exited with {status}: {lines:#?}");
}

#[tokio::test]
async fn proxy_protocol_rate_limit_and_connection_cap_switch_on_from_the_environment() {
    init_tracing();
    let (tcp, ws) = (free_addr(), free_addr());
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", tcp.to_string()),
            ("CHAT_WS_ADDR", ws.to_string()),
            ("PITAYA_ACCEPTOR_PROXYPROTOCOL", "true".into()),
            ("PITAYA_ACCEPTOR_MAXCONNECTIONS", "1".into()),
            ("PITAYA_CONN_RATELIMITING_ENABLED", "true".into()),
            ("PITAYA_CONN_RATELIMITING_LIMIT", "3".into()),
            ("PITAYA_CONN_RATELIMITING_INTERVAL", "1h".into()),
        ],
        &[],
    );
    server.line_with(&["server started"]).await;

    // Behind a proxy: the header first, then handshake, ack and a join, the three
    // packets of the hour.
    let mut client = RawClient::tcp(tcp).await.expect("connect over tcp");
    client
        .send_raw(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 3250\r\n")
        .await
        .unwrap();
    client.handshake().await.expect("handshake behind a proxy");
    client
        .request(1, "room.room.join", br#"{"name":"proxied"}"#)
        .await
        .unwrap();
    assert!(!client.recv_response().await.expect("join answered").error);
    client
        .request(2, "room.room.join", br#"{"name":"again"}"#)
        .await
        .unwrap();
    server.line_with(&["rate limit exceeded"]).await;

    // One connection at most: the next one is closed at once.
    let mut second = RawClient::tcp(tcp).await.expect("connect over tcp");
    assert!(second.expect_closed().await.unwrap().is_empty());
    server.line_with(&["connection limit reached"]).await;

    let (status, lines) = server.terminate().await;
    assert!(status.success(), "chat exited with {status}: {lines:#?}");
}

#[tokio::test]
async fn sigterm_with_draining_refuses_new_clients_and_exits_when_the_last_leaves() {
    init_tracing();
    let (tcp, ws) = (free_addr(), free_addr());
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", tcp.to_string()),
            ("CHAT_WS_ADDR", ws.to_string()),
            ("PITAYA_SESSION_DRAIN_ENABLED", "true".into()),
        ],
        &[],
    );
    server.line_with(&["server started"]).await;
    let mut client = RawClient::tcp(tcp).await.expect("connect over tcp");
    client.handshake().await.unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM failed");
    server.line_with(&["draining sessions"]).await;
    assert!(
        RawClient::tcp(tcp).await.is_err(),
        "tcp refused while draining"
    );
    assert!(
        RawClient::tcp(ws).await.is_err(),
        "ws refused while draining"
    );

    // The client still chats, and the server waits for it.
    client
        .request(1, "room.room.join", br#"{"name":"last"}"#)
        .await
        .unwrap();
    assert!(!client.recv_response().await.expect("join answered").error);
    drop(client);
    server
        .line_with(&["session draining ended", "Drained"])
        .await;
    let exit = async {
        while let Some(line) = server.lines.recv().await {
            server.seen.push(line);
        }
        server.child.wait().expect("wait for chat")
    };
    let status = timeout(WAIT, exit)
        .await
        .expect("chat exits after draining");
    assert!(status.success(), "chat exited with {status}");
}

#[tokio::test]
async fn a_second_sigterm_cuts_the_drain_short() {
    init_tracing();
    let (tcp, ws) = (free_addr(), free_addr());
    let mut server = Server::start(
        &[
            ("CHAT_TCP_ADDR", tcp.to_string()),
            ("CHAT_WS_ADDR", ws.to_string()),
            ("PITAYA_SESSION_DRAIN_ENABLED", "true".into()),
        ],
        &[],
    );
    server.line_with(&["server started"]).await;
    let mut client = RawClient::tcp(tcp).await.expect("connect over tcp");
    client.handshake().await.unwrap();

    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.expect("kill runs").success(), "kill -TERM failed");
    server.line_with(&["draining sessions"]).await;

    // The client stays, yet the second signal ends the wait and closes it.
    let (status, lines) = server.terminate().await;
    assert!(status.success(), "chat exited with {status}: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("another signal while draining")),
        "{lines:#?}"
    );
    client.expect_closed().await.unwrap();
}
