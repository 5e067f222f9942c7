//! Sessions (spec 10): binding, the uid index, callbacks, data, and the bookkeeping
//! under many clients and under binds racing closes.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bind, builder, call_ok, wait_until, BindReply, Server};
use pitaya::protocol::PacketType;
use pitaya::{AppHandle, Component, Context, Error, Session};
use pitaya_test_support::{json, RawClient};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(30);

type Log = Arc<Mutex<Vec<String>>>;

/// Returns a builder whose app-wide close callback reports every closed session id.
fn reporting_closes() -> (pitaya::Builder, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let b = builder().on_session_close(move |_: AppHandle, s: Session| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s.id());
        }
    });
    (b, rx)
}

async fn wait_closed(rx: &mut mpsc::UnboundedReceiver<u64>, id: u64) {
    let wait = async { while rx.recv().await.expect("callbacks keep coming") != id {} };
    tokio::time::timeout(LIMIT, wait)
        .await
        .expect("close callback ran");
}

async fn bind_reply(client: &mut RawClient, id: u64, uid: &str) -> BindReply {
    serde_json::from_value(call_ok(client, id, "svc.bind", json!(uid)).await).unwrap()
}

#[tokio::test]
async fn bind_sets_the_uid_and_session_by_uid_finds_it() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;
    assert_eq!(
        call_ok(&mut client, 1, "svc.uid", json!(null)).await,
        json!(null)
    );

    let id = bind(&mut client, 2, "ana").await;
    assert_eq!(
        call_ok(&mut client, 3, "svc.uid", json!(null)).await,
        json!("ana")
    );
    let found = server.handle.session_by_uid("ana").expect("indexed by uid");
    assert_eq!((found.id(), found.uid()), (id, Some("ana".to_string())));
    assert_eq!(server.handle.bound_session_count(), 1);
    assert!(server.handle.session_by_uid("bob").is_none());
}

#[tokio::test]
async fn second_bind_of_a_uid_closes_the_older_session_and_keeps_the_newer() {
    let (b, mut closed) = reporting_closes();
    let server = Server::start(b).await;
    let mut old = server.client().await;
    let mut new = server.client().await;

    let old_id = bind(&mut old, 1, "dup").await;
    let new_id = bind(&mut new, 1, "dup").await;
    let seen = old.expect_closed().await.unwrap();
    // Closed, not kicked (spec 10.2).
    assert!(!seen.iter().any(|p| p.kind == PacketType::Kick), "{seen:?}");
    wait_closed(&mut closed, old_id).await;

    // The old session's close has completed: the binding is still the new one's.
    let bound = server.handle.session_by_uid("dup").expect("still bound");
    assert_eq!(bound.id(), new_id);
    assert!(server.handle.session_by_id(old_id).is_none());
    assert_eq!(server.handle.bound_session_count(), 1);
    assert_eq!(
        call_ok(&mut new, 2, "svc.uid", json!(null)).await,
        json!("dup")
    );
}

async fn next_close(rx: &mut mpsc::UnboundedReceiver<(u64, bool)>) -> (u64, bool) {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("close callback ran")
        .expect("callbacks keep coming")
}

#[tokio::test]
async fn a_session_closed_by_a_newer_bind_is_replaced_and_one_that_left_is_not() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let b = builder().on_session_close(move |_: AppHandle, s: Session| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((s.id(), s.is_replaced()));
        }
    });
    let server = Server::start(b).await;
    let mut old = server.client().await;
    let mut new = server.client().await;
    let old_id = bind(&mut old, 1, "twice").await;
    let new_id = bind(&mut new, 1, "twice").await;

    assert_eq!(next_close(&mut rx).await, (old_id, true));
    drop(new);
    assert_eq!(next_close(&mut rx).await, (new_id, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_session_closing_at_the_same_time_never_removes_the_new_binding() {
    let (b, mut closed) = reporting_closes();
    let server = Server::start(b).await;

    for i in 0..40 {
        let uid = format!("again{i}");
        let mut old = server.client().await;
        let old_id = bind(&mut old, 1, &uid).await;
        let mut new = server.client().await;
        // The old client leaves while the new one binds: its own close and the close
        // caused by the bind race each other.
        new.request(1, "svc.bind", &serde_json::to_vec(&uid).unwrap())
            .await
            .unwrap();
        drop(old);
        let resp = new.recv_response().await.unwrap();
        assert_eq!(resp.id, 1);
        let reply: BindReply = serde_json::from_value(json(&resp)).unwrap();
        assert_eq!(reply.error, None);
        wait_closed(&mut closed, old_id).await;

        let bound = server
            .handle
            .session_by_uid(&uid)
            .expect("new binding kept");
        assert_eq!(bound.id(), reply.session_id, "round {i}");
    }
}

#[tokio::test]
async fn bind_of_an_empty_uid_is_refused() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let reply = bind_reply(&mut client, 1, "").await;
    assert_eq!(reply.error.as_deref(), Some("illegal_uid"));
    assert_eq!(
        call_ok(&mut client, 2, "svc.uid", json!(null)).await,
        json!(null)
    );
    assert_eq!(server.handle.bound_session_count(), 0);
}

#[tokio::test]
async fn binding_twice_is_already_bound_and_keeps_the_first_uid() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    bind(&mut client, 1, "first").await;
    let reply = bind_reply(&mut client, 2, "second").await;
    assert_eq!(reply.error.as_deref(), Some("already_bound"));
    assert_eq!(
        call_ok(&mut client, 3, "svc.uid", json!(null)).await,
        json!("first")
    );
    assert!(server.handle.session_by_uid("second").is_none());
    assert!(server.handle.session_by_uid("first").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_callbacks_run_exactly_once_however_many_closes_race() {
    const CLIENTS: usize = 50;
    let app_closes = Arc::new(AtomicUsize::new(0));
    let own_closes = Arc::new(AtomicUsize::new(0));
    let ids: Arc<Mutex<Vec<u64>>> = Arc::default();

    let own = own_closes.clone();
    let closer = Component::new("closer")
        .request("register", move |ctx: Context, _: ()| {
            let own = own.clone();
            async move {
                ctx.session().on_close(move || {
                    own.fetch_add(1, Ordering::SeqCst);
                })?;
                Ok::<_, Error>(ctx.session().id())
            }
        })
        .notify("twice", |ctx: Context, _: ()| async move {
            ctx.session().close();
            ctx.session().close();
            Ok(())
        });
    let (count, seen) = (app_closes.clone(), ids.clone());
    let app = builder()
        .register(closer)
        .on_session_close(move |_: AppHandle, s: Session| {
            count.fetch_add(1, Ordering::SeqCst);
            seen.lock().unwrap().push(s.id());
            async {}
        });
    let mut server = Server::start(app).await;

    for _ in 0..CLIENTS {
        let mut client = server.client().await;
        let id = call_ok(&mut client, 1, "closer.register", json!(null)).await;
        let session = server.handle.session_by_id(id.as_u64().unwrap()).unwrap();
        // Three closers at once: the handler (twice), the app, and the peer leaving.
        client.notify("closer.twice", b"").await.unwrap();
        let outside = tokio::spawn(async move {
            session.close();
            session.close();
        });
        drop(client);
        outside.await.unwrap();
    }
    wait_until(LIMIT, "all sessions gone", || {
        server.handle.session_count() == 0
    })
    .await;
    // run_until returns once every connection task, close callbacks included, is done.
    let run = server.take_run();
    server.handle.shutdown();
    run.await.unwrap();

    assert_eq!(app_closes.load(Ordering::SeqCst), CLIENTS);
    assert_eq!(own_closes.load(Ordering::SeqCst), CLIENTS);
    let unique: BTreeSet<u64> = ids.lock().unwrap().iter().copied().collect();
    assert_eq!(unique.len(), CLIENTS);
}

#[tokio::test]
async fn session_on_close_runs_before_the_app_wide_callback() {
    let log: Log = Arc::default();
    let (tx, mut done) = mpsc::unbounded_channel();
    let own_log = log.clone();
    let watcher = Component::new("watch").request("me", move |ctx: Context, _: ()| {
        let log = own_log.clone();
        async move {
            let id = ctx.session().id();
            ctx.session()
                .on_close(move || log.lock().unwrap().push(format!("session:{id}")))?;
            Ok::<_, Error>(id)
        }
    });
    let app_log = log.clone();
    let app = builder()
        .register(watcher)
        .on_session_close(move |_: AppHandle, s: Session| {
            app_log.lock().unwrap().push(format!("app:{}", s.id()));
            let _ = tx.send(s.id());
            async {}
        });
    let server = Server::start(app).await;
    let mut client = server.client().await;
    let id = call_ok(&mut client, 1, "watch.me", json!(null)).await;

    drop(client);
    let closed = tokio::time::timeout(LIMIT, done.recv()).await.unwrap();
    assert_eq!(closed, id.as_u64());
    let want = vec![format!("session:{id}"), format!("app:{id}")];
    assert_eq!(*log.lock().unwrap(), want);
}

#[tokio::test]
async fn on_close_after_the_session_closed_is_an_error() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;
    let id = call_ok(&mut client, 1, "svc.id", json!(null)).await;
    let session = server.handle.session_by_id(id.as_u64().unwrap()).unwrap();

    session.close();
    client.expect_closed().await.unwrap();
    assert!(session.is_closed());
    assert!(session.on_close(|| {}).is_err());
}

/// Returns an app logging its bind callbacks; `banned` is refused before the bind is
/// stored, `late-ban` after.
fn app_with_bind_callbacks(log: Log) -> pitaya::Builder {
    let (l1, l2, l3) = (log.clone(), log.clone(), log);
    builder()
        .on_session_bind(move |app: AppHandle, s: Session| {
            let uid = s.uid().unwrap_or_default();
            let stored = app.session_by_uid(&uid).is_some();
            l1.lock().unwrap().push(format!("bind1:{uid}:{stored}"));
            async { Ok(()) }
        })
        .on_session_bind(move |_: AppHandle, s: Session| {
            let uid = s.uid().unwrap_or_default();
            l2.lock().unwrap().push(format!("bind2:{uid}"));
            async move {
                if uid == "banned" {
                    return Err(Error::new("BAN-1", "banned"));
                }
                Ok(())
            }
        })
        .after_session_bind(move |app: AppHandle, s: Session| {
            let uid = s.uid().unwrap_or_default();
            let stored = app.session_by_uid(&uid).is_some_and(|b| b == s);
            l3.lock().unwrap().push(format!("after:{uid}:{stored}"));
            async move {
                if uid == "late-ban" {
                    return Err(Error::new("BAN-2", "banned late"));
                }
                Ok(())
            }
        })
}

#[tokio::test]
async fn bind_callbacks_run_in_order_around_storing_the_binding() {
    let log: Log = Arc::default();
    let server = Server::start(app_with_bind_callbacks(log.clone())).await;
    let mut client = server.client().await;

    bind(&mut client, 1, "ana").await;
    let want = ["bind1:ana:false", "bind2:ana", "after:ana:true"];
    assert_eq!(*log.lock().unwrap(), want);
}

#[tokio::test]
async fn on_bind_error_refuses_the_bind() {
    let log: Log = Arc::default();
    let server = Server::start(app_with_bind_callbacks(log.clone())).await;
    let mut client = server.client().await;

    let reply = bind_reply(&mut client, 1, "banned").await;
    assert_eq!(reply.error.as_deref(), Some("refused: BAN-1"));
    assert_eq!(*log.lock().unwrap(), ["bind1:banned:false", "bind2:banned"]);
    assert_eq!(
        call_ok(&mut client, 2, "svc.uid", json!(null)).await,
        json!(null)
    );
    assert!(server.handle.session_by_uid("banned").is_none());

    // The refusal left the session unbound: another uid binds fine.
    bind(&mut client, 3, "fine").await;
    assert_eq!(
        call_ok(&mut client, 4, "svc.uid", json!(null)).await,
        json!("fine")
    );
}

#[tokio::test]
async fn after_bind_error_undoes_the_bind() {
    let log: Log = Arc::default();
    let server = Server::start(app_with_bind_callbacks(log)).await;
    let mut client = server.client().await;

    let reply = bind_reply(&mut client, 1, "late-ban").await;
    assert_eq!(reply.error.as_deref(), Some("refused: BAN-2"));
    assert!(server.handle.session_by_uid("late-ban").is_none());
    assert_eq!(server.handle.bound_session_count(), 0);
    assert_eq!(
        call_ok(&mut client, 2, "svc.uid", json!(null)).await,
        json!(null)
    );
}

#[tokio::test]
async fn session_data_set_by_a_handler_is_read_back() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let set = json!({"key": "score", "value": {"points": 42}});
    assert_eq!(call_ok(&mut client, 1, "svc.set", set).await, json!("ok"));
    let got = call_ok(&mut client, 2, "svc.get", json!("score")).await;
    assert_eq!(got, json!({"points": 42}));
    assert_eq!(
        call_ok(&mut client, 3, "svc.get", json!("missing")).await,
        json!(null)
    );

    let id = call_ok(&mut client, 4, "svc.id", json!(null)).await;
    let session = server.handle.session_by_id(id.as_u64().unwrap()).unwrap();
    assert_eq!(session.get::<Value>("score"), Some(json!({"points": 42})));
    session.set("from_app", 7).unwrap();
    assert_eq!(
        call_ok(&mut client, 5, "svc.get", json!("from_app")).await,
        json!(7)
    );
}

#[tokio::test]
async fn handshake_sets_ipversion_and_keeps_the_handshake() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let got = call_ok(&mut client, 1, "svc.get", json!("ipversion")).await;
    assert_eq!(got, json!("ipv4"));
    let id = call_ok(&mut client, 2, "svc.id", json!(null)).await;
    let session = server.handle.session_by_id(id.as_u64().unwrap()).unwrap();
    let hs = session.handshake().expect("handshake kept");
    assert_eq!(hs.sys.platform, "desktop");
}
