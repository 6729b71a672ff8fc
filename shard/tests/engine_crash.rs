//! Crash states: the whole engine (commit log, memtables, flush, manifest, compaction) runs on
//! the simulated file system, which cuts the power after the n-th I/O operation, for many n.
//! Each cut file system is then turned into several states a power cut could leave (a random
//! subset of the unsynced writes kept, the last kept one possibly torn, unsynced names undone
//! in order; see `tessera_io::fs::sim`), and the engine reopens on each and is checked:
//!
//! - it opens (no panic, no refusal: a power cut is not corruption);
//! - every acknowledged durable write is there: a key reads as the value of its last
//!   acknowledged write or of a write issued after it (one cut short may or may not have
//!   happened);
//! - nothing deleted comes back: a key whose last acknowledged write is a delete reads as
//!   deleted or as a later write, never as an earlier value.
//!
//! The workload writes and deletes a few dozen keys with durable writes, each awaited in turn,
//! with a memtable of a few KiB and a compaction policy small enough that flushes, log
//! releases, manifest commits and compactions all happen many times within it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_core::NodeId;
use tessera_io::fs::SimFs;
use tessera_io::log_writer::LogConfig;
use tessera_shard::compaction::Policy;
use tessera_shard::engine::{Engine, EngineLimits, Supersedes};
use tessera_shard::lsm::LsmOptions;
use tessera_shard::sstable::TableOptions;

const NODE: NodeId = NodeId(3);
const KEYSPACE: &str = "default";
/// Keys written; few enough that most writes overwrite.
const KEYS: u32 = 40;
/// Operations per workload.
const OPS: usize = 300;
/// States checked per crash point: how many ways the power cut may have left the disk.
const STATES_PER_CUT: u64 = 8;
/// At least this many crash states in all (the issue asks for 10,000 in CI).
const STATES_MIN: u64 = 10_000;

fn limits() -> EngineLimits {
    EngineLimits {
        memtable_bytes_max: 3 << 10,
        memory_budget_bytes: 1 << 20,
        log: LogConfig {
            segment_bytes: 4 << 10,
            pending_bytes_max: 1 << 10,
        },
        lsm: LsmOptions {
            table: TableOptions {
                block_bytes_target: 512,
                ..TableOptions::default()
            },
            policy: Policy {
                l0_trigger: 2,
                level_base_bytes: 4 << 10,
                size_ratio: 2,
                max_levels: 4,
                target_file_bytes: 2 << 10,
            },
            compaction_bytes_per_sec: 1 << 30,
            cache_bytes: 64 << 10,
            l0_stall_tables: 6,
        },
    }
}

/// What happened to one key, in order: `Some(value)` or `None` (delete), and whether the
/// write was acknowledged.
#[derive(Debug, Default, Clone)]
struct History {
    writes: Vec<(Option<Vec<u8>>, bool)>,
}

impl History {
    /// The values a read may return after a crash: the last acknowledged write's and every
    /// later one's. A key never acknowledged may also be absent.
    fn allowed(&self) -> Vec<Option<Vec<u8>>> {
        let last_acked = self.writes.iter().rposition(|(_, acked)| *acked);
        let from = last_acked.unwrap_or(0);
        let mut allowed: Vec<Option<Vec<u8>>> =
            self.writes[from..].iter().map(|(v, _)| v.clone()).collect();
        if last_acked.is_none() {
            allowed.push(None);
        }
        allowed
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:03}").into_bytes()
}

/// Runs the workload on `fs` until the file system crashes or the workload ends; returns
/// every key's history.
async fn workload(fs: Rc<SimFs>, seed: u64) -> BTreeMap<u32, History> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut histories: BTreeMap<u32, History> = BTreeMap::new();
    let Ok((engine, _)) = Engine::open(fs, std::path::Path::new("/shard"), NODE, limits()).await
    else {
        return histories;
    };
    for op in 0..OPS {
        let k = rng.gen_range(0..KEYS);
        let value = (rng.gen_range(0..10) != 0).then(|| {
            let mut v = format!("{k}-{op}-").into_bytes();
            v.resize(rng.gen_range(v.len()..120), b'x');
            v
        });
        let history = histories.entry(k).or_default();
        history.writes.push((value.clone(), false));
        let written = engine
            .write(KEYSPACE, &key(k), Supersedes::Everything, value, true)
            .await;
        match written {
            Ok(_) => {
                if let Some(last) = history.writes.last_mut() {
                    last.1 = true;
                }
            }
            Err(_) => break,
        }
    }
    // The engine is dropped without a close: the power is cut, or the workload ended and the
    // cut comes now.
    histories
}

/// Reopens the engine on one crash state and checks every key against its history.
async fn check_state(fs: SimFs, histories: &BTreeMap<u32, History>) -> Result<(), String> {
    let (engine, _) = Engine::open(Rc::new(fs), std::path::Path::new("/shard"), NODE, limits())
        .await
        .map_err(|e| format!("reopen failed: {e}"))?;
    for (k, history) in histories {
        let got = engine
            .read(KEYSPACE, &key(*k), |o| {
                o.and_then(|o| o.live_values().next().map(<[u8]>::to_vec))
            })
            .await
            .map_err(|e| format!("read of key {k} failed: {e}"))?;
        let allowed = history.allowed();
        if !allowed.contains(&got) {
            return Err(format!(
                "key {k} reads {:?}; allowed {:?}",
                got.as_deref().map(String::from_utf8_lossy),
                allowed
                    .iter()
                    .map(|v| v.as_deref().map(String::from_utf8_lossy))
                    .collect::<Vec<_>>()
            ));
        }
    }
    engine.close().await.map_err(|e| format!("close: {e}"))
}

async fn crash_states(workload_seed: u64) -> Result<u64, String> {
    // One uncut run counts the operations, so cut points can cover all of them.
    let full = Rc::new(SimFs::new());
    workload(full.clone(), workload_seed).await;
    let total_ops = full.ops_done();
    let cuts = STATES_MIN.div_ceil(STATES_PER_CUT);
    let mut states = 0;
    for cut in 0..cuts {
        let after = cut * total_ops / cuts;
        let fs = Rc::new(SimFs::new());
        fs.crash_after(after);
        let histories = workload(fs.clone(), workload_seed).await;
        for seed in 0..STATES_PER_CUT {
            let state = fs.crash(seed ^ (cut << 8));
            check_state(state, &histories).await.map_err(|e| {
                format!("workload {workload_seed}, cut after {after} of {total_ops} ops, state {seed}: {e}")
            })?;
            states += 1;
        }
    }
    Ok(states)
}

/// The workload's seed: 1, or `TESSERA_CRASH_SEED` to explore others (a failure names its
/// seed, cut and state, so it replays exactly).
fn workload_seed() -> u64 {
    std::env::var("TESSERA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

#[test]
fn ten_thousand_crash_states_lose_no_acknowledged_write_and_resurrect_nothing() {
    let states =
        tessera_io::executor::run_unbound("test", || async { crash_states(workload_seed()).await })
            .expect("executor")
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(states >= STATES_MIN, "{states} states");
}
