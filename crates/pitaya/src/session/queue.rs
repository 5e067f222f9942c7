//! A session's write queue: bounded for its own producers, elastic for fan-out.
//!
//! A handler answering its own client can wait for room, so those sends are bounded by
//! `pitaya.buffer.agent.messages` slots and wait up to the send timeout, as Pitaya's
//! queue does. A broadcast cannot wait on one member without holding up every other
//! one, so fan-out sends take a slot when there is one and otherwise go over the bound,
//! up to [`OVERFLOW_FACTOR`] times it; a client that lets that much pile up is too
//! slow, and its session is closed. Everything travels through one queue, so the
//! order of what one producer sends is kept either way.
//!
//! The queue is a locked `VecDeque` rather than a channel because most sessions are
//! idle most of the time: a tokio channel allocates a block of 32 slots and its
//! cache-padded state up front, nearly 2 KB per session, where an empty `VecDeque`
//! holds nothing and its buffer is let go whenever the writer empties it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::{Semaphore, TryAcquireError};

use super::Outbound;

/// How far past its bound a fan-out may fill a queue, as a multiple of the bound.
pub(crate) const OVERFLOW_FACTOR: usize = 10;

/// How an entry was admitted, so the writer can give back what it took.
#[derive(Debug)]
enum Credit {
    Slot,
    Overflow,
    Free,
}

#[derive(Debug)]
struct Entry {
    item: Outbound,
    credit: Credit,
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The writer is gone: the connection is closed.
    Closed,
    /// No room, or no room in time.
    Full,
}

#[derive(Debug, Default)]
struct Entries {
    items: VecDeque<Entry>,
    /// The sender is gone: once `items` is empty, nothing more will come.
    sender_gone: bool,
    /// The receiver is gone: pushes fail.
    receiver_gone: bool,
}

/// What both sides share: one allocation per session.
#[derive(Debug)]
struct Shared {
    entries: Mutex<Entries>,
    /// The writer waiting for an entry.
    waker: AtomicWaker,
    slots: Semaphore,
    overflow: AtomicUsize,
    max_overflow: usize,
}

impl Shared {
    // Poisoning needs a panic while the lock is held, and no code under it panics; the
    // deque is consistent either way.
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The producers' side; shared by every clone of the session.
#[derive(Debug)]
pub(crate) struct QueueSender {
    shared: Arc<Shared>,
}

/// The writer's side; dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct QueueReceiver {
    shared: Arc<Shared>,
}

/// Returns a queue of `bound` slots.
pub(crate) fn write_queue(bound: usize) -> (QueueSender, QueueReceiver) {
    let shared = Arc::new(Shared {
        entries: Mutex::new(Entries::default()),
        waker: AtomicWaker::new(),
        slots: Semaphore::new(bound),
        overflow: AtomicUsize::new(0),
        max_overflow: bound.saturating_mul(OVERFLOW_FACTOR),
    });
    (
        QueueSender {
            shared: shared.clone(),
        },
        QueueReceiver { shared },
    )
}

// ===== impl QueueSender =====

impl QueueSender {
    fn push(&self, item: Outbound, credit: Credit) -> Result<(), QueueError> {
        let mut entries = self.shared.entries();
        if entries.receiver_gone {
            return Err(QueueError::Closed);
        }
        entries.items.push_back(Entry { item, credit });
        drop(entries);
        self.shared.waker.wake();
        Ok(())
    }

    /// Queues `item`, waiting up to `wait` for a slot.
    pub(crate) async fn send(&self, item: Outbound, wait: Duration) -> Result<(), QueueError> {
        match tokio::time::timeout(wait, self.shared.slots.acquire()).await {
            Ok(Ok(slot)) => slot.forget(),
            Ok(Err(_)) => return Err(QueueError::Closed),
            Err(_) => return Err(QueueError::Full),
        }
        self.push(item, Credit::Slot)
    }

    /// Takes a free slot: `Ok(false)` when there is none.
    fn take_slot(&self) -> Result<bool, QueueError> {
        match self.shared.slots.try_acquire() {
            Ok(slot) => {
                slot.forget();
                Ok(true)
            }
            Err(TryAcquireError::Closed) => Err(QueueError::Closed),
            Err(TryAcquireError::NoPermits) => Ok(false),
        }
    }

    /// Queues `item` only if a slot is free now.
    pub(crate) fn try_send(&self, item: Outbound) -> Result<(), QueueError> {
        if !self.take_slot()? {
            return Err(QueueError::Full);
        }
        self.push(item, Credit::Slot)
    }

    /// Queues `item` without waiting, past the bound if need be (fan-out).
    pub(crate) fn send_overflowing(&self, item: Outbound) -> Result<(), QueueError> {
        if self.take_slot()? {
            return self.push(item, Credit::Slot);
        }
        let overflow = &self.shared.overflow;
        if overflow.fetch_add(1, Ordering::AcqRel) >= self.shared.max_overflow {
            overflow.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueError::Full);
        }
        self.push(item, Credit::Overflow)
    }

    /// Queues `item` whatever the queue holds: a close marker at shutdown.
    pub(crate) fn send_free(&self, item: Outbound) -> Result<(), QueueError> {
        self.push(item, Credit::Free)
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        self.shared.entries().sender_gone = true;
        self.shared.waker.wake();
    }
}

// ===== impl QueueReceiver =====

impl QueueReceiver {
    fn release(&self, entry: Entry) -> Outbound {
        match entry.credit {
            Credit::Slot => self.shared.slots.add_permits(1),
            Credit::Overflow => {
                self.shared.overflow.fetch_sub(1, Ordering::AcqRel);
            }
            Credit::Free => {}
        }
        entry.item
    }

    /// Pops the next entry; an emptied deque lets its buffer go.
    fn pop(entries: &mut Entries) -> Option<Entry> {
        let entry = entries.items.pop_front()?;
        if entries.items.is_empty() {
            entries.items = VecDeque::new();
        }
        Some(entry)
    }

    /// Returns the next item; `None` once the sender is gone and everything it queued
    /// was taken.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an entry is taken only in the poll that returns it.
    pub(crate) async fn recv(&mut self) -> Option<Outbound> {
        let entry = poll_fn(|cx| {
            // Registered before looking, so a push between the look and the return of
            // `Pending` still wakes us.
            self.shared.waker.register(cx.waker());
            let mut entries = self.shared.entries();
            match Self::pop(&mut entries) {
                Some(entry) => Poll::Ready(Some(entry)),
                None if entries.sender_gone => Poll::Ready(None),
                None => Poll::Pending,
            }
        })
        .await?;
        Some(self.release(entry))
    }

    /// Returns how many more items the bounded producers may queue now.
    pub(crate) fn free_slots(&self) -> usize {
        self.shared.slots.available_permits()
    }

    /// Returns the next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
        let entry = Self::pop(&mut self.shared.entries())?;
        Some(self.release(entry))
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        // Producers waiting for a slot learn at once that nobody will free one, and what
        // was queued goes now rather than with the last clone of the session.
        self.shared.slots.close();
        let queued = {
            let mut entries = self.shared.entries();
            entries.receiver_gone = true;
            std::mem::take(&mut entries.items)
        };
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn packet(n: u8) -> Outbound {
        Outbound::Packet(Bytes::from(vec![n]))
    }

    fn byte(item: Option<Outbound>) -> u8 {
        match item {
            Some(Outbound::Packet(b)) => b[0],
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bounded_sends_wait_for_a_slot_and_time_out() {
        let (tx, mut rx) = write_queue(2);
        tx.try_send(packet(1)).unwrap();
        tx.send(packet(2), Duration::from_secs(5)).await.unwrap();
        assert_eq!(tx.try_send(packet(3)), Err(QueueError::Full));
        let waited = tx.send(packet(3), Duration::from_millis(1)).await;
        assert_eq!(waited, Err(QueueError::Full));

        assert_eq!(byte(rx.recv().await), 1);
        tx.try_send(packet(3)).unwrap();
        assert_eq!(byte(rx.try_recv()), 2);
        assert_eq!(byte(rx.try_recv()), 3);
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn fan_out_overflows_up_to_the_factor_then_reports_full() {
        let (tx, mut rx) = write_queue(2);
        let room = 2 + 2 * OVERFLOW_FACTOR;
        for n in 0..room {
            tx.send_overflowing(packet(n as u8)).unwrap();
        }
        assert_eq!(tx.send_overflowing(packet(0)), Err(QueueError::Full));
        // Bounded producers still find no slot while the overflow drains.
        assert_eq!(tx.try_send(packet(0)), Err(QueueError::Full));

        for n in 0..room {
            assert_eq!(byte(rx.try_recv()), n as u8, "order kept");
        }
        for n in 0..room {
            tx.send_overflowing(packet(n as u8)).unwrap();
        }
    }

    #[tokio::test]
    async fn a_dropped_writer_closes_the_queue_for_waiting_senders() {
        let (tx, rx) = write_queue(1);
        tx.try_send(packet(1)).unwrap();
        let waiting =
            tokio::spawn(async move { tx.send(packet(2), Duration::from_secs(60)).await });
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(QueueError::Closed));
    }

    #[tokio::test]
    async fn an_idle_queue_holds_no_buffer() {
        let (tx, mut rx) = write_queue(4);
        let capacity = |rx: &QueueReceiver| rx.shared.entries().items.capacity();
        assert_eq!(capacity(&rx), 0);
        tx.try_send(packet(1)).unwrap();
        tx.try_send(packet(2)).unwrap();
        assert!(capacity(&rx) > 0);

        assert_eq!(byte(rx.recv().await), 1);
        assert!(capacity(&rx) > 0, "one entry is still queued");
        assert_eq!(byte(rx.try_recv()), 2);
        assert_eq!(capacity(&rx), 0);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_push_and_ends_after_the_sender() {
        let (tx, mut rx) = write_queue(4);
        let writer = tokio::spawn(async move {
            let first = byte(rx.recv().await);
            (first, rx.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        tx.try_send(packet(7)).unwrap();
        drop(tx);
        assert_eq!(writer.await.unwrap(), (7, true));
    }
}
