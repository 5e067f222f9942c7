//! TLS and WebSocket over TLS against pitaya's acceptors, with a self-signed certificate.

mod common;

use common::{Server, TestCert};
use pitaya_client::{Client, ClientError, ConnectOptions};
use serde_json::{json, Value};

#[tokio::test]
async fn tls_and_wss_work_with_the_server_certificate_as_ca() {
    let cert = TestCert::new("ca");
    let server = Server::tls(&cert).await;
    for scheme in ["tls", "wss"] {
        // The certificate names localhost, and we connect by IP.
        let client = ConnectOptions::new()
            .add_ca_file(cert.cert_path())
            .tls_server_name("localhost")
            .connect(&server.url(scheme))
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e:?}"));
        let reply: Value = client
            .request(
                "room.room.join",
                &json!({ "name": format!("tls-{scheme}") }),
            )
            .await
            .unwrap();
        assert_eq!(reply, json!({ "code": 0, "result": "success" }));
    }
}

#[tokio::test]
async fn unknown_certificate_is_refused_unless_insecure() {
    let cert = TestCert::new("insecure");
    let server = Server::tls(&cert).await;
    for scheme in ["tls", "wss"] {
        let err = Client::connect(&server.url(scheme)).await.unwrap_err();
        assert!(matches!(err, ClientError::Io(_)), "{scheme}: {err:?}");

        let client = ConnectOptions::new()
            .insecure(true)
            .connect(&server.url(scheme))
            .await
            .unwrap();
        let echo: Value = client.request("room.test.echo", &json!(7)).await.unwrap();
        assert_eq!(echo, json!(7));
    }
}

#[tokio::test]
async fn unreadable_ca_file_is_a_tls_error() {
    let err = ConnectOptions::new()
        .add_ca_file("/nonexistent/ca.pem")
        .connect("tls://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
}
