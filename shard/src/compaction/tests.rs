//! Compaction policy tests: job shapes and order, the edit's checks, the token bucket, and a
//! model test that runs random flushes and compactions over simulated tables and checks that
//! a read through the levels finds every key's newest version and that levels stay disjoint
//! and, once `pick` has nothing left, within their targets.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::choose::level_bytes;
use super::*;

fn table(id: u64, level: u8, lo: u16, hi: u16, file_size: u64) -> TableMeta {
    TableMeta {
        id,
        level,
        smallest: lo.to_be_bytes().to_vec(),
        largest: hi.to_be_bytes().to_vec(),
        entry_count: 1,
        file_size,
    }
}

fn manifest(tables: Vec<TableMeta>) -> Manifest {
    let next_table_id = tables.iter().map(|t| t.id + 1).max().unwrap_or(0);
    Manifest {
        next_table_id,
        tables,
        ..Manifest::default()
    }
}

fn small_policy() -> Policy {
    Policy {
        l0_trigger: 4,
        level_base_bytes: 2_000,
        size_ratio: 4,
        max_levels: 4,
        target_file_bytes: 500,
    }
}

#[test]
fn default_policy_is_valid_and_targets_grow_by_the_ratio() {
    let p = Policy::default();
    p.validate().unwrap();
    assert_eq!(p.level_target_bytes(0), None);
    assert_eq!(p.level_target_bytes(1), Some(256 << 20));
    assert_eq!(p.level_target_bytes(2), Some(2560 << 20));
    assert_eq!(p.level_target_bytes(6), None, "the last level is unbounded");
    let bad = Policy {
        size_ratio: 1,
        ..Policy::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(CompactionError::InvalidPolicy(_))
    ));
}

#[test]
fn nothing_to_do_on_an_empty_or_small_manifest() {
    let p = small_policy();
    assert_eq!(pick(&Manifest::default(), &p), None);
    let m = manifest(vec![table(0, 0, 0, 9, 10), table(1, 1, 0, 9, 1_000)]);
    assert_eq!(pick(&m, &p), None);
}

#[test]
fn l0_job_takes_all_l0_newest_first_and_only_overlapping_l1() {
    let m = manifest(vec![
        table(1, 0, 10, 20, 10),
        table(7, 0, 15, 30, 10),
        table(3, 0, 5, 12, 10),
        table(9, 0, 25, 28, 10),
        table(2, 1, 0, 4, 100),   // left of the L0 span
        table(4, 1, 28, 40, 100), // overlaps the right end
        table(5, 1, 6, 8, 100),   // inside
        table(6, 1, 41, 50, 100), // right of the span
    ]);
    let job = pick(&m, &small_policy()).unwrap();
    assert_eq!(job.inputs, vec![9, 7, 3, 1, 5, 4]);
    assert_eq!(job.output_level, 1);
    assert_eq!(job.reason, CompactionReason::L0Count { tables: 4 });
}

#[test]
fn level_job_moves_the_least_overlapping_table_of_the_most_over_level() {
    // L1 target 2000, holds 2400 (1.2x); L2 target 8000, holds 8000 (not over).
    let m = manifest(vec![
        table(1, 1, 0, 9, 1_200),   // overlaps 10 and 11: 5000 bytes
        table(2, 1, 20, 29, 1_200), // overlaps 12: 1000 bytes
        table(10, 2, 0, 4, 2_500),
        table(11, 2, 5, 15, 2_500),
        table(12, 2, 25, 40, 1_000),
        table(13, 2, 50, 60, 2_000),
    ]);
    let job = pick(&m, &small_policy()).unwrap();
    assert_eq!(job.inputs, vec![2, 12]);
    assert_eq!(job.output_level, 2);
    let want = CompactionReason::LevelSize {
        level: 1,
        size_bytes: 2_400,
        target_bytes: 2_000,
    };
    assert_eq!(job.reason, want);
}

#[test]
fn the_last_level_never_sends_down() {
    let m = manifest(vec![table(1, 3, 0, 9, u64::MAX / 2)]);
    assert_eq!(pick(&m, &small_policy()), None);
}

#[test]
fn apply_job_replaces_inputs_with_outputs_at_the_output_level() {
    let m = manifest(vec![table(1, 1, 0, 9, 100), table(2, 2, 5, 20, 100)]);
    let job = CompactionJob {
        inputs: vec![1, 2],
        output_level: 2,
        reason: CompactionReason::L0Count { tables: 0 },
    };
    let outs = vec![table(3, 0, 0, 10, 100), table(4, 0, 11, 20, 100)];
    let edit = apply_job(&m, &job, outs).unwrap();
    assert_eq!(edit.remove, vec![1, 2]);
    assert!(edit.add.iter().all(|t| t.level == 2));
    let next = m.apply(&edit).unwrap();
    check_levels(&next).unwrap();
}

#[test]
fn apply_job_refuses_stale_inputs_and_overlapping_outputs() {
    let m = manifest(vec![table(1, 1, 0, 9, 100), table(2, 1, 30, 40, 100)]);
    let job = CompactionJob {
        inputs: vec![1],
        output_level: 1,
        reason: CompactionReason::L0Count { tables: 0 },
    };
    let stale = CompactionJob {
        inputs: vec![1, 99],
        ..job.clone()
    };
    let err = apply_job(&m, &stale, vec![]).unwrap_err();
    assert!(matches!(err, CompactionError::InputNotLive(99)));
    // Outputs overlapping each other.
    let outs = vec![table(3, 1, 0, 5, 1), table(4, 1, 5, 9, 1)];
    let err = apply_job(&m, &job, outs).unwrap_err();
    assert!(matches!(err, CompactionError::Overlap { level: 1, .. }));
    // An output reaching into a table of the level that stays.
    let outs = vec![table(3, 1, 0, 30, 1)];
    let err = apply_job(&m, &job, outs).unwrap_err();
    assert!(matches!(err, CompactionError::Overlap { a: 3, b: 2, .. }));
    let to_l0 = CompactionJob {
        output_level: 0,
        ..job
    };
    let err = apply_job(&m, &to_l0, vec![]).unwrap_err();
    assert!(matches!(err, CompactionError::InvalidJob(_)));
}

#[test]
fn budget_grants_the_burst_then_paces_at_the_rate() {
    let t0 = Instant::now();
    let mut b = IoBudget::new(1_000, 500, t0).unwrap();
    assert_eq!(b.take(300, t0), None);
    assert_eq!(b.take(200, t0), None);
    // Empty: 100 bytes at 1000 B/s is 100 ms away.
    assert_eq!(b.take(100, t0), Some(Duration::from_millis(100)));
    assert_eq!(
        b.take(100, t0 + Duration::from_millis(99)),
        Some(Duration::from_millis(1))
    );
    assert_eq!(b.take(100, t0 + Duration::from_millis(100)), None);
    // Refill caps at the burst however long the idle time.
    assert_eq!(b.available_bytes(t0 + Duration::from_secs(60)), 500);
}

#[test]
fn budget_grants_an_oversized_request_from_a_full_bucket_and_carries_the_debt() {
    let t0 = Instant::now();
    let mut b = IoBudget::new(1_000, 500, t0).unwrap();
    assert_eq!(b.take(1_500, t0), None);
    assert_eq!(b.available_bytes(t0), 0);
    // Debt of 1000 plus 1 byte needed: 1.001 s.
    assert_eq!(b.take(1, t0), Some(Duration::from_millis(1_001)));
    assert!(IoBudget::new(0, 1, t0).is_err());
    // A clock going back earns nothing and does not panic.
    let mut c = IoBudget::new(1_000, 10, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(c.take(10, t0), None);
    assert_eq!(c.take(1, t0), Some(Duration::from_millis(1)));
}

#[test]
fn budget_never_grants_more_than_burst_plus_rate_times_time() {
    let t0 = Instant::now();
    let (rate, burst) = (10_000u64, 4_096u64);
    let mut b = IoBudget::new(rate, burst, t0).unwrap();
    let mut now = t0;
    let mut granted = 0u64;
    for step in 0..2_000u64 {
        let bytes = 512 + (step * 7919) % 3_000;
        match b.take(bytes, now) {
            None => granted += bytes,
            Some(wait) => now += wait,
        }
    }
    let elapsed = now.duration_since(t0).as_secs_f64();
    assert!(granted as f64 <= burst as f64 + rate as f64 * elapsed + 1.0);
    assert!(
        granted as f64 >= rate as f64 * elapsed * 0.9,
        "pacing, not stalling"
    );
}

/// The simulated shard: tables with their contents (key → version), and the newest version
/// written of each key.
struct Sim {
    manifest: Manifest,
    contents: BTreeMap<u64, BTreeMap<u16, u64>>,
    latest: BTreeMap<u16, u64>,
    version: u64,
}

/// Bytes a simulated entry takes in a table.
const ENTRY_BYTES: u64 = 50;

impl Sim {
    fn new() -> Sim {
        Sim {
            manifest: Manifest::default(),
            contents: BTreeMap::new(),
            latest: BTreeMap::new(),
            version: 0,
        }
    }

    fn new_table(&mut self, level: u8, entries: BTreeMap<u16, u64>) -> TableMeta {
        let id = self.manifest.next_table_id + self.contents.len() as u64;
        let t = table(
            id,
            level,
            *entries.keys().next().unwrap(),
            *entries.keys().next_back().unwrap(),
            entries.len() as u64 * ENTRY_BYTES,
        );
        self.contents.insert(id, entries);
        t
    }

    fn flush(&mut self, keys: &[u16]) {
        let mut entries = BTreeMap::new();
        for k in keys {
            self.version += 1;
            entries.insert(*k, self.version);
            self.latest.insert(*k, self.version);
        }
        let t = self.new_table(0, entries);
        let edit = ManifestEdit {
            add: vec![t],
            ..ManifestEdit::default()
        };
        self.manifest = self.manifest.apply(&edit).unwrap();
    }

    /// Picks and runs one job: newest-wins merge of the inputs in job order, split into tables
    /// of about `target_file_bytes`. False when there was nothing to do.
    fn compact(&mut self, policy: &Policy) -> bool {
        let Some(job) = pick(&self.manifest, policy) else {
            return false;
        };
        let mut merged = BTreeMap::new();
        for id in &job.inputs {
            for (k, v) in &self.contents[id] {
                merged.entry(*k).or_insert(*v);
            }
        }
        let per_table = (policy.target_file_bytes / ENTRY_BYTES).max(1) as usize;
        let pairs: Vec<(u16, u64)> = merged.into_iter().collect();
        let outputs: Vec<TableMeta> = pairs
            .chunks(per_table)
            .map(|c| self.new_table(0, c.iter().copied().collect()))
            .collect();
        let edit = apply_job(&self.manifest, &job, outputs).unwrap();
        self.manifest = self.manifest.apply(&edit).unwrap();
        for id in &job.inputs {
            self.contents.remove(id);
        }
        true
    }

    /// The tables in read order: L0 by descending id, then each level in turn.
    fn read_order(&self) -> Vec<&TableMeta> {
        let mut tables: Vec<&TableMeta> = self.manifest.tables.iter().collect();
        tables.sort_by_key(|t| (t.level, if t.level == 0 { u64::MAX - t.id } else { 0 }));
        tables
    }

    fn check(&self) {
        check_levels(&self.manifest).unwrap();
        let order = self.read_order();
        for (key, version) in &self.latest {
            let found = order
                .iter()
                .find_map(|t| self.contents[&t.id].get(key).copied());
            assert_eq!(found, Some(*version), "key {key}");
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Flush(Vec<u16>),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(0u16..300, 1..40).prop_map(Op::Flush),
        1 => Just(Op::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn reads_find_the_newest_version_and_levels_settle(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let policy = small_policy();
        let mut sim = Sim::new();
        for op in &ops {
            match op {
                Op::Flush(keys) => sim.flush(keys),
                Op::Compact => {
                    sim.compact(&policy);
                }
            }
            sim.check();
        }
        let mut jobs = 0;
        while sim.compact(&policy) {
            sim.check();
            jobs += 1;
            prop_assert!(jobs < 1_000, "compaction does not settle");
        }
        let l0 = sim.manifest.tables.iter().filter(|t| t.level == 0).count();
        prop_assert!(l0 < policy.l0_trigger);
        for level in 1..policy.last_level() {
            let target = policy.level_target_bytes(level).unwrap();
            prop_assert!(level_bytes(&sim.manifest, level) <= target, "level {}", level);
        }
    }
}
