//! Serving the ops routes over HTTP/1.1 with limits a client cannot get around.
//!
//! `axum::serve` sets no timer on its connections, so hyper's header read timeout never
//! runs, and it accepts without bound: a client that connects and sends nothing holds
//! its connection, and its task, for ever. We drive hyper ourselves instead: a free slot
//! of [`Limits::max_connections`] is taken before each accept, and each connection must
//! deliver a whole request head within [`Limits::header_read_timeout`], the first one
//! and each one after an idle keep-alive.
//!
//! The head timeout says nothing about the other direction: a client that pipelines
//! requests and never reads the answers blocks hyper on a full socket buffer, and keeps
//! its slot. So every connection also has a [`Limits::lifetime`]; once it is over, the
//! request in progress may finish within [`Limits::close_grace`], then the connection is
//! closed whatever state it is in.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What one HTTP listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest wait for a request head, from when the connection is ready for one.
    pub(crate) header_read_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog.
    pub(crate) max_connections: usize,
    /// How long a connection is kept, keep-alive included, before it is asked to close.
    pub(crate) lifetime: Duration,
    /// How long a connection asked to close (lifetime over or server stopping) may take
    /// to finish its request in progress before it is closed anyway.
    pub(crate) close_grace: Duration,
}

impl Limits {
    /// Enough for Prometheus, probes and a few people with curl; a scraper sends its
    /// head at once, so seconds are plenty. A lifetime of 30 seconds still lets a
    /// scraper reuse its connection for a scrape or two, and caps how long a client
    /// that never reads can hold one of the 64 slots at 35 seconds.
    pub(crate) const OPS: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 64,
        lifetime: Duration::from_secs(30),
        close_grace: Duration::from_secs(5),
    };
}

/// Serves `router` on `listener` until `stop`, then lets requests in progress finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);

    loop {
        // A slot first: over the limit, connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = stop.cancelled() => break,
        };
        // The semaphore is ours and never closed.
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let conn = drive(&http, tcp, peer, router.clone(), limits, stop.clone());
        connections.spawn(async move {
            conn.await;
            drop(slot);
        });
    }
    // Closed first, so that nobody connects only to wait behind the draining ones.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Returns the task serving one connection until it closes, its lifetime is over or
/// `stop`.
fn drive(
    http: &http1::Builder,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let service = TowerToHyperService::new(router);
    let conn = http.serve_connection(TokioIo::new(tcp), service);
    async move {
        tokio::pin!(conn);
        let closed = tokio::select! {
            closed = conn.as_mut() => Some(closed),
            () = tokio::time::sleep(limits.lifetime) => {
                tracing::debug!(%peer, "http connection lifetime over; closing it");
                None
            }
            () = stop.cancelled() => None,
        };

        // Asked to close: no new request; the one in progress may finish within the grace.
        let closed = match closed {
            Some(closed) => closed,
            None => {
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(limits.close_grace, conn).await {
                    Ok(closed) => closed,
                    Err(_) => {
                        tracing::debug!(%peer, "http connection still busy after its grace");
                        return;
                    }
                }
            }
        };
        if let Err(e) = closed {
            tracing::debug!(%peer, error = %e, "http connection closed");
        }
    }
}

/// Waits after a failed accept when retrying at once would fail again.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        tracing::debug!(error = %e, "http accept failed");
        return;
    }
    // Out of file descriptors and the like: give the process time to free some.
    tracing::error!(error = %e, "http accept failed; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::timeout;

    use super::*;

    /// Longest wait for an event that must happen; generous for a loaded machine.
    const WAIT: Duration = Duration::from_secs(30);

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        // Big enough that a client which does not read fills the socket buffers.
        let big = "x".repeat(64 * 1024);
        let router = Router::new()
            .route("/", get(|| async { "hello" }))
            .route("/big", get(move || async move { big }));
        tokio::spawn(serve(listener, router, limits, stop.clone()));
        (addr, stop)
    }

    /// Returns limits where only the slots count: no timer fires during a test.
    fn unbounded(max_connections: usize) -> Limits {
        let hour = Duration::from_secs(3600);
        Limits {
            header_read_timeout: hour,
            max_connections,
            lifetime: hour,
            close_grace: hour,
        }
    }

    /// Returns everything the server sends on `stream` until it closes.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut raw = Vec::new();
        let read = timeout(WAIT, stream.read_to_end(&mut raw)).await;
        read.expect("the server closes the connection").unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    }

    async fn get_root(stream: &mut TcpStream) -> String {
        let head = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        read_to_close(stream).await
    }

    #[tokio::test]
    async fn a_connection_that_never_sends_a_whole_head_is_closed() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(200),
            ..unbounded(4)
        };
        let (addr, stop) = start(limits).await;

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
        read_to_close(&mut silent).await;
        let answer = read_to_close(&mut partial).await;
        assert!(!answer.contains("hello"), "{answer}");

        let mut client = TcpStream::connect(addr).await.unwrap();
        assert!(get_root(&mut client).await.ends_with("hello"));
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_over_the_limit_wait_for_a_free_slot() {
        let (addr, stop) = start(unbounded(1)).await;
        let idle = TcpStream::connect(addr).await.unwrap();

        // The second connection sits in the backlog while the first holds the slot.
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        let answer = tokio::spawn(async move { get_root(&mut waiting).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!answer.is_finished(), "answered over the limit");

        drop(idle);
        let answer = timeout(WAIT, answer).await.unwrap().unwrap();
        assert!(answer.ends_with("hello"), "{answer}");
        stop.cancel();
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_until_the_lifetime_is_over() {
        let limits = Limits {
            lifetime: Duration::from_millis(500),
            close_grace: Duration::from_millis(500),
            ..unbounded(4)
        };
        let (addr, stop) = start(limits).await;

        let mut client = TcpStream::connect(addr).await.unwrap();
        let head = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        for _ in 0..2 {
            client.write_all(head).await.unwrap();
            let mut buf = vec![0; 1024];
            let mut got = String::new();
            while !got.ends_with("hello") {
                let n = timeout(WAIT, client.read(&mut buf)).await.unwrap().unwrap();
                assert_ne!(n, 0, "closed before the answer: {got}");
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }

        // Idle now: the server closes it when the lifetime is over.
        assert_eq!(read_to_close(&mut client).await, "");
        stop.cancel();
    }

    #[tokio::test]
    async fn clients_that_never_read_lose_their_slots_after_the_lifetime() {
        let limits = Limits {
            lifetime: Duration::from_millis(300),
            close_grace: Duration::from_millis(300),
            ..unbounded(2)
        };
        let (addr, stop) = start(limits).await;

        // Each pipelines far more answer bytes than the socket buffers hold.
        let mut stuck = Vec::new();
        let heads = b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n".repeat(400);
        for _ in 0..2 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut client = socket.connect(addr).await.unwrap();
            client.write_all(&heads).await.unwrap();
            stuck.push(client);
        }

        // Without a lifetime this waits in the backlog for as long as they stay open.
        let mut probe = TcpStream::connect(addr).await.unwrap();
        let answer = get_root(&mut probe).await;
        assert!(answer.ends_with("hello"), "{answer}");
        drop(stuck);
        stop.cancel();
    }
}
