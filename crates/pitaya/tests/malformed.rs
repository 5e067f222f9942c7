//! Bad input from one client closes that client's connection and nothing else: a
//! client connected before the garbage keeps being served, and a new one is too.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{builder, call_ok, Server};
use pitaya::protocol::{HandshakeResponse, Message, Packet, PacketType};
use pitaya_test_support::{default_handshake, RawClient};
use serde_json::json;

/// How far the victim got before sending its garbage.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Connected, nothing sent.
    Connected,
    /// Handshake answered, no ack sent.
    Handshaken,
    /// Handshake and ack done: data is accepted.
    Working,
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Tcp,
    Ws,
}

async fn victim(server: &Server, via: Via, stage: Stage) -> RawClient {
    let mut c = match via {
        Via::Tcp => RawClient::tcp(server.tcp).await.unwrap(),
        Via::Ws => RawClient::ws(server.ws).await.unwrap(),
    };
    match stage {
        Stage::Connected => {}
        Stage::Handshaken => {
            let resp = c.handshake_only(&default_handshake()).await.unwrap();
            assert_eq!(resp.code, 200);
        }
        Stage::Working => {
            c.handshake().await.unwrap();
        }
    }
    c
}

/// Asserts a client and the whole server still work after the victim was dropped.
async fn others_still_served(server: &Server, bystander: &mut RawClient) {
    let reply = call_ok(bystander, 77, "svc.echo", json!("bystander")).await;
    assert_eq!(reply, json!("bystander"));
    let mut fresh = server.client().await;
    assert_eq!(
        call_ok(&mut fresh, 1, "svc.echo", json!("fresh")).await,
        json!("fresh")
    );
}

/// Sends `garbage` from a victim at `stage` and checks it alone is closed, unanswered.
async fn closes_only_the_sender(server: &Server, via: Via, stage: Stage, garbage: &[u8]) {
    let mut bystander = server.client().await;
    let mut victim = victim(server, via, stage).await;

    victim.send_raw(garbage).await.unwrap();
    let seen = victim.expect_closed().await.unwrap();
    assert!(
        seen.iter().all(|p| p.kind == PacketType::Heartbeat),
        "closed without an answer, got {seen:?}"
    );
    others_still_served(server, &mut bystander).await;
}

async fn check(stage: Stage, garbage: &[u8]) {
    let server = Server::start(builder()).await;
    closes_only_the_sender(&server, Via::Tcp, stage, garbage).await;
}

async fn check_ws(stage: Stage, garbage: &[u8]) {
    let server = Server::start(builder()).await;
    closes_only_the_sender(&server, Via::Ws, stage, garbage).await;
}

/// Returns a Data packet whose message is `message`, byte for byte.
fn data(message: &[u8]) -> Vec<u8> {
    let mut p = vec![4, 0, 0, message.len() as u8];
    p.extend_from_slice(message);
    p
}

fn echo_request(id: u64) -> Bytes {
    let msg = Message::request(id, "svc.echo", &b"1"[..]).to_bytes(&Default::default(), false);
    Packet::new(PacketType::Data, msg.unwrap())
        .to_bytes()
        .unwrap()
}

#[tokio::test]
async fn unknown_packet_type() {
    check(Stage::Working, &[9, 0, 0, 0]).await;
    check(Stage::Connected, &[0, 0, 0, 0]).await;
}

#[tokio::test]
async fn data_packet_with_a_one_byte_message() {
    check(Stage::Working, &data(&[0x00])).await;
}

#[tokio::test]
async fn unterminated_varint_id() {
    check(Stage::Working, &data(&[0x00, 0x80, 0x80])).await;
}

#[tokio::test]
async fn route_length_past_the_end() {
    check(Stage::Working, &data(&[0x00, 0x01, 0x10, b'a'])).await;
}

#[tokio::test]
async fn unknown_route_code() {
    check(Stage::Working, &data(&[0x01, 0x01, 0x00, 0x09])).await;
}

#[tokio::test]
async fn data_before_handshake() {
    check(Stage::Connected, &echo_request(1)).await;
}

#[tokio::test]
async fn data_after_handshake_before_ack() {
    check(Stage::Handshaken, &echo_request(1)).await;
}

#[tokio::test]
async fn ack_before_handshake() {
    check(Stage::Connected, &[2, 0, 0, 0]).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_route() {
    check(Stage::Working, &data(&[0x00, 0x01, 0x03, b'a', 0xFF, 0xFE])).await;
}

#[tokio::test]
async fn response_message_from_a_client() {
    check(Stage::Working, &data(&[0x04, 0x01, b'1'])).await;
}

#[tokio::test]
async fn push_message_from_a_client() {
    check(Stage::Working, &data(&[0x06, 0x01, b'a', b'1'])).await;
}

#[tokio::test]
async fn message_type_above_push() {
    check(Stage::Working, &data(&[0x08, 0x01, b'a'])).await;
}

#[tokio::test]
async fn compressed_body_that_is_not_zlib() {
    let mut msg = vec![0x10, 0x01, 0x08];
    msg.extend_from_slice(b"svc.echonot zlib at all");
    check(Stage::Working, &data(&msg)).await;
}

#[tokio::test]
async fn kick_packet_from_a_client() {
    check(Stage::Working, &[5, 0, 0, 0]).await;
}

#[tokio::test]
async fn packet_over_the_configured_maximum() {
    let mut config = common::config();
    config.conn.max_packet_size = 1024;
    let server = Server::start(builder().config(config)).await;

    let mut big = vec![4, 0, 0x04, 0x01];
    big.resize(4 + 1025, b'x');
    closes_only_the_sender(&server, Via::Tcp, Stage::Working, &big).await;
    // A header alone is enough: the body is not waited for.
    closes_only_the_sender(&server, Via::Tcp, Stage::Working, &big[..4]).await;
    closes_only_the_sender(&server, Via::Ws, Stage::Working, &big).await;
}

#[tokio::test]
async fn sixteen_megabyte_header_then_silence_times_out_while_others_are_served() {
    let mut config = common::config();
    config.conn.handshake_timeout = Duration::from_millis(500);
    let server = Server::start(builder().config(config)).await;
    let mut bystander = server.client().await;
    let mut victim = RawClient::tcp(server.tcp).await.unwrap();

    victim.send_raw(&[4, 0xFF, 0xFF, 0xFF]).await.unwrap();
    // While the victim's body is awaited, everyone else is served.
    others_still_served(&server, &mut bystander).await;
    let seen = victim.expect_closed().await.unwrap();
    assert!(seen.is_empty(), "{seen:?}");
    others_still_served(&server, &mut bystander).await;
}

#[tokio::test]
async fn invalid_json_handshake_is_refused_with_400_then_closed() {
    let server = Server::start(builder()).await;
    let mut bystander = server.client().await;
    let mut victim = RawClient::tcp(server.tcp).await.unwrap();

    victim
        .send_packet(PacketType::Handshake, br#"{"sys": nope"#)
        .await
        .unwrap();
    let packet = victim.recv_packet().await.unwrap().unwrap();
    assert_eq!(packet.kind, PacketType::Handshake);
    assert_eq!(HandshakeResponse::decode(&packet.body).unwrap().code, 400);
    assert!(victim.expect_closed().await.unwrap().is_empty());

    // A field of the wrong type is refused the same way.
    let mut typed = RawClient::tcp(server.tcp).await.unwrap();
    typed
        .send_packet(PacketType::Handshake, br#"{"sys":{"clientBuildNumber":5}}"#)
        .await
        .unwrap();
    let packet = typed.recv_packet().await.unwrap().unwrap();
    assert_eq!(HandshakeResponse::decode(&packet.body).unwrap().code, 400);
    assert!(typed.expect_closed().await.unwrap().is_empty());

    others_still_served(&server, &mut bystander).await;
}

#[tokio::test]
async fn ws_two_packets_in_one_message() {
    let mut two = echo_request(1).to_vec();
    two.extend_from_slice(&echo_request(2));
    check_ws(Stage::Working, &two).await;
}

#[tokio::test]
async fn ws_truncated_packet_in_a_message() {
    check_ws(Stage::Working, &[4, 0, 0, 5, 1, 2]).await;
    check_ws(Stage::Working, &[4, 0]).await;
}

#[tokio::test]
async fn ws_unknown_packet_type_and_bad_messages() {
    check_ws(Stage::Working, &[9, 0, 0, 0]).await;
    check_ws(Stage::Working, &data(&[0x00, 0x80, 0x80])).await;
    check_ws(Stage::Connected, &echo_request(1)).await;
}
