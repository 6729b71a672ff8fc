//! Partition moves on a node: carrying out the plan of a pending ring change with the
//! transfer manager ([`crate::transfer::Transfers`]), and storing what peers stream here.
//!
//! As a source, a node streams every move the pending state assigns it (see
//! [`super::RingState::sources_of`]), but only once every member of both rings has adopted the
//! pending state: from then on every write reaches the receiver too, so nothing stored on the
//! source after its copy began can be missing on the receiver. Failed transfers are started
//! again at the next drive; completed moves are reported to the claimant until it flips.
//!
//! As a receiver, a node merges each chunk durably before the transfer manager acknowledges
//! it, after checking that every key belongs to the chunk's partition; a chunk with a foreign
//! or malformed key is dropped whole, so the sender retries and in the end gives up.
//!
//! Transfer entries name keys by [`Key::to_entry_bytes`].

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;

use super::{Action, Key, Node, PeerMessage, Pending, RingPhase, StorageOp, StorageResult};
use crate::ids::{NodeId, PartitionId};
use crate::tick::Tick;
use crate::transfer::{Direction, TransferId, TransferMessage, TransfersAction, TransfersInput};

/// Ticks between two drives of the moves (starting the ones not running).
pub const MOVES_DRIVE_TICKS: u64 = 100;

/// Ticks between two reports of completed moves to the claimant.
pub const MOVES_REPORT_TICKS: u64 = 200;

/// The source side's bookkeeping for the pending ring state.
#[derive(Debug, Default)]
pub(super) struct MovesState {
    /// The ring version this is for.
    version: u64,
    /// That state's moves as (partition, receiver), with the nodes that stream each.
    planned: BTreeMap<(PartitionId, NodeId), Vec<NodeId>>,
    /// Moves this node streamed completely under that state.
    done: BTreeSet<(PartitionId, NodeId)>,
    last_drive: Tick,
    last_report: Tick,
}

impl MovesState {
    /// Whether `node` streams (`partition`, `to`) in the planned change.
    pub(super) fn is_source(&self, partition: PartitionId, to: NodeId, node: NodeId) -> bool {
        self.planned
            .get(&(partition, to))
            .is_some_and(|sources| sources.contains(&node))
    }

    /// Whether every source of every planned move is in `done` as (partition, receiver,
    /// source). A move without sources (every old replica of its partition was removed) has
    /// nothing left to stream.
    pub(super) fn all_done(&self, done: &BTreeSet<(PartitionId, NodeId, NodeId)>) -> bool {
        self.planned.iter().all(|(&(p, to), sources)| {
            sources
                .iter()
                .all(|&source| done.contains(&(p, to, source)))
        })
    }
}

impl Node {
    /// Moves of the ring change in progress that this node still has to stream, for status
    /// displays (0 when the ring is stable).
    pub fn moves_outstanding(&self) -> usize {
        let me = self.config.id;
        self.moves
            .planned
            .iter()
            .filter(|(m, sources)| sources.contains(&me) && !self.moves.done.contains(*m))
            .count()
    }

    /// The ring state changed: cancel every outgoing transfer (a move still wanted is started
    /// again by the next drive) and plan the new state's moves.
    pub(super) fn on_ring_changed(&mut self, now: Tick, out: &mut Vec<Action>) {
        let outgoing: Vec<TransferId> = self
            .transfers
            .progress()
            .into_iter()
            .filter(|t| t.direction == Direction::Outgoing)
            .map(|t| t.id)
            .collect();
        let mut actions = Vec::new();
        for id in outgoing {
            self.transfers.cancel(now, id, &mut actions);
        }
        self.run_transfer_actions(now, actions, out);
        let plan = self.rings.plan(&self.config.replication);
        let mut planned: BTreeMap<(PartitionId, NodeId), Vec<NodeId>> = plan
            .moves
            .iter()
            .map(|m| ((m.partition, m.to), self.rings.sources_of(m, &plan)))
            .collect();
        for (m, sources) in self.rings.shrink_moves(&plan, &self.config.replication) {
            planned.entry(m).or_default().extend(sources);
        }
        self.moves = MovesState {
            version: self.ring_version,
            planned,
            done: BTreeSet::new(),
            last_drive: Tick(0),
            last_report: Tick(0),
        };
    }

    /// Advances the transfers, starts the moves this node sources, and reports finished ones.
    pub(super) fn moves_tick(&mut self, now: Tick, rng: &mut impl RngCore, out: &mut Vec<Action>) {
        let mut actions = Vec::new();
        self.transfers.step(now, TransfersInput::Tick, &mut actions);
        self.run_transfer_actions(now, actions, out);
        if self.rings.phase() != RingPhase::Pending {
            return;
        }
        if now.since(self.moves.last_drive) >= MOVES_DRIVE_TICKS && self.barrier(self.ring_version)
        {
            self.moves.last_drive = now;
            self.drive_moves(now, rng, out);
        }
        if !self.moves.done.is_empty() && now.since(self.moves.last_report) >= MOVES_REPORT_TICKS {
            self.moves.last_report = now;
            let moves: Vec<_> = self.moves.done.iter().copied().collect();
            let ring = self.ring_version;
            match self.claimant(now) {
                Some(c) if c == self.config.id => self.on_moves_done(c, ring, moves),
                Some(c) => out.push(Action::Send {
                    to: c,
                    message: PeerMessage::MovesDone { ring, moves },
                }),
                None => {}
            }
        }
    }

    fn drive_moves(&mut self, now: Tick, rng: &mut impl RngCore, out: &mut Vec<Action>) {
        let me = self.config.id;
        let mine: Vec<(PartitionId, NodeId)> = self
            .moves
            .planned
            .iter()
            .filter(|(m, sources)| sources.contains(&me) && !self.moves.done.contains(m))
            .map(|(m, _)| *m)
            .collect();
        let mut actions = Vec::new();
        for (partition, to) in mine {
            // Idempotent for a running transfer; a full queue is retried at the next drive.
            if self
                .transfers
                .start(now, partition, to, rng, &mut actions)
                .is_err()
            {
                break;
            }
        }
        self.run_transfer_actions(now, actions, out);
    }

    /// A transfer message from `from`.
    pub(super) fn on_transfer_message(
        &mut self,
        now: Tick,
        from: NodeId,
        message: TransferMessage,
        out: &mut Vec<Action>,
    ) {
        let mut actions = Vec::new();
        self.transfers
            .step(now, TransfersInput::Message { from, message }, &mut actions);
        self.run_transfer_actions(now, actions, out);
    }

    /// Storage answered a transfer's read or store.
    pub(super) fn on_transfer_storage(
        &mut self,
        now: Tick,
        pending: TransferPending,
        result: StorageResult,
        out: &mut Vec<Action>,
    ) {
        let input = match (pending, result) {
            (TransferPending::Read { id }, StorageResult::Range { entries, end }) => {
                let entries = entries
                    .into_iter()
                    .map(|(k, o)| (k.to_entry_bytes(), o))
                    .collect();
                TransfersInput::Read { id, entries, end }
            }
            (TransferPending::Store { from, id, seq }, StorageResult::ChangedMany(changes)) => {
                for (key, before, after) in &changes {
                    self.track_change(now, key, before, after);
                }
                TransfersInput::Stored { from, id, seq }
            }
            (TransferPending::Read { id }, _) => {
                // The source cannot read its partition: stop; the next drive starts again.
                let mut actions = Vec::new();
                self.transfers.cancel(now, id, &mut actions);
                self.run_transfer_actions(now, actions, out);
                return;
            }
            // A failed store is not acknowledged; the sender resends the chunk.
            (TransferPending::Store { .. }, _) => return,
        };
        let mut actions = Vec::new();
        self.transfers.step(now, input, &mut actions);
        self.run_transfer_actions(now, actions, out);
    }

    fn run_transfer_actions(
        &mut self,
        now: Tick,
        actions: Vec<TransfersAction>,
        out: &mut Vec<Action>,
    ) {
        for action in actions {
            match action {
                TransfersAction::ReadRange {
                    id,
                    partition,
                    after,
                    max_entries,
                    max_bytes,
                } => {
                    let after = after.as_deref().and_then(Key::from_entry_bytes);
                    let tokens = self.rings.current().partitions().token_range(partition);
                    let op = StorageOp::ReadRange {
                        partition,
                        tokens,
                        after,
                        max_entries,
                        max_bytes,
                    };
                    let pending = Pending::Transfer(TransferPending::Read { id });
                    if !self.try_storage(op, false, pending, out) {
                        // Dropped for overload: the sender would wait for it forever.
                        let mut actions = Vec::new();
                        self.transfers.cancel(now, id, &mut actions);
                        self.run_transfer_actions(now, actions, out);
                    }
                }
                TransfersAction::Store {
                    from,
                    id,
                    partition,
                    seq,
                    entries,
                } => {
                    let partitions = self.rings.current().partitions();
                    let decoded: Option<Vec<(Key, _)>> = entries
                        .into_iter()
                        .map(|(k, o)| {
                            Key::from_entry_bytes(&k)
                                .filter(|key| partitions.partition_of(key.token) == partition)
                                .map(|key| (key, o))
                        })
                        .collect();
                    let Some(entries) = decoded else {
                        continue; // a foreign key: never acknowledged
                    };
                    let op = StorageOp::MergeMany {
                        entries,
                        lww: self.lww(),
                    };
                    let pending = Pending::Transfer(TransferPending::Store { from, id, seq });
                    self.storage(op, true, pending, out);
                }
                TransfersAction::Send { to, message } => out.push(Action::Send {
                    to,
                    message: PeerMessage::Transfer(message),
                }),
                TransfersAction::SendCompleted { partition, to, .. } => {
                    if self.moves.is_source(partition, to, self.config.id)
                        && self.moves.version == self.ring_version
                    {
                        self.moves.done.insert((partition, to));
                        self.moves.last_report = Tick(0); // report at the next tick
                        self.stats.moves_completed += 1;
                    }
                }
                TransfersAction::SendFailed { .. }
                | TransfersAction::ReceiveCompleted { .. }
                | TransfersAction::ReceiveFailed { .. } => {}
            }
        }
    }
}

/// A transfer's storage operation in flight.
#[derive(Debug)]
pub(super) enum TransferPending {
    /// A read for outgoing transfer `id`.
    Read { id: TransferId },
    /// Chunk `seq` of incoming transfer (`from`, `id`).
    Store {
        from: NodeId,
        id: TransferId,
        seq: u64,
    },
}
