//! The main flows over TLS: TCP with TLS and WebSocket over TLS (wss), with a
//! self-signed certificate the test clients trust.

mod common;

use std::time::Duration;

use common::cert::TestCert;
use common::flows::{self, Via};
use common::{builder, call_ok, Server};
use pitaya_test_support::RawClient;
use serde_json::json;

async fn tls_server(config: pitaya::Config) -> (Server, TestCert) {
    let cert = TestCert::new();
    let server = Server::start_with(builder().config(config), Some(cert.server_config())).await;
    (server, cert)
}

#[tokio::test]
async fn tls_handshake_and_requests() {
    let (server, cert) = tls_server(common::config()).await;
    flows::handshake_and_requests(&server, Via::Tls, &cert.cert_pem).await;
}

#[tokio::test]
async fn wss_handshake_and_requests() {
    let (server, cert) = tls_server(common::config()).await;
    flows::handshake_and_requests(&server, Via::Wss, &cert.cert_pem).await;
}

#[tokio::test]
async fn tls_notify_and_push() {
    let (server, cert) = tls_server(common::config()).await;
    flows::notify_and_push(&server, Via::Tls, &cert.cert_pem).await;
}

#[tokio::test]
async fn wss_notify_and_push() {
    let (server, cert) = tls_server(common::config()).await;
    flows::notify_and_push(&server, Via::Wss, &cert.cert_pem).await;
}

#[tokio::test]
async fn tls_kick() {
    let (server, cert) = tls_server(common::config()).await;
    flows::kick(&server, Via::Tls, &cert.cert_pem).await;
}

#[tokio::test]
async fn wss_kick() {
    let (server, cert) = tls_server(common::config()).await;
    flows::kick(&server, Via::Wss, &cert.cert_pem).await;
}

fn fast_heartbeats(interval: Duration) -> pitaya::Config {
    let mut config = common::config();
    config.heartbeat.interval = interval;
    config
}

#[tokio::test]
async fn tls_heartbeats_and_idle_close() {
    let interval = Duration::from_millis(200);
    let (server, cert) = tls_server(fast_heartbeats(interval)).await;
    flows::heartbeats(&server, Via::Tls, &cert.cert_pem, interval).await;
}

#[tokio::test]
async fn wss_heartbeats_and_idle_close() {
    let interval = Duration::from_millis(200);
    let (server, cert) = tls_server(fast_heartbeats(interval)).await;
    flows::heartbeats(&server, Via::Wss, &cert.cert_pem, interval).await;
}

#[tokio::test]
async fn plain_client_on_the_tls_port_is_dropped_and_others_are_served() {
    let mut config = common::config();
    config.conn.handshake_timeout = Duration::from_secs(2);
    let (server, cert) = tls_server(config).await;
    let mut tls = RawClient::tls(server.tls.unwrap(), "localhost", cert.cert_pem.as_bytes())
        .await
        .unwrap();
    tls.handshake().await.unwrap();

    let mut plain = RawClient::tcp(server.tls.unwrap()).await.unwrap();
    plain
        .send_packet(pitaya::protocol::PacketType::Handshake, b"{}")
        .await
        .unwrap();
    plain.expect_closed().await.unwrap();

    assert_eq!(
        call_ok(&mut tls, 1, "svc.echo", json!("tls")).await,
        json!("tls")
    );
}

#[tokio::test]
async fn client_that_does_not_trust_the_certificate_cannot_connect() {
    let (server, _cert) = tls_server(common::config()).await;
    let other = TestCert::new();

    let refused = RawClient::tls(server.tls.unwrap(), "localhost", other.cert_pem.as_bytes()).await;
    assert!(refused.is_err());
    let refused = RawClient::wss(server.wss.unwrap(), "localhost", other.cert_pem.as_bytes()).await;
    assert!(refused.is_err());
}
