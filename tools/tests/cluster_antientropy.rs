//! Anti-entropy on real nodes, each in its own network namespace (3 nodes, n = 3, r = w = 2):
//! 1,000 keys are rewritten while one replica is down. With three nodes every node is in every
//! preference list, so no fallback takes hints and nothing is read: only anti-entropy can
//! bring the replica back. After it restarts, every partition's Merkle root must be equal on
//! the three nodes within 60 s, with the anti-entropy traffic under 5% of the data set.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::incompressible_value;
use common::netns::{NetCluster, NodeOptions};
use tessera_client::{Client, ClientConfig, ClusterStatus};

const KEYS: usize = 50_000;
const VALUE_BYTES: usize = 2048;
/// Keys rewritten while node 3 is down (2% of them): every 50th, so they spread over the
/// partitions.
const DIVERGENT: usize = 1_000;
const WRITERS: usize = 4;
/// Tries per key before the load fails the test.
const WRITE_ATTEMPTS: usize = 5;
/// The bounds.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
const TRAFFIC_SHARE_MAX: f64 = 0.05;

fn key(i: usize) -> Vec<u8> {
    format!("ae-{i:06}").into_bytes()
}

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// Writes `keys` (value generation `round`) through nodes 1 and 2 in batches; every write must
/// be acknowledged. Like any bulk loader it retries what the cluster could not take in time
/// (a quorum times out after 2 s, which a debug build on two shared cores can reach under this
/// load): each retry reads the key again, so it supersedes whatever the failed attempt left.
fn write(cluster: &NetCluster, keys: &[usize], round: usize) {
    std::thread::scope(|scope| {
        for (t, share) in keys.chunks(keys.len().div_ceil(WRITERS)).enumerate() {
            let addr = cluster.addr(1 + u8::try_from(t % 2).unwrap());
            scope.spawn(move || {
                let client = Client::connect(addr, config()).unwrap();
                for batch in share.chunks(100) {
                    let mut pending: Vec<usize> = batch.to_vec();
                    for _attempt in 0..WRITE_ATTEMPTS {
                        pending = write_batch(&client, &pending, round);
                        if pending.is_empty() {
                            break;
                        }
                    }
                    assert!(pending.is_empty(), "keys {pending:?} never written");
                }
            });
        }
    });
}

/// Overwrites `batch` (each put supersedes what the read before it saw: no siblings); returns
/// the keys whose write failed.
fn write_batch(client: &Client, batch: &[usize], round: usize) -> Vec<usize> {
    let keys: Vec<Vec<u8>> = batch.iter().map(|&i| key(i)).collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let Ok(reads) = client.get_many(&key_refs) else {
        return batch.to_vec();
    };
    let mut failed = Vec::new();
    let mut pairs = Vec::new();
    for (&i, read) in batch.iter().zip(reads) {
        match read {
            Ok(read) => pairs.push((
                i,
                key(i),
                incompressible_value(i + round * KEYS, VALUE_BYTES),
                read.context,
            )),
            Err(_) => failed.push(i),
        }
    }
    let items: Vec<(&[u8], &[u8], Option<&_>)> = pairs
        .iter()
        .map(|(_, k, v, c)| (k.as_slice(), v.as_slice(), Some(c)))
        .collect();
    match client.put_many(&items) {
        Ok(results) => failed.extend(
            pairs
                .iter()
                .zip(results)
                .filter(|(_, r)| r.is_err())
                .map(|((i, ..), _)| *i),
        ),
        Err(_) => failed.extend(pairs.iter().map(|(i, ..)| *i)),
    }
    failed
}

/// Every node's status, `None` unless all three answer.
fn statuses(cluster: &NetCluster) -> Option<Vec<ClusterStatus>> {
    (1..=3).map(|i| cluster.status(i)).collect()
}

/// Waits until the three nodes report the same root for every partition; returns how long it
/// took and the statuses then.
fn wait_roots_equal(cluster: &NetCluster, within: Duration) -> (Duration, Vec<ClusterStatus>) {
    let start = Instant::now();
    loop {
        if let Some(s) = statuses(cluster) {
            let differing = (0..s[0].partition_roots.len())
                .filter(|&p| {
                    s.iter()
                        .any(|x| x.partition_roots.get(p) != s[0].partition_roots.get(p))
                })
                .count();
            if differing == 0 && !s[0].partition_roots.is_empty() {
                return (start.elapsed(), s);
            }
            if start.elapsed() >= within {
                let which: Vec<String> = (0..s[0].partition_roots.len())
                    .filter(|&p| {
                        s.iter()
                            .any(|x| x.partition_roots.get(p) != s[0].partition_roots.get(p))
                    })
                    .take(10)
                    .map(|p| {
                        format!(
                            "{p}: {:?}",
                            s.iter().map(|x| x.partition_roots[p]).collect::<Vec<_>>()
                        )
                    })
                    .collect();
                let ae: Vec<(u64, u64, u64)> = s
                    .iter()
                    .map(|x| (x.ae_exchanges, x.ae_keys_repaired, x.ae_bytes_sent))
                    .collect();
                std::thread::sleep(Duration::from_secs(5));
                let s2 = statuses(cluster).unwrap();
                let ae2: Vec<(u64, u64, u64)> = s2
                    .iter()
                    .map(|x| (x.ae_exchanges, x.ae_keys_repaired, x.ae_bytes_sent))
                    .collect();
                panic!("{differing} partitions still differ {within:?} after the fault ended: {which:?}; ae {ae:?} then {ae2:?}");
            }
        }
        assert!(start.elapsed() < within, "a node stopped answering");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn divergent_replica_converges_by_anti_entropy_with_little_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NetCluster::up(dir.path(), 203, 3, NodeOptions::default());
    let all: Vec<usize> = (0..KEYS).collect();
    let started = Instant::now();
    write(&cluster, &all, 0);
    eprintln!(
        "{KEYS} keys of {VALUE_BYTES} B written in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    wait_roots_equal(&cluster, Duration::from_secs(25));

    cluster.kill9(3);
    // Once nodes 1 and 2 hold node 3 down they drop what was queued for it, so the writes
    // below reach it only through anti-entropy.
    for observer in [1, 2] {
        let seen = cluster.wait_seen(observer, 3, false, Duration::from_secs(10));
        assert!(seen.is_some(), "node {observer} never saw node 3 down");
    }
    let divergent: Vec<usize> = (0..DIVERGENT).map(|i| i * (KEYS / DIVERGENT)).collect();
    write(&cluster, &divergent, 1);
    let before: Vec<ClusterStatus> = (1..=2).map(|i| cluster.status(i).unwrap()).collect();
    for s in &before {
        assert_eq!(
            s.hints_held, 0,
            "a node took hints: only anti-entropy may repair"
        );
    }
    cluster.start(3);
    let (took, after) = wait_roots_equal(&cluster, CONVERGE_WITHIN);
    // Node 3 restarted, so its counters count from zero.
    let bytes = after[2].ae_bytes_sent
        + (0..2)
            .map(|i| after[i].ae_bytes_sent - before[i].ae_bytes_sent)
            .sum::<u64>();
    let repaired: u64 = after[2].ae_keys_repaired
        + (0..2)
            .map(|i| after[i].ae_keys_repaired - before[i].ae_keys_repaired)
            .sum::<u64>();
    let data_set = (KEYS * (key(0).len() + VALUE_BYTES)) as f64;
    let share = bytes as f64 / data_set;
    eprintln!(
        "{DIVERGENT} divergent keys: roots equal {:.1}s after node 3 restarted; \
         anti-entropy sent {bytes} B ({:.2}% of the {:.1} MB data set), {repaired} keys repaired",
        took.as_secs_f64(),
        share * 100.0,
        data_set / 1e6
    );
    assert!(
        repaired >= DIVERGENT as u64,
        "only {repaired} keys repaired"
    );
    assert!(
        share < TRAFFIC_SHARE_MAX,
        "anti-entropy sent {:.2}% of the data set",
        share * 100.0
    );
    cluster.stop_cleanly();
}
