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

/// The claimant's bookkeeping.
#[derive(Debug, Default)]
pub(super) struct ClaimState {
    /// The ring version `done` is for.
    version: u64,
    /// Moves reported durable on their receivers.
    done: BTreeSet<(PartitionId, NodeId)>,
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
            if self.moves.source_of(partition, to) == Some(from) {
                self.claim.done.insert((partition, to));
            }
        }
    }

    /// Joining turns to up once a stable ring names this node; leaving turns to left once a
    /// stable ring no longer does.
    pub(super) fn update_status(&mut self) {
        if self.rings.phase() != RingPhase::Stable || !self.rings.is_known() {
            return;
        }
        let member = self.rings.current().member(self.config.id).is_some();
        match self.gossip.me().status {
            Status::Joining if member => self.gossip.set_status(Status::Up),
            Status::Leaving if !member => self.gossip.set_status(Status::Left),
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

    /// Whether every member of both rings has announced exactly ring version `version`. A
    /// member showing a newer version holds a different state (another claimant's), which
    /// must reach this node by a push before anything moves on.
    pub(super) fn barrier(&self, version: u64) -> bool {
        self.rings.all_members().into_iter().all(|n| {
            self.gossip
                .record(n)
                .is_some_and(|r| r.ring_version == version)
        })
    }

    fn is_departing(&self, node: NodeId) -> bool {
        self.gossip
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
        let next = match self.rings.phase() {
            RingPhase::Stable => {
                let proposed = self.wanted_ring(now).map(|n| self.rings.propose(n));
                if self.config.flip_after_moves {
                    proposed
                } else {
                    proposed.and_then(|p| p.flip()) // the canary: no data moves at all
                }
            }
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
            .filter(|r| self.gossip.is_alive(r.id, now))
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
