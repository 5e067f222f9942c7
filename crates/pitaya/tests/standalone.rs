//! One standalone server over TCP: handshake and validators, requests, notifies, pushes,
//! kicks and error codes, all through real sockets. Hooks are in `pipelines.rs`,
//! compression and route codes in `compression.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::BytesMut;
use common::{builder, call, call_ok, error_of, raw_response, Server};
use pitaya::protocol::{Message, MessageType, Packet, PacketType};
use pitaya::Error;
use pitaya_test_support::{default_handshake, json, RawClient};
use serde_json::{json, Value};

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
