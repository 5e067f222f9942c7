//! Modules: start and stop order, a failing init, lookups, and the binary module with
//! its child's output in the log.
#![cfg(unix)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pitaya::acceptor::TcpAcceptor;
use pitaya::cluster::BoxError;
use pitaya::module::{BinaryModule, Module};
use pitaya::{App, AppHandle, BuildError, Builder, StartError};

const WAIT: Duration = Duration::from_secs(30);

/// Every log line of this test binary, kept to look for the child's output.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Returns the log line containing `needle`, waiting for it.
async fn log_line(needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes each lifecycle call into a shared journal.
struct Recorder {
    name: &'static str,
    journal: Arc<Mutex<Vec<String>>>,
    fail_init: bool,
}

impl Recorder {
    fn note(&self, what: &str) {
        self.journal
            .lock()
            .unwrap()
            .push(format!("{what} {}", self.name));
    }
}

#[async_trait]
impl Module for Recorder {
    async fn init(&self, _: &AppHandle) -> Result<(), BoxError> {
        self.note("init");
        if self.fail_init {
            return Err("no database".into());
        }
        Ok(())
    }
    async fn after_init(&self, _: &AppHandle) {
        self.note("after");
    }
    async fn before_shutdown(&self, _: &AppHandle) {
        self.note("before");
    }
    async fn shutdown(&self, _: &AppHandle) -> Result<(), BoxError> {
        self.note("shutdown");
        Ok(())
    }
}

fn recorder(name: &'static str, journal: &Arc<Mutex<Vec<String>>>, fail: bool) -> Recorder {
    Recorder {
        name,
        journal: journal.clone(),
        fail_init: fail,
    }
}

async fn app(builder: Builder) -> App {
    let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    builder.acceptor(tcp).build().unwrap()
}

#[tokio::test]
async fn modules_start_in_order_and_stop_in_reverse() {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let builder = App::builder("game")
        .module("a", recorder("a", &journal, false))
        .module("b", recorder("b", &journal, false))
        .module_first("c", recorder("c", &journal, false));
    let app = app(builder).await;
    let handle = app.handle();
    assert_eq!(handle.module::<Recorder>("b").unwrap().name, "b");
    assert!(handle.module::<BinaryModule>("b").is_none(), "wrong type");
    assert!(handle.module::<Recorder>("nope").is_none());

    let run = tokio::spawn(app.run_until(std::future::pending()));
    let seen = journal.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.lock().unwrap().contains(&"after b".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "modules did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let got = journal.lock().unwrap().join(", ");
    assert_eq!(
        got,
        "init c, init a, init b, after c, after a, after b, \
         before b, before a, before c, shutdown b, shutdown a, shutdown c"
    );
}

#[tokio::test]
async fn a_failing_init_stops_the_start_and_names_the_module() {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let builder = App::builder("game")
        .module("a", recorder("a", &journal, false))
        .module("db", recorder("db", &journal, true))
        .module("late", recorder("late", &journal, false));
    let err = app(builder)
        .await
        .run_until(std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StartError::Module(e) if e.name == "db"),
        "{err}"
    );
    assert!(err.to_string().contains("no database"), "{err}");
    let got = journal.lock().unwrap().clone();
    assert!(!got.iter().any(|l| l.ends_with("late")), "{got:?}");
    assert_eq!(
        got,
        ["init a", "init db", "before a", "shutdown a"],
        "only the module that started is stopped"
    );
}

#[tokio::test]
async fn two_modules_cannot_share_a_name() {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let err = App::builder("game")
        .acceptor(tcp)
        .module("a", recorder("a", &journal, false))
        .module("a", recorder("a", &journal, false))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::DuplicateModule(n) if n == "a"));
}

#[tokio::test]
async fn binary_module_logs_its_child_and_stops_it_with_sigterm() {
    logs();
    let script = "echo hello from the child; echo trouble in the child >&2; exec sleep 60";
    let app =
        app(App::builder("game").module("child", BinaryModule::new("sh", ["-c", script]))).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    let out = log_line("hello from the child").await;
    assert!(
        out.contains("INFO") && out.contains("pitaya::module::binary"),
        "{out}"
    );
    let err = log_line("trouble in the child").await;
    assert!(err.contains("ERROR"), "{err}");

    let child = handle.module::<BinaryModule>("child").unwrap();
    let mut exited = child.exited();
    assert!(exited.borrow().is_none(), "the child still runs");
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let status = exited.wait_for(Option::is_some).await.unwrap().unwrap();
    assert_eq!(status.signal(), Some(15), "{status}");
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    logs();
    let script = "trap '' TERM; echo stubborn child up; exec sleep 60";
    let module = BinaryModule::new("sh", ["-c", script]).with_grace(Duration::from_millis(200));
    let app = app(App::builder("game").module("stubborn", module)).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));
    log_line("stubborn child up").await;

    let mut exited = handle.module::<BinaryModule>("stubborn").unwrap().exited();
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let status = exited.wait_for(Option::is_some).await.unwrap().unwrap();
    assert_eq!(status.signal(), Some(9), "{status}");
    let line = log_line("did not stop within").await;
    assert!(line.contains("stubborn"), "{line}");
}

#[tokio::test]
async fn a_child_that_exits_is_reported() {
    logs();
    let module = BinaryModule::new("sh", ["-c", "exit 3"]);
    let app = app(App::builder("game").module("brief", module)).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    let mut exited = handle.module::<BinaryModule>("brief").unwrap().exited();
    let status = tokio::time::timeout(WAIT, exited.wait_for(Option::is_some))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(log_line("child process exited").await.contains("WARN"));
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Returns the exit status of the module `name`, asking with a fresh receiver each time.
async fn exit_status(handle: &AppHandle, name: &str) -> std::process::ExitStatus {
    let module = handle.module::<BinaryModule>(name).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = *module.exited().borrow() {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exit of {name} never reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_exit_is_reported_to_those_who_ask_afterwards() {
    logs();
    let module = BinaryModule::new("sh", ["-c", "exit 4"]);
    let app = app(App::builder("game").module("late", module)).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    assert_eq!(exit_status(&handle, "late").await.code(), Some(4));
    let module = handle.module::<BinaryModule>("late").unwrap();
    assert_eq!(module.pid(), None, "a reaped child has no pid");
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_completes_after_the_child_exited() {
    logs();
    let module = BinaryModule::new("sh", ["-c", "echo leaving early; exit 3"]);
    let app = app(App::builder("game").module("early", module)).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    assert_eq!(exit_status(&handle, "early").await.code(), Some(3));
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("shutdown finished")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_line_that_is_not_utf8_is_logged_and_reading_goes_on() {
    logs();
    let script = r"printf 'caf\351 bad byte\n'; echo after the bad byte; exit 0";
    let module = BinaryModule::new("sh", ["-c", script]);
    let app = app(App::builder("game").module("bytes", module)).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    let bad = log_line("caf").await;
    assert!(bad.contains("caf\u{FFFD} bad byte"), "{bad}");
    log_line("after the bad byte").await;
    let status = exit_status(&handle, "bytes").await;
    assert_eq!(status.code(), Some(0), "the child was not killed: {status}");
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_overlong_line_is_logged_in_bounded_pieces() {
    logs();
    let script = "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after the long line; exit 0";
    let module = BinaryModule::new("sh", ["-c", script]);
    let app = app(App::builder("game").module("long", module)).await;
    let handle = app.handle();
    let run = tokio::spawn(app.run_until(std::future::pending()));

    log_line("after the long line").await;
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    let pieces: Vec<usize> = text
        .lines()
        .filter(|l| l.contains("xxxxxxxx"))
        .map(|l| l.matches('x').count())
        .collect();
    assert_eq!(pieces, [64 * 1024, 100_000 - 64 * 1024]);
    assert_eq!(exit_status(&handle, "long").await.code(), Some(0));
    handle.shutdown();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
