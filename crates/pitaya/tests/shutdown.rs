//! Graceful shutdown: requests in flight finish and are answered, then every client is
//! closed, close callbacks run, `run_until` returns and nothing new is accepted.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{builder, call_ok, Server};
use pitaya::acceptor::TcpAcceptor;
use pitaya::protocol::PacketType;
use pitaya::{AppHandle, Component, Context, Error, Session};
use pitaya_test_support::{json, RawClient};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

const LIMIT: Duration = Duration::from_secs(10);

/// Returns component `slow`: `wait` reports it started, then waits for a permit.
fn slow(started: mpsc::UnboundedSender<u64>, release: Arc<Semaphore>) -> Component {
    Component::new("slow").request("wait", move |ctx: Context, _: ()| {
        let (started, release) = (started.clone(), release.clone());
        async move {
            let _ = started.send(ctx.message_id());
            release.acquire().await.expect("never closed").forget();
            Ok::<_, Error>("done")
        }
    })
}

fn counting_closes(b: pitaya::Builder) -> (pitaya::Builder, Arc<AtomicUsize>) {
    let closes = Arc::new(AtomicUsize::new(0));
    let counter = closes.clone();
    let b = b.on_session_close(move |_: AppHandle, _: Session| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    (b, closes)
}

/// Waits until connecting to `addr` is refused.
async fn refuses_connections(addr: SocketAddr) {
    let refused = async {
        while let Ok(c) = RawClient::tcp(addr).await {
            drop(c);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(LIMIT, refused)
        .await
        .expect("new connections refused once shutdown started");
}

#[tokio::test]
async fn request_in_flight_is_answered_before_the_clients_are_closed() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let (b, closes) = counting_closes(builder().register(slow(started_tx, release.clone())));
    let mut server = Server::start(b).await;
    let mut busy = server.client().await;
    let mut idle = server.client().await;
    let mut ws_idle = RawClient::ws(server.ws).await.unwrap();
    ws_idle.handshake().await.unwrap();

    busy.request(9, "slow.wait", b"").await.unwrap();
    assert_eq!(started.recv().await, Some(9));
    let run = server.take_run();
    server.handle.shutdown();
    assert!(server.handle.is_shutting_down());

    // Acceptors stop while the slow request still holds the shutdown up.
    refuses_connections(server.tcp).await;
    refuses_connections(server.ws).await;

    release.add_permits(1);
    let resp = busy.recv_response().await.unwrap();
    assert_eq!((resp.id, json(&resp)), (9, json!("done")));
    for client in [&mut busy, &mut idle, &mut ws_idle] {
        let seen = client.expect_closed().await.unwrap();
        assert!(
            seen.iter().all(|p| p.kind == PacketType::Heartbeat),
            "{seen:?}"
        );
    }
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("run_until returned")
        .unwrap();
    assert_eq!(closes.load(Ordering::SeqCst), 3);
    assert_eq!(server.handle.session_count(), 0);
}

#[tokio::test]
async fn run_until_returns_when_its_signal_fires() {
    let acceptor = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let (b, closes) = counting_closes(builder());
    let app = b.acceptor(acceptor).build().unwrap();
    let addr = app.local_addrs()[0].1;
    let (stop, signal) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until(async {
        let _ = signal.await;
    }));

    let mut client = RawClient::tcp(addr).await.unwrap();
    client.handshake().await.unwrap();
    assert_eq!(
        call_ok(&mut client, 1, "svc.echo", json!(1)).await,
        json!(1)
    );

    stop.send(()).unwrap();
    client.expect_closed().await.unwrap();
    tokio::time::timeout(LIMIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(closes.load(Ordering::SeqCst), 1);
    assert!(RawClient::tcp(addr).await.is_err());
}

#[tokio::test]
async fn pushes_queued_before_shutdown_are_delivered_before_the_close() {
    let (b, _closes) = counting_closes(builder());
    let server = Server::start(b).await;
    let mut client = server.client().await;
    let id = call_ok(&mut client, 1, "svc.id", json!(null)).await;
    let session = server.handle.session_by_id(id.as_u64().unwrap()).unwrap();

    for i in 0..20 {
        session.push("bye.route", json!(i)).await.unwrap();
    }
    server.stop().await;
    for i in 0..20 {
        let push = client.recv_push("bye.route").await.unwrap();
        assert_eq!(json(&push), json!(i));
    }
    assert!(client.expect_closed().await.unwrap().is_empty());
}
