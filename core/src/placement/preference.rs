//! Preference lists and fallbacks: the clockwise walk from a partition.
//!
//! The walk visits the owners of `p, p+1, …` (wrapping) and then, after one full lap, the
//! members that own no partition at all, in id order; each node counts at its first visit
//! only. The preference list picks from this order, one replica at a time:
//! - a pick must come from a datacenter that still needs replicas (with uniform replication
//!   every node is in one group that needs `n`);
//! - among those, it must come from a rack used least so far in its group, counting only
//!   racks that still have unpicked nodes: a rack is reused only when no other rack remains;
//! - among those, the first in walk order wins.
//!
//! So the owner of `p` is always first (with uniform replication), no node appears twice, and
//! a ring with fewer eligible nodes than `n` yields as many as it has. Fallbacks are every
//! other node in walk order.
//!
//! Cost: a list is O(walk length + n · racks); the walk stops as soon as the list is full, and
//! claim's spread keeps it short. All scratch space is reused across partitions.

use super::{Replication, Ring};
use crate::ids::{NodeId, PartitionId};

/// Replica groups for one [`Replication`] on one ring: which group each member and rack is in
/// and how many replicas each group needs.
#[derive(Debug)]
pub(super) struct Groups {
    /// Group of each member (0 for uniform replication, else its datacenter index).
    member_group: Vec<u32>,
    /// Group of each rack.
    rack_group: Vec<u32>,
    /// Replicas wanted per group, already capped at the group's member count.
    need: Vec<usize>,
}

impl Groups {
    pub(super) fn new(ring: &Ring, rep: &Replication) -> Groups {
        let t = &ring.topology;
        if rep.per_dc_counts().is_none() {
            return Groups {
                member_group: vec![0; ring.members.len()],
                rack_group: vec![0; t.rack_dc.len()],
                need: vec![rep.total().min(ring.members.len())],
            };
        }
        let need = t
            .dcs
            .iter()
            .enumerate()
            .map(|(d, name)| {
                let size = t.dc_of.iter().filter(|&&x| x as usize == d).count();
                rep.in_dc(name).unwrap_or(0).min(size)
            })
            .collect();
        Groups {
            member_group: t.dc_of.clone(),
            rack_group: t.rack_dc.clone(),
            need,
        }
    }
}

/// Reusable working space for walks over one ring.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    seen: Vec<bool>,
    skipped: Vec<u32>,
    rack_used: Vec<u32>,
    rack_left: Vec<u32>,
    need: Vec<usize>,
    least_used: Vec<u32>,
}

/// The distinct-node walk from a partition (see the module docs).
struct Walk<'a> {
    ring: &'a Ring,
    start: usize,
    step: usize,
    tail: usize,
}

impl Walk<'_> {
    /// The next node not yet marked in `seen`, marking it; `None` once every node is seen.
    fn next(&mut self, seen: &mut [bool]) -> Option<u32> {
        let q = self.ring.owners.len();
        while self.step < q {
            let x = self.ring.owner_index(self.start + self.step);
            self.step += 1;
            if !seen[x] {
                seen[x] = true;
                return Some(x as u32);
            }
        }
        while self.tail < seen.len() {
            let x = self.tail;
            self.tail += 1;
            if !seen[x] {
                seen[x] = true;
                return Some(x as u32);
            }
        }
        None
    }
}

impl Ring {
    /// The replicas of partition `p`: see the module docs of `placement::preference`. With
    /// uniform replication the owner of `p` comes first; nodes are never repeated; racks are
    /// spread; per-datacenter counts are honoured as far as each datacenter has nodes.
    pub fn preference_list(&self, p: PartitionId, rep: &Replication) -> Vec<NodeId> {
        let groups = Groups::new(self, rep);
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        self.select(p.0 as usize, &groups, &mut scratch, &mut out);
        out.iter().map(|&i| self.members[i as usize].id).collect()
    }

    /// Every node not in the preference list of `p`, in the order a sloppy quorum tries them:
    /// clockwise from `p`, then members owning no partition in id order.
    pub fn fallbacks(&self, p: PartitionId, rep: &Replication) -> Vec<NodeId> {
        let groups = Groups::new(self, rep);
        let mut scratch = Scratch::default();
        let mut chosen = Vec::new();
        self.select(p.0 as usize, &groups, &mut scratch, &mut chosen);
        let mut seen = vec![false; self.members.len()];
        for &c in &chosen {
            seen[c as usize] = true;
        }
        let mut walk = self.walk(p.0 as usize);
        let mut out = Vec::with_capacity(self.members.len() - chosen.len());
        while let Some(x) = walk.next(&mut seen) {
            out.push(self.members[x as usize].id);
        }
        out
    }

    /// The partitions, in order, whose preference list includes `node`.
    pub fn replica_partitions(&self, node: NodeId, rep: &Replication) -> Vec<PartitionId> {
        let Some(target) = self.index_of(node) else {
            return Vec::new();
        };
        let groups = Groups::new(self, rep);
        let mut scratch = Scratch::default();
        let mut list = Vec::new();
        self.partitions
            .iter()
            .filter(|p| {
                self.select(p.0 as usize, &groups, &mut scratch, &mut list);
                list.contains(&(target as u32))
            })
            .collect()
    }

    /// Every partition's preference list as member indices, in partition order.
    pub(super) fn all_lists(&self, rep: &Replication) -> Vec<Vec<u32>> {
        let groups = Groups::new(self, rep);
        let mut scratch = Scratch::default();
        self.partitions
            .iter()
            .map(|p| {
                let mut list = Vec::new();
                self.select(p.0 as usize, &groups, &mut scratch, &mut list);
                list
            })
            .collect()
    }

    fn walk(&self, start: usize) -> Walk<'_> {
        Walk {
            ring: self,
            start,
            step: 0,
            tail: 0,
        }
    }

    /// Fills `out` with the preference list of partition `p` as member indices.
    pub(super) fn select(&self, p: usize, groups: &Groups, s: &mut Scratch, out: &mut Vec<u32>) {
        let t = &self.topology;
        out.clear();
        s.seen.clear();
        s.seen.resize(self.members.len(), false);
        s.skipped.clear();
        s.rack_used.clear();
        s.rack_used.resize(t.rack_sizes.len(), 0);
        s.rack_left.clear();
        s.rack_left.extend_from_slice(&t.rack_sizes);
        s.need.clear();
        s.need.extend_from_slice(&groups.need);
        let mut wanted: usize = s.need.iter().sum();
        let mut walk = self.walk(p);
        while wanted > 0 {
            // The least use, per group, of any rack that still has unpicked nodes.
            s.least_used.clear();
            s.least_used.resize(s.need.len(), u32::MAX);
            for (r, (&used, &left)) in s.rack_used.iter().zip(&s.rack_left).enumerate() {
                let g = groups.rack_group[r] as usize;
                if left > 0 && used < s.least_used[g] {
                    s.least_used[g] = used;
                }
            }
            let eligible = |x: u32, s: &Scratch| {
                let g = groups.member_group[x as usize] as usize;
                s.need[g] > 0 && s.rack_used[t.rack_of[x as usize] as usize] == s.least_used[g]
            };
            let pick = match s.skipped.iter().position(|&x| eligible(x, s)) {
                Some(i) => Some(s.skipped.remove(i)),
                None => loop {
                    match walk.next(&mut s.seen) {
                        Some(x) if eligible(x, s) => break Some(x),
                        Some(x) => s.skipped.push(x),
                        None => break None,
                    }
                },
            };
            // A group still needing replicas has an unpicked member (need is capped at the
            // group size), and one of them sits in a least-used rack, so the walk finds it.
            let Some(x) = pick else {
                debug_assert!(false, "preference walk ran out of nodes");
                break;
            };
            out.push(x);
            let rack = t.rack_of[x as usize] as usize;
            s.rack_used[rack] += 1;
            s.rack_left[rack] -= 1;
            s.need[groups.member_group[x as usize] as usize] -= 1;
            wanted -= 1;
        }
    }
}
