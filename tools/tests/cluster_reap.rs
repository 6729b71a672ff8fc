//! Tombstone reaping on real nodes, each in its own network namespace (3 nodes, n = 3, a
//! grace period of one second): deleted keys leave every replica once every node has shown it
//! holds the tombstone, live keys stay, the Merkle trees agree afterwards, a restart brings no
//! deleted value back, and a key written again after its reap is read back.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use tessera_client::{Client, ClientConfig, ClusterStatus, Consistency};

/// Keys written and then deleted.
const DELETED: usize = 600;
/// Keys written and kept.
const KEPT: usize = 200;
/// The issue gives no bound; a sweep of three small nodes takes seconds.
const REAP_WITHIN: Duration = Duration::from_secs(60);
const ROOTS_EQUAL_WITHIN: Duration = Duration::from_secs(30);

fn deleted_key(i: usize) -> Vec<u8> {
    format!("gone-{i:04}").into_bytes()
}

fn kept_key(i: usize) -> Vec<u8> {
    format!("kept-{i:04}").into_bytes()
}

/// A client of node `i` whose writes and reads wait for all three replicas.
fn client(cluster: &NetCluster, i: u8) -> Client {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        consistency: Consistency::replicas(3).strict(),
        ..ClientConfig::default()
    };
    cluster.client_with(i, config).unwrap()
}

/// Tombstones reaped, summed over the nodes; `None` unless all three answer.
fn reaped(cluster: &NetCluster) -> Option<u64> {
    (1..=3)
        .map(|i| cluster.status(i).map(|s| s.tombstones_reaped))
        .sum()
}

/// Waits until the three nodes report the same root for every partition.
fn wait_roots_equal(cluster: &NetCluster, within: Duration) {
    let start = Instant::now();
    loop {
        let statuses: Option<Vec<ClusterStatus>> = (1..=3).map(|i| cluster.status(i)).collect();
        if let Some(s) = statuses {
            if !s[0].partition_roots.is_empty()
                && s.iter().all(|x| x.partition_roots == s[0].partition_roots)
            {
                return;
            }
        }
        assert!(
            start.elapsed() < within,
            "partition roots still differ {within:?} after the reap"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Reads `key` from all three replicas, retrying for a while: a node that just restarted
/// may not yet see the others alive.
fn get(client: &Client, key: &[u8]) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        match client.get(key) {
            Ok(read) => return read.values,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                eprintln!("read failed, retrying: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("read of {key:?} failed for 30 s: {e}"),
        }
    }
}

/// Every deleted key reads as not found and every kept key as its value, from every replica.
fn check_reads(client: &Client) {
    for i in 0..DELETED {
        let values = get(client, &deleted_key(i));
        assert!(values.is_empty(), "deleted key {i} reads {values:?}");
    }
    for i in 0..KEPT {
        assert_eq!(get(client, &kept_key(i)), vec![kept_key(i)], "kept key {i}");
    }
}

#[test]
fn deleted_keys_are_reaped_from_every_replica_and_nothing_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        tombstone_grace: Some(1),
        ..NodeOptions::default()
    };
    let mut cluster = NetCluster::up(dir.path(), 210, 3, options);
    let c = client(&cluster, 1);
    for i in 0..KEPT {
        c.put(&kept_key(i), &kept_key(i), None).unwrap();
    }
    for i in 0..DELETED {
        let context = c.put(&deleted_key(i), b"doomed", None).unwrap();
        c.delete(&deleted_key(i), Some(&context)).unwrap();
    }
    // With a grace of one second, reaping begins while the deletes still go in.
    let deleted_at = Instant::now();

    // Each node purges its own copy of each tombstone.
    let expected = 3 * DELETED as u64;
    loop {
        let so_far = reaped(&cluster);
        if so_far == Some(expected) {
            break;
        }
        assert!(
            deleted_at.elapsed() < REAP_WITHIN,
            "{so_far:?} of {expected} tombstones reaped {REAP_WITHIN:?} after the deletes"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = deleted_at.elapsed();
    eprintln!(
        "{DELETED} tombstones reaped from 3 replicas {:.1}s after the deletes (grace 1 s)",
        took.as_secs_f64()
    );
    wait_roots_equal(&cluster, ROOTS_EQUAL_WITHIN);
    check_reads(&c);
    // Nothing reaped comes back from a node that restarts (a purge it had not synced leaves the
    // tombstone, which reads as deleted all the same).
    drop(c);
    cluster.kill9(2);
    cluster.start(2);
    cluster.wait_formed(2, Instant::now() + Duration::from_secs(30));
    let c = client(&cluster, 2);
    check_reads(&c);
    // A key written again after its reap is kept, whichever node coordinates.
    let clients: Vec<Client> = (1..=3).map(|i| client(&cluster, i)).collect();
    for i in 0..DELETED {
        clients[i % 3].put(&deleted_key(i), b"back", None).unwrap();
    }
    for i in 0..DELETED {
        let values = get(&c, &deleted_key(i));
        assert_eq!(values, vec![b"back".to_vec()], "key {i} written again");
    }
    cluster.stop_cleanly();
}
