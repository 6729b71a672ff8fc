//! Join and leave under writes, on real nodes each in its own network namespace (n = 3,
//! r = w = 2, racks alternating): four nodes take writes; a fifth joins, then node 2 leaves
//! and stops, all while writers keep going. Afterwards nothing acknowledged is lost, every
//! partition's three replicas (as the ring names them) are distinct live nodes spanning both
//! racks, and they hold the same data (equal Merkle roots).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use tessera_client::{Client, ClientConfig};

/// Longest a ring change (join or leave, with its streams) may take here.
const CHANGE_WITHIN: Duration = Duration::from_secs(120);
/// Longest the replicas may take to hold equal data after the writes stop.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
const ACKED_MIN: usize = 1_000;

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

fn value(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

/// One writer per address, each writing fresh keys (starting at its own address and moving
/// on after an error) until `stop`; returns the acknowledged keys.
fn write_until(addrs: &[SocketAddr], stop: &AtomicBool, count: &AtomicUsize) -> Vec<String> {
    let acked = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..addrs.len() {
            let acked = &acked;
            scope.spawn(move || {
                let mut at = t;
                let mut client: Option<Client> = None;
                let mut seq = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let key = format!("member-{t}-{seq}");
                    seq += 1;
                    let c = match &client {
                        Some(c) => c,
                        None => match Client::connect(addrs[at], config()) {
                            Ok(c) => client.insert(c),
                            Err(_) => {
                                at = (at + 1) % addrs.len();
                                continue;
                            }
                        },
                    };
                    match c.put(key.as_bytes(), &value(&key), None) {
                        Ok(_) => {
                            acked.lock().unwrap().push(key);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            client = None;
                            at = (at + 1) % addrs.len();
                        }
                    }
                }
            });
        }
    });
    acked.into_inner().unwrap()
}

#[test]
fn join_and_leave_under_writes_lose_nothing_and_place_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NetCluster::up_some(dir.path(), 204, 5, 4, NodeOptions::default());
    // Writers go through nodes 1, 3 and 4, which stay throughout.
    let addrs: Vec<SocketAddr> = [1, 3, 4].iter().map(|&i| cluster.addr(i)).collect();
    let stop = AtomicBool::new(false);
    let count = AtomicUsize::new(0);
    let acked = std::thread::scope(|scope| {
        let writers = scope.spawn(|| write_until(&addrs, &stop, &count));
        std::thread::sleep(Duration::from_secs(2));
        cluster.start(5);
        cluster.owners = 5;
        let took = cluster.wait_ring(1, &[1, 2, 3, 4, 5], CHANGE_WITHIN);
        eprintln!("node 5 joined under writes in {:.1}s", took.as_secs_f64());
        cluster.wait_formed(5, Instant::now() + CHANGE_WITHIN);

        let leaving = Client::connect(cluster.addr(2), config()).unwrap();
        leaving.leave().unwrap();
        let took = cluster.wait_ring(1, &[1, 3, 4, 5], CHANGE_WITHIN);
        eprintln!("node 2 left under writes in {:.1}s", took.as_secs_f64());
        cluster.stop(2);
        // Writes go on after the leave until there are enough of them.
        let deadline = Instant::now() + CHANGE_WITHIN;
        while count.load(Ordering::Relaxed) < ACKED_MIN && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Release);
        writers.join().unwrap()
    });
    eprintln!(
        "{} writes acknowledged through the join and the leave",
        acked.len()
    );
    assert!(
        acked.len() >= ACKED_MIN,
        "only {} writes acknowledged",
        acked.len()
    );

    // Nothing acknowledged lost: every key reads back with its value.
    let reader = Client::connect(cluster.addr(1), config()).unwrap();
    for chunk in acked.chunks(500) {
        let keys: Vec<&[u8]> = chunk.iter().map(|k| k.as_bytes()).collect();
        for (key, read) in chunk.iter().zip(reader.get_many(&keys).unwrap()) {
            let read = read.unwrap_or_else(|e| panic!("reading {key}: {e}"));
            assert_eq!(read.values, vec![value(key)], "{key} lost or changed");
        }
    }

    // Placement: three distinct replicas per partition, none of them the node that left,
    // spanning both racks; each holds the same data as the others (equal roots).
    let status = cluster.status(1).unwrap();
    let lists = cluster.preference_lists(&status);
    assert_eq!(lists.len(), status.partition_roots.len());
    let rack = |node: u8| (cluster.options.rack)(node);
    for (p, list) in lists.iter().enumerate() {
        let mut distinct = list.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "partition {p} replicas {list:?}");
        assert!(
            !list.contains(&2),
            "partition {p} still names node 2: {list:?}"
        );
        assert!(
            list.iter().any(|&n| rack(n) != rack(list[0])),
            "partition {p} has every replica in {}: {list:?}",
            rack(list[0])
        );
    }
    let took = cluster.wait_replicas_equal(1, &[1, 3, 4, 5], CONVERGE_WITHIN);
    eprintln!(
        "every partition's replicas equal {:.1}s after the writes stopped",
        took.as_secs_f64()
    );
    cluster.stop_cleanly();
}
