//! A command's arguments (as the RESP codec hands them over) to a typed [`Command`].
//!
//! Names and subcommands are case-insensitive, as in Redis. Every refusal is a
//! [`CommandError`] (`refusal.rs`); the connection keeps serving after any of them.

use tessera_schema::BATCH_ITEMS_MAX;

pub use super::refusal::CommandError;
use super::refusal::{unknown, unknown_subcommand};

/// One argument: a RESP bulk string.
pub type Arg = Vec<u8>;

/// A command Tessera answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `PING [message]`.
    Ping(Option<Arg>),
    /// `ECHO message`.
    Echo(Arg),
    /// `GET key`.
    Get(Arg),
    /// `SET key value`: an overwrite.
    Set {
        /// The key.
        key: Arg,
        /// The value.
        value: Arg,
    },
    /// `DEL key [key ...]`.
    Del(Vec<Arg>),
    /// `EXISTS key [key ...]`.
    Exists(Vec<Arg>),
    /// `MGET key [key ...]`.
    MGet(Vec<Arg>),
    /// `MSET key value [key value ...]`: keys at even positions, each followed by its value.
    MSet(Vec<Arg>),
    /// `INFO [section ...]`.
    Info(Vec<Arg>),
    /// `COMMAND COUNT`: Tessera publishes no command table, so 0.
    CountCommands,
    /// `COMMAND`, `COMMAND DOCS|INFO|LIST`: an empty array (enough for redis-cli's start-up).
    DescribeCommands,
    /// `CONFIG GET pattern [pattern ...]`.
    ConfigGet(Vec<Arg>),
    /// `SELECT 0`, `CLIENT SETNAME|SETINFO`: accepted, nothing to do.
    Ok,
    /// `QUIT`: reply, then close once every earlier reply is written.
    Quit,
}

impl Command {
    /// Whether the command reads or writes keys (so it may have to wait for another shard or
    /// for the commit log), as opposed to being answered from itself and local state.
    pub fn touches_store(&self) -> bool {
        matches!(
            self,
            Command::Get(_)
                | Command::Set { .. }
                | Command::Del(_)
                | Command::Exists(_)
                | Command::MGet(_)
                | Command::MSet(_)
        )
    }

    /// Keys whose current value the command reads (DEL reads before it deletes).
    pub fn read_keys(&self) -> &[Arg] {
        match self {
            Command::Get(key) => std::slice::from_ref(key),
            Command::MGet(keys) | Command::Exists(keys) | Command::Del(keys) => keys,
            _ => &[],
        }
    }

    /// Keys the command writes in a single step (SET, MSET).
    pub fn written_keys(&self) -> impl Iterator<Item = &Arg> {
        let (args, step) = match self {
            Command::Set { key, .. } => (std::slice::from_ref(key), 1),
            Command::MSet(pairs) => (pairs.as_slice(), 2),
            _ => (&[][..], 1),
        };
        args.iter().step_by(step)
    }

    /// Whether the command works in several rounds (DEL reads, then deletes; a read of more
    /// keys than one batch reads batch after batch), so that a later command could overtake
    /// its later rounds: nothing after it starts until it has finished.
    pub fn is_barrier(&self) -> bool {
        match self {
            Command::Del(_) => true,
            Command::MGet(keys) | Command::Exists(keys) => keys.len() > BATCH_ITEMS_MAX,
            _ => false,
        }
    }
}

/// Longest command name matched (longer ones are unknown); covers every name below.
const NAME_BYTES_MAX: usize = 16;

/// Parses one command (the codec's empty commands, blank lines, are skipped before: an empty
/// one here is a syntax error).
pub fn parse(mut args: Vec<Arg>) -> Result<Command, CommandError> {
    let Some(name) = args.first() else {
        return Err(CommandError::Syntax);
    };
    let (name, len) = upper(name);
    let n = args.len();
    let arity = |ok: bool, name: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(CommandError::Arity(name))
        }
    };
    Ok(match &name[..len] {
        b"GET" => {
            arity(n == 2, "get")?;
            Command::Get(take(&mut args, 1))
        }
        b"SET" => {
            arity(n >= 3, "set")?;
            check_set_options(&args[3..])?;
            Command::Set {
                key: take(&mut args, 1),
                value: take(&mut args, 2),
            }
        }
        b"DEL" => {
            arity(n >= 2, "del")?;
            Command::Del(rest(args))
        }
        b"EXISTS" => {
            arity(n >= 2, "exists")?;
            Command::Exists(rest(args))
        }
        b"MGET" => {
            arity(n >= 2, "mget")?;
            Command::MGet(rest(args))
        }
        b"MSET" => {
            // Redis's check: at least one pair, and whole pairs only.
            arity(n >= 3 && n % 2 == 1, "mset")?;
            Command::MSet(rest(args))
        }
        b"PING" => {
            arity(n <= 2, "ping")?;
            Command::Ping((n == 2).then(|| take(&mut args, 1)))
        }
        b"ECHO" => {
            arity(n == 2, "echo")?;
            Command::Echo(take(&mut args, 1))
        }
        b"INFO" => Command::Info(rest(args)),
        b"COMMAND" => command_subcommand(&args)?,
        b"CONFIG" => config_subcommand(args)?,
        b"SELECT" => {
            arity(n == 2, "select")?;
            if args[1] != b"0" {
                return Err(CommandError::NoSuchDatabase);
            }
            Command::Ok
        }
        b"CLIENT" => client_subcommand(&args)?,
        b"QUIT" => Command::Quit,
        _ => return Err(unknown(&args)),
    })
}

/// SET's options after the value: each names a feature Tessera does not have yet.
fn check_set_options(options: &[Arg]) -> Result<(), CommandError> {
    let Some(first) = options.first() else {
        return Ok(());
    };
    let (option, len) = upper(first);
    let (option, missing) = match &option[..len] {
        b"EX" => ("EX", "TTL"),
        b"PX" => ("PX", "TTL"),
        b"EXAT" => ("EXAT", "TTL"),
        b"PXAT" => ("PXAT", "TTL"),
        b"KEEPTTL" => ("KEEPTTL", "TTL"),
        b"NX" => ("NX", "conditional put"),
        b"XX" => ("XX", "conditional put"),
        b"GET" => ("GET", "atomic get-and-set (GET the key first)"),
        _ => return Err(CommandError::Syntax),
    };
    Err(CommandError::UnsupportedSetOption { option, missing })
}

fn command_subcommand(args: &[Arg]) -> Result<Command, CommandError> {
    let Some(sub) = args.get(1) else {
        return Ok(Command::DescribeCommands);
    };
    let (upper_sub, len) = upper(sub);
    match &upper_sub[..len] {
        b"COUNT" => Ok(Command::CountCommands),
        b"DOCS" | b"INFO" | b"LIST" => Ok(Command::DescribeCommands),
        _ => Err(unknown_subcommand("COMMAND", sub)),
    }
}

fn config_subcommand(mut args: Vec<Arg>) -> Result<Command, CommandError> {
    let Some(sub) = args.get(1) else {
        return Err(CommandError::Arity("config"));
    };
    let (upper_sub, len) = upper(sub);
    match &upper_sub[..len] {
        b"GET" if args.len() >= 3 => Ok(Command::ConfigGet(args.split_off(2))),
        b"GET" => Err(CommandError::Arity("config|get")),
        b"SET" => Err(CommandError::ConfigSet),
        _ => Err(unknown_subcommand("CONFIG", sub)),
    }
}

fn client_subcommand(args: &[Arg]) -> Result<Command, CommandError> {
    let Some(sub) = args.get(1) else {
        return Err(CommandError::Arity("client"));
    };
    let (upper_sub, len) = upper(sub);
    match &upper_sub[..len] {
        b"SETNAME" if args.len() == 3 => Ok(Command::Ok),
        b"SETNAME" => Err(CommandError::Arity("client|setname")),
        b"SETINFO" if args.len() == 4 => Ok(Command::Ok),
        b"SETINFO" => Err(CommandError::Arity("client|setinfo")),
        _ => Err(unknown_subcommand("CLIENT", sub)),
    }
}

/// `name` in upper case in a stack buffer (no allocation per command); a name longer than any
/// command comes back empty, which matches nothing.
fn upper(name: &[u8]) -> ([u8; NAME_BYTES_MAX], usize) {
    let mut buf = [0u8; NAME_BYTES_MAX];
    if name.len() > NAME_BYTES_MAX {
        return (buf, 0);
    }
    for (to, from) in buf.iter_mut().zip(name) {
        *to = from.to_ascii_uppercase();
    }
    (buf, name.len())
}

fn take(args: &mut [Arg], i: usize) -> Arg {
    std::mem::take(&mut args[i])
}

/// The arguments after the name.
fn rest(mut args: Vec<Arg>) -> Vec<Arg> {
    args.remove(0);
    args
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Arg> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn text(words: &[&str]) -> String {
        parse(args(words)).unwrap_err().to_string()
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(parse(args(&["get", "k"])), Ok(Command::Get(b"k".to_vec())));
        assert_eq!(parse(args(&["GeT", "k"])), Ok(Command::Get(b"k".to_vec())));
        let set = Command::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        };
        assert_eq!(parse(args(&["sEt", "k", "v"])), Ok(set));
        assert_eq!(parse(args(&["ping"])), Ok(Command::Ping(None)));
        assert_eq!(
            parse(args(&["command", "docs"])),
            Ok(Command::DescribeCommands)
        );
        assert_eq!(
            parse(args(&["Command", "Count"])),
            Ok(Command::CountCommands)
        );
        assert_eq!(parse(args(&["select", "0"])), Ok(Command::Ok));
        assert_eq!(parse(args(&["client", "setname", "x"])), Ok(Command::Ok));
        assert_eq!(
            parse(args(&["config", "get", "save", "appendonly"])),
            Ok(Command::ConfigGet(args(&["save", "appendonly"])))
        );
        assert_eq!(
            parse(args(&["mset", "a", "1", "b", "2"])),
            Ok(Command::MSet(args(&["a", "1", "b", "2"])))
        );
    }

    #[test]
    fn refusals_use_redis_texts() {
        assert_eq!(
            text(&["foo", "a", "b"]),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            text(&["foo"]),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            text(&["get"]),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            text(&["mset", "a", "1", "b"]),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            text(&["ping", "a", "b"]),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(text(&["set", "k", "v", "bogus"]), "ERR syntax error");
        assert_eq!(
            text(&["set", "k", "v", "ex", "10"]),
            "ERR SET option EX is not supported yet: Tessera has no TTL"
        );
        assert_eq!(
            text(&["set", "k", "v", "nx"]),
            "ERR SET option NX is not supported yet: Tessera has no conditional put"
        );
        assert!(text(&["set", "k", "v", "get"]).starts_with("ERR SET option GET"));
        assert_eq!(text(&["select", "1"]), "ERR Tessera has one database (0)");
        assert_eq!(
            text(&["client", "kill"]),
            "ERR unknown subcommand 'kill'. Try CLIENT HELP."
        );
        assert!(text(&["config", "set", "save", ""]).starts_with("ERR CONFIG SET"));
    }
}
