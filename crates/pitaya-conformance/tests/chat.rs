//! The whole suite against the chat example, in process, on ephemeral ports: every
//! check passes, and only the checks the configuration cannot support are skipped.

mod support;

use pitaya_conformance::{Outcome, Report};
use support::{chat_config, dictionary, Chat};

/// Returns the ids of the skipped checks, in report order.
fn skipped(report: &Report) -> Vec<&'static str> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skipped { .. }))
        .map(|r| r.check.id)
        .collect()
}

/// Asserts that nothing failed, listing every failure if something did.
fn assert_no_failures(report: &Report) {
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.to_string())
        .collect();
    assert!(failures.is_empty(), "{report}:\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_against_the_chat_with_default_settings() {
    let chat = Chat::start(chat_config()).await;
    let report = pitaya_conformance::run(chat.suite(), |_| {}).await;

    assert_no_failures(&report);
    assert_eq!(report.results.len(), pitaya_conformance::checks().len());
    // A small handshake goes out plain, there is no dictionary, and no limit was given.
    assert_eq!(
        skipped(&report),
        [
            "handshake.compressed",
            "compression.route-codes",
            "malformed.over-max-size"
        ]
    );
    let load = report.get("load.many-clients").expect("the load check ran");
    assert!(load.passed(), "{load}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_against_the_chat_with_a_dictionary_and_a_packet_limit() {
    const LIMIT: usize = 64 * 1024;
    let mut config = chat_config();
    config.handler.dictionary = dictionary();
    config.conn.max_packet_size = LIMIT;
    let chat = Chat::start(config).await;
    let mut suite = chat.suite();
    suite.max_packet_size = Some(LIMIT);
    // The load check already ran in the other test; a few clients keep this one short.
    suite.clients = 20;

    let report = pitaya_conformance::run(suite, |_| {}).await;

    assert_no_failures(&report);
    assert!(
        skipped(&report).is_empty(),
        "skipped: {:?}",
        skipped(&report)
    );
    let hello = report
        .get("handshake.tcp")
        .expect("the handshake check ran");
    assert_eq!(
        hello.outcome,
        Outcome::Passed {
            note: Some("zlib, heartbeat 1s, 45 dictionary routes".into())
        }
    );
    // Over the limit, the 1 MiB request must be refused rather than answered.
    let big = report.get("malformed.oversized-message").expect("ran");
    assert_eq!(
        big.outcome,
        Outcome::Passed {
            note: Some("closed the connection".into())
        }
    );
}
