//! The built binary in scripted mode against a raw server that pushes, or misbehaves,
//! right after the handshake; and against a standard output nobody reads.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use pitaya::protocol::{Packet, PacketDecoder, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest a run of the binary may take; only a hung client ever reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Connections per script: the lost push of old was lost about one time in four, so
/// this many make a pass by luck very unlikely.
const ROUNDS: usize = 12;

const HELLO: &[u8] = br#"{"code":200,"sys":{"heartbeat":30,"dict":{},"serializer":"json"}}"#;

/// Returns the address of a server that answers every handshake, waits for the ack,
/// writes `then` at once, and keeps the connection until the client closes it.
async fn server(then: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(socket, then.clone()));
        }
    });
    addr
}

async fn serve(mut socket: TcpStream, then: Vec<u8>) {
    let mut decoder = PacketDecoder::new();
    let mut buf = BytesMut::new();
    let mut packets = 0;
    loop {
        while let Some(p) = decoder.decode(&mut buf).unwrap() {
            packets += 1;
            match (packets, p.kind) {
                (1, PacketType::Handshake) => socket.write_all(&packet(1, HELLO)).await.unwrap(),
                (2, PacketType::HandshakeAck) => {
                    let _ = socket.write_all(&then).await;
                }
                _ => {}
            }
        }
        if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let kind = PacketType::try_from(kind).unwrap();
    Packet::new(kind, body.to_vec())
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// Runs the binary on `script` and returns what it did.
async fn cli(script: String) -> Output {
    let run = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pitaya-cli"))
            .args(["--keep-going", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut input = child.stdin.take().unwrap();
        input.write_all(script.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    });
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the binary finishes")
        .unwrap()
}

fn lines(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn wait_right_after_connect_sees_the_push_sent_right_after_the_handshake() {
    let mut welcome = vec![3 << 1, 9];
    welcome.extend_from_slice(b"onWelcome{\"hello\":1}");
    let addr = server(packet(4, &welcome)).await;
    let script = format!("connect {addr}\nwait onWelcome 10\n").repeat(ROUNDS);

    let out = cli(script).await;

    assert!(out.status.success(), "{out:?}");
    let round = [
        format!("connected tcp://{addr}"),
        r#"push onWelcome {"hello":1}"#.into(),
    ];
    assert_eq!(
        lines(&out),
        round
            .iter()
            .cycle()
            .take(2 * ROUNDS)
            .cloned()
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn wait_reports_why_the_server_was_dropped() {
    // A push whose route length (200) runs past the end of the message.
    let addr = server(packet(4, &[3 << 1, 200, b'a', b'b'])).await;
    let script = format!("connect {addr}\nwait onWelcome 10\nwait onWelcome 10\n").repeat(ROUNDS);

    let out = cli(script).await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 3 * ROUNDS, "{lines:?}");
    for round in lines.chunks(3) {
        // The second wait, after the disconnect was seen, still says why.
        for line in &round[1..] {
            assert!(
                line.starts_with("error client disconnected: invalid data from the server: "),
                "{round:?}"
            );
        }
    }
}

#[test]
fn a_closed_standard_output_ends_the_script_quietly() {
    // The read end is gone before the binary writes its first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pitaya-cli"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"help\n").unwrap();
    let out = child.wait_with_output().unwrap();

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}
