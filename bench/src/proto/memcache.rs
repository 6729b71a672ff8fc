//! memcached's text protocol: `get KEY` answered by `VALUE KEY FLAGS BYTES` + data + `END`
//! (or `END` alone on a miss), `set KEY 0 0 BYTES` + data answered by `STORED`. Answers come
//! back in order.

use super::{Answer, Call, Codec, Decoded};

/// Longest line (answer header or error) accepted before a CRLF.
const LINE_BYTES_MAX: usize = 4096;

/// memcached encoder/decoder; `value_bytes_max` bounds a `VALUE` line's length.
#[derive(Debug)]
pub struct MemcacheCodec {
    value_bytes_max: usize,
}

impl MemcacheCodec {
    /// A codec accepting values up to `value_bytes_max` bytes.
    pub fn new(value_bytes_max: usize) -> Self {
        Self { value_bytes_max }
    }
}

fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&buf[..i], i + 2))),
        None if buf.len() > LINE_BYTES_MAX => Err("memcached line without CRLF".into()),
        None => Ok(None),
    }
}

impl Codec for MemcacheCodec {
    fn encode(&mut self, _id: u64, call: &Call<'_>, out: &mut Vec<u8>) {
        match *call {
            Call::Get { key } => {
                out.extend_from_slice(b"get ");
                out.extend_from_slice(key);
            }
            Call::Set { key, value, .. } => {
                out.extend_from_slice(b"set ");
                out.extend_from_slice(key);
                out.extend_from_slice(format!(" 0 0 {}\r\n", value.len()).as_bytes());
                out.extend_from_slice(value);
            }
            // memcached has no echo; `version` is its cheapest round trip.
            Call::Echo { .. } => out.extend_from_slice(b"version"),
        }
        out.extend_from_slice(b"\r\n");
    }

    fn decode(&mut self, buf: &[u8]) -> Result<Option<Decoded>, String> {
        let Some((first, mut at)) = line(buf)? else {
            return Ok(None);
        };
        let answer = if first == b"END" {
            Answer::Values {
                values: Vec::new(),
                context: Vec::new(),
            }
        } else if first == b"STORED" {
            Answer::Stored {
                context: Vec::new(),
            }
        } else if first.starts_with(b"VERSION ") {
            Answer::Echoed
        } else if let Some(header) = first.strip_prefix(b"VALUE ") {
            let len = value_len(header, self.value_bytes_max)?;
            let Some(data) = buf.get(at..at + len) else {
                return Ok(None);
            };
            let value = data.to_vec();
            at += len;
            match buf.get(at..at + 7) {
                None => return Ok(None),
                Some(b"\r\nEND\r\n") => at += 7,
                Some(_) => return Err("memcached VALUE not followed by END".into()),
            }
            Answer::Values {
                values: vec![value],
                context: Vec::new(),
            }
        } else {
            Answer::Refused(String::from_utf8_lossy(first).into_owned())
        };
        Ok(Some(Decoded {
            consumed: at,
            id: None,
            answer,
        }))
    }
}

/// The byte count of `KEY FLAGS BYTES [CAS]`, checked against `max`.
fn value_len(header: &[u8], max: usize) -> Result<usize, String> {
    let bytes = header
        .split(|&b| b == b' ')
        .nth(2)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<usize>().ok())
        .ok_or("memcached VALUE line without a byte count")?;
    if bytes > max {
        return Err(format!("memcached value of {bytes} bytes is over {max}"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_the_text_protocol() {
        let mut c = MemcacheCodec::new(1000);
        let mut out = Vec::new();
        c.encode(
            0,
            &Call::Set {
                key: b"k",
                value: b"abc",
                context: b"",
            },
            &mut out,
        );
        c.encode(0, &Call::Get { key: b"k" }, &mut out);
        assert_eq!(out, b"set k 0 0 3\r\nabc\r\nget k\r\n");
        let wire = b"STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\nEND\r\nSERVER_ERROR out of memory\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while let Some(d) = c.decode(&wire[at..]).unwrap() {
            at += d.consumed;
            got.push(d.answer);
        }
        assert_eq!(at, wire.len());
        assert_eq!(got.len(), 4);
        assert!(matches!(&got[1], Answer::Values { values, .. } if values == &[b"abc".to_vec()]));
        assert!(matches!(&got[2], Answer::Values { values, .. } if values.is_empty()));
        assert!(matches!(&got[3], Answer::Refused(m) if m.contains("out of memory")));
        for cut in 0..23 {
            assert!(c.decode(&wire[8..8 + cut]).unwrap().is_none(), "cut {cut}");
        }
        assert!(c.decode(b"VALUE k 0 99999\r\n").is_err());
        assert!(c.decode(b"VALUE k 0 3\r\nabcXXXXXXX").is_err());
        assert!(c.decode(&[b'x'; LINE_BYTES_MAX + 1]).is_err());
    }
}
