//! WebSocket framing (spec 1.6): exactly one packet per message, sent as binary.

use std::future::ready;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pitaya_protocol::Packet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Transport;
use crate::url::ServerUrl;
use crate::ClientError;

/// Runs the WebSocket upgrade over `io` and returns the transport.
///
/// # Errors
///
/// [`ClientError::WebSocket`] when the upgrade fails.
pub(super) async fn upgrade<T>(
    io: T,
    url: &ServerUrl,
    max_body_len: usize,
) -> Result<Transport, ClientError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let scheme = if url.scheme().is_tls() { "wss" } else { "ws" };
    let request = format!("{scheme}://{}{}", url.authority(), url.path());
    // A message holds one packet: its 4-byte header plus the largest body we accept.
    let limit = max_body_len + pitaya_protocol::HEADER_LEN;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
        .await
        .map_err(ws_error)?;
    let (sink, stream) = ws.split();

    let stream = stream.filter_map(|msg| {
        ready(match msg {
            // Pitaya does not check the opcode (spec 1.6), so neither do we.
            Ok(Message::Binary(b)) => Some(decode(&b)),
            Ok(Message::Text(t)) => Some(decode(t.as_bytes())),
            Ok(Message::Close(_)) | Err(WsError::ConnectionClosed) => None,
            Ok(_) => None,
            Err(e) => Some(Err(ws_error(e))),
        })
    });
    let sink = sink
        .sink_map_err(ws_error)
        .with(|packet: Bytes| ready(Ok::<_, ClientError>(Message::Binary(packet))));
    Ok(Transport {
        stream: Box::pin(stream),
        sink: Box::pin(sink),
    })
}

fn decode(message: &[u8]) -> Result<Packet, ClientError> {
    Ok(Packet::decode_exact(message)?)
}

fn ws_error(e: WsError) -> ClientError {
    match e {
        WsError::Io(io) => ClientError::Io(io),
        other => ClientError::WebSocket(Box::new(other)),
    }
}
