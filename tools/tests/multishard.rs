//! A node with several shards, end to end: requests entering by any port reach the owning
//! shard (the main port and every shard port forward what they do not own), data written
//! through any port survives a clean restart, batches spanning shards answer in order, and a
//! data directory refuses to start with a shard count other than the one it was made with.
//!
//! Each test runs its own server on 127.0.0.4 and a port of its own.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use common::{data_dir, get, put, RawConn, Server};
use tessera_client::Client;
use tessera_schema::{
    BatchGetRequest, BatchPutRequest, Consistency, Durability, ErrorCode, PutItem, Request,
    Response, TopologyInfo, DEFAULT_KEYSPACE,
};

const SHARDS: u16 = 3;
/// Keys written through each entry port.
const KEYS_PER_PORT: usize = 300;
/// Longest a server that must refuse to start may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(20);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 4], port))
}

fn pairs(prefix: &str, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}-{i}").into_bytes(),
                format!("{prefix}-value-{i}").into_bytes(),
            )
        })
        .collect()
}

/// Asserts the keys are owned by every shard (so some requests are forwarded whatever port
/// they enter by).
fn assert_spans_all_shards(client: &Client, keys: &[(Vec<u8>, Vec<u8>)]) {
    let owners: BTreeSet<u16> = keys.iter().map(|(k, _)| client.shard_of(k)).collect();
    assert_eq!(
        owners,
        (0..SHARDS).collect(),
        "test keys should span every shard"
    );
}

/// Writes every pair through `conn`, pipelined, and checks each put is acknowledged once.
fn put_all(conn: &mut RawConn, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut bytes = Vec::new();
    let mut waiting: HashMap<u64, &[u8]> = HashMap::new();
    for (key, value) in pairs {
        waiting.insert(conn.encode(&put(key, value), &mut bytes), key);
    }
    conn.stream.write_all(&bytes).unwrap();
    for _ in 0..pairs.len() {
        let (id, response) = conn.read_response().expect("connection closed mid-batch");
        let key = waiting
            .remove(&id)
            .unwrap_or_else(|| panic!("answer for unknown or already answered id {id}"));
        assert!(
            matches!(response, Response::Put(_)),
            "put {}: {response:?}",
            String::from_utf8_lossy(key)
        );
    }
}

/// Reads every pair through `conn` one request at a time and checks the exact value.
fn check_all(conn: &mut RawConn, pairs: &[(Vec<u8>, Vec<u8>)], port: &str) {
    for (key, value) in pairs {
        match conn.call(&get(key)) {
            Response::Get(g) => assert_eq!(
                g.values,
                vec![value.clone()],
                "{} read through {port}",
                String::from_utf8_lossy(key)
            ),
            other => panic!(
                "{} read through {port}: {other:?}",
                String::from_utf8_lossy(key)
            ),
        }
    }
}

fn topology(server: &Server) -> TopologyInfo {
    match RawConn::connect(server.addr).call(&Request::Topology) {
        Response::Topology(t) => t,
        other => panic!("topology: {other:?}"),
    }
}

#[test]
fn keys_written_through_any_port_survive_restart_and_read_through_every_port() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(19000), SHARDS);
    let client = server.client();
    let via_main = pairs("main", KEYS_PER_PORT);
    let via_shard1 = pairs("shard1", KEYS_PER_PORT);
    assert_spans_all_shards(&client, &via_main);
    assert_spans_all_shards(&client, &via_shard1);
    let before = topology(&server);

    // The main port is shared by every shard (the kernel picks one per connection): a fresh
    // connection per chunk spreads the writes over several accepting shards.
    for chunk in via_main.chunks(KEYS_PER_PORT / 3) {
        put_all(&mut RawConn::connect(server.addr), chunk);
    }
    put_all(&mut RawConn::connect(server.shard_addr(1)), &via_shard1);
    drop(client);
    server.stop();

    let mut server = Server::start(dir.path(), addr(19000), SHARDS);
    let after = topology(&server);
    assert_eq!(
        before, after,
        "the node's identity or layout changed across restart"
    );
    let all: Vec<(Vec<u8>, Vec<u8>)> = via_main.iter().chain(&via_shard1).cloned().collect();
    for chunk in all.chunks(KEYS_PER_PORT / 3) {
        check_all(&mut RawConn::connect(server.addr), chunk, "the main port");
    }
    for shard in 0..SHARDS {
        let port = format!("shard {shard}'s port");
        check_all(&mut RawConn::connect(server.shard_addr(shard)), &all, &port);
    }
    let client = server.client();
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    let reads = client.get_many(&keys).unwrap();
    assert_eq!(reads.len(), all.len());
    for ((key, value), read) in all.iter().zip(reads) {
        assert_eq!(
            read.unwrap().values,
            vec![value.clone()],
            "{} by get_many",
            String::from_utf8_lossy(key)
        );
    }
    // The recovered causal contexts are the real ones: a write with a read's context replaces
    // the value instead of adding a sibling.
    for (key, _) in all.iter().step_by(20) {
        let read = client.get(key).unwrap();
        client.put(key, b"replaced", Some(&read.context)).unwrap();
        assert_eq!(client.get(key).unwrap().values, vec![b"replaced".to_vec()]);
    }
    server.stop();
}

#[test]
fn batches_spanning_every_shard_answer_in_order() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(19100), SHARDS);
    let client = server.client();
    let written = pairs("batch", KEYS_PER_PORT);
    assert_spans_all_shards(&client, &written);

    let mut conn = RawConn::connect(server.addr);
    let response = conn.call(&Request::BatchPut(BatchPutRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        items: written
            .iter()
            .map(|(key, value)| PutItem {
                key: key.clone(),
                value: value.clone(),
                context: Vec::new(),
            })
            .collect(),
        durability: Durability::Default,
        overwrite: false,
        consistency: Consistency::default(),
    }));
    match response {
        Response::BatchPut(results) => {
            assert_eq!(results.len(), written.len());
            for (i, result) in results.iter().enumerate() {
                assert!(result.is_ok(), "batch put item {i}: {result:?}");
            }
        }
        other => panic!("batch put: {other:?}"),
    }

    // Read back interleaved with keys that do not exist, a key read twice and an empty key (a
    // per-item error): every answer must sit at its key's position.
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut expected: Vec<Result<Vec<Vec<u8>>, ErrorCode>> = Vec::new();
    for (i, (key, value)) in written.iter().enumerate() {
        keys.push(key.clone());
        expected.push(Ok(vec![value.clone()]));
        if i % 7 == 0 {
            keys.push(format!("missing-{i}").into_bytes());
            expected.push(Ok(Vec::new()));
        }
        if i == KEYS_PER_PORT / 2 {
            keys.push(Vec::new());
            expected.push(Err(ErrorCode::BadRequest));
        }
    }
    keys.push(written[0].0.clone());
    expected.push(Ok(vec![written[0].1.clone()]));

    let request = Request::BatchGet(BatchGetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        keys: keys.clone(),
        consistency: Consistency::default(),
    });
    let ports: Vec<(String, SocketAddr)> = std::iter::once(("the main port".into(), server.addr))
        .chain((0..SHARDS).map(|s| (format!("shard {s}'s port"), server.shard_addr(s))))
        .collect();
    for (port, at) in ports {
        let mut conn = RawConn::connect(at);
        let items = match conn.call(&request) {
            Response::BatchGet(items) => items,
            other => panic!("batch get through {port}: {other:?}"),
        };
        assert_eq!(items.len(), keys.len(), "batch get through {port}");
        for (i, (item, want)) in items.into_iter().zip(&expected).enumerate() {
            let got = item.map(|g| g.values).map_err(|e| e.code);
            assert_eq!(
                &got,
                want,
                "item {i} ({}) through {port}",
                String::from_utf8_lossy(&keys[i])
            );
        }
    }
    server.stop();
}

#[test]
fn restarting_with_another_shard_count_is_refused() {
    let dir = data_dir();
    let at = addr(19200);
    let mut server = Server::start(dir.path(), at, SHARDS);
    server.client().put(b"kept", b"intact", None).unwrap();
    server.stop();

    for shards in [SHARDS - 1, SHARDS + 1] {
        let failed = common::start_expecting_failure(dir.path(), at, shards, REFUSAL_TIMEOUT);
        assert!(
            !failed.status.success(),
            "started with {shards} shards on a {SHARDS}-shard directory"
        );
        assert_eq!(
            failed.status.code(),
            Some(2),
            "exit status: {}",
            failed.status
        );
        for needle in [
            format!("created with {SHARDS} shards"),
            format!("--shards {SHARDS}"),
        ] {
            assert!(
                failed.stderr.contains(&needle),
                "with --shards {shards}, stderr should say '{needle}':\n{}",
                failed.stderr
            );
        }
    }

    // The refused starts changed nothing.
    let mut server = Server::start(dir.path(), at, SHARDS);
    assert_eq!(
        server.client().get(b"kept").unwrap().values,
        vec![b"intact".to_vec()]
    );
    server.stop();
}

#[test]
fn shard_data_without_its_meta_file_is_refused() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), addr(19300), 2);
    server.client().put(b"k", b"v", None).unwrap();
    server.stop();
    std::fs::remove_file(dir.path().join("tessera.meta")).unwrap();
    let failed = common::start_expecting_failure(dir.path(), addr(19300), 2, REFUSAL_TIMEOUT);
    assert_eq!(failed.status.code(), Some(2), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("no tessera.meta"),
        "{}",
        failed.stderr
    );
}
