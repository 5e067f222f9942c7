//! One standalone server over TCP: handshake, requests, notifies, pushes, kicks, errors,
//! pipelines and route compression, all through real sockets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::{builder, call, call_ok, error_of, Server};
use pitaya::protocol::{
    deflate, HandshakeResponse, Message, MessageType, Packet, PacketType, RouteDict,
};
use pitaya::{Component, Context, Error};
use pitaya_test_support::{default_handshake, json, RawClient};
use serde_json::{json, Value};

/// Returns a whole Data packet around a hand-built message body.
fn data_packet(message: &[u8]) -> Bytes {
    Packet::new(PacketType::Data, Bytes::copy_from_slice(message))
        .to_bytes()
        .unwrap()
}

#[tokio::test]
async fn handshake_answers_code_200_with_heartbeat_serializer_and_dict() {
    let server = Server::start(builder()).await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();

    client
        .send_packet(PacketType::Handshake, &default_handshake().to_json())
        .await
        .unwrap();
    let packet = client.recv_packet().await.unwrap().unwrap();
    assert_eq!(packet.kind, PacketType::Handshake);
    // Short JSON is never compressed: zlib would make it longer.
    let body: Value = serde_json::from_slice(&packet.body).unwrap();
    assert_eq!(
        body,
        json!({"code": 200, "sys": {"dict": {}, "heartbeat": 30, "serializer": "json"}})
    );
}

#[tokio::test]
async fn request_ids_of_two_and_three_varint_bytes_come_back_unchanged() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    for id in [128, 200, 16_383, 16_384, 20_000, 3_000_000] {
        let reply = call_ok(&mut client, id, "svc.echo", json!({"n": id})).await;
        assert_eq!(reply, json!({"n": id}));
    }
}

#[tokio::test]
async fn ten_requests_in_one_write_are_all_answered() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let mut batch = BytesMut::new();
    for id in 1..=10u64 {
        let body = serde_json::to_vec(&json!({"id": id})).unwrap();
        batch
            .extend_from_slice(&client.data_packet(&Message::request(id, "svc.echo", body), false));
    }
    client.send_raw(&batch).await.unwrap();

    let mut answered = BTreeMap::new();
    for _ in 0..10 {
        let resp = client.recv_response().await.unwrap();
        assert!(!resp.error);
        assert_eq!(
            answered.insert(resp.id, json(&resp)),
            None,
            "id {} twice",
            resp.id
        );
    }
    let want: BTreeMap<u64, Value> = (1..=10).map(|id| (id, json!({"id": id}))).collect();
    assert_eq!(answered, want);
}

#[tokio::test]
async fn packet_written_one_byte_at_a_time_is_answered() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let packet = client.data_packet(&Message::request(7, "svc.echo", &b"\"slow\""[..]), false);
    for byte in packet.iter() {
        client.send_raw(&[*byte]).await.unwrap();
    }
    let resp = client.recv_response().await.unwrap();
    assert_eq!((resp.id, json(&resp)), (7, json!("slow")));
}

#[tokio::test]
async fn compressed_request_body_is_inflated_before_the_handler() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let body = serde_json::to_vec(&json!({"text": "x".repeat(300)})).unwrap();
    let mut msg = vec![0x10, 9, 8];
    msg.extend_from_slice(b"svc.echo");
    msg.extend_from_slice(&deflate(&body));
    client.send_raw(&data_packet(&msg)).await.unwrap();

    let resp = client.recv_response().await.unwrap();
    assert_eq!(resp.id, 9);
    assert_eq!(json(&resp), json!({"text": "x".repeat(300)}));
}

#[tokio::test]
async fn notify_reaches_its_handler_which_pushes_back() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    client.notify("svc.notify", br#"{"ping":1}"#).await.unwrap();
    let push = client.recv_message().await.unwrap();
    assert_eq!(push.kind, MessageType::Push);
    assert_eq!(push.route, "svc.pushed");
    assert_eq!(json(&push), json!({"ping": 1}));
}

#[tokio::test]
async fn push_sent_by_a_handler_arrives_before_its_response() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    client.request(3, "svc.push", b"").await.unwrap();
    let push = client.recv_message().await.unwrap();
    assert_eq!(
        (push.kind, push.route.as_str()),
        (MessageType::Push, "push.route")
    );
    assert_eq!(json(&push), json!({"hello": "world"}));
    let resp = client.recv_message().await.unwrap();
    assert_eq!((resp.kind, resp.id), (MessageType::Response, 3));
    assert_eq!(json(&resp), json!("pushed"));
}

#[tokio::test]
async fn kick_sends_the_kick_packet_then_closes() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    client.notify("svc.kick", b"").await.unwrap();
    let seen = client.expect_closed().await.unwrap();
    let seen: Vec<Packet> = seen
        .into_iter()
        .filter(|p| p.kind != PacketType::Heartbeat)
        .collect();
    assert_eq!(seen, vec![Packet::kick()]);
    assert_eq!(&Packet::kick().to_bytes().unwrap()[..], &[5, 0, 0, 0]);
}

#[tokio::test]
async fn request_with_id_zero_is_run_but_never_answered() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    // svc.push pushes before it replies: the push proves the request ran.
    client.request(0, "svc.push", b"").await.unwrap();
    client.recv_push("push.route").await.unwrap();
    client.request(5, "svc.echo", b"5").await.unwrap();
    let first = client.recv_response().await.unwrap();
    assert_eq!((first.id, json(&first)), (5, json!(5)));
}

#[tokio::test]
async fn request_to_a_notify_handler_is_a_bad_request() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "svc.notify", json!({})).await;
    assert_eq!(error_of(&resp).code, "PIT-400");
}

#[tokio::test]
async fn unknown_route_is_not_found_and_the_connection_goes_on() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "svc.nope", json!({})).await;
    let err = error_of(&resp);
    assert_eq!(err.code, "PIT-404");
    assert_eq!(err.msg, "pitaya/handler: connector.svc.nope not found");
    let resp = call(&mut client, 2, "nothing.here", json!({})).await;
    assert_eq!(error_of(&resp).code, "PIT-404");

    assert_eq!(
        call_ok(&mut client, 3, "svc.echo", json!("after")).await,
        json!("after")
    );
}

#[tokio::test]
async fn route_of_another_server_type_is_not_found() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "game.svc.echo", json!(1)).await;
    let err = error_of(&resp);
    assert_eq!(err.code, "PIT-404");
    assert_eq!(
        err.metadata.get("route").map(String::as_str),
        Some("game.svc.echo")
    );
    // The three-part form of our own type is served.
    assert_eq!(
        call_ok(&mut client, 2, "connector.svc.echo", json!(2)).await,
        json!(2)
    );
}

#[tokio::test]
async fn malformed_route_is_a_bad_request() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    for (id, route) in [(1, "echo"), (2, "a.b.c.d"), (3, "svc..echo")] {
        let resp = call(&mut client, id, route, json!(1)).await;
        assert_eq!(error_of(&resp).code, "PIT-400", "{route}");
    }
    assert_eq!(
        call_ok(&mut client, 4, "svc.echo", json!(4)).await,
        json!(4)
    );
}

#[tokio::test]
async fn panicking_handler_answers_500_and_the_server_keeps_serving() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;
    let mut other = server.client().await;

    let resp = call(&mut client, 1, "svc.panic", json!(null)).await;
    assert_eq!(error_of(&resp).code, "PIT-500");

    assert_eq!(
        call_ok(&mut client, 2, "svc.echo", json!("same")).await,
        json!("same")
    );
    assert_eq!(
        call_ok(&mut other, 1, "svc.echo", json!("other")).await,
        json!("other")
    );
    let mut late = server.client().await;
    assert_eq!(
        call_ok(&mut late, 1, "svc.echo", json!("late")).await,
        json!("late")
    );
}

#[tokio::test]
async fn handler_error_keeps_its_app_code_and_metadata() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "svc.fail", json!(null)).await;
    let err = error_of(&resp);
    assert_eq!(err.code, "GAME-7");
    assert_eq!(err.msg, "room is full");
    let want: BTreeMap<String, String> = [("room".into(), "42".into())].into();
    assert_eq!(err.metadata, want);
}

#[tokio::test]
async fn body_that_does_not_deserialize_is_a_bad_request() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "svc.typed", json!({"name": 5})).await;
    assert_eq!(error_of(&resp).code, "PIT-400");
    client.request(2, "svc.typed", b"{not json").await.unwrap();
    let resp = client.recv_response().await.unwrap();
    assert_eq!((resp.id, error_of(&resp).code.as_str()), (2, "PIT-400"));

    let ok = call_ok(&mut client, 3, "svc.typed", json!({"name": "ana"})).await;
    assert_eq!(ok, json!("hello, ana"));
}

/// Returns an app whose hooks act on `svc.echo` (rewrite), `hooks.guarded` (reject) and
/// `hooks.after` (reply replaced); `runs` counts the guarded handler's runs.
fn app_with_hooks(runs: Arc<AtomicUsize>) -> pitaya::Builder {
    let hooks = Component::new("hooks")
        .request("guarded", move |_: Context, _: Value| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>("ran")
            }
        })
        .request("after", |_: Context, _: Value| async move {
            Ok::<_, Error>("original")
        });
    builder()
        .register(hooks)
        .before_handler(|ctx: Context, body: Bytes| async move {
            match ctx.route().to_string().as_str() {
                "connector.svc.echo" => Ok(Bytes::from_static(b"{\"rewritten\":true}")),
                "connector.hooks.guarded" => {
                    Err(Error::new("AUTH-1", "not allowed").with_metadata("why", "test"))
                }
                _ => Ok(body),
            }
        })
        .after_handler(|ctx: Context, res: Result<Bytes, Error>| async move {
            if ctx.route().method() == "after" {
                assert_eq!(res.as_deref().ok(), Some(&b"\"original\""[..]));
                return Ok(Bytes::from_static(b"\"replaced\""));
            }
            res
        })
}

#[tokio::test]
async fn before_hook_rewrites_the_body() {
    let server = Server::start(app_with_hooks(Arc::default())).await;
    let mut client = server.client().await;

    let reply = call_ok(&mut client, 1, "svc.echo", json!({"original": true})).await;
    assert_eq!(reply, json!({"rewritten": true}));
}

#[tokio::test]
async fn before_hook_rejecting_answers_its_error_and_skips_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = Server::start(app_with_hooks(runs.clone())).await;
    let mut client = server.client().await;

    let resp = call(&mut client, 1, "hooks.guarded", json!({})).await;
    let err = error_of(&resp);
    assert_eq!(
        (err.code.as_str(), err.msg.as_str()),
        ("AUTH-1", "not allowed")
    );
    assert_eq!(err.metadata.get("why").map(String::as_str), Some("test"));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn after_hook_replaces_the_reply() {
    let server = Server::start(app_with_hooks(Arc::default())).await;
    let mut client = server.client().await;

    assert_eq!(
        call_ok(&mut client, 1, "hooks.after", json!({})).await,
        json!("replaced")
    );
    // Other routes keep their own reply.
    assert_eq!(
        call_ok(&mut client, 2, "svc.typed", json!({"name": "b"})).await,
        json!("hello, b")
    );
}

#[tokio::test]
async fn refused_handshake_gets_code_400_then_close() {
    let app = builder().handshake_validator("no-evil", |req| {
        if req.sys.platform == "evil" {
            return Err(Error::new("HS-1", "evil platform"));
        }
        Ok(())
    });
    let server = Server::start(app).await;

    let mut evil = RawClient::tcp(server.tcp).await.unwrap();
    let mut hs = default_handshake();
    hs.sys.platform = "evil".into();
    let resp = evil.handshake_only(&hs).await.unwrap();
    assert_eq!(resp.code, 400);
    assert_eq!(resp.sys.serializer, "json");
    let after: Vec<Packet> = evil.expect_closed().await.unwrap();
    assert!(
        after.iter().all(|p| p.kind == PacketType::Heartbeat),
        "{after:?}"
    );

    let mut good = server.client().await;
    assert_eq!(call_ok(&mut good, 1, "svc.echo", json!(1)).await, json!(1));
}

#[tokio::test]
async fn second_handshake_is_answered_again_and_needs_a_new_ack() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;
    assert_eq!(
        call_ok(&mut client, 1, "svc.echo", json!(1)).await,
        json!(1)
    );

    let again = client.handshake_only(&default_handshake()).await.unwrap();
    assert_eq!(again.code, 200);
    client
        .send_packet(PacketType::HandshakeAck, &[])
        .await
        .unwrap();
    assert_eq!(
        call_ok(&mut client, 2, "svc.echo", json!(2)).await,
        json!(2)
    );
}

#[tokio::test]
async fn dictionary_from_config_is_announced_and_route_codes_work_both_ways() {
    let mut config = common::config();
    config.handler.dictionary = [("svc.echo".to_string(), 7), ("svc.pushed".to_string(), 9)].into();
    let server = Server::start(builder().config(config)).await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    let hs = client.handshake().await.unwrap();
    let want: BTreeMap<String, u16> = [("svc.echo".into(), 7), ("svc.pushed".into(), 9)].into();
    assert_eq!(hs.sys.dict, want);

    // Request id 4, route code 7 (flag bit 0x01), body "coded".
    let mut msg = vec![0x01, 4, 0, 7];
    msg.extend_from_slice(b"\"coded\"");
    client.send_raw(&data_packet(&msg)).await.unwrap();
    let resp = client.recv_response().await.unwrap();
    assert_eq!((resp.id, json(&resp)), (4, json!("coded")));

    // A push on a route in the dictionary goes out as its code.
    client.notify("svc.notify", b"1").await.unwrap();
    let packet = client.recv_packet_skipping_heartbeats().await.unwrap();
    assert_eq!(&packet.body[..], &[0x07, 0, 9, b'1']);
}

#[tokio::test]
async fn large_dictionary_makes_the_handshake_compressed() {
    let mut config = common::config();
    config.handler.dictionary = (0..200u16).map(|i| (format!("svc.route{i}"), i)).collect();
    let server = Server::start(builder().config(config)).await;
    let mut client = RawClient::tcp(server.tcp).await.unwrap();

    client
        .send_packet(PacketType::Handshake, &default_handshake().to_json())
        .await
        .unwrap();
    let packet = client.recv_packet().await.unwrap().unwrap();
    assert!(pitaya::protocol::is_compressed(&packet.body));
    let resp = HandshakeResponse::decode(&packet.body).unwrap();
    assert_eq!((resp.code, resp.sys.dict.len()), (200, 200));
}

/// Returns the flag byte and the decoded message of the next response.
async fn raw_response(client: &mut RawClient) -> (u8, Message) {
    let packet = client.recv_packet_skipping_heartbeats().await.unwrap();
    let msg = Message::decode(&packet.body, &RouteDict::empty(), 1 << 24).unwrap();
    (packet.body[0], msg)
}

#[tokio::test]
async fn large_replies_are_compressed_when_compression_is_on() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    client.request(1, "svc.big", b"1000").await.unwrap();
    let (flag, msg) = raw_response(&mut client).await;
    assert_eq!(flag, 0x14, "response with the compressed bit");
    assert_eq!(json(&msg), json!("abc".repeat(1000)));

    // A tiny reply would grow: it goes out plain.
    client.request(2, "svc.big", b"1").await.unwrap();
    let (flag, msg) = raw_response(&mut client).await;
    assert_eq!((flag, json(&msg)), (0x04, json!("abc")));
}

#[tokio::test]
async fn replies_are_never_compressed_when_compression_is_off() {
    let mut config = common::config();
    config.handler.messages.compression = false;
    let server = Server::start(builder().config(config)).await;
    let mut client = server.client().await;

    client.request(1, "svc.big", b"1000").await.unwrap();
    let (flag, msg) = raw_response(&mut client).await;
    assert_eq!(flag, 0x04);
    assert_eq!(json(&msg), json!("abc".repeat(1000)));
}

#[tokio::test]
async fn error_bit_is_set_on_error_responses_only() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    client.request(1, "svc.fail", b"").await.unwrap();
    let (flag, _) = raw_response(&mut client).await;
    assert_eq!(flag, 0x24);
    client.request(2, "svc.echo", b"1").await.unwrap();
    let (flag, _) = raw_response(&mut client).await;
    assert_eq!(flag, 0x04);
}

#[tokio::test]
async fn raw_body_passes_through_untouched() {
    let server = Server::start(builder()).await;
    let mut client = server.client().await;

    let bytes: Vec<u8> = (0..=255).collect();
    client.request(1, "svc.raw", &bytes).await.unwrap();
    let resp = client.recv_response().await.unwrap();
    assert_eq!(&resp.data[..], &bytes[..]);
}

#[tokio::test]
async fn many_clients_get_their_own_answers() {
    let server = Server::start(builder()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.client().await);
    }
    let mut ids = BTreeSet::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let body = serde_json::to_vec(&json!(i)).unwrap();
        c.request(1, "svc.echo", &body).await.unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let resp = c.recv_response().await.unwrap();
        assert_eq!(json(&resp), json!(i));
        ids.insert(call_ok(c, 2, "svc.id", json!(null)).await.as_u64().unwrap());
    }
    assert_eq!(ids.len(), 20, "every client has its own session");
}
