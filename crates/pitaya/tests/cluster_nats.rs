//! Cluster RPC over a real nats-server started by `NatsServer`.
#![cfg(feature = "nats")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use pitaya::cluster::rpc::{
    request_metadata, response_error, NatsRpcClient, NatsRpcServer, REQ_TIMEOUT,
};
use pitaya::cluster::{RpcClient, RpcError, RpcHandler, RpcServer, ServerInfo};
use pitaya::config::{NatsClientConfig, NatsServerConfig};
use pitaya_protos::{BindMsg, KickAnswer, KickMsg, Msg, MsgType, Push, Request, Response};
use pitaya_protos::{RpcType, Session};
use pitaya_test_support::{init_tracing, NatsServer};
use prost::Message;
use tokio::sync::{mpsc, Semaphore};

/// Longest wait for any event; generous for a loaded CI machine.
const WAIT: Duration = Duration::from_secs(30);

/// What a test handler saw, one channel per kind of message.
struct Seen {
    requests: mpsc::UnboundedReceiver<Request>,
    pushes: mpsc::UnboundedReceiver<Push>,
    kicks: mpsc::UnboundedReceiver<KickMsg>,
    binds: mpsc::UnboundedReceiver<BindMsg>,
}

/// Answers `<id>:<data>`; the route `room.room.block` waits for a permit of `gate`.
struct Recorder {
    id: String,
    gate: Arc<Semaphore>,
    requests: mpsc::UnboundedSender<Request>,
    pushes: mpsc::UnboundedSender<Push>,
    kicks: mpsc::UnboundedSender<KickMsg>,
    binds: mpsc::UnboundedSender<BindMsg>,
}

#[async_trait]
impl RpcHandler for Recorder {
    async fn handle(&self, req: Request) -> Response {
        let msg = req.msg.clone().unwrap_or_default();
        let _ = self.requests.send(req);
        if msg.route == "room.room.block" {
            let _permit = self.gate.acquire().await;
        }
        let mut data = format!("{}:", self.id).into_bytes();
        data.extend_from_slice(&msg.data);
        Response {
            data: data.into(),
            error: None,
        }
    }
    async fn on_push(&self, push: Push) -> bool {
        self.pushes.send(push).is_ok()
    }
    async fn on_kick(&self, kick: KickMsg) -> KickAnswer {
        let _ = self.kicks.send(kick);
        KickAnswer { kicked: true }
    }
    async fn on_bind(&self, bind: BindMsg) {
        let _ = self.binds.send(bind);
    }
}

fn recorder(id: &str, gate: Arc<Semaphore>) -> (Arc<Recorder>, Seen) {
    let (requests, rq) = mpsc::unbounded_channel();
    let (pushes, pu) = mpsc::unbounded_channel();
    let (kicks, ki) = mpsc::unbounded_channel();
    let (binds, bi) = mpsc::unbounded_channel();
    let handler = Recorder {
        id: id.into(),
        gate,
        requests,
        pushes,
        kicks,
        binds,
    };
    let seen = Seen {
        requests: rq,
        pushes: pu,
        kicks: ki,
        binds: bi,
    };
    (Arc::new(handler), seen)
}

fn server_config(nats: &NatsServer) -> NatsServerConfig {
    let mut config = NatsServerConfig::default();
    config.connection.connect = nats.url();
    config.connection.reconnect_wait = Duration::from_millis(50);
    config.connection.max_reconnection_retries = 1_000;
    config
}

fn client_config(nats: &NatsServer) -> NatsClientConfig {
    let mut config = NatsClientConfig::default();
    config.connection = server_config(nats).connection;
    config
}

fn caller() -> ServerInfo {
    ServerInfo::new("connector", true).with_id("c-1")
}

fn room(id: &str) -> ServerInfo {
    ServerInfo::new("room", false).with_id(id)
}

async fn start_room(nats: &NatsServer, id: &str) -> (NatsRpcServer, Seen) {
    start_room_with(&server_config(nats), id, Arc::new(Semaphore::new(0))).await
}

async fn start_room_with(
    config: &NatsServerConfig,
    id: &str,
    gate: Arc<Semaphore>,
) -> (NatsRpcServer, Seen) {
    let (handler, seen) = recorder(id, gate);
    let server = NatsRpcServer::start(config, &room(id), handler)
        .await
        .unwrap();
    (server, seen)
}

async fn client(nats: &NatsServer) -> NatsRpcClient {
    NatsRpcClient::connect(&client_config(nats), &caller())
        .await
        .unwrap()
}

fn request(route: &str, data: &'static [u8]) -> Request {
    Request {
        r#type: RpcType::User.into(),
        msg: Some(Msg {
            route: route.into(),
            data: Bytes::from_static(data),
            ..Msg::default()
        }),
        metadata: request_metadata(&caller(), "r-id", route, SystemTime::now(), WAIT),
        ..Request::default()
    }
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no event in time")
        .expect("handler gone")
}

/// Returns once NATS has processed the subscriptions `raw` sent before.
///
/// `flush` only writes the socket; a message that comes back through the
/// same connection proves the server handled the earlier SUBs, so a publisher
/// on another connection cannot overtake them.
async fn settle(raw: &async_nats::Client) {
    let inbox = raw.new_inbox();
    let mut echo = raw.subscribe(inbox.clone()).await.unwrap();
    raw.publish(inbox, Bytes::new()).await.unwrap();
    tokio::time::timeout(WAIT, echo.next())
        .await
        .unwrap()
        .unwrap();
}

/// Returns the top-level field numbers of a protobuf message, in wire order.
fn field_numbers(mut bytes: &[u8]) -> Vec<u64> {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        fields.push(key >> 3);
        match key & 7 {
            0 => drop(varint(&mut bytes)),
            2 => {
                let len = varint(&mut bytes) as usize;
                bytes = &bytes[len..];
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    fields
}

#[tokio::test(flavor = "multi_thread")]
async fn call_reaches_the_target_server_and_returns_its_response() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let (_r1, mut seen1) = start_room(&nats, "r-1").await;
    let (_r2, mut seen2) = start_room(&nats, "r-2").await;
    let client = client(&nats).await;

    let req = request("room.room.join", b"hello");
    let response = client.call(&room("r-2"), req.clone(), WAIT).await.unwrap();
    assert_eq!(&response.data[..], b"r-2:hello");
    assert_eq!(response.error, None);

    let got = next(&mut seen2.requests).await;
    let msg = got.msg.unwrap();
    assert_eq!(msg.route, "room.room.join");
    assert_eq!(&msg.data[..], b"hello");
    assert!(msg.reply.starts_with("_INBOX."), "reply {:?}", msg.reply);
    let metadata: serde_json::Value = serde_json::from_slice(&got.metadata).unwrap();
    assert_eq!(metadata["peer.id"], "c-1");
    assert_eq!(metadata[REQ_TIMEOUT], "30s");

    let response = client.call(&room("r-1"), req, WAIT).await.unwrap();
    assert_eq!(&response.data[..], b"r-1:hello");
    assert_eq!(
        next(&mut seen1.requests).await.msg.unwrap().route,
        "room.room.join"
    );
    assert!(seen2.requests.try_recv().is_err(), "r-2 got r-1's call");
}

#[tokio::test(flavor = "multi_thread")]
async fn published_bytes_are_the_spec_request_with_its_field_numbers() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let mut sub = raw.subscribe("pitaya/servers/room/r-9").await.unwrap();
    settle(&raw).await;
    let client = client(&nats).await;

    let sent = Request {
        r#type: RpcType::Sys.into(),
        session: Some(Session {
            id: 42,
            uid: "u1".into(),
            data: Bytes::from_static(br#"{"ipversion":"ipv4"}"#),
        }),
        msg: Some(Msg {
            id: 7,
            route: "room.room.join".into(),
            data: Bytes::from_static(b"{}"),
            reply: String::new(),
            r#type: MsgType::MsgNotify.into(),
        }),
        frontend_id: "c-1".into(),
        metadata: Bytes::from_static(br#"{"peer.id":"c-1"}"#),
    };
    let call = tokio::spawn({
        let sent = sent.clone();
        async move { client.call(&room("r-9"), sent, WAIT).await }
    });

    let message = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    // Sys is 0, the proto3 default, so field 1 is absent from the wire.
    assert_eq!(field_numbers(&message.payload), [2, 3, 4, 5]);
    let got = Request::decode(message.payload.clone()).unwrap();
    let msg = got.msg.clone().unwrap();
    let msg_bytes = msg.encode_to_vec();
    assert_eq!(field_numbers(&msg_bytes), [1, 2, 3, 5]);
    assert_eq!(
        (got.session, got.frontend_id),
        (sent.session, sent.frontend_id)
    );
    assert_eq!(Some(msg), sent.msg);
    let metadata: serde_json::Value = serde_json::from_slice(&got.metadata).unwrap();
    assert_eq!(
        (metadata["peer.id"].as_str(), metadata[REQ_TIMEOUT].as_str()),
        (Some("c-1"), Some("30s"))
    );

    let answer = Response {
        data: Bytes::from_static(b"ack"),
        error: None,
    };
    let reply = message.reply.unwrap();
    raw.publish(reply, answer.encode_to_vec().into())
        .await
        .unwrap();
    assert_eq!(call.await.unwrap().unwrap(), answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn unanswered_call_times_out_as_pit_408_with_the_spec_metadata() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let _silent = raw.subscribe("pitaya/servers/room/r-1").await.unwrap();
    settle(&raw).await;
    let client = client(&nats).await;

    let timeout = Duration::from_millis(200);
    let err = client
        .call(&room("r-1"), request("room.room.join", b""), timeout)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    let err = pitaya::Error::from(err);
    assert_eq!(err.code(), "PIT-408");
    assert_eq!(err.message(), "rpc client: request timeout");
    let m = err.metadata();
    assert_eq!(m["timeout"], "200ms");
    assert_eq!(m["route"], "room.room.join");
    assert_eq!(m["server"], "c-1");
    assert_eq!(m["peer.id"], "r-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn call_to_a_server_nobody_serves_fails_with_no_responders() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;

    // The call's own timeout is the test's whole budget: only a quick
    // no-responders answer lets it end in the other error.
    let gone = room("gone");
    let err = client
        .call(&gone, request("room.room.join", b""), WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::NoResponders { subject } if subject == "pitaya/servers/room/gone"),
        "{err:?}"
    );
    assert_eq!(pitaya::Error::from(err).code(), "PIT-000");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_payloads_are_dropped_and_the_server_keeps_serving() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let (_server, mut seen) = start_room(&nats, "r-1").await;
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let client = client(&nats).await;

    let subject = "pitaya/servers/room/r-1";
    raw.publish(subject, Bytes::from_static(b"\xff\xff\xff"))
        .await
        .unwrap();
    let no_msg = Request {
        frontend_id: "c-1".into(),
        ..Request::default()
    };
    raw.publish(subject, no_msg.encode_to_vec().into())
        .await
        .unwrap();
    settle(&raw).await;

    let response = client
        .call(&room("r-1"), request("room.room.join", b"ok"), WAIT)
        .await
        .unwrap();
    assert_eq!(&response.data[..], b"r-1:ok");
    let first = next(&mut seen.requests).await;
    assert_eq!(
        &first.msg.unwrap().data[..],
        b"ok",
        "a dropped payload reached the handler"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn receiver_refuses_missing_context_and_enforces_the_propagated_timeout() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let (_server, _seen) = start_room(&nats, "r-1").await;
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let subject = "pitaya/servers/room/r-1";

    // Raw requests, since our client always writes a timeout into the metadata.
    let mut bare = request("room.room.join", b"");
    bare.metadata = Bytes::new();
    let answer = raw
        .request(subject, bare.encode_to_vec().into())
        .await
        .unwrap();
    let err = response_error(&Response::decode(answer.payload).unwrap()).unwrap();
    assert_eq!((err.code(), err.message()), ("PIT-500", "no context found"));

    let mut slow = request("room.room.block", b"");
    slow.metadata = Bytes::from_static(br#"{"reqTimeout":"100ms"}"#);
    let answer = raw
        .request(subject, slow.encode_to_vec().into())
        .await
        .unwrap();
    let err = response_error(&Response::decode(answer.payload).unwrap()).unwrap();
    assert_eq!(
        (err.code(), err.message()),
        ("PIT-500", "rpc client: request timeout")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_kick_and_bind_reach_the_subscribed_frontend() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let (handler, mut seen) = recorder("c-9", Arc::new(Semaphore::new(0)));
    let info = ServerInfo::new("connector", true).with_id("c-9");
    let server = NatsRpcServer::start(&server_config(&nats), &info, handler)
        .await
        .unwrap();
    let client = client(&nats).await;
    server.subscribe_user("u1").await.unwrap();

    let push = Push {
        route: "chat.message".into(),
        uid: "u1".into(),
        data: Bytes::from_static(b"{\"text\":\"hi\"}"),
    };
    client
        .publish_push("connector", push.clone())
        .await
        .unwrap();
    assert_eq!(next(&mut seen.pushes).await, push);

    client.publish_kick("connector", "u1").await.unwrap();
    assert_eq!(next(&mut seen.kicks).await.user_id, "u1");

    let bind = BindMsg {
        uid: "u1".into(),
        fid: "c-2".into(),
    };
    client
        .publish_bind("connector", bind.clone())
        .await
        .unwrap();
    assert_eq!(next(&mut seen.binds).await, bind);

    // After unsubscribing u1, only u2's push may arrive.
    server.unsubscribe_user("u1").await.unwrap();
    server.subscribe_user("u2").await.unwrap();
    client
        .publish_push("connector", push.clone())
        .await
        .unwrap();
    let for_u2 = Push {
        uid: "u2".into(),
        ..push
    };
    client
        .publish_push("connector", for_u2.clone())
        .await
        .unwrap();
    assert_eq!(next(&mut seen.pushes).await, for_u2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_request_queue_holds_calls_back_and_loses_none() {
    init_tracing();
    let nats = NatsServer::start().unwrap();
    let mut config = server_config(&nats);
    config.services = 1;
    config.buffer.messages = 1;
    let gate = Arc::new(Semaphore::new(0));
    let (server, mut seen) = start_room_with(&config, "r-1", Arc::clone(&gate)).await;
    let raw = async_nats::connect(nats.url()).await.unwrap();

    // One blocked in the handler, one queued, 48 waiting in NATS's buffer.
    let blocking = request("room.room.block", b"").encode_to_vec();
    for _ in 0..50 {
        raw.publish("pitaya/servers/room/r-1", blocking.clone().into())
            .await
            .unwrap();
    }
    settle(&raw).await;
    next(&mut seen.requests).await;

    gate.add_permits(50);
    for _ in 1..50 {
        next(&mut seen.requests).await;
    }
    let client = client(&nats).await;
    let response = client
        .call(&room("r-1"), request("room.room.join", b"after"), WAIT)
        .await
        .unwrap();
    assert_eq!(&response.data[..], b"r-1:after");
    assert_eq!(server.dropped_messages(), 0);
    server.shutdown().await;
}
