//! Session bookkeeping under load: thousands of clients coming and going, binds and
//! close callbacks racing disconnects.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bind, builder, in_batches, wait_until, Server};
use pitaya::{AppHandle, Component, Context, Session};
use pitaya_test_support::RawClient;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_clients_come_and_go_and_the_pool_empties() {
    const CLIENTS: usize = 10_000;
    let closes = Arc::new(AtomicUsize::new(0));
    let counter = closes.clone();
    let app = builder().on_session_close(move |_: AppHandle, _: Session| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let server = Server::start(app).await;
    let addr = server.tcp;

    in_batches((0..CLIENTS).collect(), 500, move |i| async move {
        let mut client = RawClient::tcp(addr).await.unwrap();
        client.handshake().await.unwrap();
        // Every other client binds, so the uid index is exercised too.
        if i % 2 == 0 {
            bind(&mut client, 1, &format!("user{i}")).await;
        }
    })
    .await;

    wait_until(LIMIT, "every close callback ran", || {
        closes.load(Ordering::SeqCst) == CLIENTS
    })
    .await;
    assert_eq!(server.handle.session_count(), 0);
    assert_eq!(server.handle.bound_session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_racing_a_disconnect_leaves_no_dead_session_in_the_uid_index() {
    const ROUNDS: usize = 400;
    let closes = Arc::new(AtomicUsize::new(0));
    let counter = closes.clone();
    let app = builder().on_session_close(move |_: AppHandle, _: Session| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let server = Server::start(app).await;
    let addr = server.tcp;

    in_batches((0..ROUNDS).collect(), 50, move |i| async move {
        let mut client = RawClient::tcp(addr).await.unwrap();
        client.handshake().await.unwrap();
        let uid = serde_json::to_vec(&format!("racer{i}")).unwrap();
        client.request(1, "svc.bind", &uid).await.unwrap();
        // Gone before the answer: the bind runs while the session closes.
    })
    .await;

    wait_until(LIMIT, "every close callback ran", || {
        closes.load(Ordering::SeqCst) == ROUNDS
    })
    .await;
    assert_eq!(server.handle.session_count(), 0);
    assert_eq!(server.handle.bound_session_count(), 0);
    for i in 0..ROUNDS {
        assert!(server.handle.session_by_uid(&format!("racer{i}")).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_close_registered_while_the_peer_leaves_runs_if_it_was_accepted() {
    const ROUNDS: usize = 600;
    let registered = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (reg, run) = (registered.clone(), ran.clone());
    let racer = Component::new("race").notify("watch", move |ctx: Context, _: ()| {
        let (reg, run) = (reg.clone(), run.clone());
        async move {
            let accepted = ctx.session().on_close(move || {
                run.fetch_add(1, Ordering::SeqCst);
            });
            if accepted.is_ok() {
                reg.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
    });
    let mut server = Server::start(builder().register(racer)).await;
    let addr = server.tcp;

    in_batches((0..ROUNDS).collect(), 50, move |_| async move {
        let mut client = RawClient::tcp(addr).await.unwrap();
        client.handshake().await.unwrap();
        client.notify("race.watch", b"").await.unwrap();
    })
    .await;
    // run_until returns once handlers and close callbacks are all done.
    let run_task = server.take_run();
    server.handle.shutdown();
    run_task.await.unwrap();

    assert_eq!(
        ran.load(Ordering::SeqCst),
        registered.load(Ordering::SeqCst)
    );
}
