//! Tessera's native protocol: length-prefixed flatbuffer frames through the schema crate's
//! encoder and verifier, exactly what the client library sends. Answers carry the request id.

use tessera_schema::{
    decode_response, frame_body_len, Consistency, Durability, Encoder, GetRequest, PutRequest,
    Request, Response, FRAME_BYTES_MAX, FRAME_HEADER_BYTES,
};

use super::{Answer, Call, Codec, Decoded};

/// How native writes treat versions already stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteMode {
    /// Send the causal context of the key's last answer: the write supersedes what that
    /// answer saw; writes racing on one key become siblings (the Dynamo way).
    Context,
    /// Supersede whatever the server holds (last writer wins; what Redis SET does).
    Overwrite,
    /// No context: every write adds a sibling until the server's sibling bound refuses it.
    Blind,
}

/// Native encoder/decoder for one shard socket.
#[derive(Debug)]
pub struct NativeCodec {
    encoder: Encoder,
    durability: Durability,
    mode: WriteMode,
}

impl NativeCodec {
    /// A codec whose writes ask for `durability`, in `mode`.
    pub fn new(durability: Durability, mode: WriteMode) -> Self {
        Self {
            encoder: Encoder::new(),
            durability,
            mode,
        }
    }
}

impl Codec for NativeCodec {
    fn encode(&mut self, id: u64, call: &Call<'_>, out: &mut Vec<u8>) {
        let request = match *call {
            Call::Get { key } => Request::Get(GetRequest {
                keyspace: String::new(),
                key: key.to_vec(),
                consistency: Consistency::default(),
            }),
            Call::Set {
                key,
                value,
                context,
            } => Request::Put(PutRequest {
                keyspace: String::new(),
                key: key.to_vec(),
                value: value.to_vec(),
                context: match self.mode {
                    WriteMode::Context => context.to_vec(),
                    WriteMode::Overwrite | WriteMode::Blind => Vec::new(),
                },
                durability: self.durability,
                overwrite: self.mode == WriteMode::Overwrite,
                consistency: Consistency::default(),
            }),
            Call::Echo { payload } => Request::Ping(payload.to_vec()),
        };
        self.encoder.encode_request(id, &request, out);
    }

    fn decode(&mut self, buf: &[u8]) -> Result<Option<Decoded>, String> {
        let Some(header) = buf.get(..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let header: [u8; FRAME_HEADER_BYTES] = header.try_into().map_err(|_| "short header")?;
        let len = frame_body_len(header, FRAME_BYTES_MAX).map_err(|e| e.to_string())?;
        let Some(body) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
            return Ok(None);
        };
        let (id, response) = decode_response(body).map_err(|e| e.to_string())?;
        let answer = match response {
            Response::Get(g) => Answer::Values {
                values: g.values,
                context: g.context,
            },
            Response::Put(w) | Response::Delete(w) => Answer::Stored { context: w.context },
            Response::Pong(_) => Answer::Echoed,
            Response::Error(e) => Answer::Refused(format!("{}: {}", e.code, e.message)),
            other => Answer::Refused(format!("unexpected answer {other:?}")),
        };
        Ok(Some(Decoded {
            consumed: FRAME_HEADER_BYTES + len,
            id: Some(id),
            answer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_schema::{decode_request, GetResponse, WireError};

    fn answer(id: u64, r: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new().encode_response(id, r, &mut out);
        out
    }

    #[test]
    fn encodes_requests_the_server_decodes() {
        let mut c = NativeCodec::new(Durability::Durable, WriteMode::Overwrite);
        let mut out = Vec::new();
        let set = Call::Set {
            key: b"k",
            value: b"v",
            context: b"ctx",
        };
        c.encode(9, &set, &mut out);
        let (id, req) = decode_request(&out[FRAME_HEADER_BYTES..]).unwrap();
        assert_eq!(id, 9);
        let Request::Put(p) = req else {
            panic!("{req:?}")
        };
        assert!(p.overwrite && p.context.is_empty());
        assert_eq!(p.durability, Durability::Durable);
    }

    #[test]
    fn decodes_whole_frames_only_and_maps_answers() {
        let mut c = NativeCodec::new(Durability::Default, WriteMode::Context);
        let mut wire = answer(
            3,
            &Response::Get(GetResponse {
                values: vec![b"a".to_vec(), b"b".to_vec()],
                context: b"c".to_vec(),
            }),
        );
        let first = wire.len();
        wire.extend(answer(
            4,
            &Response::Error(WireError::new(tessera_schema::ErrorCode::TooLarge, "big")),
        ));
        for cut in 0..first {
            assert!(c.decode(&wire[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let d = c.decode(&wire).unwrap().unwrap();
        assert_eq!((d.consumed, d.id), (first, Some(3)));
        assert!(matches!(d.answer, Answer::Values { ref values, .. } if values.len() == 2));
        let d = c.decode(&wire[first..]).unwrap().unwrap();
        assert!(matches!(d.answer, Answer::Refused(ref m) if m.contains("big")));
        assert!(c.decode(&[0, 0, 0, 0, 1]).is_err(), "empty frame");
        assert!(
            c.decode(&[0xff, 0xff, 0xff, 0xff]).is_err(),
            "oversized frame"
        );
    }
}
