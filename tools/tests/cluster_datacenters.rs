//! Two datacenters on real nodes, each node in its own network namespace: "east" has nodes 1-3,
//! "west" nodes 4 and 5, and every key has two replicas in east and one in west
//! (`--replicas-per-dc east=2,west=1`, n = 3, r = w = 2).
//!
//! - Placement: every partition's preference list names exactly two east nodes and one west
//!   node.
//! - All up: a write and a read counting a majority in each datacenter (EACH_QUORUM: 2 in
//!   east, 1 in west) succeed.
//! - East and west cut apart by nftables rules: from node 1 (east), local-datacenter writes
//!   and reads (LOCAL_QUORUM) succeed while each-datacenter ones fail with `QuorumNotReached`
//!   (strict: at the node's deadline; sloppy: at once, since no stand-in in east can count for
//!   west). From node 4 (west) a local-datacenter write succeeds on west's one replica, while
//!   a plain w = 2 strict write cannot (west holds one replica of each key).
//! - Healed: an each-datacenter read from node 1 sees both sides' writes as siblings; nothing
//!   either side acknowledged is lost. An each-datacenter write resolves them.
//! - The command line passes `--scope` through.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use tessera_client::{Client, ClientConfig, ClientError, Consistency, ErrorCode};

/// East's coordinator and west's.
const EAST: u8 = 1;
const WEST: u8 = 4;
const EAST_NODES: [u8; 3] = [1, 2, 3];
const WEST_NODES: [u8; 2] = [4, 5];
/// What the writes that fail during the partition write: not acknowledged, and not
/// necessarily absent (an updater may have applied it before the quorum failed).
const UNACKED: &[u8] = b"unacknowledged";
/// Keys the test writes through the partition.
const KEYS: usize = 4;
/// A node's own deadline for a quorum (core's request timeout, ticks of one millisecond).
const NODE_QUORUM_DEADLINE: Duration =
    Duration::from_millis(tessera_core::node::REQUEST_TIMEOUT_TICKS_DEFAULT);
/// Longest the failure detector may take to see the other datacenter go or come back.
const DETECT_WITHIN: Duration = Duration::from_secs(20);

fn options() -> NodeOptions {
    NodeOptions {
        dc: |i| if i <= 3 { "east" } else { "west" }.to_string(),
        rack: |i| format!("rack-{}", i % 2 + 1),
        replicas_per_dc: Some("east=2,west=1"),
        ..NodeOptions::default()
    }
}

fn client(cluster: &NetCluster, node: u8) -> Client {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    Client::connect(cluster.addr(node), config).unwrap()
}

/// Asserts a `QuorumNotReached` from the node (not a client timeout), in bounded time.
fn assert_not_reached<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    took: Duration,
    what: &str,
) {
    match result {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code, ErrorCode::QuorumNotReached, "{what}: {e}");
            assert!(e.answered < e.required, "{what}: {e}");
        }
        other => panic!("{what}: expected QuorumNotReached, got {other:?}"),
    }
    assert!(
        took < NODE_QUORUM_DEADLINE + Duration::from_secs(5),
        "{what}: took {took:?}"
    );
}

/// Waits until every node sees every node of the other datacenter as `alive` (so a request
/// coordinated anywhere counts, or does not count, on the other side at once).
fn wait_seen_across(cluster: &NetCluster, alive: bool) {
    let start = Instant::now();
    let pairs = EAST_NODES
        .iter()
        .flat_map(|&e| WEST_NODES.iter().flat_map(move |&w| [(e, w), (w, e)]));
    for (observer, other) in pairs {
        let left = DETECT_WITHIN.saturating_sub(start.elapsed());
        if cluster.wait_seen(observer, other, alive, left).is_none() {
            panic!("node {observer} did not see node {other} alive={alive} in {DETECT_WITHIN:?}");
        }
    }
    eprintln!(
        "every node saw the other datacenter alive={alive} after {:?}",
        start.elapsed()
    );
}

#[test]
fn local_and_each_datacenter_quorums_across_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = NetCluster::up(dir.path(), 206, 5, options());
    let status = cluster.status(EAST).unwrap();
    assert_eq!(
        status.replicas, 3,
        "n is the sum of the per-datacenter counts"
    );
    for (p, list) in cluster.preference_lists(&status).iter().enumerate() {
        let east = list.iter().filter(|n| EAST_NODES.contains(n)).count();
        let west = list.iter().filter(|n| WEST_NODES.contains(n)).count();
        assert_eq!((east, west), (2, 1), "partition {p}: replicas {list:?}");
    }
    let east = client(&cluster, EAST);
    let west = client(&cluster, WEST);
    let each = Consistency::default().each_dc();
    let local = Consistency::default().local_dc();
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("dc-{i}").into_bytes()).collect();

    // All up: majorities in both datacenters.
    for key in &keys {
        east.put_with(key, b"before", None, each.strict()).unwrap();
        let read = west.get_with(key, each.strict()).unwrap();
        assert_eq!(read.values, vec![b"before".to_vec()]);
    }

    // East | west.
    cluster.net.partition(&EAST_NODES, &WEST_NODES);
    wait_seen_across(&cluster, false);
    let start = Instant::now();
    for key in &keys {
        let read = east.get_with(key, local.strict()).unwrap();
        assert_eq!(read.values, vec![b"before".to_vec()]);
        east.put_with(key, b"east", Some(&read.context), local.strict())
            .unwrap();
        let read = west.get_with(key, local.strict()).unwrap();
        assert_eq!(read.values, vec![b"before".to_vec()], "west's own replica");
        west.put_with(key, b"west", Some(&read.context), local.strict())
            .unwrap();
    }
    eprintln!(
        "partitioned: local-datacenter reads and writes on both sides for {KEYS} keys in {:?}",
        start.elapsed()
    );
    let key = &keys[0];
    let start = Instant::now();
    let result = east.put_with(key, UNACKED, None, each.strict());
    assert_not_reached(result, start.elapsed(), "strict each-dc write from east");
    let start = Instant::now();
    let result = east.put_with(key, UNACKED, None, each.sloppy());
    let took = start.elapsed();
    assert_not_reached(result, took, "sloppy each-dc write from east");
    assert!(
        took < NODE_QUORUM_DEADLINE,
        "no stand-in counts for west: refused at once, not at the deadline ({took:?})"
    );
    let start = Instant::now();
    let result = east.get_with(key, each.strict());
    assert_not_reached(result, start.elapsed(), "strict each-dc read from east");
    let start = Instant::now();
    let result = west.put_with(key, UNACKED, None, Consistency::replicas(2).strict());
    assert_not_reached(result, start.elapsed(), "strict w=2 from west");
    let key_text = std::str::from_utf8(key).unwrap();
    let (code, stderr) = cluster.cli(EAST, &["get", key_text, "--scope", "local-dc", "--strict"]);
    assert_eq!(code, Some(0), "local-dc: {stderr}");
    let (code, stderr) = cluster.cli(EAST, &["get", key_text, "--scope", "each-dc", "--strict"]);
    assert_ne!(code, Some(0), "each-dc: {stderr}");

    // Healed: each datacenter's acknowledged write is there, as siblings.
    cluster.net.heal();
    wait_seen_across(&cluster, true);
    for key in &keys {
        let read = east.get_with(key, each.strict()).unwrap();
        let mut values = read.values.clone();
        values.sort();
        values.dedup();
        if *key == keys[0] {
            values.retain(|v| v != UNACKED); // the failed writes went to this key
        }
        let shown: Vec<_> = values.iter().map(|v| String::from_utf8_lossy(v)).collect();
        assert_eq!(shown, ["east", "west"], "{}", String::from_utf8_lossy(key));
        east.put_with(key, b"merged", Some(&read.context), each.strict())
            .unwrap();
        let read = west
            .get_with(key, Consistency::replicas(1).each_dc())
            .unwrap();
        assert_eq!(read.values, vec![b"merged".to_vec()], "{key:?}");
    }
    cluster.stop_cleanly();
}
