//! What every session of the app shares to encode outgoing messages.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pitaya_protocol::{EncodeError, Message, PacketType, RouteDict, HEADER_LEN, MAX_BODY_LEN};

use crate::serialize::Serializer;

/// Encoding settings fixed at start-up and shared by all sessions.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) dict: RouteDict,
    pub(crate) compress: bool,
    pub(crate) serializer: Arc<dyn Serializer>,
    /// How long a producer waits for room in a session's write queue before the
    /// session is closed as a slow consumer (`pitaya.buffer.agent.conntimeout`).
    pub(crate) send_timeout: Duration,
}

impl Wire {
    /// Returns a whole Data packet (header included) carrying `msg`.
    ///
    /// The message is encoded once, straight after a reserved header, so a broadcast can
    /// hand the same bytes to every member.
    pub(crate) fn data_packet(&self, msg: &Message) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + 16 + msg.route.len() + msg.data.len());
        buf.put_bytes(0, HEADER_LEN);
        msg.encode(&self.dict, self.compress, &mut buf)?;
        let len = buf.len() - HEADER_LEN;
        if len > MAX_BODY_LEN {
            return Err(EncodeError::BodyTooLarge {
                len,
                max: MAX_BODY_LEN,
            });
        }
        // The length fits in 24 bits, checked just above.
        buf[0] = PacketType::Data as u8;
        buf[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        Ok(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serialize::JsonSerializer;

    #[test]
    fn data_packet_matches_the_spec_example() {
        let wire = Wire {
            dict: RouteDict::empty(),
            compress: false,
            serializer: Arc::new(JsonSerializer),
            send_timeout: Duration::from_secs(1),
        };
        let bytes = wire
            .data_packet(&Message::push("chat.msg", &br#"{"x":1}"#[..]))
            .unwrap();
        let mut want = vec![0x04, 0x00, 0x00, 0x11, 0x06, 0x08];
        want.extend_from_slice(b"chat.msg{\"x\":1}");
        assert_eq!(&bytes[..], &want[..]);
    }
}
