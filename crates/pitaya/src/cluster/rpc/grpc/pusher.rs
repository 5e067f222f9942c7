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
//! same user, so every user gets their pushes in the order they were queued; users
//! take turns, so one with a long backlog does not hold up the others. A kick
//! first waits for the user's queued pushes ([`PushQueue::flushed`]), so a goodbye
//! pushed before it still arrives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use pitaya_protos::pitaya_client::PitayaClient;
use pitaya_protos::Push;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tonic::transport::Channel;

use super::StatusError;

/// Calls open at once per peer, below the server's stream limit.
const IN_FLIGHT: usize = 128;

/// Bytes of pushes queued per peer before senders wait: the back-pressure of a slow
/// peer. Counted in bytes, not pushes: a room of 300 joining at once queues some
/// 45,000 small pushes, which must not hold the joins up, while a few large ones
/// should.
const QUEUED_BYTES: usize = 64 << 20;

/// What a peer's queue holds, each for one user.
enum Queued {
    /// A push and its share of [`QUEUED_BYTES`], given back once it is sent.
    Push(Push, OwnedSemaphorePermit),
    /// Tells whoever waits that the pushes queued before it for `uid` are sent.
    Marker(String, oneshot::Sender<()>),
}

impl Queued {
    fn uid(&self) -> &str {
        match self {
            Queued::Push(push, _) => &push.uid,
            Queued::Marker(uid, _) => uid,
        }
    }
}

/// The sending end of one peer's push queue; the worker ends with the last clone.
#[derive(Debug, Clone)]
pub(super) struct PushQueue {
    tx: mpsc::UnboundedSender<Queued>,
    room: Arc<Semaphore>,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            client,
            server_id,
            timeout,
        };
        tokio::spawn(worker.run(rx));
        let room = Arc::new(Semaphore::new(QUEUED_BYTES));
        PushQueue { tx, room }
    }

    /// Returns once `push` is queued; waits while the queue is full.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a push dropped before it was queued is not sent.
    pub(super) async fn send(&self, push: Push) -> Result<(), QueueClosed> {
        // A push larger than the whole queue waits for it to empty, then goes alone.
        let size = push.encoded_len().clamp(1, QUEUED_BYTES) as u32;
        let share = Arc::clone(&self.room).acquire_many_owned(size).await;
        let share = share.map_err(|_| QueueClosed)?;
        let queued = Queued::Push(push, share);
        self.tx.send(queued).map_err(|_| QueueClosed)
    }

    /// Returns once every push queued so far for `uid` was answered or failed.
    ///
    /// A kick waits for this, so that a push sent before it is not lost behind it.
    pub(super) async fn flushed(&self, uid: &str) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Queued::Marker(uid.to_owned(), done)).is_ok() {
            // An error means the worker is gone, and nothing is queued any more.
            let _ = wait.await;
        }
    }
}

struct Worker {
    client: PitayaClient<Channel>,
    server_id: String,
    timeout: Duration,
}

/// The pushes waiting in a worker: a queue per user, and the users whose turn it is.
#[derive(Default)]
struct Waiting {
    by_user: HashMap<String, VecDeque<Queued>>,
    /// Users with something queued and no call open, oldest first.
    ready: VecDeque<String>,
    /// Users with a call open.
    busy: HashSet<String>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    fn add(&mut self, item: Queued) {
        let uid = item.uid().to_owned();
        let queue = self.by_user.entry(uid.clone()).or_default();
        queue.push_back(item);
        if queue.len() == 1 && !self.busy.contains(&uid) {
            self.ready.push_back(uid);
        }
    }

    /// Records that the call of `uid` ended: its next push, if any, may go.
    fn done(&mut self, uid: String) {
        self.busy.remove(&uid);
        if self.by_user.contains_key(&uid) {
            self.ready.push_back(uid);
        }
    }

    /// Returns the next item of the next user whose turn it is.
    fn next(&mut self) -> Option<Queued> {
        let uid = self.ready.pop_front()?;
        let queue = self.by_user.get_mut(&uid)?;
        let item = queue.pop_front()?;
        let more = !queue.is_empty();
        match &item {
            Queued::Push(..) => {
                self.busy.insert(uid);
            }
            // A marker takes no call: the user's next item may go at once.
            Queued::Marker(..) if more => self.ready.push_front(uid),
            Queued::Marker(..) => {}
        }
        if !more {
            self.by_user.remove(item.uid());
        }
        Some(item)
    }
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Queued>) {
        let mut waiting = Waiting::default();
        let mut calls = FuturesUnordered::new();
        let mut open = true;
        loop {
            self.start_ready(&mut waiting, &mut calls);
            if !open && waiting.is_empty() && calls.is_empty() {
                return;
            }
            tokio::select! {
                got = rx.recv(), if open => match got {
                    Some(queued) => waiting.add(queued),
                    None => open = false,
                },
                Some(uid) = calls.next(), if !calls.is_empty() => waiting.done(uid),
                // Unreachable: with no call open, `start_ready` started one.
                else => return,
            }
        }
    }

    /// Starts the next push of each user in turn, up to [`IN_FLIGHT`] calls.
    ///
    /// Users take turns, so a user just arrived does not wait behind the backlog of
    /// one with hundreds queued; a user's own pushes go one after the other.
    fn start_ready(
        &self,
        waiting: &mut Waiting,
        calls: &mut FuturesUnordered<BoxFuture<'static, String>>,
    ) {
        while calls.len() < IN_FLIGHT {
            match waiting.next() {
                Some(Queued::Push(push, share)) => calls.push(Box::pin(self.call(push, share))),
                // The waiter may have given up; then nobody needs to know.
                Some(Queued::Marker(_, done)) => drop(done.send(())),
                None => return,
            }
        }
    }

    /// Returns the uid of `push` once the peer answered it or the call failed.
    fn call(
        &self,
        push: Push,
        share: OwnedSemaphorePermit,
    ) -> impl std::future::Future<Output = String> + Send + 'static {
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
            drop(share);
            uid
        }
    }
}
