//! The client side of the handshake (spec 2): request, response, ack.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::{HandshakeRequest, HandshakeResponse, Packet, PacketType, RouteDict};

use crate::body::Serializer;
use crate::error::{ClientError, HandshakeError};
use crate::transport::Transport;

/// What the server's handshake response settled for the session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    heartbeat: Duration,
    serializer: Serializer,
    dict: RouteDict,
}

// ===== impl SessionInfo =====

impl SessionInfo {
    /// Returns the heartbeat interval the server announced; zero means no heartbeats.
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

    // libpitaya acks right after a 200 and only then starts heartbeats (spec 2.4).
    transport
        .sink
        .send(Packet::handshake_ack().to_bytes()?)
        .await?;
    Ok(SessionInfo {
        heartbeat: response.sys.heartbeat,
        serializer: Serializer::from_name(&response.sys.serializer),
        dict,
    })
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
