//! A session's write queue: bounded for its own producers, elastic for fan-out.
//!
//! A handler answering its own client can wait for room, so those sends are bounded by
//! `pitaya.buffer.agent.messages` slots and wait up to the send timeout, as Pitaya's
//! queue does. A broadcast cannot wait on one member without holding up every other
//! one, so fan-out sends take a slot when there is one and otherwise go over the bound,
//! up to [`OVERFLOW_FACTOR`] times it; a client that lets that much pile up is too
//! slow, and its session is closed. Everything travels through one channel, so the
//! order of what one producer sends is kept either way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore, TryAcquireError};

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

/// The producers' side; shared by every clone of the session.
#[derive(Debug)]
pub(crate) struct QueueSender {
    tx: mpsc::UnboundedSender<Entry>,
    slots: Arc<Semaphore>,
    overflow: Arc<AtomicUsize>,
    max_overflow: usize,
}

/// The writer's side; dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct QueueReceiver {
    rx: mpsc::UnboundedReceiver<Entry>,
    slots: Arc<Semaphore>,
    overflow: Arc<AtomicUsize>,
}

/// Returns a queue of `bound` slots.
pub(crate) fn write_queue(bound: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let slots = Arc::new(Semaphore::new(bound));
    let overflow = Arc::new(AtomicUsize::new(0));
    let sender = QueueSender {
        tx,
        slots: slots.clone(),
        overflow: overflow.clone(),
        max_overflow: bound.saturating_mul(OVERFLOW_FACTOR),
    };
    (
        sender,
        QueueReceiver {
            rx,
            slots,
            overflow,
        },
    )
}

impl QueueSender {
    fn push(&self, item: Outbound, credit: Credit) -> Result<(), QueueError> {
        self.tx
            .send(Entry { item, credit })
            .map_err(|_| QueueError::Closed)
    }

    /// Queues `item`, waiting up to `wait` for a slot.
    pub(crate) async fn send(&self, item: Outbound, wait: Duration) -> Result<(), QueueError> {
        match tokio::time::timeout(wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot.forget(),
            Ok(Err(_)) => return Err(QueueError::Closed),
            Err(_) => return Err(QueueError::Full),
        }
        self.push(item, Credit::Slot)
    }

    /// Takes a free slot: `Ok(false)` when there is none.
    fn take_slot(&self) -> Result<bool, QueueError> {
        match self.slots.try_acquire() {
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
        if self.overflow.fetch_add(1, Ordering::AcqRel) >= self.max_overflow {
            self.overflow.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueError::Full);
        }
        self.push(item, Credit::Overflow)
    }

    /// Queues `item` whatever the queue holds: a close marker at shutdown.
    pub(crate) fn send_free(&self, item: Outbound) -> Result<(), QueueError> {
        self.push(item, Credit::Free)
    }
}

impl QueueReceiver {
    fn release(&self, entry: Entry) -> Outbound {
        match entry.credit {
            Credit::Slot => self.slots.add_permits(1),
            Credit::Overflow => {
                self.overflow.fetch_sub(1, Ordering::AcqRel);
            }
            Credit::Free => {}
        }
        entry.item
    }

    /// Returns the next item; `None` once every sender is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn recv(&mut self) -> Option<Outbound> {
        let entry = self.rx.recv().await?;
        Some(self.release(entry))
    }

    /// Returns how many more items the bounded producers may queue now.
    pub(crate) fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Returns the next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
        let entry = self.rx.try_recv().ok()?;
        Some(self.release(entry))
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        // Producers waiting for a slot learn at once that nobody will free one.
        self.slots.close();
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
}
