//! The built binary in interactive mode, typed at through a pseudo-terminal: pasted
//! lines each run, and a waited-for push shows once.

#![cfg(unix)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use nix::pty::openpty;
use pitaya::protocol::{Packet, PacketDecoder, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Longest the test waits for any one piece of output; only a broken client reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// The binary on a pseudo-terminal, and everything it printed so far.
struct Terminal {
    child: Child,
    home: PathBuf,
    input: File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Terminal {
    fn start() -> Terminal {
        let pty = openpty(None, None).expect("a pseudo-terminal");
        static TERMINALS: AtomicUsize = AtomicUsize::new(0);
        let n = TERMINALS.fetch_add(1, Ordering::Relaxed);
        // A home of its own keeps the history file out of the user's.
        let home = std::env::temp_dir().join(format!("pitaya-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let slave = File::from(pty.slave);
        let child = Command::new(env!("CARGO_BIN_EXE_pitaya-cli"))
            .env("HOME", &home)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("the binary starts");
        let input = File::from(pty.master);
        let mut reader = input.try_clone().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            // Once the binary is gone, the read fails (EIO) instead of returning 0.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            home,
            input,
            output,
            seen: String::new(),
        }
    }

    fn type_in(&mut self, keys: &str) {
        self.input.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits until the output holds `text` `times` times in all.
    fn expect(&mut self, text: &str, times: usize) {
        while self.seen.matches(text).count() < times {
            match self.output.recv_timeout(PATIENCE) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {text:?} x{times} in {:?}", self.seen),
            }
        }
    }

    /// Types `quit` and returns all the output once the binary has left.
    fn quit(mut self) -> String {
        self.type_in("quit\r");
        while let Ok(bytes) = self.output.recv_timeout(PATIENCE) {
            self.seen.push_str(&String::from_utf8_lossy(&bytes));
        }
        let status = self.child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&self.home);
        assert!(status.success(), "{status:?}: {:?}", self.seen);
        self.seen
    }
}

#[test]
fn each_pasted_line_runs_as_a_command() {
    let mut term = Terminal::start();
    term.expect("pitaya> ", 1);

    // One write, as a terminal delivers a paste.
    term.type_in("fly1\rfly2\rfly3\r");

    for word in ["fly1", "fly2", "fly3"] {
        term.expect(&format!("unknown command \"{word}\""), 1);
    }
    term.quit();
}

/// Returns the address of a server that pushes `onTick {"n": k}` for each heartbeat
/// the client sends, numbering them from 1.
async fn ticking_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let (mut decoder, mut buf, mut ticks) = (PacketDecoder::new(), BytesMut::new(), 0);
        loop {
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                let reply = match p.kind {
                    // 0.1 s: the shortest heartbeat the client agrees to.
                    PacketType::Handshake => Packet::new(
                        PacketType::Handshake,
                        &br#"{"code":200,"sys":{"heartbeat":0.1,"serializer":"json"}}"#[..],
                    ),
                    PacketType::Heartbeat => {
                        ticks += 1;
                        let mut msg = vec![3 << 1, 6];
                        msg.extend_from_slice(format!("onTick{{\"n\":{ticks}}}").as_bytes());
                        Packet::new(PacketType::Data, msg)
                    }
                    _ => continue,
                };
                let _ = socket.write_all(&reply.to_bytes().unwrap()).await;
            }
            if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_for_push_is_printed_once() {
    let addr = ticking_server().await;
    let seen = tokio::task::spawn_blocking(move || {
        let mut term = Terminal::start();
        term.expect("pitaya> ", 1);
        term.type_in(&format!("connect {addr}\r"));
        term.expect("connected tcp://", 1);
        term.type_in("wait onTick 10\r");
        // Pushes keep coming; some are printed before and after the one waited for.
        term.expect("push onTick", 4);
        term.quit()
    })
    .await
    .unwrap();

    let mut ticks: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split("push onTick ").nth(1))
        .map(str::trim)
        .collect();
    let all = ticks.len();
    ticks.sort_unstable();
    ticks.dedup();
    assert_eq!(ticks.len(), all, "a push printed twice: {seen:?}");
}
