//! The claim: how many partitions each member should own (its target) and which ones.
//!
//! Targets are the largest-remainder apportionment of `Q` by weight: every member gets
//! `floor(Q · w / W)`, and the partitions left over go one each to the members with the
//! largest remainders. Among equal remainders, a member that already holds more than its
//! floor goes first (so an unchanged member set keeps its targets and a change moves nothing
//! needlessly), then the lower id.
//!
//! Spread: claim keeps any `CLAIM_SPREAD_PARTITIONS_DEFAULT` consecutive partitions (capped
//! at the member count) on distinct members, and as many consecutive partitions as there are
//! racks (same cap) on distinct racks, where it can; where no member fits it relaxes the rack
//! window first, then the node window, one step at a time. This is what makes the preference
//! list of `n` the owners of the first `n` partitions of the walk, so a partition changing
//! hands changes about `n` replica sets and no more, and it keeps the rack rule of the walk
//! from piling replicas onto a few nodes. A joining node prefers partitions of over-target
//! members in its own rack for the same reason.
//!
//! Cost: a fresh claim is O(Q · members · window²); an incremental one is O(moved partitions ·
//! scan length · window²), the scan ending at the first partition that fits the strictest
//! window (usually within a few steps).

use super::{Member, Topology};
use crate::constants::CLAIM_SPREAD_PARTITIONS_DEFAULT;

/// Marks a partition with no owner yet.
const UNOWNED: u32 = u32::MAX;

/// Target partition counts, one per member (members sorted by id). `held[i]` is how many
/// partitions member `i` owns now (all zero for a fresh ring). The targets sum to `q` and each
/// is its exact share rounded down or, when the share is not whole, up.
pub(super) fn targets(q: u32, members: &[Member], held: &[u32]) -> Vec<u32> {
    debug_assert_eq!(members.len(), held.len());
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    debug_assert!(total > 0, "validated members have positive weights");
    let total = total.max(1);
    let shares: Vec<(u64, u64)> = members
        .iter()
        .map(|m| {
            let exact = u64::from(q) * u64::from(m.weight);
            (exact / total, exact % total)
        })
        .collect();
    let mut targets: Vec<u32> = shares.iter().map(|&(base, _)| base as u32).collect();
    let assigned: u64 = shares.iter().map(|&(base, _)| base).sum();
    let extras = (u64::from(q) - assigned) as usize;
    // Only members with a non-zero remainder may round up; there are always at least `extras`
    // of them, because the remainders sum to `extras · total`, each below `total`.
    let mut order: Vec<usize> = (0..members.len()).filter(|&i| shares[i].1 > 0).collect();
    order.sort_by(|&a, &b| {
        let holds_a = held[a] > targets[a];
        let holds_b = held[b] > targets[b];
        holds_b
            .cmp(&holds_a)
            .then(shares[b].1.cmp(&shares[a].1))
            .then(a.cmp(&b))
    });
    debug_assert!(order.len() >= extras);
    for &i in order.iter().take(extras) {
        targets[i] += 1;
    }
    debug_assert_eq!(
        targets.iter().map(|&t| u64::from(t)).sum::<u64>(),
        u64::from(q)
    );
    targets
}

/// How claim spreads members around the ring: any `node_window` consecutive partitions on
/// distinct members, and any `rack_window` consecutive partitions on distinct racks, each
/// capped by what the members can satisfy. Where a partition cannot meet both, the rack window
/// is relaxed first, then the node window, one step at a time.
#[derive(Debug)]
struct Spread {
    /// Rack index of each member (a rack is a (dc, rack) pair).
    rack_of: Vec<u32>,
    /// Window levels from strictest to loosest, as (node window, rack window).
    levels: Vec<(usize, usize)>,
}

impl Spread {
    fn new(q: u32, members: &[Member]) -> Spread {
        let rack_of = Topology::of(members).rack_of;
        let racks = rack_of.iter().max().map_or(1, |&r| r as usize + 1);
        let cap = CLAIM_SPREAD_PARTITIONS_DEFAULT.min(q as usize).max(1);
        let node_window = cap.min(members.len()).max(1);
        let rack_window = cap.min(racks).max(1);
        let mut levels: Vec<(usize, usize)> = (1..=rack_window)
            .rev()
            .map(|wr| (node_window, wr))
            .collect();
        levels.extend((1..node_window).rev().map(|wn| (wn, 1)));
        Spread { rack_of, levels }
    }

    /// Whether member `i` at partition `p` would have itself within `level.0 - 1` steps or its
    /// rack within `level.1 - 1` steps, on either side.
    fn crowds(&self, owners: &[u32], p: usize, i: u32, level: (usize, usize)) -> bool {
        let q = owners.len();
        let rack = self.rack_of[i as usize];
        (1..level.0.max(level.1)).any(|d| {
            [owners[(p + d) % q], owners[(p + q - d) % q]]
                .into_iter()
                .filter(|&o| o != UNOWNED)
                .any(|o| {
                    (d < level.0 && o == i) || (d < level.1 && self.rack_of[o as usize] == rack)
                })
        })
    }

    /// The strictest level at which `i` does not crowd `p` (an index into `levels`; the
    /// loosest level, no window at all, always fits).
    fn fit(&self, owners: &[u32], p: usize, i: u32) -> usize {
        self.levels
            .iter()
            .position(|&level| !self.crowds(owners, p, i, level))
            .unwrap_or(self.levels.len())
    }
}

/// Picks who takes the unowned partition `p`: among members still below target that fit the
/// strictest spread level anyone fits, the one with the largest fraction of its target still
/// missing, then the lowest index. Spreading by missing fraction interleaves heavy and light
/// members evenly around the ring.
fn pick_for(
    owners: &[u32],
    p: usize,
    targets: &[u32],
    counts: &[u32],
    spread: &Spread,
) -> Option<u32> {
    let mut best: Option<(usize, usize)> = None; // (fit, member)
    for i in 0..targets.len() {
        if counts[i] >= targets[i] {
            continue;
        }
        let fit = spread.fit(owners, p, i as u32);
        let better = match best {
            None => true,
            Some((best_fit, _)) if fit != best_fit => fit < best_fit,
            Some((_, b)) => {
                let missing_i = u64::from(targets[i] - counts[i]) * u64::from(targets[b]);
                let missing_b = u64::from(targets[b] - counts[b]) * u64::from(targets[i]);
                missing_i > missing_b
            }
        };
        if better {
            best = Some((fit, i));
        }
    }
    best.map(|(_, i)| i as u32)
}

/// Gives every unowned partition, in partition order, to a member below its target.
fn fill(owners: &mut [u32], targets: &[u32], counts: &mut [u32], spread: &Spread) {
    for p in 0..owners.len() {
        if owners[p] != UNOWNED {
            continue;
        }
        // Unowned partitions never outnumber the members' missing partitions, so a member
        // below target always exists.
        if let Some(i) = pick_for(owners, p, targets, counts, spread) {
            owners[p] = i;
            counts[i as usize] += 1;
        } else {
            debug_assert!(false, "no member below target for an unowned partition");
        }
    }
}

/// A fresh claim: partition `p` in order goes to the member with the largest missing fraction
/// of its target that does not crowd `p`. With equal weights this is round robin.
pub(super) fn fresh(q: u32, members: &[Member]) -> Vec<u32> {
    let mut counts = vec![0u32; members.len()];
    let targets = targets(q, members, &counts);
    let mut owners = vec![UNOWNED; q as usize];
    fill(&mut owners, &targets, &mut counts, &Spread::new(q, members));
    owners
}

/// SplitMix64 finaliser: a fixed, well-mixed starting point on the ring for each node, so
/// joining nodes do not all start taking partitions at partition 0.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// An incremental claim. `previous[p]` is the new-member index of partition `p`'s old owner,
/// `None` if that owner left. Departed members' partitions go to members below target; then
/// members still below target take partitions from members above it, evenly spaced around the
/// ring. Nothing else moves.
pub(super) fn rebalance(previous: &[Option<u32>], members: &[Member]) -> Vec<u32> {
    let q = previous.len();
    let mut owners: Vec<u32> = previous.iter().map(|o| o.unwrap_or(UNOWNED)).collect();
    let mut counts = vec![0u32; members.len()];
    for &o in owners.iter().filter(|&&o| o != UNOWNED) {
        counts[o as usize] += 1;
    }
    let targets = targets(q as u32, members, &counts);
    let spread = Spread::new(q as u32, members);
    fill(&mut owners, &targets, &mut counts, &spread);

    for r in 0..members.len() {
        let missing = targets[r].saturating_sub(counts[r]) as usize;
        if missing == 0 {
            continue;
        }
        let start = (mix(members[r].id.0) % q as u64) as usize;
        for k in 0..missing {
            let ideal = (start + k * q / missing) % q;
            match steal_near(&owners, ideal, r as u32, &targets, &counts, &spread) {
                Some(p) => {
                    counts[owners[p] as usize] -= 1;
                    owners[p] = r as u32;
                    counts[r] += 1;
                }
                None => debug_assert!(false, "a member below target found no donor"),
            }
        }
    }
    debug_assert!(owners.iter().all(|&o| o != UNOWNED));
    debug_assert_eq!(counts, targets);
    owners
}

/// The first partition at or after `ideal` that `r` may take: owned by a member above its
/// target, at the strictest spread level any such partition allows. Stops at the first
/// partition fitting the strictest level.
fn steal_near(
    owners: &[u32],
    ideal: usize,
    r: u32,
    targets: &[u32],
    counts: &[u32],
    spread: &Spread,
) -> Option<usize> {
    let q = owners.len();
    let mut best: Option<(usize, usize)> = None; // (fit, partition)
    for step in 0..q {
        let p = (ideal + step) % q;
        let o = owners[p];
        if o == r || counts[o as usize] <= targets[o as usize] {
            continue;
        }
        let fit = spread.fit(owners, p, r);
        if fit == 0 {
            return Some(p);
        }
        if best.is_none_or(|(b, _)| fit < b) {
            best = Some((fit, p));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Member::new(NodeId(i as u64 + 1), "", "", w))
            .collect()
    }

    #[test]
    fn targets_are_largest_remainder() {
        // 10 over weights 1,1,1: 3.33 each; one extra goes to the lowest id.
        assert_eq!(targets(10, &members(&[1, 1, 1]), &[0, 0, 0]), vec![4, 3, 3]);
        // 10 over 1,2: 3.33 and 6.67; the larger remainder (the weight-2 node) rounds up.
        assert_eq!(targets(10, &members(&[1, 2]), &[0, 0]), vec![3, 7]);
        // A member already holding its ceiling keeps it when remainders tie.
        assert_eq!(targets(10, &members(&[1, 1, 1]), &[3, 4, 3]), vec![3, 4, 3]);
        // Whole shares never round up, whatever is held.
        assert_eq!(targets(8, &members(&[1, 1]), &[8, 0]), vec![4, 4]);
        // More members than partitions: some get none.
        assert_eq!(targets(2, &members(&[1, 1, 1]), &[0, 0, 0]), vec![1, 1, 0]);
    }

    #[test]
    fn fresh_equal_weights_is_round_robin() {
        let owners = fresh(16, &members(&[1, 1, 1, 1]));
        let expected: Vec<u32> = (0..16).map(|p| p % 4).collect();
        assert_eq!(owners, expected);
    }

    #[test]
    fn fresh_keeps_the_window_when_it_can() {
        let m = members(&[1; 10]);
        let owners = fresh(1024, &m);
        let spread = Spread::new(1024, &m);
        assert_eq!(spread.levels, vec![(4, 1), (3, 1), (2, 1), (1, 1)]);
        for p in 0..1024 {
            assert_eq!(spread.fit(&owners, p, owners[p]), 0, "p{p} crowded");
        }
    }

    #[test]
    fn fresh_alternates_racks() {
        // Six nodes in three racks of two: every three consecutive partitions span all racks.
        let m: Vec<Member> = (0..6)
            .map(|i| Member::new(NodeId(i + 1), format!("r{}", i / 2), "", 1))
            .collect();
        let owners = fresh(96, &m);
        let spread = Spread::new(96, &m);
        assert_eq!(spread.levels[0], (4, 3));
        for p in 0..96 {
            let racks: Vec<u32> = (0..3)
                .map(|d| spread.rack_of[owners[(p + d) % 96] as usize])
                .collect();
            assert!(racks[0] != racks[1] && racks[1] != racks[2] && racks[0] != racks[2]);
        }
    }

    #[test]
    fn mix_is_fixed() {
        // The starting points are part of the claim: changing mix changes every ring.
        assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
        assert_ne!(mix(1), mix(2));
    }
}
