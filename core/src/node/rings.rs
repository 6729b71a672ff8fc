//! [`RingState`]: the ring a node routes by, and the ring change in progress if any.
//!
//! A membership change (join, leave, weight change) moves through three published states, each
//! with a larger epoch, so that no read can miss an acknowledged write while ownership moves:
//!
//! | state | writes go to | reads ask | data moves |
//! |---|---|---|---|
//! | stable `R` | `R`'s list, `w` acks | `R`'s list | no |
//! | pending `R → N` | `R ∪ N`, `w + extra` acks | `R`'s list | old replicas stream to new ones |
//! | flipped `R → N` | `R ∪ N`, `w + extra` acks | `N`'s list | no |
//! | stable `N` | `N`'s list | `N`'s list | no |
//!
//! `extra` is how many of the union's nodes are outside the smaller of the two lists, so that a
//! write acknowledged in a changing state has at least `w` copies in **both** lists (the rule
//! Cassandra uses for pending ranges). The claimant (see `node::claim`) moves to the next state
//! only once every member of both rings has adopted the current one (a barrier over gossiped
//! ring versions), and flips only once every move of the plan is durable on its receiver; so no
//! node still reads from `R` once a write may skip `R`, and no node still writes to `R` alone
//! once data streams.
//!
//! A member that is gone for good (its disk wiped, its machine lost) cannot adopt states or
//! stream its partitions. The operator removes it ([`RingState::with_removed`]): barriers skip
//! it, and each replica that replaces it is streamed every surviving old replica's copy (see
//! [`RingState::sources_of`]); a write only it acknowledged is lost with its disk, as with any
//! replica lost before anti-entropy copied it.
//!
//! Versions: [`RingState::version`] is the epoch in the high 32 bits and a digest of the
//! content in the low 32, so states are totally ordered, two claimants that publish different
//! states of one epoch (a partitioned cluster) are told apart the same way everywhere, and two
//! that publish the same state agree.

use xxhash_rust::xxh3::Xxh3;

use crate::ids::{NodeId, PartitionId};
use crate::placement::{transfer_plan, Move, Replication, Ring, TransferPlan};

/// The ring a node routes by, and the change in progress. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingState {
    epoch: u32,
    current: Ring,
    change: Option<Change>,
}

/// A ring change in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Change {
    next: Ring,
    /// Reads already use `next`.
    flipped: bool,
    /// Members the operator removed (dead for good, e.g. a wiped disk): sorted, each a member
    /// of `current` or `next`. Barriers do not wait for them and they stream nothing.
    removed: Vec<NodeId>,
}

/// Where a [`RingState`] is in a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingPhase {
    /// No change in progress.
    Stable,
    /// Data streams to the new replicas; reads use the current ring.
    Pending,
    /// Every move is done; reads use the next ring, writes still reach both.
    Flipped,
}

impl RingState {
    /// A stable state at epoch 1: a new cluster's first ring.
    pub fn initial(ring: Ring) -> RingState {
        RingState {
            epoch: 1,
            current: ring,
            change: None,
        }
    }

    /// Epoch 0, holding `placeholder` (the node itself): the state of a node that joins an
    /// existing cluster through its seeds and has not yet been sent the cluster's ring. Every
    /// published state is newer, so the first ring pushed to it is adopted; until then the
    /// node claims nothing and coordinates nothing (see [`RingState::is_known`]).
    pub fn unknown(placeholder: Ring) -> RingState {
        RingState {
            epoch: 0,
            current: placeholder,
            change: None,
        }
    }

    /// Whether this is a published ring (not [`RingState::unknown`]).
    pub fn is_known(&self) -> bool {
        self.epoch > 0
    }

    /// Rebuilds a published state (decoded from the wire or from disk). `None` if the two
    /// rings do not have the same partition count.
    pub fn from_parts(epoch: u32, current: Ring, next: Option<(Ring, bool)>) -> Option<RingState> {
        if next
            .as_ref()
            .is_some_and(|(n, _)| n.partitions() != current.partitions())
        {
            return None;
        }
        Some(RingState {
            epoch,
            current,
            change: next.map(|(next, flipped)| Change {
                next,
                flipped,
                removed: Vec::new(),
            }),
        })
    }

    /// The same state with `removed` marked as removed members (see the module docs). `None`
    /// when stable (a stable state has nothing to wait for) or if one of them is a member of
    /// neither ring.
    pub fn with_removed(mut self, mut removed: Vec<NodeId>) -> Option<RingState> {
        removed.sort_unstable();
        removed.dedup();
        if removed.is_empty() {
            return Some(self);
        }
        if !removed.iter().all(|&n| self.has_member(n)) {
            return None;
        }
        self.change.as_mut()?.removed = removed;
        Some(self)
    }

    /// The removed members of the change in progress (see the module docs), sorted.
    pub fn removed(&self) -> &[NodeId] {
        self.change.as_ref().map_or(&[], |c| &c.removed)
    }

    fn is_removed(&self, node: NodeId) -> bool {
        self.removed().binary_search(&node).is_ok()
    }

    /// The members a barrier waits for: every member of both rings but the removed ones.
    pub fn barrier_members(&self) -> Vec<NodeId> {
        let mut members = self.all_members();
        members.retain(|&n| !self.is_removed(n));
        members
    }

    /// The epoch: grows by one with every published state.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Epoch in the high bits, content digest in the low: the total order of states.
    pub fn version(&self) -> u64 {
        (u64::from(self.epoch) << 32) | (self.digest() >> 32)
    }

    /// Where the state is in a change.
    pub fn phase(&self) -> RingPhase {
        match &self.change {
            None => RingPhase::Stable,
            Some(c) if c.flipped => RingPhase::Flipped,
            Some(_) => RingPhase::Pending,
        }
    }

    /// The ring before the change (the only ring when stable).
    pub fn current(&self) -> &Ring {
        &self.current
    }

    /// The ring after the change, if one is in progress.
    pub fn next(&self) -> Option<&Ring> {
        self.change.as_ref().map(|c| &c.next)
    }

    /// The ring reads and anti-entropy use.
    pub fn read_ring(&self) -> &Ring {
        match &self.change {
            Some(c) if c.flipped => &c.next,
            _ => &self.current,
        }
    }

    /// The ring the cluster is heading to: the next ring if a change is in progress.
    pub fn target_ring(&self) -> &Ring {
        self.next().unwrap_or(&self.current)
    }

    /// Whether `node` is a member of either ring.
    pub fn has_member(&self, node: NodeId) -> bool {
        self.current.member(node).is_some() || self.next().is_some_and(|n| n.member(node).is_some())
    }

    /// Every member of either ring, sorted by id.
    pub fn all_members(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.current.members().iter().map(|m| m.id).collect();
        if let Some(next) = self.next() {
            ids.extend(next.members().iter().map(|m| m.id));
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The replicas reads of partition `p` ask.
    pub fn read_list(&self, p: PartitionId, rep: &Replication) -> Vec<NodeId> {
        self.read_ring().preference_list(p, rep)
    }

    /// The replicas writes to partition `p` go to, the read list first, and how many acks
    /// beyond `w` a write needs (0 when stable). See the module docs.
    pub fn write_list(&self, p: PartitionId, rep: &Replication) -> (Vec<NodeId>, usize) {
        let mut list = self.read_list(p, rep);
        let Some(change) = &self.change else {
            return (list, 0);
        };
        let other_ring = if change.flipped {
            &self.current
        } else {
            &change.next
        };
        let other = other_ring.preference_list(p, rep);
        let read_len = list.len();
        for node in &other {
            if !list.contains(node) {
                list.push(*node);
            }
        }
        let extra = (list.len() - read_len).max(list.len() - other.len());
        (list, extra)
    }

    /// Fallbacks of partition `p` for sloppy writes: the read ring's, minus the write list.
    pub fn fallbacks(
        &self,
        p: PartitionId,
        rep: &Replication,
        write_list: &[NodeId],
    ) -> Vec<NodeId> {
        self.read_ring()
            .fallbacks(p, rep)
            .into_iter()
            .filter(|n| !write_list.contains(n))
            .collect()
    }

    /// The moves of the change in progress (empty when stable).
    pub fn plan(&self, rep: &Replication) -> TransferPlan {
        match &self.change {
            Some(c) => transfer_plan(&self.current, &c.next, rep),
            None => TransferPlan::default(),
        }
    }

    /// The nodes that stream `m` to its receiver: the old replica the receiver replaces in the
    /// partition's list (the i-th new replica pairs with the i-th dropped one), so that the
    /// receiver holds everything its predecessor acknowledged; the first old replica when the
    /// list grows and nobody is replaced. When the one replaced was removed, every old replica
    /// left streams: a write it acknowledged with any one of them then reaches the receiver
    /// too, so a read quorum of the new list still finds it. Empty if every old replica was
    /// removed: nothing is left to stream.
    pub fn sources_of(&self, m: &Move, plan: &TransferPlan) -> Vec<NodeId> {
        let Some(gained) = plan
            .moves
            .iter()
            .filter(|o| o.partition == m.partition)
            .position(|o| o.to == m.to)
        else {
            return Vec::new();
        };
        let dropped: Vec<NodeId> = plan
            .drops
            .iter()
            .filter(|(p, _)| *p == m.partition)
            .map(|(_, n)| *n)
            .collect();
        match dropped.get(gained) {
            Some(&paired) if !self.is_removed(paired) => vec![paired],
            Some(_) => m
                .sources
                .iter()
                .copied()
                .filter(|&n| !self.is_removed(n))
                .collect(),
            None => m.sources.first().copied().into_iter().collect(),
        }
    }

    /// Moves a shrinking list needs besides the plan's: where a partition loses more replicas
    /// than it gains (a leaving node that no other node in its rack or datacenter can
    /// replace), the dropped replicas nobody is paired with (see [`RingState::sources_of`])
    /// stream to every replica of the new list, so that what they alone acknowledged is not
    /// left behind. Each entry is ((partition, receiver), sources), a receiver that also gains
    /// the partition by the plan included; removed nodes stream nothing.
    pub fn shrink_moves(
        &self,
        plan: &TransferPlan,
        rep: &Replication,
    ) -> Vec<((PartitionId, NodeId), Vec<NodeId>)> {
        let Some(next) = self.next() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut partitions: Vec<PartitionId> = plan.drops.iter().map(|(p, _)| *p).collect();
        partitions.dedup();
        for p in partitions {
            let gains = plan.moves.iter().filter(|m| m.partition == p).count();
            let unpaired: Vec<NodeId> = plan
                .drops
                .iter()
                .filter(|(q, _)| *q == p)
                .skip(gains)
                .map(|(_, n)| *n)
                .filter(|&n| !self.is_removed(n))
                .collect();
            if unpaired.is_empty() {
                continue;
            }
            for to in next.preference_list(p, rep) {
                out.push(((p, to), unpaired.clone()));
            }
        }
        out
    }

    /// The next state: a change to `next` begins.
    pub fn propose(&self, next: Ring) -> RingState {
        RingState {
            epoch: self.epoch.saturating_add(1),
            current: self.current.clone(),
            change: Some(Change {
                next,
                flipped: false,
                removed: Vec::new(),
            }),
        }
    }

    /// The next state: the same change with `nodes` removed as well (see the module docs).
    /// `None` when stable or if one of them is a member of neither ring.
    pub fn removing(&self, nodes: &[NodeId]) -> Option<RingState> {
        let mut removed = self.removed().to_vec();
        removed.extend_from_slice(nodes);
        let mut next = self.clone();
        next.epoch = next.epoch.saturating_add(1);
        next.with_removed(removed)
    }

    /// The next state after a pending one whose change cannot finish (a member it needs was
    /// removed) and that nothing replaces: stable at the current ring again. Safe because
    /// reads never left the current ring while pending, and writes reached it throughout.
    pub fn abort(&self) -> Option<RingState> {
        self.change.as_ref().filter(|c| !c.flipped)?;
        Some(RingState {
            epoch: self.epoch.saturating_add(1),
            current: self.current.clone(),
            change: None,
        })
    }

    /// The next state after a pending one: reads move to the next ring.
    pub fn flip(&self) -> Option<RingState> {
        let change = self.change.as_ref().filter(|c| !c.flipped)?;
        Some(RingState {
            epoch: self.epoch.saturating_add(1),
            current: self.current.clone(),
            change: Some(Change {
                next: change.next.clone(),
                flipped: true,
                removed: change.removed.clone(),
            }),
        })
    }

    /// The next state after a flipped one: the next ring is the only ring.
    pub fn commit(&self) -> Option<RingState> {
        let change = self.change.as_ref().filter(|c| c.flipped)?;
        Some(RingState {
            epoch: self.epoch.saturating_add(1),
            current: change.next.clone(),
            change: None,
        })
    }

    /// Estimated encoded size.
    pub fn wire_bytes(&self) -> usize {
        let ring = |r: &Ring| 16 + 8 * r.partitions().get() as usize + 64 * r.members().len();
        8 + ring(&self.current) + self.next().map_or(1, |n| 2 + ring(n)) + 8 * self.removed().len()
    }

    /// A digest of the whole content (both rings and the phase).
    fn digest(&self) -> u64 {
        let mut h = Xxh3::new();
        let mut ring = |r: &Ring| {
            h.update(&r.version().to_le_bytes());
            h.update(&r.partitions().get().to_le_bytes());
            for m in r.members() {
                h.update(&m.id.0.to_le_bytes());
                h.update(&m.weight.to_le_bytes());
                h.update(m.rack.as_bytes());
                h.update(&[0]);
                h.update(m.dc.as_bytes());
                h.update(&[0]);
            }
            for o in r.owners() {
                h.update(&o.0.to_le_bytes());
            }
        };
        ring(&self.current);
        if let Some(c) = &self.change {
            ring(&c.next);
            h.update(&[1 + u8::from(c.flipped)]);
            for n in &c.removed {
                h.update(&n.0.to_le_bytes());
            }
        }
        h.digest()
    }
}

#[cfg(test)]
mod tests;
