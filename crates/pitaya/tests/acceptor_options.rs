//! Acceptor options over real sockets: PROXY protocol headers (spec 1.7), the
//! rate-limiting wrapper (spec 1.8) and `pitaya.acceptor.maxconnections`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{builder, call_ok, config, wait_until, Server};
use pitaya::acceptor::{Acceptor, RateLimitingAcceptor, TcpAcceptor};
use pitaya::protocol::{MessageType, PacketType};
use pitaya::{Component, Context, Error};
use pitaya_test_support::{json, RawClient};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(10);

/// The v2 signature followed by version 2, command PROXY.
const V2_PROXY: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x21";

/// Returns component `peer`, whose `addr` answers the session's remote address.
fn peer() -> Component {
    Component::new("peer").request("addr", |ctx: Context, _: ()| async move {
        Ok::<_, Error>(ctx.session().remote_addr().to_string())
    })
}

/// Returns a server whose TCP acceptor expects PROXY headers, as the config asks.
async fn proxied_server() -> Server {
    let mut cfg = config();
    cfg.acceptor.proxy_protocol = true;
    Server::start(builder().config(cfg).register(peer())).await
}

/// Returns a client that sent `header` and then completed the Pitaya handshake.
async fn client_behind_proxy(server: &Server, header: &[u8]) -> RawClient {
    let mut client = RawClient::tcp(server.tcp).await.unwrap();
    client.send_raw(header).await.unwrap();
    client.handshake().await.unwrap();
    client
}

/// Returns the address the server's session reports for `client`.
async fn seen_addr(client: &mut RawClient, id: u64) -> SocketAddr {
    let addr = call_ok(client, id, "peer.addr", json!(null)).await;
    addr.as_str().unwrap().parse().unwrap()
}

/// Returns a v2 header for TCP over IPv6 from `[2001:db8::42]:61000`.
fn v2_tcp6_header() -> Vec<u8> {
    let mut h = V2_PROXY.to_vec();
    h.extend_from_slice(&[0x21, 0, 36]);
    h.extend_from_slice(
        &"2001:db8::42"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    h.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    h.extend_from_slice(&61000u16.to_be_bytes());
    h.extend_from_slice(&3250u16.to_be_bytes());
    h
}

#[tokio::test]
async fn proxy_v1_header_gives_the_session_the_client_address() {
    let server = proxied_server().await;
    let header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 3250\r\n";
    let mut client = client_behind_proxy(&server, header).await;

    let addr = seen_addr(&mut client, 1).await;
    assert_eq!(addr, "203.0.113.7:51234".parse().unwrap());
}

#[tokio::test]
async fn proxy_v2_header_gives_the_session_the_client_address() {
    let server = proxied_server().await;
    let mut client = client_behind_proxy(&server, &v2_tcp6_header()).await;

    let addr = seen_addr(&mut client, 1).await;
    assert_eq!(addr, "[2001:db8::42]:61000".parse().unwrap());
}

#[tokio::test]
async fn without_proxy_protocol_the_session_sees_the_socket_peer() {
    let server = Server::start(builder().register(peer())).await;
    let mut client = server.client().await;

    let addr = seen_addr(&mut client, 1).await;
    assert_eq!(addr, client.local_addr().unwrap());
}

#[tokio::test]
async fn bad_or_missing_header_closes_only_that_connection() {
    let server = proxied_server().await;
    let header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 3250\r\n";
    let mut good = client_behind_proxy(&server, header).await;

    // A client going around the balancer starts with its handshake, not a header.
    let mut missing = RawClient::tcp(server.tcp).await.unwrap();
    missing
        .send_packet(PacketType::Handshake, b"{}")
        .await
        .unwrap();
    assert!(missing.expect_closed().await.unwrap().is_empty());

    let mut garbled = RawClient::tcp(server.tcp).await.unwrap();
    garbled
        .send_raw(b"PROXY TCP4 203.0.113.7 nowhere 1 2\r\n")
        .await
        .unwrap();
    assert!(garbled.expect_closed().await.unwrap().is_empty());

    // LOCAL carries no client address, so Pitaya closes it too.
    let mut local = RawClient::tcp(server.tcp).await.unwrap();
    local
        .send_raw(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00")
        .await
        .unwrap();
    assert!(local.expect_closed().await.unwrap().is_empty());

    assert_eq!(seen_addr(&mut good, 1).await.port(), 51234);
    assert_eq!(server.handle.session_count(), 1);
}

#[tokio::test]
async fn websocket_acceptor_ignores_the_proxy_protocol_setting() {
    let server = proxied_server().await;
    let mut client = RawClient::ws(server.ws).await.unwrap();
    client.handshake().await.unwrap();

    let addr = seen_addr(&mut client, 1).await;
    assert_eq!(addr, client.local_addr().unwrap());
}

#[tokio::test]
async fn packets_over_the_rate_are_dropped_and_the_connection_stays_open() {
    let mut cfg = config();
    // Four packets, then nothing more for an hour: the handshake, its ack, two requests.
    cfg.conn.rate_limiting.limit = 4;
    cfg.conn.rate_limiting.interval = Duration::from_secs(3600);
    let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let limited = RateLimitingAcceptor::new(tcp, &cfg.conn.rate_limiting);
    let (addr, exceeded) = (limited.local_addr(), limited.exceeded());
    let server = Server::start(builder().config(cfg).acceptor(limited)).await;

    let mut client = RawClient::tcp(addr).await.unwrap();
    client.handshake().await.unwrap();
    let id = call_ok(&mut client, 1, "svc.id", json!(null)).await;
    assert_eq!(
        call_ok(&mut client, 2, "svc.echo", json!("ok")).await,
        json!("ok")
    );

    client.request(3, "svc.echo", b"\"dropped\"").await.unwrap();
    client
        .send_packet(PacketType::Heartbeat, &[])
        .await
        .unwrap();
    wait_until(LIMIT, "two packets dropped", || exceeded.get() == 2).await;

    // Request 3 was never handled: the next thing the client gets is this push.
    let session = server.handle.session_by_id(id.as_u64().unwrap()).unwrap();
    session
        .push("test.after", json!("still open"))
        .await
        .unwrap();
    let msg = client.recv_message().await.unwrap();
    assert_eq!(
        (msg.kind, msg.route.as_str()),
        (MessageType::Push, "test.after")
    );
    assert_eq!(json(&msg), json!("still open"));
    assert_eq!(server.handle.session_count(), 1);
}

#[tokio::test]
async fn force_disable_turns_the_rate_limit_off() {
    let mut cfg = config();
    cfg.conn.rate_limiting.limit = 1;
    cfg.conn.rate_limiting.interval = Duration::from_secs(3600);
    cfg.conn.rate_limiting.force_disable = true;
    let tcp = TcpAcceptor::bind("127.0.0.1:0").await.unwrap();
    let limited = RateLimitingAcceptor::new(tcp, &cfg.conn.rate_limiting);
    let (addr, exceeded) = (limited.local_addr(), limited.exceeded());
    let _server = Server::start(builder().config(cfg).acceptor(limited)).await;

    let mut client = RawClient::tcp(addr).await.unwrap();
    client.handshake().await.unwrap();
    for id in 1..=5 {
        assert_eq!(
            call_ok(&mut client, id, "svc.echo", json!(id)).await,
            json!(id)
        );
    }
    assert_eq!(exceeded.get(), 0);
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_accept() {
    let mut cfg = config();
    cfg.acceptor.max_connections = 2;
    let server = Server::start(builder().config(cfg)).await;

    // The limit is per server: a TCP and a WebSocket client fill it together.
    let mut tcp = server.client().await;
    let mut ws = RawClient::ws(server.ws).await.unwrap();
    ws.handshake().await.unwrap();

    let mut third = RawClient::tcp(server.tcp).await.unwrap();
    assert!(third.expect_closed().await.unwrap().is_empty());
    assert_eq!(call_ok(&mut tcp, 1, "svc.echo", json!(1)).await, json!(1));
    assert_eq!(call_ok(&mut ws, 1, "svc.echo", json!(1)).await, json!(1));

    // Once a client leaves, its slot is free again.
    drop(tcp);
    let retry = async {
        loop {
            let mut client = RawClient::tcp(server.tcp).await.unwrap();
            if client.handshake().await.is_ok() {
                return client;
            }
        }
    };
    let mut fourth = tokio::time::timeout(LIMIT, retry)
        .await
        .expect("a slot frees up after a client leaves");
    assert_eq!(
        call_ok(&mut fourth, 1, "svc.echo", json!(4)).await,
        json!(4)
    );
}
