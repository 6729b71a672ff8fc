//! The cluster-aware client on real nodes, each in its own network namespace: four nodes,
//! n = 3, so each node holds replicas of about three partitions in four.
//!
//! - Learning the cluster from one seed (node 1), the `ClusterClient` sends every request to a
//!   node holding a replica of its key: across the cluster, no request it makes is coordinated
//!   off-replica, and every node coordinates some. Canary: the same reads through a plain
//!   `Client` bound to node 1 are coordinated off-replica for about a quarter of the keys, so
//!   the counter sees misrouting.
//! - Node 5 joins: the client follows the new ring (its epoch advances) and sends node 5 the
//!   keys it now replicates, still never off-replica.
//! - Node 1, the client's seed, is killed (SIGKILL): every read and write still succeeds,
//!   routed to the live replicas.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use tessera_client::{Client, ClientConfig, ClusterClient, ClusterConfig, ClusterStatus};

/// Keys written and read in each phase.
const KEYS: usize = 200;
/// Longest a ring change may take to settle.
const CHANGE_WITHIN: Duration = Duration::from_secs(60);
/// Longest the client may take to follow a ring change (its refresh is every 2 s).
const FOLLOW_WITHIN: Duration = Duration::from_secs(20);

fn key(i: usize) -> Vec<u8> {
    format!("routed-{i}").into_bytes()
}

/// (coordinated, coordinated off-replica) per node 1..=`nodes` (zero for a node that does not
/// answer).
fn coordinated(cluster: &NetCluster, nodes: u8) -> Vec<(u64, u64)> {
    (1..=nodes)
        .map(|i| {
            cluster.status(i).map_or((0, 0), |s: ClusterStatus| {
                (s.requests_coordinated, s.requests_coordinated_off_replica)
            })
        })
        .collect()
}

/// Per-node differences between two `coordinated` readings.
fn since(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<(u64, u64)> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1)))
        .collect()
}

/// Reads every key back through the cluster client; returns how many held `value`.
fn read_all(client: &ClusterClient, value: &[u8]) -> usize {
    (0..KEYS)
        .filter(|&i| client.get(&key(i)).unwrap().values == vec![value.to_vec()])
        .count()
}

/// Writes `value` to every key (superseding what was there) and reads it back.
fn write_and_read(client: &ClusterClient, value: &[u8]) {
    for i in 0..KEYS {
        let read = client.get(&key(i)).unwrap();
        client.put(&key(i), value, Some(&read.context)).unwrap();
    }
    assert_eq!(read_all(client, value), KEYS);
}

fn assert_routed_to_replicas(delta: &[(u64, u64)], nodes: &[usize], phase: &str) {
    let total: u64 = delta.iter().map(|d| d.0).sum();
    let off: u64 = delta.iter().map(|d| d.1).sum();
    eprintln!("{phase}: coordinated per node {delta:?}: {total} requests, {off} off-replica");
    assert_eq!(
        off, 0,
        "{phase}: requests coordinated off-replica: {delta:?}"
    );
    assert!(total >= 3 * KEYS as u64, "{phase}: {delta:?}");
    for &node in nodes {
        assert!(
            delta[node - 1].0 > 0,
            "{phase}: node {node} coordinated nothing: {delta:?}"
        );
    }
}

#[test]
fn the_cluster_client_routes_to_replicas_and_follows_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NetCluster::up_some(dir.path(), 207, 5, 4, NodeOptions::default());
    let config = ClusterConfig {
        client: ClientConfig {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            ..ClientConfig::default()
        },
        ..ClusterConfig::default()
    };
    let client = ClusterClient::connect(&[cluster.addr(1)], config.clone()).unwrap();

    // Four nodes: every request straight to a replica.
    let before = coordinated(&cluster, 5);
    write_and_read(&client, b"four");
    let delta = since(&before, &coordinated(&cluster, 5));
    assert_routed_to_replicas(&delta, &[1, 2, 3, 4], "four nodes");
    // Canary: a plain client bound to node 1 leaves it coordinating keys it does not hold.
    let plain = Client::connect(cluster.addr(1), config.client.clone()).unwrap();
    let before = coordinated(&cluster, 5);
    for i in 0..KEYS {
        plain.get(&key(i)).unwrap();
    }
    let delta = since(&before, &coordinated(&cluster, 5));
    eprintln!("plain client through node 1: {delta:?}");
    assert!(
        delta[0].1 >= KEYS as u64 / 10,
        "node 1 holds about 3/4 of the keys; the rest must show as off-replica: {delta:?}"
    );

    // Node 5 joins; the client follows.
    let epoch = client.ring_epoch();
    cluster.start(5);
    let took = cluster.wait_ring(1, &[1, 2, 3, 4, 5], CHANGE_WITHIN);
    eprintln!("node 5 joined in {took:?}");
    let start = Instant::now();
    while client.ring_epoch() == epoch {
        assert!(
            start.elapsed() < FOLLOW_WITHIN,
            "the client kept ring {epoch}"
        );
        client.get(&key(0)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "the client moved from ring {epoch} to {} within {:?}",
        client.ring_epoch(),
        start.elapsed()
    );
    let before = coordinated(&cluster, 5);
    write_and_read(&client, b"five");
    let delta = since(&before, &coordinated(&cluster, 5));
    assert_routed_to_replicas(&delta, &[1, 2, 3, 4, 5], "five nodes");

    // The seed dies: the client goes on through the other replicas.
    cluster.kill9(1);
    let start = Instant::now();
    write_and_read(&client, b"no seed");
    eprintln!(
        "node 1 killed: {KEYS} reads, writes and reads back in {:?}",
        start.elapsed()
    );
    cluster.stop_cleanly();
}
