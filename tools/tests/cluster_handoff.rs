//! Hinted handoff on real nodes (loopback, 4 nodes, n = 3, r = w = 2, port 19800): one replica
//! is cut off (SIGSTOP) while 10,000 writes go in at w = 2; the fallbacks keep hints for it.
//! A hint holder (node 1, the founder, which restarts without seeds) is then SIGKILLed and
//! restarted: its hints come back from disk and it finds its peers again. After the
//! cut-off node resumes, every hint is delivered within 30 s and none remain.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;

const PORT: u16 = 19800;
const WRITES: usize = 10_000;
const WRITERS: usize = 4;
/// Every hint must be delivered within this once the replica is back (the bound).
const DELIVERED_WITHIN: Duration = Duration::from_secs(30);

fn hints_held(cluster: &Cluster, node: u8) -> Option<u64> {
    cluster.status(node).map(|s| s.hints_held)
}

/// WRITES writes spread over nodes 1-3 by WRITERS threads; every one must be acknowledged
/// (w = 2 holds with one replica of three down, through a sloppy quorum).
fn write_all(cluster: &Cluster) {
    std::thread::scope(|scope| {
        for t in 0..WRITERS {
            let client = cluster.client(1 + u8::try_from(t % 3).unwrap());
            scope.spawn(move || {
                for i in (t..WRITES).step_by(WRITERS) {
                    let key = format!("handoff-{i}");
                    client
                        .put(key.as_bytes(), b"while node 4 was away", None)
                        .unwrap_or_else(|e| panic!("write {i} was not acknowledged: {e}"));
                }
            });
        }
    });
}

#[test]
fn hints_for_a_cut_off_replica_survive_their_holder_and_are_all_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::up(dir.path(), 4, PORT);

    cluster.signal(4, "-STOP");
    cluster.wait_seen(&[1, 2, 3], 4, false, Duration::from_secs(10));
    write_all(&cluster);
    let held: Vec<u64> = (1..=3).map(|n| hints_held(&cluster, n).unwrap()).collect();
    let total: u64 = held.iter().sum();
    eprintln!("hints held by nodes 1-3 after {WRITES} writes: {held:?}");
    assert!(total > 0, "no hints were kept for the cut-off replica");

    // Kill a hint holder outright: node 1, which founded the cluster and so restarts without
    // seeds (it must find its peers from the addresses it saved). Restarted, it holds every
    // hint again.
    let (holder, before) = (1u8, held[0]);
    assert!(before > 0, "node 1 kept no hints");
    cluster.kill9(holder);
    cluster.restart(holder, 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        if let Some(h) = hints_held(&cluster, holder) {
            break h;
        }
        assert!(Instant::now() < deadline, "node {holder} did not come back");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(after, before, "node {holder} lost hints to SIGKILL");

    cluster.signal(4, "-CONT");
    let healed = Instant::now();
    loop {
        let left: Vec<Option<u64>> = (1..=3).map(|n| hints_held(&cluster, n)).collect();
        if left.iter().all(|h| *h == Some(0)) {
            break;
        }
        assert!(
            healed.elapsed() < DELIVERED_WITHIN,
            "hints left {DELIVERED_WITHIN:?} after node 4 resumed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "all {total} hints delivered {:?} after node 4 resumed",
        healed.elapsed()
    );
    cluster.stop_cleanly();
}
