//! The signal that tells a connection's task its session is closing.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A one-way close signal, kept inside the session.
///
/// It does what a `CancellationToken` does for us, without the token's separate
/// allocation of about 130 bytes, which every session of a server would pay.
#[derive(Debug, Default)]
pub(crate) struct Closing {
    fired: AtomicBool,
    notify: Notify,
}

impl Closing {
    /// Fires the signal; waiters wake, later waits return at once.
    pub(crate) fn cancel(&self) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }

    /// Returns whether the signal has fired.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Completes once the signal has fired.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    pub(crate) async fn cancelled(&self) {
        // `notify_waiters` wakes every `Notified` made before it, polled or not, so a
        // cancel between the making and the check below is not missed.
        let notified = self.notify.notified();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn waiters_wake_once_fired_and_later_waits_return_at_once() {
        let closing = Arc::new(Closing::default());
        let waiter = tokio::spawn({
            let closing = closing.clone();
            async move { closing.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!closing.is_cancelled());

        closing.cancel();
        waiter.await.unwrap();
        assert!(closing.is_cancelled());
        closing.cancelled().await;
        closing.cancel();
    }
}
