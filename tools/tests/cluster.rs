//! `tessera cluster up` on loopback: three real node processes (127.0.0.1-3, port 19700)
//! form a cluster, replicate writes with no node ever seen down, keep answering at r = w = 2
//! after one node is killed with SIGKILL (which every peer sees within 10 s), take the node
//! back when it restarts (seen up within 5 s, with every write readable through it), and all
//! stop cleanly on SIGTERM.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;

const PORT: u16 = 19700;
const KEYS: usize = 300;
/// A killed node must be seen down by every peer within this (the bound).
const DOWN_WITHIN: Duration = Duration::from_secs(10);
/// A restarted node must be seen up by every peer within this.
const UP_WITHIN: Duration = Duration::from_secs(5);

/// Writes keys [from, to) through `node`, retrying a refused write a few times (a ring change
/// may still be settling right after start-up or a kill).
fn write_keys(cluster: &Cluster, node: u8, range: std::ops::Range<usize>) {
    let c = cluster.client(node);
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let mut attempts = 0;
        let mut context = None;
        while let Err(e) = c.put(key.as_bytes(), value.as_bytes(), context.as_ref()) {
            attempts += 1;
            assert!(
                attempts < 20,
                "write {i} through node {node} kept failing: {e}"
            );
            std::thread::sleep(Duration::from_millis(100));
            // A failed write may still have reached some replicas: supersede what it left
            // instead of adding a sibling beside it.
            context = c.get(key.as_bytes()).ok().map(|read| read.context);
        }
    }
}

fn assert_all_readable(cluster: &Cluster, node: u8, keys: usize) {
    let c = cluster.client(node);
    for i in 0..keys {
        let key = format!("key-{i}");
        let mut attempts = 0;
        // A node that just restarted may not yet see enough live replicas for r = 2.
        let got = loop {
            match c.get(key.as_bytes()) {
                Ok(got) => break got,
                Err(e) => {
                    attempts += 1;
                    assert!(
                        attempts < 50,
                        "read of {key} through node {node} kept failing: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        assert_eq!(
            got.values,
            vec![format!("value-{i}").into_bytes()],
            "key-{i} read through node {node}"
        );
    }
}

#[test]
fn a_local_cluster_replicates_survives_a_killed_node_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::up(dir.path(), 3, PORT);

    write_keys(&cluster, 1, 0..KEYS);
    assert_all_readable(&cluster, 2, KEYS);
    assert_all_readable(&cluster, 3, KEYS);
    // No false downs on a healthy cluster that just took load.
    for observer in 1..=3 {
        for node in (1..=3).filter(|&n| n != observer) {
            assert_eq!(
                cluster.sees_alive(observer, node),
                Some(true),
                "{observer} sees {node}"
            );
        }
    }

    // One of three replicas gone: r = w = 2 still holds for every key.
    let killed_at = Instant::now();
    cluster.kill9(3);
    write_keys(&cluster, 2, KEYS..2 * KEYS);
    assert_all_readable(&cluster, 1, 2 * KEYS);
    assert_all_readable(&cluster, 2, 2 * KEYS);
    let remaining = DOWN_WITHIN.saturating_sub(killed_at.elapsed());
    cluster.wait_seen(&[1, 2], 3, false, remaining);
    eprintln!(
        "node 3 seen down by both peers {:?} after SIGKILL",
        killed_at.elapsed()
    );

    cluster.restart(3, 3);
    let up = cluster.wait_seen(&[1, 2], 3, true, UP_WITHIN);
    eprintln!("node 3 seen up by both peers {up:?} after its restart");
    // Hinted handoff and read repair bring it the writes it missed; a quorum read through it
    // sees every write either way.
    assert_all_readable(&cluster, 3, 2 * KEYS);
    cluster.stop_cleanly();
}
