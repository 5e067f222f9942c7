//! Route dictionary from a compressed handshake, and compressed bodies.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use common::{Server, PATIENCE};
use pitaya::protocol::{
    is_compressed, HandshakeResponse, HandshakeResponseSys, Message, Packet, PacketDecoder,
    PacketType, RouteDict,
};
use pitaya::Config;
use pitaya_client::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// Returns a dictionary large enough that the handshake goes out zlib-compressed.
fn dictionary() -> BTreeMap<String, u16> {
    let mut dict: BTreeMap<String, u16> = (0..60)
        .map(|i| (format!("room.filler.route{i}"), 100 + i))
        .collect();
    dict.insert("room.room.join".into(), 1);
    dict.insert("room.room.message".into(), 2);
    dict.insert("onMembers".into(), 3);
    dict.insert("onMessage".into(), 4);
    dict.insert("room.test.big".into(), 5);
    dict
}

#[tokio::test]
async fn dictionary_from_a_compressed_handshake_encodes_and_decodes_routes() {
    let mut config = Config::default();
    config.handler.dictionary = dictionary();
    assert!(config.handler.messages.compression);
    // The server compresses the handshake only when that is shorter: check it is here.
    let sys = HandshakeResponseSys {
        dict: dictionary(),
        heartbeat: config.heartbeat.interval,
        serializer: "json".into(),
    };
    assert!(is_compressed(
        &HandshakeResponse::accepted(sys).encode(true)
    ));

    let server = Server::with_config(config).await;
    for scheme in ["tcp", "ws"] {
        let client = Client::connect(&server.url(scheme)).await.unwrap();
        let session = client.session().unwrap();
        let dict = session.route_dict();
        assert_eq!(dict.len(), 65);
        assert_eq!(dict.code("room.room.join"), Some(1));
        assert_eq!(dict.route(4), Some("onMessage"));

        // Join and message go out as codes; onMembers and onMessage come back as codes.
        let mut members = client.pushes("onMembers");
        let mut messages = client.pushes("onMessage");
        let nick = format!("dict-{scheme}");
        let reply: Value = client
            .request("room.room.join", &json!({ "name": nick }))
            .await
            .unwrap();
        assert_eq!(reply, json!({ "code": 0, "result": "success" }));
        let push = timeout(PATIENCE, members.recv()).await.unwrap().unwrap();
        assert!(push.json::<Value>().unwrap()["members"]
            .as_array()
            .unwrap()
            .contains(&json!(nick)));

        let said = json!({ "name": nick, "content": "coded" });
        client.notify("room.room.message", &said).await.unwrap();
        let push = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
        assert_eq!(push.json::<Value>().unwrap(), said);
    }
}

#[tokio::test]
async fn large_compressed_response_body_is_inflated() {
    let server = Server::start().await;
    let client = Client::connect(&server.url("tcp"))
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    // 20,000 repeats of one word: the server sends it zlib-compressed (spec 4.6).
    let reply: Value = client.request("room.test.big", &20_000).await.unwrap();
    let text = reply["text"].as_str().unwrap();
    assert_eq!(text.len(), 7 * 20_000);
    assert!(text.starts_with("pitaya pitaya "));
}

#[tokio::test]
async fn compressed_handshake_route_code_and_body_from_a_raw_server() {
    common::init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let body = "compressible ".repeat(100);
    let expected = body.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let sys = HandshakeResponseSys {
            dict: dictionary(),
            heartbeat: Duration::ZERO,
            serializer: "json".into(),
        };
        let hello = HandshakeResponse::accepted(sys).encode(true);
        assert!(is_compressed(&hello));

        // Handshake in, response out, ack in, then the client's notify that it listens.
        let (mut decoder, mut buf) = (PacketDecoder::new(), BytesMut::new());
        let mut packets = Vec::new();
        while packets.len() < 3 {
            match decoder.decode(&mut buf).unwrap() {
                Some(p) if p.kind == PacketType::Handshake => {
                    let packet = Packet::new(PacketType::Handshake, hello.clone());
                    socket.write_all(&packet.to_bytes().unwrap()).await.unwrap();
                    packets.push(p);
                }
                Some(p) => packets.push(p),
                None => assert_ne!(socket.read_buf(&mut buf).await.unwrap(), 0),
            }
        }
        let kinds: Vec<_> = packets.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                PacketType::Handshake,
                PacketType::HandshakeAck,
                PacketType::Data
            ]
        );
        let notify = &packets[2].body;
        assert_eq!(notify[0], 0x02 | 0x01, "notify with a route code");
        assert_eq!(&notify[1..3], &[0, 2], "code of room.room.message");

        // One push, compressed both ways.
        let dict = RouteDict::new(dictionary()).unwrap();
        let json = serde_json::to_vec(&json!({ "text": body })).unwrap();
        let push = Message::push("onMessage", json)
            .to_bytes(&dict, true)
            .unwrap();
        assert_eq!(
            push[0],
            0x06 | 0x01 | 0x10,
            "route code and compressed body flags"
        );
        let packet = Packet::new(PacketType::Data, push).to_bytes().unwrap();
        socket.write_all(&packet).await.unwrap();
        // Keep the socket open until the client has read the push.
        let _ = socket.read_buf(&mut buf).await;
    });

    let client = Client::connect(&url).await.unwrap();
    let mut messages = client.pushes("onMessage");
    client
        .notify("room.room.message", &json!({}))
        .await
        .unwrap();
    let push = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
    assert_eq!(push.json::<Value>().unwrap(), json!({ "text": expected }));
}
