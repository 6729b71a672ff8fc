//! Appending encoders, for servers answering commands and clients sending them.
//!
//! Each appends one whole RESP2 element to `out` and never allocates beyond growing `out`.
//! Invariant: whatever the arguments, the output is well-framed: simple strings and errors are
//! single lines (CR and LF in them become spaces), everything else is length-prefixed.
#![forbid(unsafe_code)]

const CRLF: &[u8] = b"\r\n";

/// Appends `+s\r\n`. CR and LF in `s` become spaces, since a simple string cannot carry them.
pub fn write_simple(out: &mut Vec<u8>, s: &[u8]) {
    write_line(out, b'+', s);
}

/// Appends `-s\r\n`, e.g. `write_error(out, "ERR unknown command")`. CR and LF in `s` become
/// spaces, so a message built from peer input cannot break framing.
pub fn write_error(out: &mut Vec<u8>, s: &str) {
    write_line(out, b'-', s.as_bytes());
}

/// Appends `:n\r\n`.
pub fn write_integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_i64(out, n);
    out.extend_from_slice(CRLF);
}

/// Appends `$len\r\nb\r\n`.
pub fn write_bulk(out: &mut Vec<u8>, b: &[u8]) {
    // Type byte, up to 20 digits, two CRLFs.
    out.reserve(b.len() + 25);
    out.push(b'$');
    push_u64(out, b.len() as u64);
    out.extend_from_slice(CRLF);
    out.extend_from_slice(b);
    out.extend_from_slice(CRLF);
}

/// Appends the null bulk string, `$-1\r\n` (e.g. GET of a missing key).
pub fn write_null_bulk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends `*len\r\n`; the caller then appends exactly `len` elements.
pub fn write_array_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    push_u64(out, len as u64);
    out.extend_from_slice(CRLF);
}

/// Appends the null array, `*-1\r\n`.
pub fn write_null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

/// Appends a command as a multibulk array (for clients/benchmarks).
pub fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    write_array_header(out, args.len());
    for arg in args {
        write_bulk(out, arg);
    }
}

/// Appends `kind`, `text` with CR and LF replaced by spaces, and CRLF. Shared with
/// [`Reply::encode`](super::Reply::encode), whose errors are bytes rather than `str`.
pub(super) fn write_line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.push(kind);
    let breaks_line = |b: &u8| *b == b'\r' || *b == b'\n';
    if text.iter().any(breaks_line) {
        out.extend(text.iter().map(|b| if breaks_line(b) { b' ' } else { *b }));
    } else {
        out.extend_from_slice(text);
    }
    out.extend_from_slice(CRLF);
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Decimal digits of `n`, formatted on the stack.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // n % 10 < 10, so the cast is exact.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = b"prefix".to_vec();
        write(&mut out);
        // Encoders append; they never touch what is already there.
        assert_eq!(&out[..6], b"prefix");
        out.split_off(6)
    }

    #[test]
    fn encodings() {
        assert_eq!(written(|o| write_simple(o, b"OK")), b"+OK\r\n");
        assert_eq!(written(|o| write_error(o, "ERR bad")), b"-ERR bad\r\n");
        assert_eq!(written(|o| write_integer(o, 0)), b":0\r\n");
        assert_eq!(written(|o| write_integer(o, -42)), b":-42\r\n");
        assert_eq!(
            written(|o| write_integer(o, i64::MIN)),
            b":-9223372036854775808\r\n"
        );
        assert_eq!(
            written(|o| write_integer(o, i64::MAX)),
            b":9223372036854775807\r\n"
        );
        assert_eq!(written(|o| write_bulk(o, b"")), b"$0\r\n\r\n");
        assert_eq!(written(|o| write_bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        assert_eq!(written(write_null_bulk), b"$-1\r\n");
        assert_eq!(written(|o| write_array_header(o, 10)), b"*10\r\n");
        assert_eq!(written(write_null_array), b"*-1\r\n");
        assert_eq!(
            written(|o| write_command(o, &[b"GET", b"k"])),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
        assert_eq!(written(|o| write_command(o, &[])), b"*0\r\n");
    }

    #[test]
    fn line_breaks_cannot_escape_a_line() {
        assert_eq!(
            written(|o| write_error(o, "ERR a\r\n+OK\rb\nc")),
            b"-ERR a  +OK b c\r\n"
        );
        assert_eq!(written(|o| write_simple(o, b"\r\n")), b"+  \r\n");
        assert_eq!(written(|o| write_error(o, "")), b"-\r\n");
    }
}
