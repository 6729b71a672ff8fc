//! The RESP commands answered from the command itself and this shard's state, without waiting:
//! PING, ECHO, INFO, COMMAND, CONFIG GET, SELECT, CLIENT SETNAME/SETINFO, QUIT.
//!
//! INFO and CONFIG GET tell a Redis user what this server is: which Redis version clients
//! should assume (7.0, RESP2), whether writes are fsynced before their reply, and that the
//! keyspace keeps concurrent versions as siblings (not last-write-wins).

use std::fmt::Write;

use tessera_schema::resp::{write_array_header, write_bulk, write_integer, write_simple};
use tessera_schema::DEFAULT_KEYSPACE;

use super::command::{Arg, Command};
use super::RespShared;
use crate::runtime::route::ShardCtx;

/// The Redis version clients should assume: the command set and replies follow Redis 7.0 over
/// RESP2 (Tessera is not a Redis build; `tessera_version` is its own version).
const REDIS_VERSION_COMPATIBLE: &str = "7.0.0";
/// INFO's sections, in output order: the name INFO takes, and the title it prints.
const SECTIONS: [(&str, &str); 5] = [
    ("server", "Server"),
    ("clients", "Clients"),
    ("persistence", "Persistence"),
    ("keyspace", "Keyspace"),
    ("tessera", "Tessera"),
];

/// Appends the reply to a command that does not touch data.
pub fn answer(command: Command, ctx: &ShardCtx, shared: &RespShared, out: &mut Vec<u8>) {
    match command {
        Command::Ping(None) => write_simple(out, b"PONG"),
        Command::Ping(Some(message)) | Command::Echo(message) => write_bulk(out, &message),
        Command::Info(sections) => write_bulk(out, info(&sections, ctx, shared).as_bytes()),
        Command::CountCommands => write_integer(out, 0),
        Command::DescribeCommands => write_array_header(out, 0),
        Command::ConfigGet(patterns) => config_get(&patterns, shared, out),
        Command::Ok | Command::Quit => write_simple(out, b"OK"),
        // Data commands are routed by the connection to `store.rs`; never here.
        other => tessera_schema::resp::write_error(
            out,
            &format!("ERR internal: {other:?} is a data command"),
        ),
    }
}

/// INFO's text: every section, or the ones named (`default`, `all` and `everything` mean all).
fn info(asked: &[Arg], ctx: &ShardCtx, shared: &RespShared) -> String {
    let everything = asked.is_empty()
        || asked.iter().any(|a| {
            [&b"default"[..], b"all", b"everything"]
                .iter()
                .any(|all| a.eq_ignore_ascii_case(all))
        });
    let mut text = String::new();
    for (section, title) in SECTIONS {
        if everything
            || asked
                .iter()
                .any(|a| a.eq_ignore_ascii_case(section.as_bytes()))
        {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let _ = write!(text, "# {title}\r\n");
            write_section(&mut text, section, ctx, shared);
        }
    }
    text
}

fn write_section(text: &mut String, section: &str, ctx: &ShardCtx, shared: &RespShared) {
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = write!(text, "{key}:{value}\r\n");
    };
    match section {
        "server" => {
            line("redis_version", &REDIS_VERSION_COMPATIBLE);
            line("redis_mode", &"standalone");
            line("tessera_version", &env!("CARGO_PKG_VERSION"));
            line(
                "tessera_redis_compat",
                &"RESP2 front door; redis_version is the Redis whose commands and replies clients should assume",
            );
            line("process_id", &std::process::id());
            line("tcp_port", &shared.port);
            let uptime = shared.started.elapsed().as_secs();
            line("uptime_in_seconds", &uptime);
            line("uptime_in_days", &(uptime / 86_400));
        }
        "clients" => {
            line("connected_clients", &shared.clients.get());
        }
        "persistence" => {
            let (fsync, durable) = durability(shared.durable_writes);
            line("loading", &0);
            line("aof_enabled", &1);
            line("appendfsync", &fsync);
            line("tessera_durable_writes", &durable);
        }
        "keyspace" => {
            let keys = ctx.service.engine().key_count();
            if keys > 0 {
                let _ = write!(text, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
            }
        }
        _ => {
            line("keyspace", &DEFAULT_KEYSPACE);
            line("keyspace_default_conflicts", &"siblings");
            line(
                "resp_writes",
                &"SET, MSET and DEL overwrite (supersede every stored version); native blind writes still make siblings, which GET reports as an error",
            );
            line("shards", &shared.shards);
            line("shard", &shared.shard);
            line(
                "info_scope",
                &"connected_clients and db0 keys count this shard only (keys include deleted ones awaiting cleanup)",
            );
        }
    }
}

/// Redis's closest `appendfsync`, and the plain statement. Without durable writes the group
/// commit still fsyncs right behind the replies, which is nearer Redis's `everysec` than `no`.
fn durability(durable_writes: bool) -> (&'static str, &'static str) {
    if durable_writes {
        (
            "always",
            "yes (each write is fsynced to the commit log before its reply)",
        )
    } else {
        (
            "everysec",
            "no (writes are acknowledged before the commit log's fsync, which follows within one group commit)",
        )
    }
}

/// `CONFIG GET`: name/value pairs of the settings matching any pattern (glob, case-insensitive,
/// each setting once), enough for redis-benchmark's start-up (`save`, `appendonly`).
fn config_get(patterns: &[Arg], shared: &RespShared, out: &mut Vec<u8>) {
    let (fsync, _) = durability(shared.durable_writes);
    let bulk_max = shared.limits.codec.bulk_bytes_max.to_string();
    // The commit log is always on: the nearest Redis setting is an AOF that is never off.
    let settings: [(&str, &str); 5] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", fsync),
        ("databases", "1"),
        ("proto-max-bulk-len", &bulk_max),
    ];
    let matching: Vec<&(&str, &str)> = settings
        .iter()
        .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
        .collect();
    write_array_header(out, 2 * matching.len());
    for (name, value) in matching {
        write_bulk(out, name.as_bytes());
        write_bulk(out, value.as_bytes());
    }
}

/// Glob match with `*` and `?`, ASCII case-insensitive (as Redis matches CONFIG GET patterns;
/// `[...]` classes are taken literally here). Iterative with one backtrack point, so linear
/// in practice and never recursive on a peer's pattern.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_redis_config_get() {
        assert!(glob_match(b"save", b"save"));
        assert!(glob_match(b"SAVE", b"save"));
        assert!(glob_match(b"*", b"appendonly"));
        assert!(glob_match(b"append*", b"appendonly"));
        assert!(glob_match(b"*only", b"appendonly"));
        assert!(glob_match(b"a?pend*y", b"appendonly"));
        assert!(glob_match(b"**a**", b"save"));
        assert!(!glob_match(b"append", b"appendonly"));
        assert!(!glob_match(b"x*", b"save"));
        assert!(!glob_match(b"", b"save"));
        assert!(!glob_match(b"savex", b"save"));
    }
}
