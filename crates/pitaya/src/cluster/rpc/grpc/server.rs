//! The answering side over gRPC: service `protos.Pitaya` on a bound listener.
//!
//! Every call runs in a task of its own, so a caller that gives up (its
//! deadline passed) does not stop a handler half way, as in Go Pitaya, and
//! shutdown can wait for the calls still running.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pitaya_protos::pitaya_server::{Pitaya, PitayaServer};
use pitaya_protos::{BindMsg, KickAnswer, KickMsg, Push, Request, Response};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::Status;

use super::{Shared, SESSION_NOT_FOUND};
use crate::cluster::rpc::{error_response, has_context, RpcError, RpcHandler, RpcServer};
use crate::cluster::ServerInfo;

/// Calls one peer connection may have open at once; callers queue the others.
///
/// tonic leaves HTTP/2's limit off, and h2 counts every small DATA frame it holds
/// for calls not yet read against a budget of about half the connection window:
/// a backend pushing to a few hundred members for each of a few hundred joins
/// at once had thousands of calls open and got the connection closed with
/// `ENHANCE_YOUR_CALM` ("too_many_data_frames"). hyper's own default is the same.
const MAX_CONCURRENT_STREAMS: u32 = 200;

/// The answering side of cluster RPC over gRPC.
#[derive(Debug)]
pub(super) struct GrpcRpcServer {
    server_id: String,
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    calls: TaskTracker,
    serving: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl GrpcRpcServer {
    /// Returns a server of `me` answering with `handler` on `listener`, which
    /// accepts calls from now on.
    pub(super) fn start(
        listener: std::net::TcpListener,
        me: &ServerInfo,
        handler: Arc<dyn RpcHandler>,
        shared: Arc<Shared>,
    ) -> Result<GrpcRpcServer, RpcError> {
        let io = |e: std::io::Error| RpcError::Transport(e.into());
        listener.set_nonblocking(true).map_err(io)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(io)?;
        let address = listener.local_addr().map_err(io)?;

        let stop = CancellationToken::new();
        let calls = TaskTracker::new();
        let service = PitayaServer::new(Service {
            handler,
            calls: calls.clone(),
        });
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown = stop.clone().cancelled_owned();
        let serving = tokio::spawn(async move {
            let served = Server::builder()
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            if let Err(e) = served {
                // Nobody awaits this task's result, so we report it here.
                tracing::error!(error = %e, "grpc rpc server failed");
            }
        });
        tracing::info!(server_id = %me.id, server_type = %me.server_type, %address,
            "grpc rpc server ready");
        Ok(GrpcRpcServer {
            server_id: me.id.clone(),
            address,
            shared,
            stop,
            calls,
            serving: tokio::sync::Mutex::new(Some(serving)),
        })
    }
}

#[async_trait]
impl RpcServer for GrpcRpcServer {
    /// Records in the binding storage that `uid` is on this frontend.
    async fn subscribe_user(&self, uid: &str) -> Result<(), RpcError> {
        let previous = self
            .shared
            .bindings
            .put(uid)
            .await
            .map_err(|e| RpcError::Transport(e.into()))?;
        self.shared.displaced().insert(uid.to_owned(), previous);
        Ok(())
    }

    async fn unsubscribe_user(&self, uid: &str) -> Result<(), RpcError> {
        self.shared.displaced().remove(uid);
        self.shared
            .bindings
            .remove(uid)
            .await
            .map_err(|e| RpcError::Transport(e.into()))
    }

    /// Stops accepting, waits for the calls in progress, then drops this
    /// server's bindings.
    async fn shutdown(&self) {
        self.stop.cancel();
        if let Some(serving) = self.serving.lock().await.take() {
            // The task reports its own failure; a join error means it panicked.
            let _ = serving.await;
        }
        self.calls.close();
        self.calls.wait().await;
        self.shared.bindings.shutdown().await;
        tracing::info!(server_id = %self.server_id, address = %self.address,
            "grpc rpc server stopped");
    }
}

// ===== the service =====

struct Service {
    handler: Arc<dyn RpcHandler>,
    calls: TaskTracker,
}

fn ack() -> tonic::Response<Response> {
    tonic::Response::new(Response {
        data: Bytes::from_static(b"ack"),
        error: None,
    })
}

#[async_trait]
impl Pitaya for Service {
    async fn call(
        &self,
        request: tonic::Request<Request>,
    ) -> Result<tonic::Response<Response>, Status> {
        let req = request.into_inner();
        // Pitaya fails such calls before dispatch, with a status (spec 8).
        if !has_context(&req.metadata) {
            return Err(Status::unknown("no context found"));
        }
        if req.msg.is_none() {
            return Err(Status::invalid_argument("request without msg"));
        }
        let handler = Arc::clone(&self.handler);
        let task = self.calls.spawn(async move { handler.handle(req).await });
        let response = task.await.unwrap_or_else(|_| {
            error_response(&crate::Error::new(
                crate::codes::UNKNOWN,
                "rpc handler panicked",
            ))
        });
        Ok(tonic::Response::new(response))
    }

    async fn push_to_user(
        &self,
        request: tonic::Request<Push>,
    ) -> Result<tonic::Response<Response>, Status> {
        if self.handler.on_push(request.into_inner()).await {
            Ok(ack())
        } else {
            Err(Status::unknown(SESSION_NOT_FOUND))
        }
    }

    async fn session_bind_remote(
        &self,
        request: tonic::Request<BindMsg>,
    ) -> Result<tonic::Response<Response>, Status> {
        self.handler.on_bind(request.into_inner()).await;
        Ok(ack())
    }

    async fn kick_user(
        &self,
        request: tonic::Request<KickMsg>,
    ) -> Result<tonic::Response<KickAnswer>, Status> {
        let answer: KickAnswer = self.handler.on_kick(request.into_inner()).await;
        if answer.kicked {
            Ok(tonic::Response::new(answer))
        } else {
            Err(Status::unknown(SESSION_NOT_FOUND))
        }
    }
}
