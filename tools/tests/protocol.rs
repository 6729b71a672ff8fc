//! Protocol abuse against a real server: oversized, empty and undecodable frames, clients that
//! vanish mid-request, deep pipelining, requests that decode but break a rule, and connection
//! churn.
//!
//! What every test checks, besides its own case: the abuse is answered with the typed error the
//! protocol promises (`conn.rs`: a bad frame gets one error with id 0, then the connection is
//! closed; a bad request that decodes gets an error under its own id and the connection stays
//! open), and the server keeps serving everyone else. Each test runs its own server on
//! 127.0.0.3 and a port of its own, so the tests run in parallel.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{data_dir, get, put, RawConn, Server};
use rand::{Rng, SeedableRng};
use tessera_client::Client;
use tessera_core::constants::{KEY_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT};
use tessera_schema::{
    decode_request, BatchGetRequest, BatchPutRequest, Consistency, DeleteRequest, Durability,
    ErrorCode, GetRequest, PutItem, PutRequest, Request, Response, WireError, BATCH_ITEMS_MAX,
    CONSISTENCY_REPLICAS_MAX, DEFAULT_KEYSPACE,
};
use tessera_shard::constants::{FRAME_BYTES_MAX_DEFAULT, INFLIGHT_PER_CONNECTION_MAX_DEFAULT};

/// Longest a test waits for a condition it polls (fds released, a worker making progress).
const POLL_DEADLINE: Duration = Duration::from_secs(20);
/// How much the server's resident memory may grow while refusing hostile frames. Allocating
/// even one of the announced frames would cost 4 MiB (at the limit) or 4 GiB (u32::MAX).
const RSS_GROWTH_KIB_MAX: u64 = 8 << 10;
/// Connections used to probe whether announced sizes are allocated.
const HOSTILE_CONNECTIONS: usize = 50;
/// File descriptors the server may hold above its baseline once abusive clients are gone
/// (listeners and logs are in the baseline; the tests hold no other connection then, so this
/// only absorbs a stray one).
const FD_SLACK: usize = 2;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 3], port))
}

/// A response, abbreviated so that a 1 MiB value does not flood a failure message.
fn short(response: &Response) -> String {
    let mut text = format!("{response:?}");
    if text.len() > 300 {
        text.truncate(300);
        text.push_str("...");
    }
    text
}

fn expect_error(response: &Response, code: ErrorCode, what: &str) -> WireError {
    match response {
        Response::Error(e) if e.code == code => e.clone(),
        other => panic!("{what}: expected a {code} error, got {}", short(other)),
    }
}

/// The connection-level refusal: exactly one error answer with id 0, then the server closes.
fn expect_refusal(conn: &mut RawConn, code: ErrorCode, what: &str) -> WireError {
    let (id, response) = conn
        .read_response()
        .unwrap_or_else(|| panic!("{what}: connection closed without an error answer"));
    assert_eq!(id, 0, "{what}: refusal must carry id 0");
    let error = expect_error(&response, code, what);
    assert!(
        conn.read_response().is_none(),
        "{what}: the server answered again instead of closing the connection"
    );
    error
}

/// A ping with a payload must come back as a pong with the same payload.
fn expect_pong(conn: &mut RawConn, what: &str) {
    let payload = what.as_bytes().to_vec();
    let response = conn.call(&Request::Ping(payload.clone()));
    assert_eq!(response, Response::Pong(payload), "{what}: ping after it");
}

/// A fresh routing client pings every shard, then writes and reads back new keys.
fn assert_serves(server: &Server, tag: &str) {
    let client = server.client();
    client.ping().unwrap();
    for i in 0..8 {
        let key = format!("serves-{tag}-{i}");
        let value = format!("value-{tag}-{i}");
        client.put(key.as_bytes(), value.as_bytes(), None).unwrap();
        assert_eq!(
            client.get(key.as_bytes()).unwrap().values,
            vec![value.into_bytes()],
            "{tag}: {key} read back wrong"
        );
    }
}

/// Polls until the server has accepted every connection made to it (its listeners' queues are
/// empty) and holds at most `baseline + FD_SLACK` descriptors: every connection an abusive
/// client opened has been closed on the server's side too.
fn wait_for_fds(server: &Server, baseline: usize, what: &str) {
    let mut listeners = vec![server.addr];
    listeners.extend((0..server.shards).map(|s| server.shard_addr(s)));
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let backlog: u64 = listeners
            .iter()
            .flat_map(|&at| tcp_receive_queues(at, TCP_LISTEN))
            .sum();
        let open = server.open_fds();
        if backlog == 0 && open <= baseline + FD_SLACK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: after {POLL_DEADLINE:?} the server holds {open} descriptors (baseline \
             {baseline}) and has {backlog} connections waiting to be accepted: connections leak"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A key of exactly `len` bytes owned by `shard` (by the server's published shard map).
fn key_of_len(client: &Client, len: usize, shard: u16) -> Vec<u8> {
    for n in 0..10_000u32 {
        let mut key = vec![b'k'; len];
        let digits = n.to_string();
        let at = len.saturating_sub(digits.len());
        key[at..].copy_from_slice(&digits.as_bytes()[..len - at]);
        if client.shard_of(&key) == shard {
            return key;
        }
    }
    panic!("no key of {len} bytes lands on shard {shard}");
}

#[test]
fn oversized_length_prefix_is_refused_without_allocating_it() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18000), 1);
    let limit = FRAME_BYTES_MAX_DEFAULT;

    // Just over the limit and as large as a prefix goes: TooLarge, naming the limit.
    for len in [limit + 1, u32::MAX as usize] {
        let mut conn = RawConn::connect(server.addr);
        conn.stream
            .write_all(&u32::try_from(len).unwrap().to_le_bytes())
            .unwrap();
        let error = expect_refusal(&mut conn, ErrorCode::TooLarge, &format!("prefix {len}"));
        assert!(
            error.message.contains(&limit.to_string()),
            "the refusal should name the limit: {error}"
        );
    }
    // Exactly the limit is a legal size: the body is read, and refused only for its content.
    let mut conn = RawConn::connect(server.addr);
    let mut frame = u32::try_from(limit).unwrap().to_le_bytes().to_vec();
    frame.resize(4 + limit, 0);
    conn.stream.write_all(&frame).unwrap();
    expect_refusal(&mut conn, ErrorCode::BadRequest, "zeroed body at the limit");

    // Many connections announcing ~4 GiB each at once: none of it may be allocated.
    let before = server.rss_kib();
    let mut conns: Vec<RawConn> = (0..HOSTILE_CONNECTIONS)
        .map(|_| RawConn::connect(server.addr))
        .collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        let len = u32::MAX - u32::try_from(i).unwrap();
        conn.stream.write_all(&len.to_le_bytes()).unwrap();
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        expect_refusal(
            conn,
            ErrorCode::TooLarge,
            &format!("hostile connection {i}"),
        );
    }
    let after = server.rss_kib();
    assert!(
        after < before + RSS_GROWTH_KIB_MAX,
        "RSS grew from {before} KiB to {after} KiB while refusing {HOSTILE_CONNECTIONS} oversized frames"
    );
    assert!(server.is_running());
    assert_serves(&server, "after-oversized");
    server.stop();
}

/// TCP states as /proc/net/tcp prints them.
const TCP_ESTABLISHED: &str = "01";
const TCP_LISTEN: &str = "0A";

/// The receive queue of every socket bound to `local` in `state`, from /proc/net/tcp: for an
/// established socket the bytes not yet read by its owner, for a listener the connections
/// not yet accepted.
fn tcp_receive_queues(local: SocketAddr, state: &str) -> Vec<u64> {
    let SocketAddr::V4(local) = local else {
        panic!("IPv4 only")
    };
    // /proc/net/tcp prints the address as the in-memory u32 (little-endian here) in hex.
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(local.ip().octets()),
        local.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl, local address, remote address, state, tx_queue:rx_queue, ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&want.as_str()) && fields.get(3) == Some(&state))
                .then(|| u64::from_str_radix(fields[4].split(':').nth(1).unwrap(), 16).unwrap())
        })
        .collect()
}

#[test]
fn announced_frame_that_never_arrives_does_not_pin_memory() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18010), 1);
    let limit = u32::try_from(FRAME_BYTES_MAX_DEFAULT).unwrap();
    let before = server.rss_kib();
    // A legal prefix (exactly the limit) and a few body bytes, then nothing: a slow or hostile
    // client. Memory should follow the bytes that arrived, not the size announced.
    let mut conns: Vec<RawConn> = (0..HOSTILE_CONNECTIONS)
        .map(|_| RawConn::connect(server.addr))
        .collect();
    for conn in &mut conns {
        let mut start = limit.to_le_bytes().to_vec();
        start.extend_from_slice(&[7u8; 100]);
        conn.stream.write_all(&start).unwrap();
    }
    // Wait until the server has read every byte sent (so it has sized its buffers for them).
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let unread = tcp_receive_queues(server.addr, TCP_ESTABLISHED);
        if unread.len() >= HOSTILE_CONNECTIONS && unread.iter().all(|&n| n == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not read the stalled clients' bytes: {unread:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // One round trip more so the shard has run past those reads.
    expect_pong(&mut RawConn::connect(server.addr), "stalled frames");
    let after = server.rss_kib();
    assert!(
        after < before + RSS_GROWTH_KIB_MAX,
        "RSS grew from {before} KiB to {after} KiB: {HOSTILE_CONNECTIONS} clients that announced \
         {limit}-byte frames and sent 100 bytes each pin ~{} KiB",
        after - before
    );
    drop(conns);
    assert_serves(&server, "after-stalled");
    server.stop();
}

/// A body of random bytes that is not a request (checked: random bytes could, in principle,
/// verify as a flatbuffer).
fn garbage_body(rng: &mut impl Rng) -> Vec<u8> {
    for _ in 0..100 {
        let len = rng.gen_range(1..=512);
        let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if decode_request(&body).is_err() {
            return body;
        }
    }
    panic!("100 random bodies in a row decoded as requests");
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn garbage_frames_are_refused_while_other_clients_keep_working() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18020), 2);
    let ports = [server.addr, server.shard_addr(0), server.shard_addr(1)];

    // A well-behaved client on its own connections: put, then read back, in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let worker = {
        let (client, stop, ops) = (server.client(), stop.clone(), ops.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(60);
            for i in 0..1_000_000u64 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return Ok(());
                }
                let (key, value) = (format!("steady-{i}"), format!("value-{i}"));
                client
                    .put(key.as_bytes(), value.as_bytes(), None)
                    .map_err(|e| format!("put {key}: {e}"))?;
                let read = client
                    .get(key.as_bytes())
                    .map_err(|e| format!("get {key}: {e}"))?;
                if read.values != vec![value.into_bytes()] {
                    return Err(format!("get {key}: wrong values {:?}", read.values));
                }
                ops.fetch_add(2, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let wait_for_ops = |above: u64| {
        let deadline = Instant::now() + POLL_DEADLINE;
        while ops.load(Ordering::Relaxed) <= above {
            assert!(!worker.is_finished(), "the steady client stopped early");
            assert!(
                Instant::now() < deadline,
                "the steady client made no progress"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for_ops(0);
    let at_start = ops.load(Ordering::Relaxed);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9a7ba9e);
    for i in 0..60 {
        let mut conn = RawConn::connect(ports[i % ports.len()]);
        conn.stream
            .write_all(&framed(&garbage_body(&mut rng)))
            .unwrap();
        expect_refusal(&mut conn, ErrorCode::BadRequest, &format!("garbage {i}"));
    }
    // A valid request ahead of the garbage, in the same write, is still answered under its id.
    for (i, port) in ports.iter().enumerate() {
        let mut conn = RawConn::connect(*port);
        let key = format!("before-garbage-{i}");
        let mut bytes = Vec::new();
        let id = conn.encode(&put(key.as_bytes(), b"v"), &mut bytes);
        bytes.extend(framed(&garbage_body(&mut rng)));
        conn.stream.write_all(&bytes).unwrap();
        let mut answers = HashMap::new();
        while let Some((got, response)) = conn.read_response() {
            assert!(answers.insert(got, response).is_none(), "id {got} twice");
            assert!(
                answers.len() <= 2,
                "more answers than requests: {answers:?}"
            );
        }
        assert!(
            matches!(answers.get(&id), Some(Response::Put(_))),
            "{key}: the valid request was not answered: {answers:?}"
        );
        expect_error(&answers[&0], ErrorCode::BadRequest, "garbage after a put");
    }
    let during = ops.load(Ordering::Relaxed);
    wait_for_ops(during);

    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap().unwrap();
    let total = ops.load(Ordering::Relaxed);
    assert!(
        total > at_start,
        "the steady client did nothing while garbage arrived"
    );
    assert_serves(&server, "after-garbage");
    server.stop();
}

#[test]
fn zero_length_frame_is_refused() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18030), 1);
    // As the first bytes of a connection.
    let mut conn = RawConn::connect(server.addr);
    conn.stream.write_all(&0u32.to_le_bytes()).unwrap();
    expect_refusal(&mut conn, ErrorCode::BadRequest, "empty frame first");
    // After a normal exchange.
    let mut conn = RawConn::connect(server.addr);
    expect_pong(&mut conn, "before the empty frame");
    conn.stream.write_all(&0u32.to_le_bytes()).unwrap();
    expect_refusal(&mut conn, ErrorCode::BadRequest, "empty frame after a ping");
    assert_serves(&server, "after-empty");
    server.stop();
}

#[test]
fn clients_that_vanish_mid_request_do_not_disturb_the_server() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18040), 2);
    let ports = [server.addr, server.shard_addr(0), server.shard_addr(1)];
    let mut bystander = RawConn::connect(server.addr);
    expect_pong(&mut bystander, "bystander before");
    let baseline = server.open_fds();

    // (a) Half a frame, then gone.
    for i in 0..20 {
        let mut conn = RawConn::connect(ports[i % ports.len()]);
        let mut bytes = Vec::new();
        conn.encode(&put(format!("half-{i}").as_bytes(), b"never"), &mut bytes);
        conn.stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
    }
    wait_for_fds(&server, baseline, "half frames");
    expect_pong(&mut bystander, "bystander after half frames");
    assert_serves(&server, "after-half-frames");
    let client = server.client();
    for i in 0..20 {
        let key = format!("half-{i}");
        assert!(
            client.get(key.as_bytes()).unwrap().is_not_found(),
            "{key}: half a frame was applied"
        );
    }
    drop(client);

    // (b) A whole put, then gone without reading the answer. It may or may not be applied,
    // but if it is, it is applied whole.
    for i in 0..20 {
        let mut conn = RawConn::connect(ports[i % ports.len()]);
        conn.send(&put(
            format!("abandoned-{i}").as_bytes(),
            b"abandoned-value",
        ));
    }
    wait_for_fds(&server, baseline, "abandoned puts");
    expect_pong(&mut bystander, "bystander after abandoned puts");
    assert_serves(&server, "after-abandoned");
    let client = server.client();
    for i in 0..20 {
        let key = format!("abandoned-{i}");
        let values = client.get(key.as_bytes()).unwrap().values;
        assert!(
            values.is_empty() || values == vec![b"abandoned-value".to_vec()],
            "{key}: {values:?}"
        );
    }
    drop(client);

    // (c) 100 pipelined requests, gone before any answer; several connections at once.
    let conns: Vec<RawConn> = (0..5)
        .map(|c| {
            let mut conn = RawConn::connect(ports[c % ports.len()]);
            let mut bytes = Vec::new();
            for i in 0..50 {
                let key = format!("pipelined-{c}-{i}");
                conn.encode(&put(key.as_bytes(), b"x"), &mut bytes);
                conn.encode(&get(format!("serves-x-{i}").as_bytes()), &mut bytes);
            }
            conn.stream.write_all(&bytes).unwrap();
            conn
        })
        .collect();
    drop(conns);
    wait_for_fds(&server, baseline, "abandoned pipelines");
    expect_pong(&mut bystander, "bystander after abandoned pipelines");
    assert_serves(&server, "after-pipelines");
    assert!(server.is_running());
    server.stop();
}

/// What a pipelined request must be answered with.
#[derive(Debug)]
enum Expect {
    Put,
    Get(Vec<u8>),
}

/// Sends `requests` on `conn` in one go from a separate thread (so that neither side can block
/// the other on full socket buffers), reads every answer and checks each id is answered once,
/// with the right kind (and value, for gets).
fn pipeline(conn: &mut RawConn, requests: Vec<(Request, Expect)>) {
    let mut bytes = Vec::new();
    let mut expected = HashMap::new();
    for (request, expect) in requests {
        let id = conn.encode(&request, &mut bytes);
        expected.insert(id, expect);
    }
    let total = expected.len();
    let mut stream = conn.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || stream.write_all(&bytes).unwrap());
    for n in 0..total {
        let (id, response) = conn
            .read_response()
            .unwrap_or_else(|| panic!("connection closed after {n} of {total} answers"));
        let expect = expected
            .remove(&id)
            .unwrap_or_else(|| panic!("answer for id {id}, unknown or already answered"));
        match (&expect, &response) {
            (Expect::Put, Response::Put(_)) => {}
            (Expect::Get(value), Response::Get(got)) if got.values == vec![value.clone()] => {}
            _ => panic!("id {id}: expected {expect:?}, got {}", short(&response)),
        }
    }
    writer.join().unwrap();
    assert!(expected.is_empty());
    // Nothing extra is queued: the next answer is the next request's.
    expect_pong(conn, "after the pipeline");
}

#[test]
fn pipelined_requests_are_each_answered_once() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18050), 3);
    let client = server.client();
    // Keys read by the pipeline, written beforehand (answers of one connection may come back in
    // any order, so reads and writes in flight together touch different keys).
    let seeded: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("seeded-{i}"), format!("seeded-value-{i}")))
        .collect();
    let pairs: Vec<(&[u8], &[u8], _)> = seeded
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes(), None))
        .collect();
    for result in client.put_many(&pairs).unwrap() {
        result.unwrap();
    }
    let mut owners: Vec<u16> = seeded[..100]
        .iter()
        .map(|(k, _)| client.shard_of(k.as_bytes()))
        .collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners, vec![0, 1, 2], "the keys should span every shard");

    let mixed = |round: &str, n: usize| -> Vec<(Request, Expect)> {
        (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    let key = format!("pipe-{round}-{i}");
                    (put(key.as_bytes(), key.as_bytes()), Expect::Put)
                } else {
                    let (k, v) = &seeded[i / 2 % seeded.len()];
                    (get(k.as_bytes()), Expect::Get(v.clone().into_bytes()))
                }
            })
            .collect()
    };
    let mut conn = RawConn::connect(server.addr);
    pipeline(&mut conn, mixed("a", 200));
    // Deeper than the server lets one connection have in flight: it must stop reading, not
    // drop or reorder anything.
    let deep = 2 * INFLIGHT_PER_CONNECTION_MAX_DEFAULT + 100;
    pipeline(&mut conn, mixed("b", deep));

    for (round, n) in [("a", 200), ("b", deep)] {
        let keys: Vec<String> = (0..n)
            .step_by(2)
            .map(|i| format!("pipe-{round}-{i}"))
            .collect();
        let raw: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        for (key, read) in keys.iter().zip(client.get_many(&raw).unwrap()) {
            assert_eq!(read.unwrap().values, vec![key.as_bytes().to_vec()], "{key}");
        }
    }
    server.stop();
}

#[test]
fn bad_requests_get_typed_errors_and_the_connection_stays_open() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18060), 2);
    let client = server.client();
    // Enter by shard 0's own port: keys of shard 0 run there, keys of shard 1 are forwarded, so
    // every error is checked on both paths.
    let mut conn = RawConn::connect(server.shard_addr(0));
    for owner in [0u16, 1] {
        let ok_key = key_of_len(&client, 16, owner);
        let longest_key = key_of_len(&client, KEY_BYTES_MAX_DEFAULT, owner);
        let long_key = key_of_len(&client, KEY_BYTES_MAX_DEFAULT + 1, owner);
        let largest_value = vec![b'v'; VALUE_BYTES_MAX_DEFAULT];
        let large_value = vec![b'v'; VALUE_BYTES_MAX_DEFAULT + 1];
        let garbage_context = b"definitely not a version vector".to_vec();
        let in_keyspace = |keyspace: &str, request: Request| match request {
            Request::Get(mut r) => {
                r.keyspace = keyspace.into();
                Request::Get(r)
            }
            Request::Put(mut r) => {
                r.keyspace = keyspace.into();
                Request::Put(r)
            }
            other => other,
        };
        let cases: Vec<(&str, Request, ErrorCode)> = vec![
            (
                "put with an empty key",
                put(b"", b"v"),
                ErrorCode::BadRequest,
            ),
            ("get with an empty key", get(b""), ErrorCode::BadRequest),
            (
                "put with a key over the limit",
                put(&long_key, b"v"),
                ErrorCode::TooLarge,
            ),
            (
                "get with a key over the limit",
                get(&long_key),
                ErrorCode::TooLarge,
            ),
            (
                "put with a value over the limit",
                put(&ok_key, &large_value),
                ErrorCode::TooLarge,
            ),
            (
                "get in an unknown keyspace",
                in_keyspace("no-such-keyspace", get(&ok_key)),
                ErrorCode::NotFound,
            ),
            (
                "put in an unknown keyspace",
                in_keyspace("no-such-keyspace", put(&ok_key, b"v")),
                ErrorCode::NotFound,
            ),
            (
                "put with a garbage context",
                Request::Put(PutRequest {
                    keyspace: DEFAULT_KEYSPACE.into(),
                    key: ok_key.clone(),
                    value: b"v".to_vec(),
                    context: garbage_context.clone(),
                    durability: Durability::Default,
                    overwrite: false,
                    consistency: Consistency::default(),
                }),
                ErrorCode::BadRequest,
            ),
            (
                "delete with a garbage context",
                Request::Delete(DeleteRequest {
                    keyspace: DEFAULT_KEYSPACE.into(),
                    key: ok_key.clone(),
                    context: garbage_context.clone(),
                    durability: Durability::Default,
                    overwrite: false,
                    consistency: Consistency::default(),
                }),
                ErrorCode::BadRequest,
            ),
        ];
        for (what, request, code) in cases {
            let what = format!("{what} (owner shard {owner})");
            let error = expect_error(&conn.call(&request), code, &what);
            assert!(!error.message.is_empty(), "{what}: the error says nothing");
            expect_pong(&mut conn, &what);
        }
        // Nothing refused was written.
        assert!(
            client.get(&ok_key).unwrap().is_not_found(),
            "{ok_key:?} was written"
        );

        // The limits themselves are allowed.
        let what = format!("key and value at their limits (owner shard {owner})");
        let response = conn.call(&put(&longest_key, &largest_value));
        assert!(
            matches!(response, Response::Put(_)),
            "{what}: {}",
            short(&response)
        );
        match conn.call(&get(&longest_key)) {
            Response::Get(g) => assert!(
                g.values == vec![largest_value.clone()],
                "{what}: wrong value"
            ),
            other => panic!("{what}: {}", short(&other)),
        }
        expect_pong(&mut conn, &what);
    }

    // A batch answers each item on its own, in order, across shards.
    let good: Vec<Vec<u8>> = (0..2).map(|s| key_of_len(&client, 20, s)).collect();
    let items = vec![
        (good[0].clone(), b"first".to_vec(), Vec::new(), None),
        (
            Vec::new(),
            b"empty key".to_vec(),
            Vec::new(),
            Some(ErrorCode::BadRequest),
        ),
        (
            key_of_len(&client, 21, 1),
            vec![0u8; VALUE_BYTES_MAX_DEFAULT + 1],
            Vec::new(),
            Some(ErrorCode::TooLarge),
        ),
        (
            key_of_len(&client, 22, 0),
            b"bad ctx".to_vec(),
            b"junk".to_vec(),
            Some(ErrorCode::BadRequest),
        ),
        (good[1].clone(), b"last".to_vec(), Vec::new(), None),
    ];
    let batch = Request::BatchPut(BatchPutRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        items: items
            .iter()
            .map(|(key, value, context, _)| PutItem {
                key: key.clone(),
                value: value.clone(),
                context: context.clone(),
            })
            .collect(),
        durability: Durability::Default,
        overwrite: false,
        consistency: Consistency::default(),
    });
    match conn.call(&batch) {
        Response::BatchPut(results) => {
            assert_eq!(results.len(), items.len());
            for (i, (result, (_, _, _, want))) in results.iter().zip(&items).enumerate() {
                match (result, want) {
                    (Ok(_), None) => {}
                    (Err(e), Some(code)) if e.code == *code => {}
                    _ => panic!("batch item {i}: expected {want:?}, got {result:?}"),
                }
            }
        }
        other => panic!("batch put: {}", short(&other)),
    }
    let read = conn.call(&Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys: good.clone(),
        consistency: Consistency::default(),
    }));
    match read {
        Response::BatchGet(items) => {
            let values: Vec<Vec<Vec<u8>>> = items.into_iter().map(|i| i.unwrap().values).collect();
            assert_eq!(
                values,
                vec![vec![b"first".to_vec()], vec![b"last".to_vec()]]
            );
        }
        other => panic!("batch get: {}", short(&other)),
    }
    // An empty batch is answered (with nothing), not left hanging.
    let empty = conn.call(&Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys: Vec::new(),
        consistency: Consistency::default(),
    }));
    assert_eq!(empty, Response::BatchGet(Vec::new()));
    // A batch in an unknown keyspace: NotFound, for the whole batch or for every item.
    match conn.call(&Request::BatchGet(BatchGetRequest {
        keyspace: "no-such-keyspace".into(),
        keys: good.clone(),
        consistency: Consistency::default(),
    })) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::NotFound),
        Response::BatchGet(items) => {
            assert_eq!(items.len(), good.len());
            for item in items {
                assert_eq!(item.unwrap_err().code, ErrorCode::NotFound);
            }
        }
        other => panic!("batch get in an unknown keyspace: {}", short(&other)),
    }
    expect_pong(&mut conn, "after the batches");
    server.stop();
}

/// A single node has one copy of every key: it ignores a request's consistency (documented on
/// `Consistency`), on every request kind and on the forwarding path between shards. A request
/// asking more replicas than any key can have is still refused by the decoder: like any request
/// that does not decode, with a `BadRequest` that names the bound, and the connection closes
/// (the client library refuses such a request before sending it).
#[test]
fn a_single_node_ignores_consistency_but_refuses_impossible_ones() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18110), 2);
    let client = server.client();
    let mut conn = RawConn::connect(server.shard_addr(0));
    let strict = Consistency::replicas(3).strict();
    let keys: Vec<Vec<u8>> = (0..2).map(|s| key_of_len(&client, 24, s)).collect();
    for (owner, key) in keys.iter().enumerate() {
        let what = format!("strict r/w=3 on a single node (owner shard {owner})");
        let written = conn.call(&Request::Put(PutRequest {
            keyspace: DEFAULT_KEYSPACE.into(),
            key: key.clone(),
            value: b"one copy".to_vec(),
            context: Vec::new(),
            durability: Durability::Default,
            overwrite: false,
            consistency: strict,
        }));
        assert!(
            matches!(written, Response::Put(_)),
            "{what}: {}",
            short(&written)
        );
        let read = conn.call(&Request::Get(GetRequest {
            keyspace: DEFAULT_KEYSPACE.into(),
            key: key.clone(),
            consistency: strict,
        }));
        match read {
            Response::Get(g) => assert_eq!(g.values, vec![b"one copy".to_vec()], "{what}"),
            other => panic!("{what}: {}", short(&other)),
        }
    }
    let batch = conn.call(&Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys: keys.clone(),
        consistency: strict,
    }));
    match batch {
        Response::BatchGet(items) => {
            assert_eq!(items.len(), 2);
            assert!(items.iter().all(|item| item.is_ok()), "{items:?}");
        }
        other => panic!("strict batch get: {}", short(&other)),
    }

    let over = u8::try_from(CONSISTENCY_REPLICAS_MAX + 1).unwrap();
    conn.send(&Request::Get(GetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        key: keys[0].clone(),
        consistency: Consistency::replicas(over),
    }));
    let error = expect_refusal(&mut conn, ErrorCode::BadRequest, "17 replicas");
    assert!(
        error.message.contains("Get.replicas") && error.message.contains("at most 16"),
        "the error does not say what is wrong: {error}"
    );
    assert_serves(&server, "after 17 replicas");
    server.stop();
}

#[test]
fn batch_over_the_item_limit_is_too_large() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18070), 1);
    let mut conn = RawConn::connect(server.addr);
    let keys = (0..=BATCH_ITEMS_MAX)
        .map(|i| format!("k{i}").into_bytes())
        .collect();
    conn.send(&Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys,
        consistency: Consistency::default(),
    }));
    // `ErrorCode::TooLarge` is documented for "a frame, key, value or batch over its limit",
    // and `DecodeError::to_wire_error` maps an over-long batch to it so the client knows to
    // split the batch. The stream is out of sync only for framing errors; the connection may
    // close either way.
    let (id, response) = conn
        .read_response()
        .expect("no answer to an over-long batch");
    assert_eq!(id, 0);
    let error = expect_error(&response, ErrorCode::TooLarge, "over-long batch");
    assert!(
        error.message.contains(&BATCH_ITEMS_MAX.to_string()),
        "{error}"
    );
    assert_serves(&server, "after-long-batch");
    server.stop();
}

#[test]
fn connection_churn_leaves_the_server_serving() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(18080), 2);
    let ports = [server.addr, server.shard_addr(0), server.shard_addr(1)];
    let baseline = server.open_fds();
    let started = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..100 {
                    let mut conn = RawConn::connect(ports[(t + i) % ports.len()]);
                    match i % 3 {
                        // Open and close.
                        0 => {}
                        // A whole exchange.
                        1 => expect_pong(&mut conn, "churn"),
                        // Half a ping.
                        _ => {
                            let mut bytes = Vec::new();
                            conn.encode(&Request::Ping(b"half".to_vec()), &mut bytes);
                            conn.stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    eprintln!("300 connections churned in {:?}", started.elapsed());
    wait_for_fds(&server, baseline, "churn");
    assert!(server.is_running());
    assert_serves(&server, "after-churn");
    server.stop();
}

#[test]
fn a_batch_whose_answer_would_not_fit_a_frame_is_refused() {
    let dir = data_dir();
    let server = Server::start(dir.path(), addr(18090), 2);
    let big = vec![7u8; VALUE_BYTES_MAX_DEFAULT];
    server.client().put(b"big", &big, None).unwrap();
    let mut conn = RawConn::connect(server.addr);
    // 20 x 1 MiB: more than a client accepts in one frame (16 MiB).
    let request = Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys: vec![b"big".to_vec(); 20],
        consistency: Consistency::default(),
    });
    // Refused whole, or item by item (the router reports a part's refusal per item); either
    // way no value goes out.
    match conn.call(&request) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::TooLarge, "{e}"),
        Response::BatchGet(items) => {
            assert_eq!(items.len(), 20);
            for item in items {
                assert!(
                    matches!(item, Err(ref e) if e.code == ErrorCode::TooLarge),
                    "{item:?}"
                );
            }
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The same connection goes on, and a batch that fits is answered.
    expect_pong(&mut conn, "after a refused batch");
    let fits = Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys: vec![b"big".to_vec(); 4],
        consistency: Consistency::default(),
    });
    assert!(matches!(conn.call(&fits), Response::BatchGet(items) if items.len() == 4));
    assert_serves(&server, "after-big-batch");
}

#[test]
fn a_client_that_does_not_read_cannot_make_the_server_buffer_without_bound() {
    let dir = data_dir();
    let server = Server::start(dir.path(), addr(18100), 1);
    let big = vec![9u8; VALUE_BYTES_MAX_DEFAULT];
    server.client().put(b"big", &big, None).unwrap();
    let before = server.rss_kib();
    let mut conn = RawConn::connect(server.addr);
    conn.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Each small get asks for a 1 MiB answer; this client never reads one.
    let mut frame = Vec::new();
    conn.encode(&get(b"big"), &mut frame);
    let mut sent = 0;
    while sent < 2000 && conn.stream.write_all(&frame).is_ok() {
        sent += 1;
    }
    // Bounded look at the server's memory while it serves (or stops reading) those requests.
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    let growth = peak.saturating_sub(before);
    eprintln!("unread answers: {sent} requests sent, server grew {growth} KiB");
    assert!(sent >= 50, "only {sent} requests could be sent");
    assert!(
        growth < 40 << 10,
        "{sent} unread 1 MiB answers grew the server by {growth} KiB"
    );
    drop(conn);
    assert_serves(&server, "after-unread");
}
