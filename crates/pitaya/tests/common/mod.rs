//! The app fixture shared by the integration tests: a server on ephemeral ports with a
//! set of small test components, and helpers to talk to it through real sockets.
//!
//! Each test binary uses only part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pitaya::acceptor::{TcpAcceptor, WsAcceptor};
use pitaya::protocol::{ErrorPayload, Message, MessageType, RouteDict};
use pitaya::session::SessionError;
use pitaya::{App, AppHandle, Builder, Component, Config, Context, Error, GroupError, Raw};
use pitaya_test_support::{init_tracing, json, RawClient};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;

pub(crate) mod cert;
pub(crate) mod flows;

/// The server type of every test app; three-part routes name it.
pub(crate) const SERVER_TYPE: &str = "connector";

/// Returns the config tests start from: Pitaya's defaults.
pub(crate) fn config() -> Config {
    Config::default()
}

/// Returns an app builder with the test components registered and the default config.
pub(crate) fn builder() -> Builder {
    App::builder(SERVER_TYPE)
        .config(config())
        .register(svc())
        .register(room())
}

/// What `svc.bind` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BindReply {
    /// Session id of the caller.
    pub(crate) session_id: u64,
    /// `None` when bound, else which [`SessionError`] came back.
    pub(crate) error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Hello {
    name: String,
}

#[derive(Debug, Deserialize)]
struct SetArg {
    key: String,
    value: Value,
}

fn bind_error_name(e: &SessionError) -> String {
    match e {
        SessionError::IllegalUid => "illegal_uid".into(),
        SessionError::AlreadyBound => "already_bound".into(),
        SessionError::Closed => "closed".into(),
        SessionError::BindRefused(e) => format!("refused: {}", e.code()),
        other => format!("other: {other}"),
    }
}

/// Returns component `svc`: echo, typed, push, kick, panic, fail, bind, session data.
pub(crate) fn svc() -> Component {
    Component::new("svc")
        .request(
            "echo",
            |_: Context, v: Value| async move { Ok::<_, Error>(v) },
        )
        .request("raw", |_: Context, body: Raw| async move {
            Ok::<_, Error>(body)
        })
        .request("typed", |_: Context, h: Hello| async move {
            Ok::<_, Error>(format!("hello, {}", h.name))
        })
        .notify("notify", |ctx: Context, v: Value| async move {
            ctx.session().push("svc.pushed", v).await?;
            Ok(())
        })
        .request("push", |ctx: Context, _: ()| async move {
            let hello = serde_json::json!({"hello": "world"});
            ctx.session().push("push.route", hello).await?;
            Ok::<_, Error>("pushed")
        })
        .notify("kick", |ctx: Context, _: ()| async move {
            ctx.session().kick().await?;
            Ok(())
        })
        .request("panic", |_: Context, _: ()| async move {
            if true {
                panic!("handler blew up on purpose");
            }
            Ok::<_, Error>(())
        })
        .request("fail", |_: Context, _: ()| async move {
            Err::<(), _>(Error::new("GAME-7", "room is full").with_metadata("room", "42"))
        })
        .request("big", |_: Context, n: usize| async move {
            Ok::<_, Error>("abc".repeat(n))
        })
        .request("bind", |ctx: Context, uid: String| async move {
            let error = ctx.session().bind(uid).await.err();
            Ok::<_, Error>(BindReply {
                session_id: ctx.session().id(),
                error: error.as_ref().map(bind_error_name),
            })
        })
        .request("uid", |ctx: Context, _: ()| async move {
            Ok::<_, Error>(ctx.session().uid())
        })
        .request("id", |ctx: Context, _: ()| async move {
            Ok::<_, Error>(ctx.session().id())
        })
        .request("set", |ctx: Context, arg: SetArg| async move {
            ctx.session().set(arg.key, arg.value)?;
            Ok::<_, Error>("ok")
        })
        .request("get", |ctx: Context, key: String| async move {
            Ok::<_, Error>(ctx.session().get::<Value>(&key))
        })
}

#[derive(Debug, Deserialize)]
struct JoinArg {
    uid: String,
    group: String,
}

#[derive(Debug, Deserialize)]
struct BroadcastArg {
    group: String,
    body: Value,
}

/// Returns component `room`: `join` binds the caller and adds it to a group,
/// `broadcast` pushes `room.msg` to a group and answers the uids it failed for.
pub(crate) fn room() -> Component {
    Component::new("room")
        .request("join", |ctx: Context, arg: JoinArg| async move {
            ctx.session().bind(arg.uid.clone()).await?;
            let groups = ctx.app().groups();
            match groups.create(&arg.group).await {
                Ok(()) | Err(GroupError::AlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
            groups.add_member(&arg.group, &arg.uid).await?;
            Ok::<_, Error>("joined")
        })
        .request("broadcast", |ctx: Context, arg: BroadcastArg| async move {
            let app = ctx.app();
            let mut failed = app
                .group_broadcast("", &arg.group, "room.msg", arg.body)
                .await?;
            failed.sort();
            Ok::<_, Error>(failed)
        })
}

/// A running test app; dropping it starts its shutdown.
pub(crate) struct Server {
    /// Handle on the running app.
    pub(crate) handle: AppHandle,
    /// Plain TCP acceptor address.
    pub(crate) tcp: SocketAddr,
    /// Plain WebSocket acceptor address.
    pub(crate) ws: SocketAddr,
    /// TLS over TCP acceptor address, when started with TLS.
    pub(crate) tls: Option<SocketAddr>,
    /// WebSocket over TLS acceptor address, when started with TLS.
    pub(crate) wss: Option<SocketAddr>,
    run: Option<JoinHandle<()>>,
}

impl Server {
    /// Returns the app of `builder` running with a TCP and a WebSocket acceptor.
    pub(crate) async fn start(builder: Builder) -> Server {
        Self::start_with(builder, None).await
    }

    /// Returns the app of `builder` running with plain acceptors and, given TLS settings,
    /// a TLS TCP and a wss acceptor too.
    pub(crate) async fn start_with(
        mut builder: Builder,
        tls: Option<pitaya::acceptor::TlsConfig>,
    ) -> Server {
        init_tracing();
        builder = builder
            .acceptor(TcpAcceptor::bind("127.0.0.1:0").await.unwrap())
            .acceptor(WsAcceptor::bind("127.0.0.1:0").await.unwrap());
        if let Some(tls) = tls {
            let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
            let ws = WsAcceptor::bind("127.0.0.1:0").await.unwrap();
            builder = builder
                .acceptor(tcp.with_tls(tls.clone()))
                .acceptor(ws.with_tls(tls));
        }
        let app = builder.build().expect("test app builds");
        let addr = |name: &str| {
            app.local_addrs()
                .into_iter()
                .find(|(t, _)| *t == name)
                .map(|(_, a)| a)
        };
        let (tcp, ws) = (addr("tcp").unwrap(), addr("ws").unwrap());
        let (tls, wss) = (addr("tls"), addr("wss"));
        let handle = app.handle();
        let run = tokio::spawn(async move {
            app.run_until(std::future::pending())
                .await
                .expect("a standalone app always starts");
        });
        Server {
            handle,
            tcp,
            ws,
            tls,
            wss,
            run: Some(run),
        }
    }

    /// Returns a TCP client that completed handshake and ack.
    pub(crate) async fn client(&self) -> RawClient {
        let mut c = RawClient::tcp(self.tcp).await.unwrap();
        c.handshake().await.unwrap();
        c
    }

    /// Shuts the app down and returns once `run_until` has returned.
    pub(crate) async fn stop(mut self) {
        self.handle.shutdown();
        if let Some(run) = self.run.take() {
            run.await.unwrap();
        }
    }

    /// Returns the `run_until` task, leaving the server to be stopped by hand.
    pub(crate) fn take_run(&mut self) -> JoinHandle<()> {
        self.run.take().expect("run task not taken yet")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Sends request `id` on `route` with a JSON body and returns its response.
///
/// Pushes and heartbeats in between are skipped; the response must carry `id`.
pub(crate) async fn call(client: &mut RawClient, id: u64, route: &str, body: Value) -> Message {
    let bytes = serde_json::to_vec(&body).unwrap();
    client.request(id, route, &bytes).await.unwrap();
    let resp = client.recv_response().await.unwrap();
    assert_eq!(resp.id, id, "response to request {id} on {route}");
    resp
}

/// Sends a request and returns its successful JSON reply.
pub(crate) async fn call_ok(client: &mut RawClient, id: u64, route: &str, body: Value) -> Value {
    let resp = call(client, id, route, body).await;
    assert!(!resp.error, "{route} failed: {:?}", error_of(&resp));
    json(&resp)
}

/// Returns the error payload of an error response.
pub(crate) fn error_of(msg: &Message) -> ErrorPayload {
    assert_eq!(msg.kind, MessageType::Response);
    assert!(msg.error, "expected an error response, got {:?}", json(msg));
    ErrorPayload::from_json(&msg.data).expect("error payload is JSON")
}

/// Binds `client` to `uid` through `svc.bind` and returns its session id.
pub(crate) async fn bind(client: &mut RawClient, id: u64, uid: &str) -> u64 {
    let reply = call_ok(client, id, "svc.bind", Value::from(uid)).await;
    let reply: BindReply = serde_json::from_value(reply).unwrap();
    assert_eq!(reply.error, None, "bind {uid}");
    reply.session_id
}

/// Polls `cond` until it holds; panics after `limit` (a bound, not a measurement).
pub(crate) async fn wait_until<F: FnMut() -> bool>(limit: Duration, what: &str, mut cond: F) {
    let polled = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(limit, polled).await.is_err() {
        panic!("{what}: not reached within {limit:?}");
    }
}

/// Runs `f` on every item, `width` at a time, and waits for them all.
pub(crate) async fn in_batches<T, F, Fut>(items: Vec<T>, width: usize, f: F)
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let batch: Vec<_> = items
            .by_ref()
            .take(width)
            .map(|i| tokio::spawn(f(i)))
            .collect();
        for task in batch {
            task.await.unwrap();
        }
    }
}

/// Returns the flag byte and the decoded message of the next response.
pub(crate) async fn raw_response(client: &mut RawClient) -> (u8, Message) {
    let packet = client.recv_packet_skipping_heartbeats().await.unwrap();
    let msg = Message::decode(&packet.body, &RouteDict::empty(), 1 << 24).unwrap();
    (packet.body[0], msg)
}
