//! Compression on the wire: zlib request bodies, compressed replies and handshakes,
//! and route codes from the configured dictionary.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{builder, raw_response, Server};
use pitaya::protocol::{deflate, HandshakeResponse, Packet, PacketType};
use pitaya_test_support::{default_handshake, json, RawClient};
use serde_json::json;

/// Returns a whole Data packet around a hand-built message body.
fn data_packet(message: &[u8]) -> Bytes {
    Packet::new(PacketType::Data, Bytes::copy_from_slice(message))
        .to_bytes()
        .unwrap()
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
