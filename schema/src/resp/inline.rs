//! Inline commands: one line of words, for humans typing at `telnet` or `nc`.
//!
//! The line ends at `\n` (a `\r` just before it is dropped). Words are split as Redis's
//! `sdssplitargs` splits them, quirks included, so that a line means the same here as in Redis:
//! - blanks (space, `\t`, `\n`, `\r`, `\v`, `\f`) separate words; a NUL ends the line;
//! - `"…"` takes the escapes `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a`, and `\c` for any other `c`;
//! - `'…'` takes only `\'`;
//! - a quote may start mid-word (`a"b c"` is the one word `ab c`), but a closing quote must be
//!   followed by a blank or the end of the line, else the quotes are unbalanced.
//!
//! Invariants: the line is bounded by `inline_bytes_max` before any word is copied, and the
//! number of words by `args_max`.
#![forbid(unsafe_code)]

use super::command::ParsedCommand;
use super::{RespError, RespLimits};

/// One inline command from the front of `buf`, which does not start with `*`.
pub(super) fn parse_inline(buf: &[u8], limits: &RespLimits) -> ParsedCommand {
    let Some((line, consumed)) = inline_line(buf, limits.inline_bytes_max)? else {
        return Ok(None);
    };
    let args = split_words(line, limits.args_max)?;
    Ok(Some((args, consumed)))
}

/// The first line of `buf` without its `\n` or `\r\n`, and the bytes it spans including the
/// ending.
fn inline_line(buf: &[u8], content_max: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let too_long = RespError::LineTooLong { max: content_max };
    // The content, an optional '\r' and the '\n' are all we ever need to look at.
    let window = &buf[..buf.len().min(content_max.saturating_add(2))];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        // Without a '\n' in the first content_max + 2 bytes, the content is longer than allowed.
        return if buf.len() > content_max.saturating_add(1) {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > content_max {
        return Err(too_long);
    }
    Ok(Some((line, lf + 1)))
}

/// C's `isspace`, which `sdssplitargs` uses between words and after closing quotes.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Bytes that end an unquoted run; `sdssplitargs` checks these, not `isspace`, inside a word.
fn ends_unquoted_run(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'')
}

fn split_words(line: &[u8], args_max: usize) -> Result<Vec<Vec<u8>>, RespError> {
    // Redis hands the line to sdssplitargs as a C string: it ends at the first NUL.
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut words = Vec::new();
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|&b| is_blank(b)) {
            pos += 1;
        }
        if pos >= line.len() {
            return Ok(words);
        }
        if words.len() == args_max {
            return Err(RespError::TooManyArgs {
                count: args_max.saturating_add(1),
                max: args_max,
            });
        }
        let (word, next) = split_word(line, pos)?;
        words.push(word);
        pos = next;
    }
}

/// Whether the closing quote just before `after_quote` is followed by a blank or the end.
fn closes_properly(line: &[u8], after_quote: usize) -> bool {
    line.get(after_quote).is_none_or(|&b| is_blank(b))
}

/// The word starting at `start` (not a blank) and the position after it: an unquoted run,
/// possibly continued by one quoted string that ends the word.
fn split_word(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), RespError> {
    let run = line[start..]
        .iter()
        .position(|&b| ends_unquoted_run(b))
        .unwrap_or(line.len() - start);
    let run_end = start + run;
    let mut word = line[start..run_end].to_vec();
    let end = match line.get(run_end) {
        Some(b'"') => double_quoted(line, run_end + 1, &mut word)?,
        Some(b'\'') => single_quoted(line, run_end + 1, &mut word)?,
        // End of line or a blank (skipped by the caller).
        _ => run_end,
    };
    Ok((word, end))
}

/// Appends the body of a `"…"` string starting at `pos` (just past the opening quote); returns
/// the position after the closing quote.
fn double_quoted(line: &[u8], mut pos: usize, word: &mut Vec<u8>) -> Result<usize, RespError> {
    loop {
        match &line[pos..] {
            [b'\\', b'x', high, low, ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                word.push(hex_value(*high) << 4 | hex_value(*low));
                pos += 4;
            }
            [b'\\', escaped, ..] => {
                word.push(unescape(*escaped));
                pos += 2;
            }
            [b'"', ..] if closes_properly(line, pos + 1) => return Ok(pos + 1),
            [b'"', ..] | [] => return Err(RespError::UnbalancedQuotes),
            [b, ..] => {
                word.push(*b);
                pos += 1;
            }
        }
    }
}

/// Appends the body of a `'…'` string starting at `pos` (just past the opening quote); returns
/// the position after the closing quote.
fn single_quoted(line: &[u8], mut pos: usize, word: &mut Vec<u8>) -> Result<usize, RespError> {
    loop {
        match &line[pos..] {
            [b'\\', b'\'', ..] => {
                word.push(b'\'');
                pos += 2;
            }
            [b'\'', ..] if closes_properly(line, pos + 1) => return Ok(pos + 1),
            [b'\'', ..] | [] => return Err(RespError::UnbalancedQuotes),
            [b, ..] => {
                word.push(*b);
                pos += 1;
            }
        }
    }
}

/// The byte a backslash escape stands for inside double quotes.
fn unescape(escaped: u8) -> u8 {
    match escaped {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => b'\x08',
        b'a' => b'\x07',
        other => other,
    }
}

/// Value of an ASCII hex digit (the caller has checked it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, RespError>;

    fn parse(buf: &[u8]) -> Parsed {
        parse_inline(buf, &RespLimits::default())
    }

    fn whole(words: &[&[u8]], consumed: usize) -> Parsed {
        Ok(Some((words.iter().map(|w| w.to_vec()).collect(), consumed)))
    }

    fn words(line: &str) -> Result<Vec<Vec<u8>>, RespError> {
        split_words(line.as_bytes(), 1024)
    }

    fn ok(list: &[&str]) -> Result<Vec<Vec<u8>>, RespError> {
        Ok(list.iter().map(|w| w.as_bytes().to_vec()).collect())
    }

    #[test]
    fn line_endings() {
        assert_eq!(parse(b"PING\r\n"), whole(&[b"PING"], 6));
        assert_eq!(parse(b"PING\n"), whole(&[b"PING"], 5));
        assert_eq!(parse(b"GET k\r\nPING\r\n"), whole(&[b"GET", b"k"], 7));
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(parse(b"PING\r"), Ok(None));
        assert_eq!(parse(b"\r\n"), whole(&[], 2));
        assert_eq!(parse(b"\n"), whole(&[], 1));
        assert_eq!(parse(b"  \t \r\n"), whole(&[], 6));
        // Only the '\r' right before the '\n' belongs to the ending; others separate words.
        assert_eq!(parse(b"a\rb\r\r\n"), whole(&[b"a", b"b"], 6));
    }

    #[test]
    fn line_length_is_bounded() {
        let limits = RespLimits {
            inline_bytes_max: 4,
            ..RespLimits::default()
        };
        let too_long = Err(RespError::LineTooLong { max: 4 });
        assert_eq!(parse_inline(b"abcd", &limits), Ok(None));
        assert_eq!(parse_inline(b"abcd\r", &limits), Ok(None));
        assert_eq!(parse_inline(b"abcd\r\n", &limits), whole(&[b"abcd"], 6));
        assert_eq!(parse_inline(b"abcd\n", &limits), whole(&[b"abcd"], 5));
        assert_eq!(parse_inline(b"abcde\n", &limits), too_long);
        assert_eq!(parse_inline(b"abcde\r", &limits), too_long);
        assert_eq!(parse_inline(b"abcdef", &limits), too_long);
        assert_eq!(parse_inline(b"abcd\r\r\n", &limits), too_long);
        // The default: 64 KiB without a newline is refused, not buffered forever.
        assert_eq!(parse(&[b'a'; 65_536]), Ok(None));
        assert_eq!(parse(&[b'a'; 65_537]), Ok(None));
        assert_eq!(
            parse(&[b'a'; 65_538]),
            Err(RespError::LineTooLong { max: 65_536 })
        );
    }

    #[test]
    fn words_split_on_blanks() {
        assert_eq!(words("set  k\tv "), ok(&["set", "k", "v"]));
        assert_eq!(words("\x0b\x0cset k"), ok(&["set", "k"]));
        // Inside a word only space, tab, CR and LF separate (as in sdssplitargs).
        assert_eq!(words("a\x0bb"), ok(&["a\x0bb"]));
        assert_eq!(words(""), ok(&[]));
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(words(r#"set "a b" c"#), ok(&["set", "a b", "c"]));
        assert_eq!(words(r#""""#), ok(&[""]));
        assert_eq!(words(r#""\"\\\n\r\t\b\a\q""#), ok(&["\"\\\n\r\t\x08\x07q"]));
        // `\x` without two hex digits is just an escaped 'x'.
        assert_eq!(
            split_words(br#""\x41\xfF\x0g\x""#, 8),
            Ok(vec![b"A\xffx0gx".to_vec()])
        );
        assert_eq!(words("\"a'b\""), ok(&["a'b"]));
        // A quote may start mid-word; its closing ends the word.
        assert_eq!(words(r#"ab"c d" e"#), ok(&["abc d", "e"]));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(words(r"'a b' c"), ok(&["a b", "c"]));
        assert_eq!(words(r"'it\'s'"), ok(&["it's"]));
        // No other escapes inside single quotes.
        assert_eq!(words(r"'a\nb\\c'"), ok(&[r"a\nb\\c"]));
        // `\'` always escapes, even after another backslash (as in sdssplitargs).
        assert_eq!(words(r"'a\\'"), Err(RespError::UnbalancedQuotes));
        assert_eq!(words("'a\"b'"), ok(&["a\"b"]));
    }

    #[test]
    fn unbalanced_quotes() {
        for line in [
            r#""abc"#,
            r#""abc\""#,
            r#""abc\"#,
            r#""a"b"#,
            "'abc",
            r"'abc\'",
            "'a'b",
            r#"set "k"v"#,
        ] {
            assert_eq!(words(line), Err(RespError::UnbalancedQuotes), "{line}");
        }
        assert_eq!(parse(b"set \"k\r\n"), Err(RespError::UnbalancedQuotes));
    }

    #[test]
    fn a_nul_ends_the_line_as_in_redis() {
        assert_eq!(
            parse(b"set k v\0junk \"\r\n"),
            whole(&[b"set", b"k", b"v"], 16)
        );
        assert_eq!(
            split_words(b"\"a\0b\"", 8),
            Err(RespError::UnbalancedQuotes)
        );
    }

    #[test]
    fn word_count_is_bounded() {
        let limits = RespLimits {
            args_max: 2,
            ..RespLimits::default()
        };
        assert_eq!(parse_inline(b"a b\n", &limits), whole(&[b"a", b"b"], 4));
        assert_eq!(
            parse_inline(b"a b c\n", &limits),
            Err(RespError::TooManyArgs { count: 3, max: 2 })
        );
    }
}
