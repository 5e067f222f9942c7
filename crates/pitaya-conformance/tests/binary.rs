//! The binary on its own mistakes and the user's: nothing at the address, a timeout
//! past what clocks count, a reader that stops reading.

use std::process::{Command, Output, Stdio};

fn binary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pitaya-conformance"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn nothing_listening_is_one_error_and_exit_1() {
    // Bind then drop a listener, so nothing listens on the port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = binary(&["--tcp", &addr]);

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the server at {addr}")),
        "{stderr}"
    );
}

#[test]
fn a_timeout_too_long_for_the_clock_is_a_usage_error() {
    let out = binary(&["--tcp", "127.0.0.1:1", "--timeout", "18446744073709551615s"]);

    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--timeout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_closed_standard_output_ends_the_run_quietly() {
    // The read end is gone before the binary writes its first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_pitaya-conformance"))
        .arg("--list")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}
