//! Commands, as a server reads them: a multibulk array of bulk strings
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or, when the first byte is not `*`, an inline line
//! (`PING\r\n`).
//!
//! Invariants: nothing is copied out of `buf` until the whole command has arrived and been
//! validated; the argument vector is then sized from a count whose elements are all present, so
//! its allocation is bounded by the bytes received.
#![forbid(unsafe_code)]

use super::{inline, lex, RespError, RespLimits};

/// What [`parse_command`] returns: the arguments and the bytes they spanned, or `None` if the
/// command is incomplete.
pub(super) type ParsedCommand = Result<Option<(Vec<Vec<u8>>, usize)>, RespError>;

/// Parses one command from the front of `buf`: either a multibulk array of bulk strings
/// (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or an inline command (`PING\r\n`, words split on
/// spaces/tabs, double-quoted strings with \" \\ \n \r \t \xHH escapes and single quotes as redis
/// does; a line ending in `\n` alone is accepted for inline). Returns Ok(None) when `buf` holds
/// only part of a command (the caller reads more and calls again with the longer buffer),
/// Ok(Some((args, consumed))) for a whole one. An empty inline line or `*0\r\n` yields an empty
/// args vec (callers skip it). `*-1\r\n` likewise empty.
///
/// Any error is fatal for the connection: reply with [`RespError::reply_text`] and close.
#[allow(
    clippy::type_complexity,
    reason = "spelled out so callers see the contract; ParsedCommand is the same type"
)]
pub fn parse_command(
    buf: &[u8],
    limits: &RespLimits,
) -> Result<Option<(Vec<Vec<u8>>, usize)>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => inline::parse_inline(buf, limits),
    }
}

fn parse_multibulk(buf: &[u8], limits: &RespLimits) -> ParsedCommand {
    // First pass: validate and find the end, copying nothing, so that a partial command costs
    // only a walk over its headers however often the caller retries.
    let Some((count, _)) = walk_multibulk(buf, limits, |_| {})? else {
        return Ok(None);
    };
    // All `count` arguments are in `buf` (each at least 6 bytes), so this is bounded by what the
    // peer actually sent.
    let mut args = Vec::with_capacity(count);
    let walked = walk_multibulk(buf, limits, |arg| args.push(arg.to_vec()))?;
    Ok(walked.map(|(_, consumed)| (args, consumed)))
}

/// Walks one multibulk command, handing each argument to `on_arg` in order. Returns the argument
/// count and the bytes consumed, or `None` if the command is incomplete (after handing over the
/// arguments that did arrive).
fn walk_multibulk<'a>(
    buf: &'a [u8],
    limits: &RespLimits,
    mut on_arg: impl FnMut(&'a [u8]),
) -> Result<Option<(usize, usize)>, RespError> {
    let Some((announced, mut pos)) = lex::number_line(buf, 1, RespError::InvalidMultibulkLength)?
    else {
        return Ok(None);
    };
    // `*-1` is a null array: like `*0`, a command with no words, which callers skip.
    let count = lex::array_len(announced, limits)?.unwrap_or(0);
    // Bounded by the bytes present: every iteration consumes at least 6 bytes or returns.
    for _ in 0..count {
        let Some((arg, next)) = bulk_arg(buf, pos, limits)? else {
            return Ok(None);
        };
        on_arg(arg);
        pos = next;
    }
    Ok(Some((count, pos)))
}

/// One `$len\r\nbody\r\n` argument at `pos`. A null bulk (`$-1`) is not an argument: Redis
/// refuses it as an invalid length, and so do we.
fn bulk_arg<'a>(
    buf: &'a [u8],
    pos: usize,
    limits: &RespLimits,
) -> Result<Option<(&'a [u8], usize)>, RespError> {
    match buf.get(pos) {
        None => return Ok(None),
        Some(b'$') => {}
        Some(&found) => return Err(RespError::ExpectedBulk { found }),
    }
    let Some((announced, body_start)) =
        lex::number_line(buf, pos + 1, RespError::InvalidBulkLength)?
    else {
        return Ok(None);
    };
    let len = lex::bulk_len(announced, limits)?;
    lex::bulk_body(buf, body_start, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, RespError>;

    fn parse(buf: &[u8]) -> Parsed {
        parse_command(buf, &RespLimits::default())
    }

    fn whole(args: &[&[u8]], consumed: usize) -> Parsed {
        Ok(Some((args.iter().map(|a| a.to_vec()).collect(), consumed)))
    }

    const PIPELINE: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\
                              *3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n\
                              PING\r\n\
                              *0\r\n\
                              set \"a b\" 'c'\n\
                              *1\r\n$0\r\n\r\n\
                              *-1\r\n\
                              \r\n";

    fn pipeline_commands() -> Vec<Vec<Vec<u8>>> {
        let words = |ws: &[&[u8]]| ws.iter().map(|w| w.to_vec()).collect::<Vec<_>>();
        vec![
            words(&[b"GET", b"k"]),
            words(&[b"SET", b"k", b"va\r\nl"]),
            words(&[b"PING"]),
            words(&[]),
            words(&[b"set", b"a b", b"c"]),
            words(&[b""]),
            words(&[]),
            words(&[]),
        ]
    }

    /// Parses everything in `buf`, returning the commands and the bytes consumed.
    fn drain(buf: &[u8]) -> (Vec<Vec<Vec<u8>>>, usize) {
        let mut commands = Vec::new();
        let mut pos = 0;
        while let Some((args, consumed)) = parse(&buf[pos..]).expect("valid stream") {
            assert!(consumed > 0 && pos + consumed <= buf.len());
            commands.push(args);
            pos += consumed;
        }
        (commands, pos)
    }

    #[test]
    fn parses_a_pipelined_stream() {
        let (commands, consumed) = drain(PIPELINE);
        assert_eq!(commands, pipeline_commands());
        assert_eq!(consumed, PIPELINE.len());
    }

    #[test]
    fn every_split_point_waits_then_resumes_exactly() {
        // Command boundaries, found by parsing whole.
        let mut ends = Vec::new();
        let mut pos = 0;
        while let Some((_, consumed)) = parse(&PIPELINE[pos..]).expect("valid") {
            pos += consumed;
            ends.push(pos);
        }
        for split in 0..=PIPELINE.len() {
            let (commands, consumed) = drain(&PIPELINE[..split]);
            let whole_commands = ends.iter().filter(|&&end| end <= split).count();
            assert_eq!(commands.len(), whole_commands, "split at {split}");
            assert_eq!(commands[..], pipeline_commands()[..whole_commands]);
            let expected = ends[..whole_commands].last().copied().unwrap_or(0);
            assert_eq!(consumed, expected, "split at {split}");
            // Feeding the rest continues exactly where the prefix stopped.
            let (rest, rest_consumed) = drain(&PIPELINE[consumed..]);
            assert_eq!(rest, pipeline_commands()[whole_commands..]);
            assert_eq!(consumed + rest_consumed, PIPELINE.len());
        }
    }

    #[test]
    fn empty_buffer_is_incomplete() {
        assert_eq!(parse(b""), Ok(None));
    }

    #[test]
    fn multibulk_happy_paths() {
        assert_eq!(parse(b"*1\r\n$4\r\nPING\r\n"), whole(&[b"PING"], 14));
        assert_eq!(parse(b"*0\r\n"), whole(&[], 4));
        assert_eq!(parse(b"*-1\r\n"), whole(&[], 5));
        assert_eq!(parse(b"*1\r\n$0\r\n\r\n"), whole(&[b""], 10));
        // Bodies are binary: CRLF and NUL inside are data.
        assert_eq!(
            parse(b"*1\r\n$4\r\n\r\n\0\xff\r\n"),
            whole(&[b"\r\n\0\xff"], 14)
        );
        // Trailing bytes are left for the next call.
        assert_eq!(parse(b"*1\r\n$1\r\na\r\n*1"), whole(&[b"a"], 11));
    }

    #[test]
    fn huge_bulk_length_is_refused_from_its_header() {
        assert_eq!(
            parse(b"*1\r\n$99999999999\r\n"),
            Err(RespError::BulkTooLong {
                len: 99_999_999_999,
                max: 16 << 20
            })
        );
        // Even before the array is announced in full, the header alone is enough.
        let limits = RespLimits {
            bulk_bytes_max: 3,
            ..RespLimits::default()
        };
        assert_eq!(
            parse_command(b"*2\r\n$4\r\n", &limits),
            Err(RespError::BulkTooLong { len: 4, max: 3 })
        );
        assert_eq!(
            parse_command(b"*1\r\n$3\r\nabc\r\n", &limits),
            whole(&[b"abc"], 13)
        );
        // Past i64: not a length at all.
        assert_eq!(
            parse(b"*1\r\n$99999999999999999999\r\n"),
            Err(RespError::InvalidBulkLength)
        );
    }

    #[test]
    fn negative_and_malformed_bulk_lengths() {
        for bad in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$-2\r\n",
            b"*1\r\n$-0\r\n",
            b"*1\r\n$abc\r\n",
            b"*1\r\n$1a\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$+1\r\n",
            b"*1\r\n$01\r\n",
            b"*1\r\n$ 1\r\n",
            b"*1\r\n$1\n",
            b"*1\r\n$x",
        ] {
            assert_eq!(
                parse(bad),
                Err(RespError::InvalidBulkLength),
                "{}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn negative_and_malformed_array_lengths() {
        for bad in [
            &b"*-2\r\n"[..],
            b"*-0\r\n",
            b"*abc\r\n",
            b"*\r\n",
            b"*1x",
            b"*01\r\n",
            b"*99999999999999999999\r\n",
            b"*123456789012345678901",
        ] {
            assert_eq!(
                parse(bad),
                Err(RespError::InvalidMultibulkLength),
                "{}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn too_many_args_is_refused_from_the_header() {
        let limits = RespLimits {
            args_max: 2,
            ..RespLimits::default()
        };
        assert_eq!(
            parse_command(b"*3\r\n", &limits),
            Err(RespError::TooManyArgs { count: 3, max: 2 })
        );
        assert_eq!(
            parse(b"*1048577\r\n"),
            Err(RespError::TooManyArgs {
                count: 1_048_577,
                max: 1_048_576
            })
        );
    }

    #[test]
    fn a_large_announced_count_with_nothing_behind_it_just_waits() {
        assert_eq!(parse(b"*1000000\r\n"), Ok(None));
        assert_eq!(parse(b"*1000000\r\n$1\r\na\r\n"), Ok(None));
    }

    #[test]
    fn missing_crlf() {
        assert_eq!(parse(b"*1\r\n$1\r\nab\r\n"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"*1\r\n$1\r\naX"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"*1\r\n$1\r\na\rX"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"*1\r\n$1\r\na\n\r"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"*1\rX"), Err(RespError::MissingCrlf));
        assert_eq!(parse(b"*1\r\n$1\rX"), Err(RespError::MissingCrlf));
    }

    #[test]
    fn non_bulk_elements_are_refused() {
        assert_eq!(
            parse(b"*1\r\n:1\r\n"),
            Err(RespError::ExpectedBulk { found: b':' })
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n*1\r\n"),
            Err(RespError::ExpectedBulk { found: b'*' })
        );
        assert_eq!(
            parse(b"*1\r\nGET\r\n"),
            Err(RespError::ExpectedBulk { found: b'G' })
        );
    }

    #[test]
    fn many_small_commands_parse_in_linear_time() {
        let mut stream = Vec::new();
        for i in 0..20_000u32 {
            let key = i.to_string();
            super::super::write_command(&mut stream, &[b"SET", key.as_bytes(), b"value"]);
        }
        let (commands, consumed) = drain(&stream);
        assert_eq!(commands.len(), 20_000);
        assert_eq!(consumed, stream.len());
    }
}
