//! A replica whose data directory was wiped is rebuilt, on real nodes each in its own network
//! namespace (4 nodes, n = 3, r = w = 2). Node 4 is SIGKILLed and its data directory deleted;
//! it starts again at the same address, as a new node (a new id: reusing the old one would
//! mint dots the others have already seen, and they would drop its new writes as old). The
//! operator removes the old id with `tessera remove`; the cluster re-plans the join without
//! waiting for the dead member, and the partitions stream to the new node from the surviving
//! replicas. Afterwards every acknowledged key reads back, every partition's replicas hold
//! equal data (equal Merkle roots), and the old id is listed as removed, owning nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use tessera_client::{Client, ClientConfig};

const KEYS: usize = 2_000;
/// Longest the removal and the streams to the new node may take here.
const REBUILD_WITHIN: Duration = Duration::from_secs(120);
/// Longest the replicas may take to hold equal data once the ring is settled.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
/// The failure detector's bound (issue #6): every peer sees a killed node down within 10 s.
const SEEN_DOWN_WITHIN: Duration = Duration::from_secs(10);

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("rebuild-{i:05}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value {i} ").repeat(20).into_bytes()
}

/// Writes every key through nodes 1 and 2 in batches; each must be acknowledged (a batch that
/// times out under load is written again: the writes are idempotent overwrites).
fn write_all(cluster: &NetCluster) {
    let clients: Vec<Client> = [1, 2]
        .iter()
        .map(|&i| Client::connect(cluster.addr(i), config()).unwrap())
        .collect();
    let all: Vec<usize> = (0..KEYS).collect();
    for (b, batch) in all.chunks(100).enumerate() {
        let client = &clients[b % 2];
        let mut pending = batch.to_vec();
        for _attempt in 0..5 {
            let items: Vec<(Vec<u8>, Vec<u8>)> =
                pending.iter().map(|&i| (key(i), value(i))).collect();
            let refs: Vec<(&[u8], &[u8], _)> = items
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice(), None))
                .collect();
            // A batch that fails as a whole (a timeout) is written again whole.
            if let Ok(results) = client.put_many(&refs) {
                pending = pending
                    .iter()
                    .zip(results)
                    .filter(|(_, r)| r.is_err())
                    .map(|(&i, _)| i)
                    .collect();
            }
            if pending.is_empty() {
                break;
            }
        }
        assert!(pending.is_empty(), "keys {pending:?} never written");
    }
}

#[test]
fn a_replica_whose_data_directory_was_wiped_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NetCluster::up(dir.path(), 209, 4, NodeOptions::default());
    write_all(&cluster);
    let old_id = cluster.status(4).unwrap().node_id;

    cluster.kill9(4);
    for observer in 1..=3 {
        assert!(
            cluster
                .wait_seen(observer, 4, false, SEEN_DOWN_WITHIN)
                .is_some(),
            "node {observer} never saw node 4 down"
        );
    }
    std::fs::remove_dir_all(dir.path().join("node-4")).unwrap();
    // The machine comes back with an empty disk at its old address, and joins as a new node.
    cluster.start(4);
    let new_id = (0..100)
        .find_map(|_| {
            let id = cluster.status(4).map(|s| s.node_id);
            if id.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            id
        })
        .expect("the restarted node never answered");
    assert_ne!(new_id, old_id, "a wiped node must come back under a new id");

    // Removing a live node is refused, with the way out in the message.
    let live = format!("{:016x}", cluster.status(1).unwrap().node_id);
    let (code, stderr) = cluster.cli(2, &["remove", &live]);
    assert_ne!(code, Some(0), "removing a live node succeeded");
    assert!(stderr.contains("alive"), "unhelpful refusal: {stderr}");

    let started = Instant::now();
    let old = format!("{old_id:016x}");
    let (code, stderr) = cluster.cli(2, &["remove", &old, "--wait", "--timeout", "120"]);
    assert_eq!(code, Some(0), "tessera remove failed: {stderr}");
    let took = cluster.wait_ring(1, &[1, 2, 3, 4], REBUILD_WITHIN);
    eprintln!(
        "old node 4 removed and new node 4 placed in {:.1}s",
        started.elapsed().as_secs_f64().max(took.as_secs_f64())
    );
    let status = cluster.status(1).unwrap();
    let old_member = status.members.iter().find(|m| m.id == old_id).unwrap();
    assert_eq!(old_member.status, "Removed");
    assert_eq!((old_member.partitions, old_member.next_partitions), (0, 0));
    let new_member = status.members.iter().find(|m| m.id == new_id).unwrap();
    assert!(new_member.partitions > 0, "the new node owns nothing");

    // The new node holds what its partitions' other replicas hold.
    let took = cluster.wait_replicas_equal(1, &[1, 2, 3, 4], CONVERGE_WITHIN);
    eprintln!(
        "every partition's replicas equal {:.1}s after the ring settled",
        took.as_secs_f64()
    );
    let status = cluster.status(4).unwrap();
    let lists = cluster.preference_lists(&status);
    let holds = lists
        .iter()
        .enumerate()
        .filter(|(p, list)| list.contains(&4) && status.partition_roots[*p] != 0)
        .count();
    assert!(holds > 0, "the new node holds no data");

    // Nothing acknowledged was lost, read through the new node.
    let reader = Client::connect(cluster.addr(4), config()).unwrap();
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    for (c, chunk) in keys.chunks(200).enumerate() {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        for (j, read) in reader.get_many(&refs).unwrap().into_iter().enumerate() {
            let i = c * 200 + j;
            let read = read.unwrap_or_else(|e| panic!("reading key {i}: {e}"));
            assert_eq!(read.values, vec![value(i)], "key {i} lost or changed");
        }
    }
    cluster.stop_cleanly();
}
