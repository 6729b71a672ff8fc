//! RESP2, the Redis serialization protocol: a sans-IO codec for commands (server side) and
//! replies (client side).
//!
//! The parsers are stateless functions over the bytes received so far. Each looks at the front of
//! the buffer and answers `Ok(None)` (a whole element has not arrived yet: read more, then call
//! again with the longer buffer), `Ok(Some((value, consumed)))` (drop `consumed` bytes from the
//! front), or an error. Every [`RespError`] is fatal for the connection: the stream has lost its
//! framing, so a server answers with [`RespError::reply_text`] (via [`write_error`]) and closes,
//! as Redis does.
//!
//! A server's read loop, in short (keep an offset and compact once per read, rather than
//! draining the buffer per command):
//! ```
//! use tessera_schema::resp::{parse_command, write_bulk, write_error, write_simple, RespLimits};
//!
//! let limits = RespLimits::default();
//! let inbox = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nPING\r\n*1\r\n$3\r\nGE";
//! let mut outbox = Vec::new();
//! let mut start = 0;
//! loop {
//!     match parse_command(&inbox[start..], &limits) {
//!         Ok(Some((args, consumed))) => {
//!             start += consumed;
//!             match args.first().map(Vec::as_slice) {
//!                 None => {} // an empty line: nothing to answer
//!                 Some(b"PING") => write_simple(&mut outbox, b"PONG"),
//!                 Some(_) => write_bulk(&mut outbox, b"..."),
//!             }
//!         }
//!         Ok(None) => break, // keep inbox[start..], read more, call again
//!         Err(error) => {
//!             write_error(&mut outbox, &error.reply_text());
//!             break; // flush outbox, then close the connection
//!         }
//!     }
//! }
//! assert_eq!(outbox, b"$3\r\n...\r\n+PONG\r\n");
//! assert_eq!(&inbox[start..], b"*1\r\n$3\r\nGE");
//! ```
//!
//! | part | owns |
//! |---|---|
//! | `lex` | CRLF lines, decimal lengths and bulk bodies, shared by both parsers |
//! | `command` | [`parse_command`]: multibulk arrays of bulk strings and inline commands |
//! | `inline` | splitting an inline line into words the way `sdssplitargs` does |
//! | `reply` | [`Reply`], its encoder and [`parse_reply`] |
//! | `write` | the appending encoders ([`write_bulk`], [`write_command`], …) |
//!
//! Invariants:
//! - Bytes from the peer never cause a panic, and never an allocation beyond the bounds in
//!   [`RespLimits`] or out of proportion to the bytes actually received (a parsed reply tree
//!   costs a small constant factor more than its encoding). Every length is checked (sign,
//!   overflow, limit) before anything is sized or sliced from it; a bulk length over the limit is
//!   refused as soon as its `$len\r\n` header arrives, and a line with no CRLF is refused as soon
//!   as it is longer than its limit.
//! - Parsing is two-pass: the first pass walks headers and skips bodies without allocating or
//!   copying, and only once a whole element is present does the second pass copy it out. A large
//!   command arriving over many reads therefore costs a header rescan per read (cheap), and its
//!   bodies are copied once. `consumed` is never more than `buf.len()`.
//! - The encoders never break framing: CR and LF inside simple strings and errors become spaces,
//!   and everything else is length-prefixed.
//!
//! Where this is stricter than Redis (each a stream Redis would accept but no client sends):
//! the CRLF after a bulk body is checked, not skipped; an array length below -1 is refused
//! rather than read as empty; a length line is refused as soon as it exceeds the 20 bytes of the
//! longest `i64`. Bulk strings are capped at 16 MiB by default (Redis: 512 MiB). As in Redis, a
//! NUL byte ends an inline line (Redis parses it as a C string).
#![forbid(unsafe_code)]

mod command;
mod inline;
mod lex;
mod reply;
mod write;

pub use command::parse_command;
pub use reply::{parse_reply, Reply};
pub use write::{
    write_array_header, write_bulk, write_command, write_error, write_integer, write_null_array,
    write_null_bulk, write_simple,
};

use crate::limits::FRAME_BYTES_MAX;

/// Default [`RespLimits::args_max`]: Redis's own ceiling on a multibulk length.
pub const RESP_ARGS_MAX: usize = 1024 * 1024;

/// Default [`RespLimits::inline_bytes_max`]: Redis's `PROTO_INLINE_MAX_SIZE`.
pub const RESP_INLINE_BYTES_MAX: usize = 64 << 10;

/// Default [`RespLimits::depth_max`]. Tessera's replies nest at most two arrays deep; the slack
/// admits richer replies without letting a peer make a client build deep trees.
pub const RESP_DEPTH_MAX: usize = 8;

/// Bounds on what a peer may make us hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest bulk string.
    pub bulk_bytes_max: usize,
    /// Most elements in one array (command arguments / reply elements).
    pub args_max: usize,
    /// Longest inline command line / simple string / error line, without its line ending.
    pub inline_bytes_max: usize,
    /// Deepest nesting of reply arrays (`parse_reply` only); a top-level array is depth 1.
    pub depth_max: usize,
}

impl Default for RespLimits {
    /// Bulk strings up to [`FRAME_BYTES_MAX`] (the largest body Tessera's own protocol carries),
    /// [`RESP_ARGS_MAX`], [`RESP_INLINE_BYTES_MAX`] and [`RESP_DEPTH_MAX`].
    fn default() -> Self {
        RespLimits {
            bulk_bytes_max: FRAME_BYTES_MAX,
            args_max: RESP_ARGS_MAX,
            inline_bytes_max: RESP_INLINE_BYTES_MAX,
            depth_max: RESP_DEPTH_MAX,
        }
    }
}

/// Bytes from the peer that are not RESP2 within our limits. Every variant is fatal for the
/// connection: answer with [`reply_text`](Self::reply_text) and close.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RespError {
    /// An array header (`*…`) whose length is not a decimal integer ≥ -1.
    #[error("array length is not a decimal integer of at least -1; the peer is not speaking RESP")]
    InvalidMultibulkLength,
    /// An array announces more elements than `args_max` (for an inline command: it has more
    /// words than that).
    #[error("array of {count} elements where at most {max} are allowed; split the command")]
    TooManyArgs {
        /// Elements announced (inline: the first word over the limit).
        count: usize,
        /// The limit in force.
        max: usize,
    },
    /// A bulk header (`$…`) whose length is not a decimal integer ≥ 0 (≥ -1 in a reply).
    #[error("bulk length is not a decimal integer of at least 0; the peer is not speaking RESP")]
    InvalidBulkLength,
    /// A bulk header announces more than `bulk_bytes_max` bytes.
    #[error("bulk string of {len} bytes where at most {max} are allowed; shrink the value")]
    BulkTooLong {
        /// Length announced (saturated at `usize::MAX`).
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A command array holds something other than a bulk string.
    #[error("command arguments must be bulk strings, found a '{}' element", found.escape_ascii())]
    ExpectedBulk {
        /// The type byte found where `$` was expected.
        found: u8,
    },
    /// A line or bulk body is not followed by `\r\n`.
    #[error("expected CRLF after a line or bulk body; the peer is not speaking RESP")]
    MissingCrlf,
    /// An inline command, simple string or error line is longer than `inline_bytes_max` (or has
    /// no line ending within that many bytes).
    #[error("line longer than {max} bytes; send large commands as multibulk arrays")]
    LineTooLong {
        /// The limit in force.
        max: usize,
    },
    /// An inline command has an unterminated quote, or a closing quote followed by a non-space.
    #[error("unbalanced quotes in an inline command; close every quote and follow it by a space")]
    UnbalancedQuotes,
    /// An integer reply (`:…`) that is not a decimal `i64`.
    #[error("integer reply is not a decimal i64; the server is not speaking RESP")]
    InvalidInteger,
    /// A reply nests arrays deeper than `depth_max`.
    #[error("reply nests arrays deeper than {max}; raise depth_max if the server is trusted")]
    TooDeep {
        /// The limit in force.
        max: usize,
    },
    /// A reply starts with a byte that is not a RESP2 type (`+ - : $ *`).
    #[error("unknown reply type byte '{}'; the server is not speaking RESP2", byte.escape_ascii())]
    UnknownType {
        /// The offending byte.
        byte: u8,
    },
}

impl RespError {
    /// The error line a Redis server would send, without the leading '-' and the CRLF,
    /// e.g. "ERR Protocol error: invalid bulk length". Every RespError is fatal for the
    /// connection (the server replies with it and closes), as Redis does.
    ///
    /// The text never contains CR or LF (bytes from the peer are escaped).
    pub fn reply_text(&self) -> String {
        let detail = match self {
            RespError::InvalidMultibulkLength | RespError::TooManyArgs { .. } => {
                "invalid multibulk length".to_owned()
            }
            RespError::InvalidBulkLength | RespError::BulkTooLong { .. } => {
                "invalid bulk length".to_owned()
            }
            RespError::ExpectedBulk { found } => {
                format!("expected '$', got '{}'", found.escape_ascii())
            }
            RespError::MissingCrlf => "expected CRLF".to_owned(),
            RespError::LineTooLong { .. } => "too big inline request".to_owned(),
            RespError::UnbalancedQuotes => "unbalanced quotes in request".to_owned(),
            RespError::InvalidInteger => "invalid integer".to_owned(),
            RespError::TooDeep { max } => format!("reply nested deeper than {max} arrays"),
            RespError::UnknownType { byte } => {
                format!("unknown reply type '{}'", byte.escape_ascii())
            }
        };
        format!("ERR Protocol error: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_the_named_bounds() {
        let limits = RespLimits::default();
        assert_eq!(limits.bulk_bytes_max, 16 << 20);
        assert_eq!(limits.args_max, 1024 * 1024);
        assert_eq!(limits.inline_bytes_max, 64 << 10);
        assert_eq!(limits.depth_max, 8);
    }

    #[test]
    fn reply_texts_match_redis() {
        assert_eq!(
            RespError::InvalidBulkLength.reply_text(),
            "ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            RespError::BulkTooLong { len: 1, max: 0 }.reply_text(),
            "ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            RespError::TooManyArgs { count: 2, max: 1 }.reply_text(),
            "ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            RespError::ExpectedBulk { found: b':' }.reply_text(),
            "ERR Protocol error: expected '$', got ':'"
        );
        assert_eq!(
            RespError::UnbalancedQuotes.reply_text(),
            "ERR Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            RespError::LineTooLong { max: 4 }.reply_text(),
            "ERR Protocol error: too big inline request"
        );
    }

    #[test]
    fn reply_texts_never_break_framing() {
        let errors = [
            RespError::ExpectedBulk { found: b'\r' },
            RespError::ExpectedBulk { found: b'\n' },
            RespError::UnknownType { byte: b'\n' },
            RespError::UnknownType { byte: 0xff },
            RespError::TooDeep { max: 3 },
            RespError::MissingCrlf,
            RespError::InvalidInteger,
            RespError::InvalidMultibulkLength,
        ];
        for error in errors {
            let text = error.reply_text();
            assert!(text.starts_with("ERR Protocol error: "), "{text}");
            assert!(!text.contains(['\r', '\n']), "{text:?}");
            assert!(!error.to_string().contains(['\r', '\n']), "{error}");
        }
    }
}
