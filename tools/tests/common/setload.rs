//! The set workload on real nodes: writers add unique elements to a few keys by
//! read-modify-write, merging siblings by union, and record every add the cluster
//! acknowledged. The checker then reads every key through every node and reports which
//! acknowledged adds are missing: with siblings none may be; in a last-write-wins keyspace
//! concurrent adds are dropped, which the checker must see.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tessera_client::{Client, ClientConfig, ClientError};

/// How the writers run.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Nodes' client addresses; writer w starts on node w mod len and moves on after an error.
    pub nodes: Vec<SocketAddr>,
    pub writers: usize,
    pub keys: usize,
    /// Most adds one writer attempts (bounds the sets below the value size limit).
    pub adds_per_writer: u32,
    /// Pause between one writer's adds.
    pub pace: Duration,
}

/// What the writers did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Acknowledged adds per key.
    pub acked: Vec<BTreeSet<u32>>,
    /// Adds that failed or timed out (they may or may not have landed).
    pub failed: u64,
}

impl Outcome {
    pub fn acked_total(&self) -> usize {
        self.acked.iter().map(BTreeSet::len).sum()
    }
}

/// Writer `w`'s `seq`-th element: unique per writer and add.
fn element_of(w: usize, seq: u32) -> u32 {
    (u32::try_from(w).unwrap() << 20) | seq
}

/// The key an element is added to: keys in turn, offset per writer. Every element belongs to
/// exactly one key, so an element read from another key came from somewhere it never was.
fn key_index(element: u32, keys: usize) -> usize {
    let (w, seq) = ((element >> 20) as usize, (element & 0xF_FFFF) as usize);
    (w + seq) % keys
}

pub fn key(k: usize) -> Vec<u8> {
    format!("set-{k}").into_bytes()
}

/// A set's value: its elements as little-endian u32s.
pub fn encode(set: &BTreeSet<u32>) -> Vec<u8> {
    set.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// The union of every sibling's elements.
pub fn union(values: &[Vec<u8>]) -> BTreeSet<u32> {
    values
        .iter()
        .flat_map(|v| v.chunks_exact(4))
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

/// One add: read the key, merge its siblings, add `element`, write it back with the read's
/// context (so the write supersedes exactly what was read).
fn add(client: &Client, key: &[u8], element: u32) -> Result<(), ClientError> {
    let read = client.get(key)?;
    let mut set = union(&read.values);
    set.insert(element);
    client.put(key, &encode(&set), Some(&read.context))?;
    Ok(())
}

/// Runs the writers until each made its adds or `stop` is set.
pub fn run(workload: &Workload, stop: &AtomicBool) -> Outcome {
    let acked = Mutex::new(vec![BTreeSet::new(); workload.keys]);
    let failed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for w in 0..workload.writers {
            let (acked, failed) = (&acked, &failed);
            scope.spawn(move || {
                let mut node = w % workload.nodes.len();
                let mut client: Option<Client> = None;
                for seq in 0..workload.adds_per_writer {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let element = element_of(w, seq);
                    let k = key_index(element, workload.keys);
                    let result = match &client {
                        Some(c) => add(c, &key(k), element),
                        None => Client::connect(workload.nodes[node], config()).and_then(|c| {
                            let r = add(&c, &key(k), element);
                            client = Some(c);
                            r
                        }),
                    };
                    match result {
                        Ok(()) => {
                            acked.lock().unwrap()[k].insert(element);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            client = None;
                            node = (node + 1) % workload.nodes.len();
                        }
                    }
                    std::thread::sleep(workload.pace);
                }
            });
        }
    });
    Outcome {
        acked: acked.into_inner().unwrap(),
        failed: failed.into_inner(),
    }
}

/// What a check of every key through every node found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// Acknowledged adds missing: per key the most any node's read misses, summed over keys.
    pub lost: usize,
    /// Elements read from a key they were never added to (another key's data leaked in).
    pub foreign: usize,
}

/// Reads key `k` through `node` (its quorum read, siblings merged): the acknowledged adds
/// missing, and the elements that never belonged to `k`; `None` if the read failed.
fn check_via(
    node: SocketAddr,
    k: usize,
    keys: usize,
    acked: &BTreeSet<u32>,
) -> Option<(usize, usize)> {
    let client = Client::connect(node, config()).ok()?;
    let read = client.get(&key(k)).ok()?;
    let seen = union(&read.values);
    let foreign = seen.iter().filter(|&&e| key_index(e, keys) != k).count();
    Some((acked.difference(&seen).count(), foreign))
}

/// Checks every key through every node, again until nothing is missing or `within` passes (a
/// read may repair what the previous one found stale, and hints may still be on their way).
pub fn check(outcome: &Outcome, nodes: &[SocketAddr], within: Duration) -> Check {
    let start = Instant::now();
    let keys = outcome.acked.len();
    loop {
        let mut found = Check::default();
        let mut unanswered = false;
        for (k, acked) in outcome.acked.iter().enumerate() {
            let mut worst = 0;
            for &node in nodes {
                match check_via(node, k, keys, acked) {
                    Some((missing, foreign)) => {
                        worst = worst.max(missing);
                        found.foreign += foreign;
                    }
                    None => unanswered = true,
                }
            }
            found.lost += worst;
        }
        if (found == Check::default() && !unanswered) || start.elapsed() > within {
            assert!(!unanswered, "some node did not answer the checker's reads");
            return found;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
