//! Replies, as a client reads them: [`Reply`], its encoder, and [`parse_reply`].
//!
//! Invariants: [`parse_reply`] walks the reply iteratively (no recursion, so a deep reply cannot
//! exhaust the stack) and refuses arrays nested deeper than `depth_max` or longer than
//! `args_max`. Like commands, a reply is validated in full before anything is copied, and every
//! array is then sized from a count whose elements are all present.
#![forbid(unsafe_code)]

use super::write::{
    write_array_header, write_bulk, write_integer, write_line, write_null_array, write_null_bulk,
};
use super::{lex, RespError, RespLimits};

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a status line (no CR or LF inside).
    Simple(Vec<u8>),
    /// `-ERR ...`: the text without '-' and CRLF.
    Error(Vec<u8>),
    /// `:1`.
    Integer(i64),
    /// `$3\r\nabc`, or `$-1` (None).
    Bulk(Option<Vec<u8>>),
    /// `*N ...`, or `*-1` (None).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Appends the reply's encoding to `out`. CR and LF inside `Simple` and `Error` become
    /// spaces (as in [`write_simple`](super::write_simple)), so the output is always
    /// well-framed.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => write_line(out, b'+', text),
            Reply::Error(text) => write_line(out, b'-', text),
            Reply::Integer(n) => write_integer(out, *n),
            Reply::Bulk(Some(bytes)) => write_bulk(out, bytes),
            Reply::Bulk(None) => write_null_bulk(out),
            Reply::Array(Some(items)) => {
                write_array_header(out, items.len());
                for item in items {
                    item.encode(out);
                }
            }
            Reply::Array(None) => write_null_array(out),
        }
    }
}

/// Parses one reply from the front of `buf` (client side). Ok(None) = incomplete.
///
/// Ok(Some((reply, consumed))) for a whole one. Any error means the stream is unusable: close
/// the connection.
pub fn parse_reply(buf: &[u8], limits: &RespLimits) -> Result<Option<(Reply, usize)>, RespError> {
    // First pass: validate and find the end, copying nothing, so that a large reply arriving over
    // many reads is copied once.
    let Some(consumed) = walk_reply(buf, limits, &mut Measure)? else {
        return Ok(None);
    };
    let mut builder = Builder::default();
    let walked = walk_reply(&buf[..consumed], limits, &mut builder)?;
    debug_assert_eq!(
        walked,
        Some(consumed),
        "second pass disagrees with the first"
    );
    debug_assert!(builder.root.is_some(), "a complete walk yields a reply");
    Ok(walked
        .zip(builder.root)
        .map(|(consumed, reply)| (reply, consumed)))
}

/// One element header: a complete non-array value, or the start of an array of `len` elements.
enum Element<'a> {
    Value(Value<'a>),
    ArrayStart(usize),
}

/// A complete value that holds no other values, borrowed from the buffer.
enum Value<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    Bulk(Option<&'a [u8]>),
    NullArray,
}

impl Value<'_> {
    fn to_reply(&self) -> Reply {
        match self {
            Value::Simple(text) => Reply::Simple(text.to_vec()),
            Value::Error(text) => Reply::Error(text.to_vec()),
            Value::Integer(n) => Reply::Integer(*n),
            Value::Bulk(bytes) => Reply::Bulk(bytes.map(<[u8]>::to_vec)),
            Value::NullArray => Reply::Array(None),
        }
    }
}

/// What a walk over a reply tells its observer, in stream order.
trait Visitor<'a> {
    /// A value at the current nesting level.
    fn value(&mut self, value: Value<'a>);
    /// An array of `len` elements begins; its elements follow, then [`close`](Self::close).
    fn open(&mut self, len: usize);
    /// The innermost open array is complete.
    fn close(&mut self);
}

/// Walks one reply, reporting it to `visitor`. Returns the bytes it spans, or `None` if it is
/// incomplete (after reporting the part that arrived).
fn walk_reply<'a>(
    buf: &'a [u8],
    limits: &RespLimits,
    visitor: &mut impl Visitor<'a>,
) -> Result<Option<usize>, RespError> {
    // Elements still expected by each open array, innermost last; every entry is nonzero.
    let mut remaining: Vec<usize> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((element, next)) = element(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        match element {
            Element::Value(value) => visitor.value(value),
            Element::ArrayStart(len) => {
                if remaining.len() >= limits.depth_max {
                    return Err(RespError::TooDeep {
                        max: limits.depth_max,
                    });
                }
                visitor.open(len);
                if len > 0 {
                    remaining.push(len);
                    continue;
                }
                visitor.close();
            }
        }
        // One element is complete: count it against its array, closing every array it completes.
        loop {
            let Some(left) = remaining.last_mut() else {
                return Ok(Some(pos));
            };
            *left -= 1;
            if *left > 0 {
                break;
            }
            remaining.pop();
            visitor.close();
        }
    }
}

/// The element at `pos`, with the position after it (after its header, for an array).
fn element<'a>(
    buf: &'a [u8],
    pos: usize,
    limits: &RespLimits,
) -> Result<Option<(Element<'a>, usize)>, RespError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let start = pos + 1;
    let value = |value, next| Some((Element::Value(value), next));
    match kind {
        b'+' => Ok(lex::crlf_line(buf, start, limits.inline_bytes_max)?
            .and_then(|(text, next)| value(Value::Simple(text), next))),
        b'-' => Ok(lex::crlf_line(buf, start, limits.inline_bytes_max)?
            .and_then(|(text, next)| value(Value::Error(text), next))),
        b':' => Ok(lex::number_line(buf, start, RespError::InvalidInteger)?
            .and_then(|(n, next)| value(Value::Integer(n), next))),
        b'$' => bulk(buf, start, limits),
        b'*' => {
            let Some((announced, next)) =
                lex::number_line(buf, start, RespError::InvalidMultibulkLength)?
            else {
                return Ok(None);
            };
            Ok(Some(match lex::array_len(announced, limits)? {
                None => (Element::Value(Value::NullArray), next),
                Some(len) => (Element::ArrayStart(len), next),
            }))
        }
        byte => Err(RespError::UnknownType { byte }),
    }
}

/// A bulk reply whose length line starts at `start`: `-1` is the null bulk.
fn bulk<'a>(
    buf: &'a [u8],
    start: usize,
    limits: &RespLimits,
) -> Result<Option<(Element<'a>, usize)>, RespError> {
    let Some((announced, body_start)) = lex::number_line(buf, start, RespError::InvalidBulkLength)?
    else {
        return Ok(None);
    };
    if announced == -1 {
        return Ok(Some((Element::Value(Value::Bulk(None)), body_start)));
    }
    let len = lex::bulk_len(announced, limits)?;
    Ok(lex::bulk_body(buf, body_start, len)?
        .map(|(body, next)| (Element::Value(Value::Bulk(Some(body))), next)))
}

/// The first pass: observes nothing.
struct Measure;

impl Visitor<'_> for Measure {
    fn value(&mut self, _: Value<'_>) {}
    fn open(&mut self, _: usize) {}
    fn close(&mut self) {}
}

/// The second pass: builds the tree.
#[derive(Default)]
struct Builder {
    /// Elements of each open array so far, innermost last.
    open: Vec<Vec<Reply>>,
    /// The whole reply, once complete.
    root: Option<Reply>,
}

impl Builder {
    fn place(&mut self, reply: Reply) {
        match self.open.last_mut() {
            Some(items) => items.push(reply),
            None => self.root = Some(reply),
        }
    }
}

impl<'a> Visitor<'a> for Builder {
    fn value(&mut self, value: Value<'a>) {
        self.place(value.to_reply());
    }

    fn open(&mut self, len: usize) {
        // The first pass saw all `len` elements in the buffer, so this is bounded by what the
        // peer actually sent.
        self.open.push(Vec::with_capacity(len));
    }

    fn close(&mut self) {
        if let Some(items) = self.open.pop() {
            self.place(Reply::Array(Some(items)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<(Reply, usize)>, RespError>;

    fn parse(buf: &[u8]) -> Parsed {
        parse_reply(buf, &RespLimits::default())
    }

    fn bulk(bytes: &[u8]) -> Reply {
        Reply::Bulk(Some(bytes.to_vec()))
    }

    fn encoded(reply: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        out
    }

    fn nested(depth: usize) -> Reply {
        let mut reply = Reply::Integer(1);
        for _ in 0..depth {
            reply = Reply::Array(Some(vec![reply]));
        }
        reply
    }

    #[test]
    fn each_type_parses() {
        assert_eq!(
            parse(b"+OK\r\n"),
            Ok(Some((Reply::Simple(b"OK".to_vec()), 5)))
        );
        assert_eq!(
            parse(b"-ERR no\r\n"),
            Ok(Some((Reply::Error(b"ERR no".to_vec()), 9)))
        );
        assert_eq!(parse(b":-7\r\n"), Ok(Some((Reply::Integer(-7), 5))));
        assert_eq!(parse(b"$3\r\na\nc\r\n"), Ok(Some((bulk(b"a\nc"), 9))));
        assert_eq!(parse(b"$0\r\n\r\n"), Ok(Some((bulk(b""), 6))));
        assert_eq!(parse(b"$-1\r\n"), Ok(Some((Reply::Bulk(None), 5))));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some((Reply::Array(None), 5))));
        assert_eq!(parse(b"*0\r\n"), Ok(Some((Reply::Array(Some(vec![])), 4))));
        assert_eq!(
            parse(b"*3\r\n$1\r\na\r\n*0\r\n*2\r\n:1\r\n$-1\r\n+x"),
            Ok(Some((
                Reply::Array(Some(vec![
                    bulk(b"a"),
                    Reply::Array(Some(vec![])),
                    Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(None)])),
                ])),
                28
            )))
        );
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let replies = [
            Reply::Simple(b"OK".to_vec()),
            Reply::Error(b"ERR x".to_vec()),
            Reply::Integer(i64::MIN),
            Reply::Integer(i64::MAX),
            bulk(b"\r\n\0"),
            Reply::Bulk(None),
            Reply::Array(None),
            Reply::Array(Some(vec![])),
            nested(8),
        ];
        for reply in replies {
            let wire = encoded(&reply);
            assert_eq!(parse(&wire), Ok(Some((reply, wire.len()))));
        }
    }

    #[test]
    fn encode_keeps_lines_single() {
        assert_eq!(encoded(&Reply::Simple(b"a\r\nb".to_vec())), b"+a  b\r\n");
        assert_eq!(encoded(&Reply::Error(b"E\n".to_vec())), b"-E \r\n");
    }

    #[test]
    fn every_prefix_waits() {
        let reply = Reply::Array(Some(vec![
            bulk(b"value"),
            Reply::Array(Some(vec![
                Reply::Integer(-3),
                Reply::Simple(b"OK".to_vec()),
            ])),
            Reply::Bulk(None),
            Reply::Array(Some(vec![])),
            Reply::Error(b"ERR".to_vec()),
        ]));
        let wire = encoded(&reply);
        for split in 0..wire.len() {
            assert_eq!(parse(&wire[..split]), Ok(None), "split at {split}");
        }
        assert_eq!(parse(&wire), Ok(Some((reply, wire.len()))));
    }

    #[test]
    fn depth_is_bounded() {
        let limits = RespLimits {
            depth_max: 2,
            ..RespLimits::default()
        };
        let wire = encoded(&nested(2));
        assert_eq!(
            parse_reply(&wire, &limits),
            Ok(Some((nested(2), wire.len())))
        );
        assert_eq!(
            parse_reply(&encoded(&nested(3)), &limits),
            Err(RespError::TooDeep { max: 2 })
        );
        // Refused at the header that goes too deep, before the rest arrives.
        assert_eq!(
            parse_reply(b"*1\r\n*1\r\n*0\r\n", &limits),
            Err(RespError::TooDeep { max: 2 })
        );
        let flat = RespLimits {
            depth_max: 0,
            ..RespLimits::default()
        };
        assert_eq!(
            parse_reply(b"*0\r\n", &flat),
            Err(RespError::TooDeep { max: 0 })
        );
        assert_eq!(
            parse_reply(b"*-1\r\n", &flat),
            Ok(Some((Reply::Array(None), 5)))
        );
    }

    #[test]
    fn very_deep_replies_do_not_recurse() {
        let limits = RespLimits {
            depth_max: usize::MAX,
            ..RespLimits::default()
        };
        let wire = b"*1\r\n".repeat(100_000);
        assert_eq!(parse_reply(&wire, &limits), Ok(None));
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            parse(b"$99999999999\r\n"),
            Err(RespError::BulkTooLong {
                len: 99_999_999_999,
                max: 16 << 20
            })
        );
        assert_eq!(parse(b"$-2\r\n"), Err(RespError::InvalidBulkLength));
        assert_eq!(parse(b"$x\r\n"), Err(RespError::InvalidBulkLength));
        assert_eq!(parse(b"*-2\r\n"), Err(RespError::InvalidMultibulkLength));
        assert_eq!(parse(b"*1.5\r\n"), Err(RespError::InvalidMultibulkLength));
        assert_eq!(
            parse(b"*1048577\r\n"),
            Err(RespError::TooManyArgs {
                count: 1_048_577,
                max: 1_048_576
            })
        );
        assert_eq!(parse(b"*1000000\r\n"), Ok(None));
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(parse(b":1x\r\n"), Err(RespError::InvalidInteger));
        assert_eq!(parse(b":\r\n"), Err(RespError::InvalidInteger));
        assert_eq!(
            parse(b":99999999999999999999\r\n"),
            Err(RespError::InvalidInteger)
        );
        assert_eq!(parse(b"+OK\rX"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"$1\r\nab\r\n"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"$1\r\na\r\r"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"!3\r\n"), Err(RespError::UnknownType { byte: b'!' }));
        assert_eq!(parse(b"OK\r\n"), Err(RespError::UnknownType { byte: b'O' }));
        assert_eq!(
            parse(b"*2\r\n:1\r\n%1\r\n"),
            Err(RespError::UnknownType { byte: b'%' })
        );
        let limits = RespLimits {
            inline_bytes_max: 2,
            ..RespLimits::default()
        };
        assert_eq!(
            parse_reply(b"+OK!", &limits),
            Err(RespError::LineTooLong { max: 2 })
        );
        assert_eq!(
            parse_reply(b"-ERR\r\n", &limits),
            Err(RespError::LineTooLong { max: 2 })
        );
    }
}
