//! Ring changes on a node: adopting and spreading ring states, the claimant that drives a
//! change through its states, and the node's own status (joining, up, leaving, left).
//!
//! The claimant is the lowest-id member of the current ring that this node believes alive and
//! not departing. It alone publishes states (see [`super::rings`]): it proposes the next ring
//! when the wanted member set differs from the current one (joining nodes in, leaving nodes
//! out), flips once every move is reported done and every member of both rings has adopted
//! the pending state, and commits once every member has adopted the flipped state. Two nodes
//! that both believe themselves claimant (a partitioned cluster) may publish conflicting
//! states of one epoch; [`RingState::version`] orders them identically everywhere, and the
//! loser's moves are simply redone under the winner's state.
//!
//! Invariants:
//! - a node adopts only newer states and persists each before it announces it in gossip, so
//!   the barrier (every member announced at least version v) means every member routes by v
//!   or newer, now and after any restart;
//! - the claimant's record of completed moves is for exactly its current state's version.

use std::collections::BTreeSet;

use super::{Action, Node, PeerMessage, Pending, RingPhase, RingState, StorageOp};
use crate::ids::{NodeId, PartitionId};
use crate::membership::Status;
use crate::placement::{Member, Ring};
use crate::tick::Tick;

/// Ticks between two looks of the claimant at the cluster.
pub const CLAIM_TICKS: u64 = 50;

/// Ticks before the same peer is sent the ring state again.
pub const RING_PUSH_TICKS: u64 = 200;

/// Why [`Node::remove`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// The node is not a member of the ring.
    #[error("node {0} is not a member of the ring")]
    NotAMember(NodeId),
    /// The node asked to remove itself.
    #[error("node {0} cannot remove itself; ask it to leave instead")]
    Myself(NodeId),
    /// The node is alive in this node's view: removing it would lose its data for nothing.
    #[error(
        "node {0} is alive; ask it to leave instead (remove only a node that is gone for good)"
    )]
    Alive(NodeId),
}

/// The claimant's bookkeeping.
#[derive(Debug, Default)]
pub(super) struct ClaimState {
    /// Members the operator removed that a ring still names: sent to the claimant until no
    /// ring does (see [`Node::remove`]).
    removals: BTreeSet<NodeId>,
    /// When the removals were last sent to the claimant.
    last_removal_push: Tick,
    /// The ring version `done` is for.
    version: u64,
    /// Moves reported durable on their receivers, as (partition, receiver, source).
    done: BTreeSet<(PartitionId, NodeId, NodeId)>,
    last_look: Tick,
    /// When the ring state was last sent to storage.
    last_save: Tick,
}

impl Node {
    /// Takes `state` if it is newer than the one held: persists it (announcing it in gossip
    /// once stored), restarts transfers for it, and updates this node's status.
    pub(super) fn adopt_ring(&mut self, now: Tick, state: RingState, out: &mut Vec<Action>) {
        let version = state.version();
        if version <= self.ring_version
            || state.current().partitions() != self.rings.current().partitions()
        {
            return;
        }
        self.rings = state;
        self.ring_version = version;
        self.save_ring(now, out);
        self.on_ring_changed(now, out);
        self.update_status();
    }

    /// Persists the ring state; once stored, it is announced (see [`Pending::RingSaved`]).
    fn save_ring(&mut self, now: Tick, out: &mut Vec<Action>) {
        self.claim.last_save = now;
        let version = self.ring_version;
        let op = StorageOp::SaveRing(Box::new(self.rings.clone()));
        self.storage(op, true, Pending::RingSaved { version }, out);
    }

    /// Source `from` reports completed moves of the change at `ring`. Only moves of the
    /// current plan that `from` sources are kept, so the record stays within the plan's size
    /// and no other node can report a move done.
    pub(super) fn on_moves_done(
        &mut self,
        from: NodeId,
        ring: u64,
        moves: Vec<(PartitionId, NodeId)>,
    ) {
        if ring != self.ring_version {
            return;
        }
        self.claim_state_reset();
        for (partition, to) in moves {
            if self.moves.is_source(partition, to, from) {
                self.claim.done.insert((partition, to, from));
            }
        }
    }

    /// Joining turns to up once a stable ring names this node; leaving turns to left once a
    /// stable ring no longer does, and so does up (the operator removed this node while it
    /// was away: it must not serve or claim under its old id again).
    pub(super) fn update_status(&mut self) {
        if self.rings.phase() != RingPhase::Stable || !self.rings.is_known() {
            return;
        }
        let member = self.rings.current().member(self.config.id).is_some();
        match self.gossip.me().status {
            Status::Joining if member => self.gossip.set_status(Status::Up),
            Status::Leaving | Status::Up if !member => self.gossip.set_status(Status::Left),
            _ => {}
        }
    }

    /// Asks the cluster to take this node out of the ring: its data streams to the nodes that
    /// take over its partitions, and its status turns to `Left` once the change is committed.
    pub fn leave(&mut self) {
        if matches!(self.gossip.me().status, Status::Up | Status::Joining) {
            self.gossip.set_status(Status::Leaving);
        }
        self.update_status(); // already out of a stable ring: left at once
    }

    /// The operator removes `node`, a member that is gone for good (a lost machine, a wiped
    /// disk; a node that comes back with a wiped data directory is a new node with a new id):
    /// the claimant takes it out of the ring without waiting for it, and its partitions stream
    /// to their new replicas from the surviving ones. Refused for this node itself and for a
    /// node this node sees alive.
    pub fn remove(&mut self, now: Tick, node: NodeId) -> Result<(), RemoveError> {
        self.check_removal(now, node)?;
        self.claim.removals.insert(node);
        self.claim.last_removal_push = Tick(0);
        Ok(())
    }

    /// Members removed and not yet out of the ring.
    pub fn removals(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.claim.removals.iter().copied()
    }

    fn check_removal(&self, now: Tick, node: NodeId) -> Result<(), RemoveError> {
        if node == self.config.id {
            return Err(RemoveError::Myself(node));
        }
        if !self.rings.has_member(node) {
            return Err(RemoveError::NotAMember(node));
        }
        if self.gossip.is_alive(node, now) {
            return Err(RemoveError::Alive(node));
        }
        Ok(())
    }

    /// A peer passes on removals; each is checked here as if asked directly.
    pub(super) fn on_remove(&mut self, now: Tick, nodes: Vec<NodeId>) {
        for node in nodes {
            if self.check_removal(now, node).is_ok() {
                self.claim.removals.insert(node);
            }
        }
    }

    /// Forgets removals no ring names any more, and passes the rest on to the claimant.
    fn removals_tick(&mut self, now: Tick, out: &mut Vec<Action>) {
        // A removed node seen alive again was not gone for good: forget the removal (a change
        // already planned without it goes on, and it turns Left once a stable ring leaves it out).
        let (rings, gossip) = (&self.rings, &self.gossip);
        self.claim
            .removals
            .retain(|&n| rings.has_member(n) && !gossip.is_alive(n, now));
        if self.claim.removals.is_empty()
            || now.since(self.claim.last_removal_push) < RING_PUSH_TICKS
        {
            return;
        }
        self.claim.last_removal_push = now;
        match self.claimant(now) {
            Some(c) if c != self.config.id => out.push(Action::Send {
                to: c,
                message: PeerMessage::Remove {
                    nodes: self.claim.removals.iter().copied().collect(),
                },
            }),
            _ => {}
        }
    }

    /// This node's membership status.
    pub fn status(&self) -> Status {
        self.gossip.me().status
    }

    /// Pushes the ring state to live peers whose gossip shows an older one, each at most once
    /// per [`RING_PUSH_TICKS`]; then, if this node is the claimant, moves the change along.
    pub(super) fn ring_tick(&mut self, now: Tick, out: &mut Vec<Action>) {
        self.update_status();
        let announced = self.gossip.me().ring_version;
        if announced < self.ring_version && now.since(self.claim.last_save) >= RING_PUSH_TICKS {
            // The save was dropped (overload) or failed: until it succeeds the ring is not
            // announced and every barrier waits for this node.
            self.save_ring(now, out);
        }
        self.ring_pushed
            .retain(|_, at| now.since(*at) < RING_PUSH_TICKS);
        let behind: Vec<NodeId> = self
            .gossip
            .records()
            .filter(|r| r.id != self.config.id && r.ring_version < announced)
            .map(|r| r.id)
            .filter(|&n| self.gossip.is_alive(n, now))
            .collect();
        for peer in behind {
            self.push_ring(now, peer, out);
        }
        self.removals_tick(now, out);
        if now.since(self.claim.last_look) >= CLAIM_TICKS {
            self.claim.last_look = now;
            if self.claimant(now) == Some(self.config.id) {
                self.claim_step(now, out);
            }
        }
    }

    /// Sends the ring state to `peer` unless it was sent one within [`RING_PUSH_TICKS`].
    pub(super) fn push_ring(&mut self, now: Tick, peer: NodeId, out: &mut Vec<Action>) {
        if self
            .ring_pushed
            .get(&peer)
            .is_some_and(|&at| now.since(at) < RING_PUSH_TICKS)
        {
            return;
        }
        self.ring_pushed.insert(peer, now);
        out.push(Action::Send {
            to: peer,
            message: PeerMessage::Ring(Box::new(self.rings.clone())),
        });
    }

    /// The claimant in this node's view. See the module docs.
    pub(super) fn claimant(&self, now: Tick) -> Option<NodeId> {
        if !self.rings.is_known() {
            // A joiner's placeholder ring is nobody's to change.
            return None;
        }
        self.rings
            .current()
            .members()
            .iter()
            .map(|m| m.id)
            .find(|&n| {
                !self.is_departing(n) && (n == self.config.id || self.gossip.is_alive(n, now))
            })
    }

    /// Whether every member of both rings but the removed ones has announced exactly ring
    /// version `version`. A member showing a newer version holds a different state (another
    /// claimant's), which must reach this node by a push before anything moves on.
    pub(super) fn barrier(&self, version: u64) -> bool {
        self.rings.barrier_members().into_iter().all(|n| {
            self.gossip
                .record(n)
                .is_some_and(|r| r.ring_version == version)
        })
    }

    /// Leaving, left, or removed by the operator.
    fn is_departing(&self, node: NodeId) -> bool {
        self.claim.removals.contains(&node)
            || self
                .gossip
                .record(node)
                .is_some_and(|r| matches!(r.status, Status::Leaving | Status::Left))
    }

    fn claim_state_reset(&mut self) {
        if self.claim.version != self.ring_version {
            self.claim.version = self.ring_version;
            self.claim.done.clear();
        }
    }

    fn claim_step(&mut self, now: Tick, out: &mut Vec<Action>) {
        self.claim_state_reset();
        let blocking = self.blocking_removals();
        let next = match self.rings.phase() {
            RingPhase::Stable => {
                let proposed = self.wanted_ring(now).and_then(|n| self.proposal(n));
                if self.config.flip_after_moves {
                    proposed
                } else {
                    proposed.and_then(|p| p.flip()) // the canary: no data moves at all
                }
            }
            // A removed member may be a receiver of this change: plan it again without it
            // (reads never left the current ring, so a new plan is as safe as the first).
            RingPhase::Pending if !blocking.is_empty() => match self.wanted_ring(now) {
                Some(next) => self.proposal(next),
                None => self.rings.abort(),
            },
            // Reads use the next ring already: finish this change without waiting for the
            // removed members; the next change takes them out of the ring.
            RingPhase::Flipped if !blocking.is_empty() => self.rings.removing(&blocking),
            RingPhase::Pending => {
                if self.moves.all_done(&self.claim.done) && self.barrier(self.ring_version) {
                    self.rings.flip()
                } else {
                    None
                }
            }
            RingPhase::Flipped => {
                if self.barrier(self.ring_version) {
                    self.rings.commit()
                } else {
                    None
                }
            }
        };
        if let Some(state) = next {
            self.adopt_ring(now, state, out);
        }
    }

    /// A change to `next`, with the removed members of the current ring marked so that no
    /// barrier waits for them and none of them is asked to stream.
    fn proposal(&self, next: Ring) -> Option<RingState> {
        let removed = self
            .rings
            .current()
            .members()
            .iter()
            .map(|m| m.id)
            .filter(|n| self.claim.removals.contains(n))
            .collect();
        self.rings.propose(next).with_removed(removed)
    }

    /// Removals the change in progress still waits for: members of either ring it does not
    /// mark removed.
    fn blocking_removals(&self) -> Vec<NodeId> {
        let waited_for = self.rings.barrier_members();
        self.claim
            .removals
            .iter()
            .copied()
            .filter(|n| waited_for.contains(n))
            .collect()
    }

    /// The ring the cluster should have: the current members minus departing ones, plus live
    /// joining nodes, with each member's location and weight as it last gossiped them. `None`
    /// if that is the current ring (or no member would be left).
    fn wanted_ring(&self, now: Tick) -> Option<Ring> {
        let current = self.rings.current();
        let record_member = |id: NodeId| {
            self.gossip
                .record(id)
                .map(|r| Member::new(r.id, r.rack.clone(), r.dc.clone(), r.weight))
        };
        let mut members: Vec<Member> = current
            .members()
            .iter()
            .filter(|m| !self.is_departing(m.id))
            .map(|m| record_member(m.id).unwrap_or_else(|| m.clone()))
            .collect();
        let joining: Vec<NodeId> = self
            .gossip
            .records()
            .filter(|r| r.status == Status::Joining && current.member(r.id).is_none())
            .filter(|r| self.gossip.is_alive(r.id, now) && !self.is_departing(r.id))
            .map(|r| r.id)
            .collect();
        members.extend(joining.into_iter().filter_map(record_member));
        if members.is_empty() {
            return None;
        }
        let next = current.with_members(members).ok()?;
        (next.version() != current.version()).then_some(next)
    }
}
