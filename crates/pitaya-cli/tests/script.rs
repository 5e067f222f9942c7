//! The built binary in scripted mode against the chat example running in process.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pitaya::acceptor::{TcpAcceptor, WsAcceptor};
use pitaya::{AppHandle, Config};
use serde_json::{json, Value};

/// Longest a run of the binary may take; only a hung client ever reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// A chat app on ephemeral TCP and WebSocket ports; shut down on drop.
struct Chat {
    tcp: SocketAddr,
    ws: SocketAddr,
    app: AppHandle,
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.app.shutdown();
    }
}

impl Chat {
    async fn start() -> Chat {
        let builder = chat::builder(Config::default())
            .acceptor(TcpAcceptor::bind("127.0.0.1:0").await.unwrap())
            .acceptor(WsAcceptor::bind("127.0.0.1:0").await.unwrap());
        let app = chat::build(builder).await.unwrap();
        let addr = |name| {
            app.local_addrs()
                .into_iter()
                .find(|(t, _)| *t == name)
                .unwrap()
                .1
        };
        let (tcp, ws) = (addr("tcp"), addr("ws"));
        let handle = app.handle();
        tokio::spawn(app.run_until(std::future::pending()));
        Chat {
            tcp,
            ws,
            app: handle,
        }
    }

    fn tcp_url(&self) -> String {
        format!("tcp://{}", self.tcp)
    }
}

/// Runs the binary with `args`, feeding `stdin` to it; returns what it did.
async fn cli(args: &[&str], stdin: &str) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_owned();
    let run = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pitaya-cli"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    });
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the binary finishes")
        .unwrap()
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Returns the JSON after `prefix` on `line`, failing when the line does not start so.
fn json_after(line: &str, prefix: &str) -> Value {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{rest:?}: {e}"))
}

#[tokio::test]
async fn script_joins_sends_and_prints_results_and_pushes() {
    let chat = Chat::start().await;
    let script = r#"
# join, then say something
request room.room.join {"name": "cli"}
wait onMembers
notify room.room.message {"name": "cli", "content": "hi"}
wait onMessage 10
"#;
    let out = cli(&["--connect", &chat.tcp_url(), "-"], script).await;

    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], r#"ok {"code":0,"result":"success"}"#);
    assert_eq!(
        json_after(&lines[1], "push onMembers "),
        json!({ "members": ["cli"] })
    );
    assert_eq!(lines[2], "ok");
    assert_eq!(
        json_after(&lines[3], "push onMessage "),
        json!({ "name": "cli", "content": "hi" })
    );
}

#[tokio::test]
async fn empty_name_prints_the_server_error_and_exits_non_zero() {
    let chat = Chat::start().await;
    let script =
        "request room.room.join {\"name\": \"\"}\nrequest room.room.join {\"name\": \"x\"}\n";
    let out = cli(&["--connect", &chat.tcp_url()], script).await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = stdout_lines(&out);
    // The first error stops the script: the second join never runs.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error PIT-400 "), "{lines:?}");
}

#[tokio::test]
async fn keep_going_runs_every_command_but_still_fails() {
    let chat = Chat::start().await;
    let script =
        "request room.room.join {\"name\": \"\"}\nrequest room.room.join {\"name\": \"k\"}\n";
    let out = cli(&["--connect", &chat.tcp_url(), "--keep-going"], script).await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("error PIT-400 "));
    assert_eq!(lines[1], r#"ok {"code":0,"result":"success"}"#);
}

#[tokio::test]
async fn script_file_connects_over_websocket_and_disconnects() {
    let chat = Chat::start().await;
    let path = std::env::temp_dir().join(format!("pitaya-cli-script-{}.txt", std::process::id()));
    let script = format!(
        "connect ws://{}/\nrequest room.room.join {{\"name\":\"file\"}}\ndisconnect\n",
        chat.ws
    );
    std::fs::write(&path, script).unwrap();
    let out = cli(&["--script", path.to_str().unwrap()], "").await;
    let _ = std::fs::remove_file(&path);

    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout_lines(&out),
        [
            format!("connected ws://{}/", chat.ws),
            r#"ok {"code":0,"result":"success"}"#.to_owned(),
            "disconnected".to_owned(),
        ]
    );
}

#[tokio::test]
async fn unreachable_server_fails_the_script() {
    // Bind then drop a listener, so nothing listens on the port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = cli(
        &[],
        &format!("connect {addr}\nrequest room.room.join {{}}\n"),
    )
    .await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error client "), "{lines:?}");
}

#[tokio::test]
async fn mistakes_in_the_script_are_usage_errors() {
    let chat = Chat::start().await;
    let out = cli(
        &["--connect", &chat.tcp_url()],
        "request room.room.join {oops\n",
    )
    .await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("error usage invalid json"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn wait_without_a_push_times_out_as_an_error() {
    let chat = Chat::start().await;
    let out = cli(&["--connect", &chat.tcp_url()], "wait onNothing 0.2\n").await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("error client no push on onNothing"),
        "{lines:?}"
    );
}
