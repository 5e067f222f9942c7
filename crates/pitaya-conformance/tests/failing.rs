//! The suite can fail: against a server that answers with wrong ids and never sends a
//! heartbeat, exactly the checks of those behaviours fail, and the binary says so in
//! its lines, its summary and its exit code.

mod support;

use std::process::Output;

use pitaya_conformance::{Config, Outcome, Report};
use support::{chat_config, Chat, WrongServer};

/// Returns the report of the checks matching `filters` against the wrong server.
async fn run_against_wrong_server(filters: &[&str]) -> Report {
    let server = WrongServer::start().await;
    let config = Config {
        tcp: Some(server.addr.clone()),
        timeout: support::TIMEOUT,
        filters: filters.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    };
    pitaya_conformance::run(config, |_| {}).await
}

/// Returns the reason a check failed; panics if it did not fail.
fn failure<'a>(report: &'a Report, id: &str) -> &'a str {
    match &report.get(id).expect("the check ran").outcome {
        Outcome::Failed { reason } => reason,
        other => panic!("{id} did not fail: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_response_ids_fail_the_id_checks() {
    let report = run_against_wrong_server(&["ids.echo", "ids.pipelining"]).await;

    assert_eq!(report.failed(), 2, "{report}");
    let reason = failure(&report, "ids.echo");
    assert!(
        reason.contains("response for id 2 (expected 1)"),
        "{reason}"
    );
    // Request 1's answer came labelled 2, and requests 1 and 2 fail differently.
    let reason = failure(&report, "ids.pipelining");
    assert!(
        reason.contains("request 2 answered PIT-404 (expected PIT-400)"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_sends_heartbeats_fails_the_heartbeat_check() {
    let server = WrongServer::start().await;
    let config = Config {
        tcp: Some(server.addr.clone()),
        // The check waits two intervals plus this, then fails.
        timeout: std::time::Duration::from_secs(1),
        filters: vec!["heartbeat.server-sends".into()],
        ..Default::default()
    };
    let report = pitaya_conformance::run(config, |_| {}).await;

    let reason = failure(&report, "heartbeat.server-sends");
    assert!(reason.starts_with("no heartbeat 1 within"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_needing_a_missing_transport_are_skipped_not_failed() {
    let report = run_against_wrong_server(&["handshake.ws", "room.mixed-transports"]).await;

    assert_eq!((report.skipped(), report.failed()), (2, 0), "{report}");
    assert_eq!(report.to_string(), "0 passed, 0 failed, 2 skipped");
}

/// Runs the binary with `args` and returns what it did.
async fn binary(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pitaya-conformance"))
        .args(args)
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_a_fail_line_and_exits_non_zero_when_a_check_fails() {
    let server = WrongServer::start().await;
    let out = binary(&["--tcp", &server.addr, "--filter", "ids.echo"]).await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("FAIL  ids.echo "), "{stdout}");
    assert_eq!(lines[1], "0 passed, 1 failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_checks_in_order_and_exits_zero_when_all_pass() {
    let chat = Chat::start(chat_config()).await;
    let filters = ["--filter", "handshake.tcp", "--filter", "ids."];
    let mut args = vec!["--tcp", &chat.tcp, "--ws", &chat.ws, "--timeout", "20s"];
    args.extend(filters);
    let out = binary(&args).await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let ids: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PASS  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        ids,
        ["handshake.tcp", "ids.echo", "ids.pipelining", "ids.zero"]
    );
    assert_eq!(stdout.lines().last(), Some("4 passed, 0 failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_a_filter_that_selects_nothing() {
    let server = WrongServer::start().await;
    let out = binary(&["--tcp", &server.addr, "--filter", "no.such.check"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_a_skipped_failing_check_as_skipped_and_exits_zero() {
    let server = WrongServer::start().await;
    let args = [
        "--tcp",
        &server.addr,
        "--filter",
        "ids.echo",
        "--skip",
        "ids.echo",
    ];
    let out = binary(&args).await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("SKIP  ids.echo "), "{stdout}");
    assert!(lines[0].ends_with("left out by --skip"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_to_skip_a_check_that_does_not_exist() {
    let server = WrongServer::start().await;
    let out = binary(&["--tcp", &server.addr, "--skip", "ids.ech"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--skip ids.ech"));
}
