//! Frames of `u32` little-endian length plus payload, sent back unchanged by
//! `tessera-bench echo-server`: the ceiling any request/response server can reach here.

use tessera_io::net::LENGTH_PREFIX_BYTES;

use super::{Answer, Call, Codec, Decoded};
use crate::constants::ECHO_FRAME_BYTES_MAX;

/// Echo encoder/decoder.
#[derive(Debug, Default)]
pub struct EchoCodec;

impl Codec for EchoCodec {
    fn encode(&mut self, _id: u64, call: &Call<'_>, out: &mut Vec<u8>) {
        let payload = match *call {
            Call::Echo { payload } => payload,
            Call::Get { key } => key,
            Call::Set { value, .. } => value,
        };
        // Payload sizes are validated at configuration (≤ ECHO_FRAME_BYTES_MAX < 4 GiB).
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }

    fn decode(&mut self, buf: &[u8]) -> Result<Option<Decoded>, String> {
        let Some(header) = buf.get(..LENGTH_PREFIX_BYTES) else {
            return Ok(None);
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(header);
        let len = u32::from_le_bytes(len) as usize;
        if len > ECHO_FRAME_BYTES_MAX {
            return Err(format!("echo frame of {len} bytes is over the limit"));
        }
        if buf.len() < LENGTH_PREFIX_BYTES + len {
            return Ok(None);
        }
        Ok(Some(Decoded {
            consumed: LENGTH_PREFIX_BYTES + len,
            id: None,
            answer: Answer::Echoed,
        }))
    }
}
