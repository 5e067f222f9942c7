//! Pushes to one peer, sent in the background: in order per user, many at once.
//!
//! Over NATS a push is handed to the NATS server and the caller goes on. A gRPC
//! `PushToUser` is a call that waits for the frontend's answer, so a backend
//! pushing to a whole room for each of a few hundred joins at once waited for
//! every answer before answering any join, and the joins timed out. Pushes by
//! uid carry no delivery confirmation (spec 6.7), so here they go to a queue
//! per peer and the caller goes on once the push is queued, as with NATS.
//!
//! One worker per peer keeps up to [`IN_FLIGHT`] calls open, never two for the
//! same user, so every user gets their pushes in the order they were queued.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use pitaya_protos::pitaya_client::PitayaClient;
use pitaya_protos::Push;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::StatusError;

/// Calls open at once per peer, below the server's stream limit.
const IN_FLIGHT: usize = 128;

/// Pushes queued per peer before senders wait: the back-pressure of a slow peer.
const QUEUED: usize = 4096;

/// The sending end of one peer's push queue; the worker ends with the last clone.
#[derive(Debug, Clone)]
pub(super) struct PushQueue {
    tx: mpsc::Sender<Push>,
}

/// Returned when the peer's worker is gone, which only a runtime shutdown does.
#[derive(Debug)]
pub(super) struct QueueClosed;

impl PushQueue {
    /// Returns the queue of the peer behind `client`, its worker started.
    pub(super) fn start(
        client: PitayaClient<Channel>,
        server_id: String,
        timeout: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUED);
        let worker = Worker {
            client,
            server_id,
            timeout,
        };
        tokio::spawn(worker.run(rx));
        PushQueue { tx }
    }

    /// Returns once `push` is queued; waits while the queue is full.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a push dropped before it was queued is not sent.
    pub(super) async fn send(&self, push: Push) -> Result<(), QueueClosed> {
        self.tx.send(push).await.map_err(|_| QueueClosed)
    }
}

struct Worker {
    client: PitayaClient<Channel>,
    server_id: String,
    timeout: Duration,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Push>) {
        let mut waiting = VecDeque::new();
        let mut busy = HashSet::new();
        let mut calls = FuturesUnordered::new();
        let mut open = true;
        loop {
            self.start_ready(&mut waiting, &mut busy, &mut calls);
            if !open && waiting.is_empty() && calls.is_empty() {
                return;
            }
            tokio::select! {
                got = rx.recv(), if open && waiting.len() < QUEUED => match got {
                    Some(push) => waiting.push_back(push),
                    None => open = false,
                },
                Some(uid) = calls.next(), if !calls.is_empty() => {
                    busy.remove(&uid);
                }
                // Unreachable: with no call open, `start_ready` started one.
                else => return,
            }
        }
    }

    /// Starts the oldest pushes whose users have no call open, up to [`IN_FLIGHT`].
    ///
    /// A push waits behind an earlier one of its user, started or not.
    fn start_ready(
        &self,
        waiting: &mut VecDeque<Push>,
        busy: &mut HashSet<String>,
        calls: &mut FuturesUnordered<BoxFuture<'static, String>>,
    ) {
        let mut held = HashSet::new();
        let mut i = 0;
        while calls.len() < IN_FLIGHT && i < waiting.len() {
            let uid = &waiting[i].uid;
            if busy.contains(uid) || held.contains(uid) {
                held.insert(uid.clone());
                i += 1;
                continue;
            }
            let Some(push) = waiting.remove(i) else { break };
            busy.insert(push.uid.clone());
            calls.push(Box::pin(self.call(push)));
        }
    }

    /// Returns the uid of `push` once the peer answered it or the call failed.
    fn call(&self, push: Push) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut client = self.client.clone();
        let (server_id, timeout) = (self.server_id.clone(), self.timeout);
        async move {
            let uid = push.uid.clone();
            let mut request = tonic::Request::new(push);
            request.set_timeout(timeout);
            match tokio::time::timeout(timeout, client.push_to_user(request)).await {
                Ok(Ok(_)) => {}
                // Mostly a user who left meanwhile: Pitaya reports nothing either.
                Ok(Err(status)) => tracing::debug!(
                    %server_id, uid, error = %StatusError(status), "push not delivered"
                ),
                Err(_) => tracing::debug!(%server_id, uid, ?timeout, "push timed out"),
            }
            uid
        }
    }
}
