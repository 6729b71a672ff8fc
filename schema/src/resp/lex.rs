//! The pieces both parsers are built from: CRLF-terminated lines, decimal lengths, and bulk
//! bodies.
//!
//! Invariants: each function reads `buf` from `start` on and answers `Ok(None)` (the piece has not
//! fully arrived; nothing in what has arrived is wrong yet), an error, or the piece with the
//! position just past it, which is never more than `buf.len()`. A `start` past the end reads as
//! "nothing arrived yet". Nothing here allocates, and every scan stops at the piece's limit, so a
//! call costs at most the piece's bounded length (bodies are skipped, not scanned).
#![forbid(unsafe_code)]

use super::{RespError, RespLimits};

/// Bytes of the longest decimal `i64`, "-9223372036854775808". A length or integer line longer
/// than this can never become valid, so it is refused without waiting for its CRLF.
const DECIMAL_I64_BYTES_MAX: usize = 20;

/// The bytes from `start` on.
fn rest(buf: &[u8], start: usize) -> &[u8] {
    buf.get(start..).unwrap_or_default()
}

/// A line of at most `content_max` bytes ended by `\r\n` (the content may hold a bare `\n`, as
/// hiredis allows in simple strings). Returns the content and the position after the CRLF.
pub(super) fn crlf_line(
    buf: &[u8],
    start: usize,
    content_max: usize,
) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = rest(buf, start);
    // The content plus its '\r' is all we ever need to look at.
    let window = &rest[..rest.len().min(content_max.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r') {
        Some(cr) => match rest.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&rest[..cr], start + cr + 2))),
            Some(_) => Err(RespError::MissingCrlf),
        },
        None if rest.len() > content_max => Err(RespError::LineTooLong { max: content_max }),
        None => Ok(None),
    }
}

/// A decimal `i64` line ended by `\r\n`, in the strict form Redis's `string2ll` accepts (no sign
/// but '-', no leading zeros, no "-0"). Anything else is `invalid`, reported as soon as the first
/// impossible byte arrives.
pub(super) fn number_line(
    buf: &[u8],
    start: usize,
    invalid: RespError,
) -> Result<Option<(i64, usize)>, RespError> {
    let rest = rest(buf, start);
    for (i, &b) in rest.iter().enumerate() {
        if b == b'\r' {
            return match rest.get(i + 1) {
                None => Ok(None),
                Some(b'\n') => match parse_i64(&rest[..i]) {
                    Some(n) => Ok(Some((n, start + i + 2))),
                    None => Err(invalid),
                },
                Some(_) => Err(RespError::MissingCrlf),
            };
        }
        let plausible = b.is_ascii_digit() || (i == 0 && b == b'-');
        if !plausible || i >= DECIMAL_I64_BYTES_MAX {
            return Err(invalid);
        }
    }
    Ok(None)
}

/// Parses `digits` as Redis's `string2ll` does: optional '-', then "0" alone or a nonzero digit
/// followed by digits, within `i64`.
pub(super) fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, magnitude_digits) = match digits.split_first() {
        Some((b'-', tail)) => (true, tail),
        _ => (false, digits),
    };
    match magnitude_digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut magnitude: u64 = 0;
    for &b in magnitude_digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // Subtracting from zero reaches i64::MIN, whose magnitude does not fit in an i64.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// A bulk length from the wire, as a byte count within `bulk_bytes_max`. The null bulk (-1) is
/// the caller's to handle before this; here it is just another negative length.
pub(super) fn bulk_len(announced: i64, limits: &RespLimits) -> Result<usize, RespError> {
    if announced < 0 {
        return Err(RespError::InvalidBulkLength);
    }
    let max = limits.bulk_bytes_max;
    let len = usize::try_from(announced).unwrap_or(usize::MAX);
    if len > max {
        return Err(RespError::BulkTooLong { len, max });
    }
    Ok(len)
}

/// An array length from the wire: `None` for the null array (-1), else a count within
/// `args_max`.
pub(super) fn array_len(announced: i64, limits: &RespLimits) -> Result<Option<usize>, RespError> {
    if announced == -1 {
        return Ok(None);
    }
    if announced < 0 {
        return Err(RespError::InvalidMultibulkLength);
    }
    let max = limits.args_max;
    let count = usize::try_from(announced).unwrap_or(usize::MAX);
    if count > max {
        return Err(RespError::TooManyArgs { count, max });
    }
    Ok(Some(count))
}

/// A bulk body of `len` bytes (already checked against the limit) and its CRLF. A wrong byte
/// where the CRLF belongs is reported as soon as it arrives, without waiting for the rest.
pub(super) fn bulk_body(
    buf: &[u8],
    start: usize,
    len: usize,
) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = rest(buf, start);
    let Some(after) = rest.get(len..) else {
        return Ok(None);
    };
    match after {
        [] | [b'\r'] => Ok(None),
        [b'\r', b'\n', ..] => Ok(Some((&rest[..len], start + len + 2))),
        _ => Err(RespError::MissingCrlf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVALID: RespError = RespError::InvalidBulkLength;

    #[test]
    fn parse_i64_is_strict_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"7"), Some(7));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn number_line_waits_then_parses() {
        assert_eq!(number_line(b"x12", 1, INVALID), Ok(None));
        assert_eq!(number_line(b"x12\r", 1, INVALID), Ok(None));
        assert_eq!(number_line(b"x12\r\nrest", 1, INVALID), Ok(Some((12, 5))));
        assert_eq!(number_line(b"x", 5, INVALID), Ok(None));
    }

    #[test]
    fn number_line_refuses_early() {
        assert_eq!(number_line(b"x1a", 1, INVALID), Err(INVALID));
        assert_eq!(number_line(b"x1-", 1, INVALID), Err(INVALID));
        assert_eq!(
            number_line(b"x12\rX", 1, INVALID),
            Err(RespError::MissingCrlf)
        );
        assert_eq!(number_line(b"x\r\n", 1, INVALID), Err(INVALID));
        assert_eq!(number_line(b"x1\n", 1, INVALID), Err(INVALID));
        // 21 digits can never be an i64: refused before any CRLF arrives.
        assert_eq!(number_line(&[b'1'; 22], 1, INVALID), Err(INVALID));
        assert_eq!(number_line(&[b'1'; 21], 1, INVALID), Ok(None));
    }

    #[test]
    fn crlf_line_bounds_the_wait() {
        assert_eq!(crlf_line(b"+OK", 1, 4), Ok(None));
        assert_eq!(crlf_line(b"+OK\r", 1, 4), Ok(None));
        assert_eq!(crlf_line(b"+OK\r\n", 1, 4), Ok(Some((&b"OK"[..], 5))));
        assert_eq!(crlf_line(b"+a\nb\r\n", 1, 4), Ok(Some((&b"a\nb"[..], 6))));
        assert_eq!(crlf_line(b"+OK\rX", 1, 4), Err(RespError::MissingCrlf));
        // Exactly the limit, still waiting for the CR, then for the LF.
        assert_eq!(crlf_line(b"+abcd", 1, 4), Ok(None));
        assert_eq!(crlf_line(b"+abcd\r", 1, 4), Ok(None));
        assert_eq!(crlf_line(b"+abcd\r\n", 1, 4), Ok(Some((&b"abcd"[..], 7))));
        assert_eq!(
            crlf_line(b"+abcde", 1, 4),
            Err(RespError::LineTooLong { max: 4 })
        );
        assert_eq!(crlf_line(b"", 1, usize::MAX), Ok(None));
    }

    #[test]
    fn lengths_are_checked_against_limits() {
        let limits = RespLimits {
            bulk_bytes_max: 10,
            args_max: 3,
            inline_bytes_max: 10,
            depth_max: 2,
        };
        assert_eq!(bulk_len(10, &limits), Ok(10));
        assert_eq!(bulk_len(-1, &limits), Err(RespError::InvalidBulkLength));
        assert_eq!(
            bulk_len(i64::MAX, &limits),
            Err(RespError::BulkTooLong {
                len: usize::try_from(i64::MAX).unwrap_or(usize::MAX),
                max: 10
            })
        );
        assert_eq!(array_len(-1, &limits), Ok(None));
        assert_eq!(array_len(3, &limits), Ok(Some(3)));
        assert_eq!(
            array_len(-2, &limits),
            Err(RespError::InvalidMultibulkLength)
        );
        assert_eq!(
            array_len(4, &limits),
            Err(RespError::TooManyArgs { count: 4, max: 3 })
        );
    }

    #[test]
    fn bulk_body_checks_its_crlf_early() {
        assert_eq!(bulk_body(b"$3\r\nab", 4, 3), Ok(None));
        assert_eq!(bulk_body(b"$3\r\nabc", 4, 3), Ok(None));
        assert_eq!(bulk_body(b"$3\r\nabc\r", 4, 3), Ok(None));
        assert_eq!(
            bulk_body(b"$3\r\nabc\r\n", 4, 3),
            Ok(Some((&b"abc"[..], 9)))
        );
        assert_eq!(bulk_body(b"$3\r\nabcX", 4, 3), Err(RespError::MissingCrlf));
        assert_eq!(
            bulk_body(b"$3\r\nabc\rX", 4, 3),
            Err(RespError::MissingCrlf)
        );
        assert_eq!(bulk_body(b"$0\r\n\r\n", 4, 0), Ok(Some((&b""[..], 6))));
        assert_eq!(bulk_body(b"", 4, usize::MAX), Ok(None));
    }
}
