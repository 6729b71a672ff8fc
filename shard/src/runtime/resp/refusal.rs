//! Why a RESP command is refused, in the words Redis uses for the same mistake (unknown
//! command, wrong number of arguments, syntax error), or saying plainly which Redis feature
//! Tessera does not have yet. The connection keeps serving after any of them.
//!
//! Invariant: a refusal echoes at most [`ECHOED_BYTES_MAX`] bytes of each thing the peer sent,
//! with CR and LF made spaces, so an error line stays short and well framed.

use std::fmt::Write;

use super::command::Arg;

/// Bytes of a name, and of the quoted arguments, an "unknown command" error shows (Redis's).
const ECHOED_BYTES_MAX: usize = 128;

/// Why a command is refused. The `Display` text is the error reply without its leading `-`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// No such command (Redis's text, with the first arguments quoted).
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    Unknown {
        /// The name, truncated and made printable.
        name: String,
        /// The first arguments, each quoted and followed by a space, as Redis lists them.
        args: String,
    },
    /// Too few or too many arguments for the command.
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(&'static str),
    /// No such subcommand.
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The command (upper case).
        command: &'static str,
        /// The subcommand, truncated and made printable.
        sub: String,
    },
    /// A SET option for a feature Tessera does not have yet.
    #[error("ERR SET option {option} is not supported yet: Tessera has no {missing}")]
    UnsupportedSetOption {
        /// The option (upper case).
        option: &'static str,
        /// The missing feature.
        missing: &'static str,
    },
    /// Arguments that do not form the command.
    #[error("ERR syntax error")]
    Syntax,
    /// `SELECT` of a database other than 0.
    #[error("ERR Tessera has one database (0)")]
    NoSuchDatabase,
    /// `CONFIG SET`: settings come from the node's config file and flags.
    #[error("ERR CONFIG SET is not supported: Tessera is configured by its config file and command-line flags at start-up")]
    ConfigSet,
}

/// An unknown command: its name and first arguments, as Redis quotes them.
pub fn unknown(args: &[Arg]) -> CommandError {
    let (name, rest) = args
        .split_first()
        .map_or((&[][..], &[][..]), |(n, r)| (n.as_slice(), r));
    let mut quoted = String::new();
    for arg in rest {
        if quoted.len() >= ECHOED_BYTES_MAX {
            break;
        }
        let room = ECHOED_BYTES_MAX - quoted.len();
        let _ = write!(quoted, "'{}' ", printable(arg, room));
    }
    CommandError::Unknown {
        name: printable(name, ECHOED_BYTES_MAX),
        args: quoted,
    }
}

/// An unknown subcommand of `command`.
pub fn unknown_subcommand(command: &'static str, sub: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand {
        command,
        sub: printable(sub, ECHOED_BYTES_MAX),
    }
}

/// Up to `max` bytes of a peer's argument as text for an error line (CR and LF become
/// spaces, as Redis does, so the reply keeps its framing).
fn printable(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_echo_is_bounded_and_keeps_framing() {
        let long = "x".repeat(1000);
        let error = unknown(&[
            b"bad\r\nname".to_vec(),
            long.clone().into_bytes(),
            long.into_bytes(),
        ])
        .to_string();
        assert!(!error.contains(['\r', '\n']), "{error}");
        assert!(error.len() < 400, "{} bytes", error.len());
    }
}
