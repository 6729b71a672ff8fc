//! Compaction policy: which tables to merge next, and the manifest edit that installs the result.
//!
//! Pure: [`pick`] reads a [`Manifest`] and a [`Policy`] and names a [`CompactionJob`];
//! [`apply_job`] turns the job and the tables the merge wrote into one [`ManifestEdit`]. The
//! engine runs the job (`lsm/compact.rs`: reading the inputs newest first through `merge.rs`,
//! writing the outputs with `lsm/write.rs`, committing the edit) in a lower-priority task
//! queue paced by an [`IoBudget`].
//!
//! # Strategy: leveled
//!
//! L0 holds flushed tables, which overlap one another; every level `n >= 1` is one sorted run
//! of non-overlapping tables whose total size targets `level_base_bytes * size_ratio^(n-1)`
//! (size ratio 10, tables of ~64 MiB). Why leveled rather than tiered, for this workload
//! (small values, many point reads, anti-entropy streaming whole token ranges):
//! - Read amplification: a point read probes at most every L0 table plus one table per level,
//!   each behind a bloom filter, so ≈ `l0_trigger + levels` filter probes and about one data
//!   block read. Tiered keeps up to `size_ratio` overlapping runs per level, so up to ten times
//!   the probes, and false positives grow with them.
//! - Space amplification: with ratio 10 the levels above the last hold ~1/9 of the data, so at
//!   most ~1.11x of the live data is on disk. Tiered can need 2x or more while a level merges.
//! - Write amplification is the price: each byte is rewritten ~`size_ratio` times per level
//!   (tens of times in all, against a few for tiered). Small values make writes cheap to
//!   absorb and reads dominate, so we pay it. Choosing the Ln table with the least overlap
//!   (below) keeps it near the lower end.
//! - Anti-entropy and transfer: keys are token-prefixed, so at L1+ a token range maps to a few
//!   contiguous, non-overlapping tables that can be streamed or checked without a merge.
//!
//! # Picking
//!
//! L0 first: when L0 holds `l0_trigger` tables, every L0 table plus the L1 tables overlapping
//! their key span go to L1 (all of L0, so L0 keeps no older copy of a moved key). Otherwise the
//! level most over its target (largest `size / target`) sends one table down: the one whose
//! overlap with level n+1 is the fewest bytes per byte moved (RocksDB's "min overlapping
//! ratio"; ties go to the lowest id, the oldest), plus those overlapping level n+1 tables.
//! A stateless rule rather than a round-robin cursor, so the choice needs nothing the manifest
//! does not hold. The last level (`max_levels - 1`) has no target and never sends down.
//!
//! # Newest wins
//!
//! A read searches L0 by descending id, then L1, L2, … and stops at the first table holding
//! the key. That finds the newest version because:
//! - L0 ids are flush order (ids only grow) and compaction never writes to L0, so a higher L0
//!   id is always newer data, even when a flush lands while a compaction runs.
//! - For any key, level n's copy is newer than level n+1's: data only moves down, and a job
//!   takes whole overlapping sets, so the key's copies in the source level and the output level
//!   merge together ([`CompactionJob::inputs`] is newest first, the order `merge.rs` wants).
//! - The outputs replace the inputs in one [`ManifestEdit`], so no reader sees both or neither.
//!
//! # I/O budget
//!
//! Compaction reads and writes through an [`IoBudget`], a token bucket: the job asks for the
//! bytes of each block before issuing it and sleeps for the wait it is told. The rate caps
//! compaction's share of the disk so foreground p99 holds; the burst lets a block go at once.
//!
//! Invariants (checked by [`check_levels`] and [`apply_job`]; the model test in `tests.rs`
//! checks them and newest-wins reads over random flushes and compactions):
//! - Tables of a level `n >= 1` have pairwise disjoint `[smallest, largest]` ranges.
//! - A job from [`pick`] holds every table of the output level that overlaps its sources.
//!   [`apply_job`] checks the inputs are still live and the outputs go to `output_level >= 1`,
//!   disjoint from each other and from the tables of that level that stay.
//! - The engine runs one job per shard at a time (`Lsm::compact_once` takes a turn): [`pick`]
//!   does not know about a job in flight.

use crate::manifest::{Manifest, ManifestEdit, TableMeta, MANIFEST_LEVELS_MAX};

mod budget;
mod choose;
#[cfg(test)]
mod tests;

pub use budget::IoBudget;

/// When to compact and how big levels and tables grow. Read from node configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// L0 table count that starts an L0 → L1 job; bounds the L0 share of read amplification.
    pub l0_trigger: usize,
    /// Target total bytes of L1.
    pub level_base_bytes: u64,
    /// Each level's target is this many times the one above.
    pub size_ratio: u64,
    /// Levels are `0..max_levels`; the last has no target. At most `MANIFEST_LEVELS_MAX`.
    pub max_levels: u8,
    /// Size the merge splits its output into (the engine's job; used here for nothing else).
    pub target_file_bytes: u64,
}

impl Default for Policy {
    /// 4 L0 tables, L1 of 256 MiB, ratio 10 (L5 targets 2.5 TiB; L6 is the last, unbounded),
    /// 64 MiB tables.
    fn default() -> Self {
        Policy {
            l0_trigger: 4,
            level_base_bytes: 256 << 20,
            size_ratio: 10,
            max_levels: 7,
            target_file_bytes: 64 << 20,
        }
    }
}

impl Policy {
    /// Refuses a policy that could not bound anything. [`pick`] is total on any policy (it
    /// clamps), but configuration should be checked with this on load.
    pub fn validate(&self) -> Result<(), CompactionError> {
        let bad = |reason: &'static str| Err(CompactionError::InvalidPolicy(reason));
        if self.l0_trigger == 0 {
            return bad("l0_trigger must be at least 1");
        }
        if self.level_base_bytes == 0 || self.target_file_bytes == 0 {
            return bad("level_base_bytes and target_file_bytes must be positive");
        }
        if self.size_ratio < 2 {
            return bad("size_ratio must be at least 2");
        }
        if !(2..=MANIFEST_LEVELS_MAX).contains(&self.max_levels) {
            return bad("max_levels must be in 2..=MANIFEST_LEVELS_MAX");
        }
        Ok(())
    }

    /// The last level, clamped to what the manifest can hold.
    pub fn last_level(&self) -> u8 {
        self.max_levels.clamp(2, MANIFEST_LEVELS_MAX) - 1
    }

    /// Target total bytes of `level >= 1` (saturating); `None` for L0 and the last level,
    /// which have no byte target.
    pub fn level_target_bytes(&self, level: u8) -> Option<u64> {
        if level == 0 || level >= self.last_level() {
            return None;
        }
        let mut target = self.level_base_bytes.max(1);
        for _ in 1..level {
            target = target.saturating_mul(self.size_ratio.max(2));
        }
        Some(target)
    }
}

/// One compaction to run: merge `inputs` (newest first) into new tables at `output_level`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionJob {
    /// Table ids, newest first: L0 by descending id, then the source level, then the output
    /// level. Feed the merge in this order.
    pub inputs: Vec<u64>,
    /// The level the outputs go to; always `>= 1`.
    pub output_level: u8,
    /// Why this job was picked, for logs and metrics.
    pub reason: CompactionReason,
}

/// Why [`pick`] chose a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactionReason {
    /// L0 reached `l0_trigger` tables.
    L0Count { tables: usize },
    /// `level` holds more than its target.
    LevelSize {
        level: u8,
        size_bytes: u64,
        target_bytes: u64,
    },
}

/// What the compaction policy refuses. Each is a bug in the caller or a bad configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactionError {
    /// The policy or budget configuration cannot work; fix the configuration.
    #[error("invalid compaction policy: {0}")]
    InvalidPolicy(&'static str),
    /// A job names a table the manifest no longer lists: the job is stale (another edit
    /// removed it); drop the outputs and pick again.
    #[error("compaction input {0} is not live")]
    InputNotLive(u64),
    /// Two tables of one level ≥ 1 overlap, which would let a read find an older version.
    /// From `apply_job`, the outputs are wrong: drop them and do not commit.
    #[error("tables {a} and {b} overlap in level {level}")]
    Overlap { level: u8, a: u64, b: u64 },
    /// A job that cannot be valid (no inputs, or output to L0).
    #[error("invalid compaction job: {0}")]
    InvalidJob(&'static str),
}

/// The next compaction to run, or `None` when L0 is under its trigger and every level is
/// within its target. Deterministic: the same manifest and policy give the same job.
pub fn pick(manifest: &Manifest, policy: &Policy) -> Option<CompactionJob> {
    choose::l0_job(manifest, policy).or_else(|| choose::level_job(manifest, policy))
}

/// The edit that installs a finished job: removes every input, adds `outputs` at the job's
/// output level (whatever level they carried). Checks that the inputs are still live and that
/// the outputs overlap neither each other nor the output level's remaining tables.
pub fn apply_job(
    manifest: &Manifest,
    job: &CompactionJob,
    outputs: Vec<TableMeta>,
) -> Result<ManifestEdit, CompactionError> {
    if job.inputs.is_empty() {
        return Err(CompactionError::InvalidJob("no inputs"));
    }
    if job.output_level == 0 {
        return Err(CompactionError::InvalidJob("outputs never go to L0"));
    }
    if let Some(id) = job
        .inputs
        .iter()
        .find(|id| !manifest.tables.iter().any(|t| t.id == **id))
    {
        return Err(CompactionError::InputNotLive(*id));
    }
    let add: Vec<TableMeta> = outputs
        .into_iter()
        .map(|t| TableMeta {
            level: job.output_level,
            ..t
        })
        .collect();
    let staying = manifest
        .tables
        .iter()
        .filter(|t| t.level == job.output_level && !job.inputs.contains(&t.id));
    check_disjoint(job.output_level, staying.chain(add.iter()))?;
    Ok(ManifestEdit {
        add,
        remove: job.inputs.clone(),
        log_floor: None,
    })
}

/// Checks that every level `>= 1` of `manifest` is a sorted run: no two tables overlap.
pub fn check_levels(manifest: &Manifest) -> Result<(), CompactionError> {
    for level in 1..MANIFEST_LEVELS_MAX {
        check_disjoint(level, manifest.tables.iter().filter(|t| t.level == level))?;
    }
    Ok(())
}

/// Whether the closed key ranges of `a` and `b` share a key.
pub fn overlaps(a: &TableMeta, b: &TableMeta) -> bool {
    a.smallest <= b.largest && b.smallest <= a.largest
}

/// Sorts by smallest key and checks each table ends before the next begins.
fn check_disjoint<'a>(
    level: u8,
    tables: impl Iterator<Item = &'a TableMeta>,
) -> Result<(), CompactionError> {
    let mut sorted: Vec<&TableMeta> = tables.collect();
    sorted.sort_by(|a, b| a.smallest.cmp(&b.smallest));
    match sorted.windows(2).find(|w| overlaps(w[0], w[1])) {
        Some(w) => Err(CompactionError::Overlap {
            level,
            a: w[0].id,
            b: w[1].id,
        }),
        None => Ok(()),
    }
}
