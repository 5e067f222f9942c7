//! Serving the ops routes over HTTP/1.1 with limits a client cannot get around.
//!
//! `axum::serve` sets no timer on its connections, so hyper's header read timeout never
//! runs, and it accepts without bound: a client that connects and sends nothing holds
//! its connection, and its task, for ever. We drive hyper ourselves instead: a free slot
//! of [`Limits::max_connections`] is taken before each accept, and each connection must
//! deliver a whole request head within [`Limits::header_read_timeout`], the first one
//! and each one after an idle keep-alive.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What one HTTP listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest wait for a request head, from when the connection is ready for one.
    pub(crate) header_read_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog.
    pub(crate) max_connections: usize,
}

impl Limits {
    /// Enough for Prometheus, probes and a few people with curl; a scraper sends its
    /// head at once, so seconds are plenty.
    pub(crate) const OPS: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 64,
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
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
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
        let service = TowerToHyperService::new(router.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "http connection closed");
            }
            drop(slot);
        });
    }
    // Closed first, so that nobody connects only to wait behind the draining ones.
    drop(listener);
    graceful.shutdown().await;
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
        let router = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(serve(listener, router, limits, stop.clone()));
        (addr, stop)
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
            max_connections: 4,
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
        let limits = Limits {
            header_read_timeout: Duration::from_secs(3600),
            max_connections: 1,
        };
        let (addr, stop) = start(limits).await;
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
}
