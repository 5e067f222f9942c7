//! The write half of the agent: drains the session's queue into the socket.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::time::timeout;

use super::CloseReason;
use crate::acceptor::PacketSink;
use crate::metrics::Metrics;
use crate::session::{Outbound, QueueReceiver, Session};

/// How many queued packets go into one flush at most.
const MAX_BATCH: usize = 64;

/// Writes queued packets until the session closes.
///
/// Everything already queued is fed to the sink before one flush, so a burst of
/// pushes costs one write, not one per packet.
pub(super) async fn write_loop(
    session: &Session,
    sink: &mut PacketSink,
    mut rx: QueueReceiver,
    write_timeout: Duration,
    metrics: &Metrics,
) -> CloseReason {
    loop {
        let first = tokio::select! {
            biased;
            _ = session.closing().cancelled() => return CloseReason::ByServer,
            item = rx.recv() => item,
        };
        let Some(mut item) = first else {
            return CloseReason::ByServer;
        };

        let mut close_after = false;
        for _ in 0..MAX_BATCH {
            match item {
                Outbound::Packet(bytes) => match timeout(write_timeout, sink.feed(bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return CloseReason::Write(e),
                    Err(_) => return CloseReason::WriteTimeout,
                },
                Outbound::Close => {
                    close_after = true;
                    break;
                }
            }
            match rx.try_recv() {
                Some(next) => item = next,
                None => break,
            }
        }

        match timeout(write_timeout, sink.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return CloseReason::Write(e),
            Err(_) => return CloseReason::WriteTimeout,
        }
        // Once per batch rather than per packet as Pitaya does: a broadcast to a
        // thousand clients should not cost a thousand more reports per client.
        metrics.channel_capacity("agent_chsend", rx.free_slots());
        if close_after {
            session.close();
            return CloseReason::ByServer;
        }
    }
}
