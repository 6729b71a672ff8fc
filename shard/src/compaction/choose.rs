//! The two job shapes [`super::pick`] chooses between: L0 → L1 and Ln → Ln+1.
//!
//! Both take a set of source tables and every table of the output level that overlaps them, so
//! the merged outputs stay disjoint from the output level's remaining tables: the union of a
//! contiguous source span and the output-level tables that touch it is itself contiguous, and
//! any other output-level table lies wholly outside it.

use std::cmp::{Ordering, Reverse};

use super::{overlaps, CompactionJob, CompactionReason, Policy};
use crate::manifest::{Manifest, TableMeta};

/// All L0 tables plus the overlapping L1 tables, when L0 holds `l0_trigger` or more.
pub(super) fn l0_job(manifest: &Manifest, policy: &Policy) -> Option<CompactionJob> {
    let mut l0: Vec<&TableMeta> = level(manifest, 0).collect();
    if l0.is_empty() || l0.len() < policy.l0_trigger.max(1) {
        return None;
    }
    // Descending id is newest first: ids only grow and nothing but flushes writes L0.
    l0.sort_by_key(|t| Reverse(t.id));
    let span = TableMeta {
        smallest: l0.iter().map(|t| &t.smallest).min()?.clone(),
        largest: l0.iter().map(|t| &t.largest).max()?.clone(),
        ..l0[0].clone()
    };
    let mut inputs: Vec<u64> = l0.iter().map(|t| t.id).collect();
    inputs.extend(overlapping(manifest, 1, &span).iter().map(|t| t.id));
    Some(CompactionJob {
        inputs,
        output_level: 1,
        reason: CompactionReason::L0Count { tables: l0.len() },
    })
}

/// One table of the level most over its target, plus its overlap in the next level.
pub(super) fn level_job(manifest: &Manifest, policy: &Policy) -> Option<CompactionJob> {
    let (source, size_bytes, target_bytes) = most_over_target(manifest, policy)?;
    let output_level = source + 1;
    let table = least_overlap(manifest, source)?;
    let mut inputs = vec![table.id];
    inputs.extend(
        overlapping(manifest, output_level, table)
            .iter()
            .map(|t| t.id),
    );
    Some(CompactionJob {
        inputs,
        output_level,
        reason: CompactionReason::LevelSize {
            level: source,
            size_bytes,
            target_bytes,
        },
    })
}

/// The level `1..last` with the largest `size / target` above 1, as `(level, size, target)`;
/// ties go to the upper level, whose data is read first.
fn most_over_target(manifest: &Manifest, policy: &Policy) -> Option<(u8, u64, u64)> {
    let mut best: Option<(u8, u64, u64)> = None;
    for lvl in 1..policy.last_level() {
        let Some(target) = policy.level_target_bytes(lvl) else {
            continue;
        };
        let size = level_bytes(manifest, lvl);
        if size <= target {
            continue;
        }
        // size / target > best_size / best_target, in integers (u64 * u64 fits u128).
        let better = best.is_none_or(|(_, s, t)| {
            u128::from(size) * u128::from(t) > u128::from(s) * u128::from(target)
        });
        if better {
            best = Some((lvl, size, target));
        }
    }
    best
}

/// The table of `lvl` that rewrites the fewest next-level bytes per byte it moves down (least
/// write amplification); ties go to the lowest id, the oldest.
fn least_overlap(manifest: &Manifest, lvl: u8) -> Option<&TableMeta> {
    let cost = |t: &TableMeta| -> (u128, u128) {
        let overlap: u64 = overlapping(manifest, lvl + 1, t)
            .iter()
            .map(|o| o.file_size)
            .sum();
        (u128::from(overlap), u128::from(t.file_size.max(1)))
    };
    level(manifest, lvl)
        .map(|t| (t, cost(t)))
        .min_by(
            |(a, (ao, asz)), (b, (bo, bsz))| match (ao * bsz).cmp(&(bo * asz)) {
                Ordering::Equal => a.id.cmp(&b.id),
                other => other,
            },
        )
        .map(|(t, _)| t)
}

/// Tables of `lvl` whose range overlaps `span`, by smallest key (a level ≥ 1 is one sorted
/// run, so any order is newest-equal; key order keeps the job deterministic).
fn overlapping<'m>(manifest: &'m Manifest, lvl: u8, span: &TableMeta) -> Vec<&'m TableMeta> {
    let mut found: Vec<&TableMeta> = level(manifest, lvl).filter(|t| overlaps(t, span)).collect();
    found.sort_by(|a, b| a.smallest.cmp(&b.smallest));
    found
}

fn level(manifest: &Manifest, lvl: u8) -> impl Iterator<Item = &TableMeta> {
    manifest.tables.iter().filter(move |t| t.level == lvl)
}

/// Total file bytes of `lvl`, saturating.
pub(super) fn level_bytes(manifest: &Manifest, lvl: u8) -> u64 {
    level(manifest, lvl).fold(0u64, |sum, t| sum.saturating_add(t.file_size))
}
