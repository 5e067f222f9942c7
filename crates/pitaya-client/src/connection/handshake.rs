//! The client side of the handshake (spec 2): request, response, ack.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{HandshakeRequest, HandshakeResponse, Packet, PacketType, RouteDict};

use crate::body::Serializer;
use crate::error::{ClientError, HandshakeError};
use crate::transport::Transport;

/// Shortest heartbeat interval the client works with: 100 ms.
///
/// A server announcing less (say `1e-9`) gets our heartbeats every 100 ms, and the
/// watchdog counts its silence in 100 ms intervals, so a typo on the server neither
/// floods it nor makes the client give up after a few nanoseconds. Pitaya servers
/// announce whole seconds by default; pitaya-rs allows fractions well above this.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// Longest heartbeat interval the client accepts: one day.
///
/// A larger one (such as `1e20` seconds) is no setting anyone means, and timers that
/// far out overflow the clock; the handshake fails with
/// [`HandshakeError::InvalidHeartbeat`] instead.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(24 * 60 * 60);

/// What the server's handshake response settled for the session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    heartbeat: Duration,
    serializer: Serializer,
    dict: RouteDict,
}

// ===== impl SessionInfo =====

impl SessionInfo {
    /// Returns the heartbeat interval in use; zero means no heartbeats.
    ///
    /// This is the interval the server announced, raised to [`MIN_HEARTBEAT`] when it
    /// is shorter. An announced zero or negative interval turns heartbeats and the
    /// watchdog off (spec 2.2).
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Returns the serializer the server uses for bodies.
    pub fn serializer(&self) -> &Serializer {
        &self.serializer
    }

    /// Returns the route dictionary the server announced (empty when it has none).
    pub fn route_dict(&self) -> &RouteDict {
        &self.dict
    }
}

/// Runs the handshake on a fresh transport and returns the session settings.
///
/// # Errors
///
/// [`ClientError::Handshake`] when the server refuses, closes, or answers badly;
/// transport errors as they come.
pub(crate) async fn handshake(
    transport: &mut Transport,
    request: &HandshakeRequest,
) -> Result<SessionInfo, ClientError> {
    let hello = Packet::new(PacketType::Handshake, request.to_json()).to_bytes()?;
    transport.sink.send(hello).await?;

    let response = loop {
        let packet = transport
            .stream
            .next()
            .await
            .ok_or(HandshakeError::Closed)??;
        match packet.kind {
            PacketType::Handshake => break packet,
            // The server may start heartbeats before the handshake is done (spec 2.5).
            PacketType::Heartbeat => continue,
            PacketType::Kick => return Err(ClientError::Kicked),
            other => return Err(HandshakeError::UnexpectedPacket(packet_name(other)).into()),
        }
    };

    let invalid = |e| HandshakeError::InvalidResponse(Box::new(e));
    let response = HandshakeResponse::decode(&response.body).map_err(invalid)?;
    if response.code != 200 {
        return Err(HandshakeError::Rejected(response.code).into());
    }
    let dict = RouteDict::new(response.sys.dict)
        .map_err(|e| HandshakeError::InvalidResponse(Box::new(e)))?;
    let heartbeat = usable_heartbeat(response.sys.heartbeat)?;

    // libpitaya acks right after a 200 and only then starts heartbeats (spec 2.4).
    transport
        .sink
        .send(Packet::handshake_ack().to_bytes()?)
        .await?;
    Ok(SessionInfo {
        heartbeat,
        serializer: Serializer::from_name(&response.sys.serializer),
        dict,
    })
}

/// Returns the interval to heartbeat at: zero stays zero (off), tiny values are raised
/// to [`MIN_HEARTBEAT`].
///
/// The protocol decoder already turns a negative interval into zero and one too large
/// for a `Duration` into `Duration::MAX`; JSON has no NaN or infinity.
///
/// # Errors
///
/// [`HandshakeError::InvalidHeartbeat`] above [`MAX_HEARTBEAT`].
fn usable_heartbeat(announced: Duration) -> Result<Duration, HandshakeError> {
    if announced > MAX_HEARTBEAT {
        return Err(HandshakeError::InvalidHeartbeat(announced));
    }
    if announced.is_zero() {
        return Ok(announced);
    }
    Ok(announced.max(MIN_HEARTBEAT))
}

pub(crate) fn packet_name(kind: PacketType) -> &'static str {
    match kind {
        PacketType::Handshake => "handshake",
        PacketType::HandshakeAck => "handshake ack",
        PacketType::Heartbeat => "heartbeat",
        PacketType::Data => "data",
        PacketType::Kick => "kick",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_kept_raised_or_refused() {
        let secs = Duration::from_secs;
        assert_eq!(usable_heartbeat(secs(30)).unwrap(), secs(30));
        assert_eq!(usable_heartbeat(Duration::ZERO).unwrap(), Duration::ZERO);
        assert_eq!(
            usable_heartbeat(Duration::from_nanos(1)).unwrap(),
            MIN_HEARTBEAT
        );
        assert_eq!(usable_heartbeat(MAX_HEARTBEAT).unwrap(), MAX_HEARTBEAT);
        assert!(matches!(
            usable_heartbeat(Duration::MAX),
            Err(HandshakeError::InvalidHeartbeat(_))
        ));
    }
}
