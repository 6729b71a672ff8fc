//! The Redis (RESP2) front door against a real server: redis-cli and redis-benchmark work
//! unchanged, pipelined commands are answered in order (and see the writes before them),
//! malformed input closes only its own connection, Tessera's errors keep the connection
//! open, and siblings written by native clients are reported, then resolved by SET.
//!
//! redis-cli and redis-benchmark come from Debian's `redis-tools` (scripts/test.sh installs
//! it); a test fails, never skips, when they are missing. Each test runs its own server on
//! 127.0.0.8 with ports of its own, so the tests run in parallel.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{data_dir, put, start_expecting_failure_with, wait_or_kill, RawConn, Server};
use tessera_core::constants::{KEY_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT};
use tessera_schema::resp::{parse_reply, write_command, Reply, RespLimits};
use tessera_schema::Response;
use tessera_shard::constants::RESP_BULK_SLACK_BYTES;

/// Longest redis-cli or redis-benchmark may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a read waits for a reply before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Shards of every test server: keys live on both, so commands cross the mesh.
const SHARDS: u16 = 2;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 8], port))
}

/// A server with native port `port` (shards on the next ones) and RESP on `resp_port`.
fn server(dir: &std::path::Path, port: u16, resp_port: u16) -> Server {
    Server::start_with_resp(dir, addr(port), SHARDS, addr(resp_port))
}

/// Runs `program` to its end (bounded by [`TOOL_TIMEOUT`]); a missing program fails the test.
fn run_tool(program: &str, args: &[String]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install Debian's redis-tools (scripts/test.sh does)"
            )
        });
    // Drained on threads so that a chatty tool never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        err.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let Some(status) = wait_or_kill(&mut child, TOOL_TIMEOUT) else {
        panic!("{program} {args:?} still runs after {TOOL_TIMEOUT:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `redis-cli -h H -p P args...`: its output (raw mode, as it prints when not on a terminal).
fn redis_cli(resp: SocketAddr, args: &[&str]) -> String {
    let mut all = vec![
        "-h".to_string(),
        resp.ip().to_string(),
        "-p".into(),
        resp.port().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let output = run_tool("redis-cli", &all);
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn redis_cli_reads_and_writes_through_the_resp_port() {
    let dir = data_dir();
    let server = server(dir.path(), 19700, 16390);
    let resp = server.resp.unwrap();

    assert_eq!(redis_cli(resp, &["PING"]), "PONG\n");
    assert_eq!(redis_cli(resp, &["SET", "hello", "world"]), "OK\n");
    assert_eq!(redis_cli(resp, &["GET", "hello"]), "world\n");
    // The same data, read by the native client.
    let native = server.client().get(b"hello").unwrap();
    assert_eq!(native.values, vec![b"world".to_vec()]);

    assert_eq!(
        redis_cli(resp, &["MSET", "a", "1", "b", "2", "c", "3"]),
        "OK\n"
    );
    assert_eq!(
        redis_cli(resp, &["MGET", "a", "b", "c", "missing"]),
        "1\n2\n3\n\n"
    );
    assert_eq!(redis_cli(resp, &["DEL", "a", "b", "missing"]), "2\n");
    assert_eq!(redis_cli(resp, &["EXISTS", "a", "b", "c", "c"]), "2\n");
    assert_eq!(redis_cli(resp, &["GET", "a"]), "\n");
    assert_eq!(redis_cli(resp, &["SET", "hello", "again"]), "OK\n");
    assert_eq!(redis_cli(resp, &["GET", "hello"]), "again\n");

    let info = redis_cli(resp, &["INFO"]);
    for needle in [
        "# Server",
        "redis_version:7.0.0",
        &format!("tcp_port:{}", resp.port()),
        "# Persistence",
        "appendfsync:always",
        "keyspace_default_conflicts:siblings",
    ] {
        assert!(info.contains(needle), "INFO lacks {needle:?}:\n{info}");
    }
    let server_only = redis_cli(resp, &["INFO", "server"]);
    assert!(server_only.contains("process_id:") && !server_only.contains("# Tessera"));

    let unknown = redis_cli(resp, &["FLUSHALL"]);
    assert!(
        unknown.starts_with("ERR unknown command 'FLUSHALL'"),
        "{unknown}"
    );
    let ttl = redis_cli(resp, &["SET", "k", "v", "EX", "10"]);
    assert!(ttl.contains("Tessera has no TTL"), "{ttl}");
}

/// Output lines of redis-benchmark (its progress lines end in `\r`).
fn benchmark_lines(output: &Output) -> Vec<String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn redis_benchmark_runs_without_errors() {
    let dir = data_dir();
    let server = server(dir.path(), 19710, 16391);
    let resp = server.resp.unwrap();
    for pipeline in ["1", "16"] {
        let args: Vec<String> = [
            "-h",
            &resp.ip().to_string(),
            "-p",
            &resp.port().to_string(),
            "-t",
            "ping,set,get",
            "-n",
            "20000",
            "-c",
            "20",
            "-P",
            pipeline,
            "-q",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let output = run_tool("redis-benchmark", &args);
        let lines = benchmark_lines(&output);
        let all = lines.join("\n");
        assert!(
            output.status.success(),
            "-P {pipeline}: {}\n{all}",
            output.status
        );
        for line in &lines {
            let lower = line.to_lowercase();
            assert!(
                !line.contains("ERR") && !lower.contains("error") && !lower.contains("warning"),
                "-P {pipeline}: {line}\n{all}\n{}",
                server.log_tail()
            );
        }
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
            assert!(
                lines
                    .iter()
                    .any(|line| line.starts_with(&format!("{test}: "))
                        && line.contains("requests per second")),
                "-P {pipeline}: no result for {test}\n{all}"
            );
        }
    }
}

/// A raw RESP connection, for exact replies, pipelines and malformed input.
struct RespConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RespConn {
    fn connect(resp: SocketAddr) -> RespConn {
        let stream = TcpStream::connect_timeout(&resp, Duration::from_secs(2)).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RespConn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        write_command(&mut out, args);
        self.stream.write_all(&out).unwrap();
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next reply; `None` once the server closed the connection.
    fn read_reply(&mut self) -> Option<Reply> {
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf, &RespLimits::default()).unwrap() {
                self.buf.drain(..used);
                return Some(reply);
            }
            let mut chunk = [0u8; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no reply within {READ_TIMEOUT:?}: {e}"),
            }
        }
    }

    fn reply(&mut self) -> Reply {
        self.read_reply()
            .expect("connection closed before the reply")
    }

    fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.send(args);
        self.reply()
    }

    /// Whether nothing arrives within `quiet` (used between pieces of a partial command: the
    /// server must not answer before the command is whole).
    fn is_quiet_for(&mut self, quiet: Duration) -> bool {
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut byte = [0u8; 1];
        let quiet = matches!(
            self.stream.peek(&mut byte),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        );
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        quiet
    }
}

fn ok() -> Reply {
    Reply::Simple(b"OK".to_vec())
}

fn bulk(value: &[u8]) -> Reply {
    Reply::Bulk(Some(value.to_vec()))
}

fn nil() -> Reply {
    Reply::Bulk(None)
}

fn error_text(reply: &Reply) -> String {
    match reply {
        Reply::Error(text) => String::from_utf8_lossy(text).into_owned(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// A protocol error reply, then the server closes the connection.
fn expect_protocol_error(conn: &mut RespConn, what: &str) {
    let text = error_text(&conn.reply());
    assert!(text.starts_with("ERR Protocol error"), "{what}: {text}");
    assert_eq!(conn.read_reply(), None, "{what}: the connection stays open");
}

fn assert_serves(resp: SocketAddr, tag: &str) {
    let mut conn = RespConn::connect(resp);
    assert_eq!(
        conn.call(&[b"PING"]),
        Reply::Simple(b"PONG".to_vec()),
        "{tag}"
    );
    let key = format!("serves-{tag}");
    assert_eq!(
        conn.call(&[b"SET", key.as_bytes(), tag.as_bytes()]),
        ok(),
        "{tag}"
    );
    assert_eq!(
        conn.call(&[b"GET", key.as_bytes()]),
        bulk(tag.as_bytes()),
        "{tag}"
    );
}

#[test]
fn pipelined_commands_are_answered_in_order_and_see_earlier_writes() {
    let dir = data_dir();
    let server = server(dir.path(), 19720, 16392);
    let mut conn = RespConn::connect(server.resp.unwrap());
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut command = |args: &[&[u8]], reply: Reply| {
        write_command(&mut wire, args);
        expected.push(reply);
    };
    // Keys on both shards; each read comes right after the write it must see, and the hot
    // key's writes must apply in command order.
    let writes = 300;
    for i in 0..writes {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        command(&[b"SET", key.as_bytes(), value.as_bytes()], ok());
        command(&[b"GET", key.as_bytes()], bulk(value.as_bytes()));
        command(&[b"SET", b"hot", value.as_bytes()], ok());
    }
    let last = format!("value-{}", writes - 1);
    command(&[b"PING"], Reply::Simple(b"PONG".to_vec()));
    command(&[b"GET", b"hot"], bulk(last.as_bytes()));
    command(&[b"ECHO", b"hi"], bulk(b"hi"));
    command(&[b"GET", b"missing"], nil());
    command(&[b"MSET", b"m1", b"a", b"m2", b"b"], ok());
    command(
        &[b"MGET", b"m1", b"m2", b"missing"],
        Reply::Array(Some(vec![bulk(b"a"), bulk(b"b"), nil()])),
    );
    command(&[b"DEL", b"m1", b"missing", b"m1"], Reply::Integer(1));
    command(&[b"EXISTS", b"m1", b"m2", b"m2"], Reply::Integer(2));
    command(&[b"GET", b"m1"], nil());
    command(&[b"SET", b"m1", b"back"], ok());
    command(&[b"GET", b"m1"], bulk(b"back"));
    conn.send_raw(&wire);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&conn.reply(), want, "reply {i} of {}", expected.len());
    }
    // An unknown command and a wrong arity are answered in their place too.
    conn.send_raw(b"*2\r\n$6\r\nNOSUCH\r\n$1\r\nx\r\n*1\r\n$3\r\nGET\r\n*1\r\n$4\r\nPING\r\n");
    let unknown = error_text(&conn.reply());
    assert!(
        unknown.starts_with("ERR unknown command 'NOSUCH', with args beginning with: 'x'"),
        "{unknown}"
    );
    assert_eq!(
        error_text(&conn.reply()),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(conn.reply(), Reply::Simple(b"PONG".to_vec()));
}

#[test]
fn quit_answers_then_closes_after_earlier_replies() {
    let dir = data_dir();
    let server = server(dir.path(), 19730, 16393);
    let mut conn = RespConn::connect(server.resp.unwrap());
    let mut wire = Vec::new();
    write_command(&mut wire, &[b"SET", b"q", b"1"]);
    write_command(&mut wire, &[b"QUIT"]);
    write_command(&mut wire, &[b"PING"]);
    conn.send_raw(&wire);
    assert_eq!(conn.reply(), ok());
    assert_eq!(conn.reply(), ok());
    assert_eq!(conn.read_reply(), None, "nothing after QUIT is answered");
    assert_serves(server.resp.unwrap(), "after-quit");
}

#[test]
fn malformed_input_closes_only_its_own_connection() {
    let dir = data_dir();
    let server = server(dir.path(), 19740, 16394);
    let resp = server.resp.unwrap();
    let bulk_bytes_max = VALUE_BYTES_MAX_DEFAULT + RESP_BULK_SLACK_BYTES;
    let over_the_bulk_limit = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", bulk_bytes_max + 1);
    let cases: [(&str, &[u8]); 6] = [
        ("a bulk length that is not a number", b"*1\r\n$abc\r\n"),
        (
            "an absurd bulk length",
            b"*2\r\n$3\r\nGET\r\n$99999999999\r\n",
        ),
        ("a bulk over the limit", over_the_bulk_limit.as_bytes()),
        ("a negative array length", b"*-5\r\n"),
        ("an integer as an argument", b"*1\r\n:1\r\n"),
        ("an unbalanced quote", b"SET \"abc\r\n"),
    ];
    let mut bystander = RespConn::connect(resp);
    for (what, bytes) in cases {
        let mut conn = RespConn::connect(resp);
        // A good command first: it is answered before the error.
        let mut wire = Vec::new();
        write_command(&mut wire, &[b"PING"]);
        wire.extend_from_slice(bytes);
        conn.send_raw(&wire);
        assert_eq!(conn.reply(), Reply::Simple(b"PONG".to_vec()), "{what}");
        expect_protocol_error(&mut conn, what);
        assert_eq!(
            bystander.call(&[b"ECHO", what.as_bytes()]),
            bulk(what.as_bytes())
        );
    }
    assert_serves(resp, "after-malformed");
}

#[test]
fn tessera_errors_keep_the_connection_serving() {
    let dir = data_dir();
    let server = server(dir.path(), 19750, 16395);
    let mut conn = RespConn::connect(server.resp.unwrap());
    let big_value = vec![b'v'; VALUE_BYTES_MAX_DEFAULT + 1];
    let too_large = error_text(&conn.call(&[b"SET", b"big", &big_value]));
    assert!(too_large.starts_with("ERR too large"), "{too_large}");
    assert_eq!(conn.call(&[b"GET", b"big"]), nil());
    let long_key = vec![b'k'; KEY_BYTES_MAX_DEFAULT + 1];
    let too_long = error_text(&conn.call(&[b"SET", &long_key, b"v"]));
    assert!(too_long.starts_with("ERR too large"), "{too_long}");
    let empty = error_text(&conn.call(&[b"GET", b""]));
    assert!(empty.contains("the key is empty"), "{empty}");
    // The largest value Tessera takes goes through and comes back whole.
    let largest = vec![b'x'; VALUE_BYTES_MAX_DEFAULT];
    assert_eq!(conn.call(&[b"SET", b"largest", &largest]), ok());
    assert_eq!(conn.call(&[b"GET", b"largest"]), bulk(&largest));
    for (args, needle) in [
        (&[&b"SET"[..], b"k", b"v", b"NX"][..], "no conditional put"),
        (&[b"SET", b"k", b"v", b"bogus"], "syntax error"),
        (&[b"SELECT", b"1"], "one database"),
        (&[b"CONFIG", b"SET", b"save", b""], "CONFIG SET"),
    ] {
        let text = error_text(&conn.call(args));
        assert!(text.contains(needle), "{text}");
    }
    assert_eq!(conn.call(&[b"SELECT", b"0"]), ok());
    assert_eq!(conn.call(&[b"COMMAND", b"COUNT"]), Reply::Integer(0));
    assert_eq!(conn.call(&[b"PING", b"still here"]), bulk(b"still here"));
}

#[test]
fn a_command_arriving_in_pieces_is_served_once_whole() {
    let dir = data_dir();
    let server = server(dir.path(), 19760, 16396);
    let mut conn = RespConn::connect(server.resp.unwrap());
    let pieces: [&[u8]; 3] = [
        b"*3\r\n$3\r\nSET\r\n$5\r\npie",
        b"ce\r\n$5\r\nhel",
        b"lo\r\n",
    ];
    for (i, piece) in pieces.iter().enumerate() {
        conn.send_raw(piece);
        if i + 1 < pieces.len() {
            assert!(
                conn.is_quiet_for(Duration::from_millis(100)),
                "answered after piece {i}"
            );
        }
    }
    assert_eq!(conn.reply(), ok());
    // One byte per write, inline form included.
    for byte in b"*2\r\n$3\r\nGET\r\n$5\r\npiece\r\nECHO \"two words\"\r\n" {
        conn.send_raw(std::slice::from_ref(byte));
    }
    assert_eq!(conn.reply(), bulk(b"hello"));
    assert_eq!(conn.reply(), bulk(b"two words"));
}

#[test]
fn siblings_are_reported_until_set_overwrites_them() {
    let dir = data_dir();
    let server = server(dir.path(), 19770, 16397);
    let mut native = RawConn::connect(server.addr);
    for value in [&b"one"[..], b"two"] {
        assert!(matches!(native.call(&put(b"sib", value)), Response::Put(_)));
    }
    let mut conn = RespConn::connect(server.resp.unwrap());
    let siblings = error_text(&conn.call(&[b"GET", b"sib"]));
    assert!(
        siblings.starts_with("ERR key has 2 concurrent versions (siblings)")
            && siblings.contains("tessera get")
            && siblings.contains("SET the key to overwrite"),
        "{siblings}"
    );
    match conn.call(&[b"MGET", b"sib", b"missing"]) {
        Reply::Array(Some(items)) => {
            assert!(matches!(&items[0], Reply::Error(text) if text.starts_with(b"ERR key has 2")));
            assert_eq!(items[1], nil());
        }
        other => panic!("MGET: {other:?}"),
    }
    assert_eq!(conn.call(&[b"EXISTS", b"sib"]), Reply::Integer(1));
    assert_eq!(conn.call(&[b"SET", b"sib", b"three"]), ok());
    assert_eq!(conn.call(&[b"GET", b"sib"]), bulk(b"three"));
    let read = server.client().get(b"sib").unwrap();
    assert_eq!(read.values, vec![b"three".to_vec()], "SET left one version");
    assert_eq!(conn.call(&[b"DEL", b"sib"]), Reply::Integer(1));
    assert!(server.client().get(b"sib").unwrap().values.is_empty());
}

/// Another node serving RESP on the port: glommio binds with SO_REUSEPORT, so the bind alone
/// would succeed beside it; the start-up probe must see the port taken and refuse.
#[test]
fn start_up_refuses_a_resp_port_another_node_serves() {
    let dir = data_dir();
    let first = server(dir.path(), 19780, 16398);
    let resp = first.resp.unwrap();
    let other_dir = data_dir();
    let failed = start_expecting_failure_with(
        other_dir.path(),
        addr(19790),
        SHARDS,
        Some(resp),
        TOOL_TIMEOUT,
    );
    assert!(!failed.status.success());
    assert!(
        failed.stderr.contains(&format!("cannot listen on {resp}")),
        "the error names the RESP address: {}",
        failed.stderr
    );
    assert_serves(resp, "after-refused-start");
}
