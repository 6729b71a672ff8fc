//! The set workload on real nodes, each in its own network namespace (needs root, iproute2
//! and nftables; `scripts/test.sh` installs them). Faults: a full partition, a one-way
//! partition, random loss (nftables rules in the nodes' namespaces), SIGKILL with a restart,
//! and SIGSTOP. With siblings merged by union no acknowledged add may be lost; the same
//! workload in a last-write-wins keyspace must lose adds, proving the checker sees losses.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use common::setload::{self, Workload};

/// Least acknowledged adds the fault run must reach (the bound).
const ADDS_MIN: usize = 2_000;
/// Longest the hints may take to drain, and the checker to see every add, after the faults.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// Holds a fault for `duration` while the workload runs, then logs the next step.
fn hold(what: &str, duration: Duration) {
    eprintln!("fault: {what} for {duration:?}");
    std::thread::sleep(duration);
}

#[test]
fn set_workload_loses_no_acknowledged_add_through_partitions_kills_and_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NetCluster::up(dir.path(), 201, 5, NodeOptions::default());
    let workload = Workload {
        nodes: (1..=5).map(|i| cluster.addr(i)).collect(),
        writers: 8,
        keys: 12,
        adds_per_writer: 900,
        pace: Duration::from_millis(40),
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let writers = scope.spawn(|| setload::run(&workload, &stop));
        let net = &cluster.net;
        hold("none (warm-up)", Duration::from_secs(3));
        net.partition(&[1, 2], &[3, 4, 5]);
        let partition = Duration::from_secs(8);
        // The rules must take effect: node 1 loses sight of node 3 within the partition.
        let seen = cluster.wait_seen(1, 3, false, partition);
        let seen = seen.expect("node 1 still sees node 3 through the partition");
        hold("partition {1,2} | {3,4,5}", partition.saturating_sub(seen));
        net.heal();
        hold("none", Duration::from_secs(3));
        for from in [1, 2] {
            for to in [3, 4, 5] {
                net.block(from, to);
            }
        }
        hold("one way: {1,2} -> {3,4,5} dropped", Duration::from_secs(6));
        net.heal();
        hold("none", Duration::from_secs(2));
        for i in 1..=5 {
            net.loss(i, 20);
        }
        hold("20% loss between all nodes", Duration::from_secs(6));
        net.heal();
        cluster.kill9(2);
        hold("node 2 SIGKILLed", Duration::from_secs(3));
        cluster.start(2);
        hold("node 2 restarted", Duration::from_secs(3));
        cluster.signal(5, "-STOP");
        hold("node 5 SIGSTOPped", Duration::from_secs(5));
        cluster.signal(5, "-CONT");
        hold("none (all healed)", Duration::from_secs(3));
        stop.store(true, Ordering::Release);
        writers.join().unwrap()
    });
    let acked = outcome.acked_total();
    eprintln!(
        "{acked} adds acknowledged, {} failed or timed out, in {:.1}s",
        outcome.failed,
        started.elapsed().as_secs_f64()
    );
    assert!(
        acked >= ADDS_MIN,
        "only {acked} adds acknowledged through the faults (need {ADDS_MIN})"
    );
    let (drained, held) = cluster.wait_hints_drained(CONVERGE_WITHIN);
    assert!(
        drained,
        "hints left {CONVERGE_WITHIN:?} after the faults: {held:?}"
    );
    let found = setload::check(&outcome, &workload.nodes, CONVERGE_WITHIN);
    let lost = found.lost;
    let (hints, read_repairs, ae_keys) = cluster.repair_counters();
    eprintln!(
        "lost {lost}; repairs since each node's last start: {hints} hints delivered, \
         {read_repairs} read repairs, {ae_keys} keys by anti-entropy"
    );
    assert_eq!(lost, 0, "{lost} of {acked} acknowledged adds lost");
    assert_eq!(
        found.foreign, 0,
        "elements leaked into keys they were never added to"
    );
    cluster.stop_cleanly();
}

#[test]
fn last_write_wins_set_workload_loses_adds() {
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        conflict: "lww",
        ..NodeOptions::default()
    };
    let cluster = NetCluster::up(dir.path(), 202, 3, options);
    // Many writers on two keys: their read-modify-writes overlap all the time, and last
    // write wins keeps one of every overlapping pair.
    let workload = Workload {
        nodes: (1..=3).map(|i| cluster.addr(i)).collect(),
        writers: 8,
        keys: 2,
        adds_per_writer: 150,
        pace: Duration::ZERO,
    };
    let outcome = setload::run(&workload, &AtomicBool::new(false));
    let acked = outcome.acked_total();
    let found = setload::check(&outcome, &workload.nodes, Duration::from_secs(5));
    let lost = found.lost;
    assert_eq!(
        found.foreign, 0,
        "elements leaked into keys they were never added to"
    );
    eprintln!("last write wins: {lost} of {acked} acknowledged adds lost");
    assert!(acked > 0, "no add was acknowledged");
    assert!(
        lost > 0,
        "the checker saw no loss in a last-write-wins keyspace"
    );
    cluster.stop_cleanly();
}
