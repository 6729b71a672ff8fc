//! [`transfer_plan`]: which replicas move when the ring changes.
//!
//! For each partition, the nodes in the new preference list and not in the old one gain a
//! replica (a [`Move`] from the old replicas), and the nodes in the old list and not in the new
//! one lose theirs (a drop). A node that keeps its replica appears in neither. The plan is data
//! only; carrying it out (stream first, flip ownership once the data is there, drop last) is
//! the transfer module's job.

use super::{Replication, Ring};
use crate::ids::{NodeId, PartitionId};

/// One replica to build: `to` receives `partition` from any of `sources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The partition to copy.
    pub partition: PartitionId,
    /// The node gaining a replica.
    pub to: NodeId,
    /// The partition's replicas under the old ring, in their preference order: the nodes that
    /// hold its data (a leaving node included, since it streams its data out).
    pub sources: Vec<NodeId>,
}

/// What must move when the ring changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferPlan {
    /// Replicas to build, by partition, then in new preference order.
    pub moves: Vec<Move>,
    /// Replicas to drop once the moves of their partition are done, by partition, then in old
    /// preference order.
    pub drops: Vec<(PartitionId, NodeId)>,
}

impl TransferPlan {
    /// True when nothing moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.drops.is_empty()
    }

    /// The distinct partitions with at least one move or drop.
    pub fn partitions_touched(&self) -> usize {
        let mut ps: Vec<PartitionId> = self
            .moves
            .iter()
            .map(|m| m.partition)
            .chain(self.drops.iter().map(|d| d.0))
            .collect();
        ps.sort_unstable();
        ps.dedup();
        ps.len()
    }
}

/// The plan taking `old` to `new` for replication `rep`.
///
/// Contract: both rings have the same partition count ([`Ring::with_members`] keeps it).
/// A mismatch is a caller bug, asserted in debug builds; release builds plan only the
/// partitions both rings have.
pub fn transfer_plan(old: &Ring, new: &Ring, rep: &Replication) -> TransferPlan {
    debug_assert_eq!(
        old.partitions(),
        new.partitions(),
        "transfer plans need rings of one partition count"
    );
    let old_lists = old.all_lists(rep);
    let new_lists = new.all_lists(rep);
    let mut plan = TransferPlan::default();
    for (p, (before, after)) in old_lists.iter().zip(&new_lists).enumerate() {
        let partition = PartitionId(p as u32);
        let before: Vec<NodeId> = before
            .iter()
            .map(|&i| old.members()[i as usize].id)
            .collect();
        let after: Vec<NodeId> = after
            .iter()
            .map(|&i| new.members()[i as usize].id)
            .collect();
        for &to in after.iter().filter(|n| !before.contains(n)) {
            plan.moves.push(Move {
                partition,
                to,
                sources: before.clone(),
            });
        }
        for &gone in before.iter().filter(|n| !after.contains(n)) {
            plan.drops.push((partition, gone));
        }
    }
    plan
}
