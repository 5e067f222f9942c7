//! Cluster RPC over NATS while nats-server is down, at start-up or later.
#![cfg(feature = "nats")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pitaya::cluster::rpc::{request_metadata, NatsRpcClient, NatsRpcServer};
use pitaya::cluster::{RpcClient, RpcError, RpcHandler, RpcServer, ServerInfo};
use pitaya::config::{NatsClientConfig, NatsServerConfig};
use pitaya_protos::{BindMsg, KickAnswer, KickMsg, Msg, Push, Request, Response};
use pitaya_test_support::{init_tracing, NatsServer};

/// Longest wait for any event; generous for a loaded CI machine.
const WAIT: Duration = Duration::from_secs(30);

/// Pause between two tries of a condition we poll.
const POLL: Duration = Duration::from_millis(20);

/// Answers every call with its own data.
struct Echo;

#[async_trait]
impl RpcHandler for Echo {
    async fn handle(&self, req: Request) -> Response {
        Response {
            data: req.msg.map(|m| m.data).unwrap_or_default(),
            error: None,
        }
    }
    async fn on_push(&self, _: Push) -> bool {
        false
    }
    async fn on_kick(&self, _: KickMsg) -> KickAnswer {
        KickAnswer { kicked: false }
    }
    async fn on_bind(&self, _: BindMsg) {}
}

fn server_config(url: String) -> NatsServerConfig {
    let mut config = NatsServerConfig::default();
    config.connection.connect = url;
    config.connection.reconnect_wait = Duration::from_millis(50);
    config.connection.connection_timeout = Duration::from_millis(500);
    config.connection.max_reconnection_retries = 1_000;
    config
}

fn client_config(url: String) -> NatsClientConfig {
    let mut config = NatsClientConfig::default();
    config.connection = server_config(url).connection;
    config
}

fn caller() -> ServerInfo {
    ServerInfo::new("connector", true).with_id("c-1")
}

fn room() -> ServerInfo {
    ServerInfo::new("room", false).with_id("r-1")
}

fn request(data: &'static [u8]) -> Request {
    let route = "room.room.echo";
    Request {
        msg: Some(Msg {
            route: route.into(),
            data: Bytes::from_static(data),
            ..Msg::default()
        }),
        metadata: request_metadata(&caller(), "id", route, SystemTime::now(), WAIT),
        ..Request::default()
    }
}

/// Returns the first result of `call` that `done` accepts, polling for [`WAIT`].
async fn poll_call<F>(
    client: &NatsRpcClient,
    timeout: Duration,
    done: F,
) -> Result<Response, RpcError>
where
    F: Fn(&Result<Response, RpcError>) -> bool,
{
    let target = room();
    let wait = async {
        loop {
            let result = client.call(&target, request(b"x"), timeout).await;
            if done(&result) {
                return result;
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("condition not reached")
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_fail_fast_while_nats_is_down_and_work_again_after_it_returns() {
    init_tracing();
    let mut nats = NatsServer::start().unwrap();
    let url = nats.url();
    let handler = Arc::new(Echo);
    let server = NatsRpcServer::start(&server_config(url.clone()), &room(), handler)
        .await
        .unwrap();
    let client = NatsRpcClient::connect(&client_config(url), &caller())
        .await
        .unwrap();
    let response = client
        .call(&room(), request(b"before"), WAIT)
        .await
        .unwrap();
    assert_eq!(&response.data[..], b"before");

    // Until the client notices the lost connection a call may also time out,
    // so we poll with short calls until one is refused as disconnected.
    nats.stop();
    let short = Duration::from_millis(200);
    poll_call(&client, short, |r| matches!(r, Err(RpcError::Disconnected)))
        .await
        .unwrap_err();

    // A call with the full timeout is refused at once: it ends in
    // Disconnected, never in the timeout that waiting would produce.
    let err = client
        .call(&room(), request(b"during"), WAIT)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Disconnected), "{err:?}");
    assert_eq!(pitaya::Error::from(err).code(), "PIT-000");

    let mut nats = tokio::task::spawn_blocking(move || {
        nats.restart().unwrap();
        nats
    })
    .await
    .unwrap();

    // Both sides reconnect by themselves; the server's subscription must be back.
    let response = poll_call(&client, short, Result::is_ok).await.unwrap();
    assert_eq!(&response.data[..], b"x");
    let response = client.call(&room(), request(b"after"), WAIT).await.unwrap();
    assert_eq!(&response.data[..], b"after");
    assert!(nats.is_running());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_waits_for_nats_that_comes_up_late() {
    init_tracing();
    let mut nats = NatsServer::start().unwrap();
    nats.stop();
    let url = nats.url();

    let server = tokio::spawn(async move {
        NatsRpcServer::start(&server_config(url), &room(), Arc::new(Echo)).await
    });
    // The server has not connected yet: nobody listens on NATS's port.
    let nats = tokio::task::spawn_blocking(move || {
        nats.restart().unwrap();
        nats
    })
    .await
    .unwrap();

    let server = tokio::time::timeout(WAIT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let client = NatsRpcClient::connect(&client_config(nats.url()), &caller())
        .await
        .unwrap();
    let response = client.call(&room(), request(b"late"), WAIT).await.unwrap();
    assert_eq!(&response.data[..], b"late");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_gives_up_when_nats_never_comes() {
    init_tracing();
    let mut nats = NatsServer::start().unwrap();
    nats.stop();

    let mut config = client_config(nats.url());
    config.connection.max_reconnection_retries = 2;
    config.connection.connection_timeout = Duration::from_millis(100);
    config.connection.reconnect_wait = Duration::from_millis(10);
    let me = caller();
    let connect = NatsRpcClient::connect(&config, &me);
    let err = tokio::time::timeout(WAIT, connect)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, RpcError::Transport(_)), "{err:?}");
}
