//! RESP2, for Redis and for Tessera's RESP port: `GET`/`SET` as multibulk arrays, replies
//! parsed by the schema crate's RESP codec. Answers come back in order.

use tessera_schema::resp::{parse_reply, write_command, Reply, RespLimits};

use super::{Answer, Call, Codec, Decoded};

/// RESP encoder/decoder.
#[derive(Debug, Default)]
pub struct RespCodec {
    limits: RespLimits,
}

impl Codec for RespCodec {
    fn encode(&mut self, _id: u64, call: &Call<'_>, out: &mut Vec<u8>) {
        match *call {
            Call::Get { key } => write_command(out, &[b"GET", key]),
            Call::Set { key, value, .. } => write_command(out, &[b"SET", key, value]),
            Call::Echo { payload } => write_command(out, &[b"ECHO", payload]),
        }
    }

    fn decode(&mut self, buf: &[u8]) -> Result<Option<Decoded>, String> {
        let Some((reply, consumed)) = parse_reply(buf, &self.limits).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let answer = match reply {
            Reply::Bulk(v) => Answer::Values {
                values: v.into_iter().collect(),
                context: Vec::new(),
            },
            Reply::Simple(s) if s == b"OK" => Answer::Stored {
                context: Vec::new(),
            },
            Reply::Error(e) => Answer::Refused(String::from_utf8_lossy(&e).into_owned()),
            other => Answer::Refused(format!("unexpected reply {other:?}")),
        };
        Ok(Some(Decoded {
            consumed,
            id: None,
            answer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_and_maps_replies() {
        let mut c = RespCodec::default();
        let mut out = Vec::new();
        c.encode(0, &Call::Get { key: b"k" }, &mut out);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let wire = b"$2\r\nhi\r\n$-1\r\n+OK\r\n-ERR nope\r\n";
        let mut at = 0;
        let mut answers = Vec::new();
        while let Some(d) = c.decode(&wire[at..]).unwrap() {
            at += d.consumed;
            answers.push(d.answer);
        }
        assert_eq!(at, wire.len());
        assert_eq!(
            answers,
            vec![
                Answer::Values {
                    values: vec![b"hi".to_vec()],
                    context: vec![]
                },
                Answer::Values {
                    values: vec![],
                    context: vec![]
                },
                Answer::Stored { context: vec![] },
                Answer::Refused("ERR nope".into()),
            ]
        );
        assert!(c.decode(b"$2\r\nh").unwrap().is_none());
    }
}
