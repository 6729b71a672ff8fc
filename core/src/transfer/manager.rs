//! [`Transfers`]: every partition transfer of one node, both directions.
//!
//! Invariants:
//! - at most [`TRANSFERS_CONCURRENT_MAX`] senders run at once; further transfers wait in a
//!   FIFO queue of at most [`TRANSFERS_QUEUED_MAX`] ([`Transfers::start`] refuses beyond it);
//! - at most [`TRANSFERS_CONCURRENT_MAX`] receivers run at once; an offer beyond that is
//!   refused with `Abort { ReceiverBusy }`, and the sender's node starts it again later;
//! - one (partition, receiver) pair has at most one outgoing transfer, running or queued;
//! - completed receivers stay (at most [`TRANSFERS_FINISHED_MAX`], oldest forgotten first)
//!   until expired, to acknowledge a resent last chunk whose ack was lost.
//!
//! Receivers are keyed by (sender node, id): ids are only unique per sender.
//!
//! `types` holds the inputs, actions and status lines; `tests` checks the bookkeeping
//! directly, and `transfer::sim` runs managers over a simulated network.

use std::collections::{BTreeMap, VecDeque};

use rand_core::RngCore;

use crate::constants::{TRANSFERS_CONCURRENT_MAX, TRANSFERS_FINISHED_MAX, TRANSFERS_QUEUED_MAX};
use crate::error::CoreError;
use crate::ids::{NodeId, PartitionId};
use crate::tick::Tick;
use crate::transfer::receiver::{Receiver, ReceiverAction, ReceiverInput};
use crate::transfer::sender::{Sender, SenderAction, SenderInput};
use crate::transfer::{AbortReason, TransferConfig, TransferId, TransferMessage};

mod types;
pub use types::{
    Direction, TransferProgress, TransferState, TransferTotals, TransfersAction, TransfersInput,
};

#[cfg(test)]
mod tests;

/// A transfer waiting for a sender slot.
#[derive(Clone, Copy, Debug)]
struct Queued {
    id: TransferId,
    partition: PartitionId,
    to: NodeId,
}

/// All transfers of one node. See the module docs.
#[derive(Debug)]
pub struct Transfers {
    config: TransferConfig,
    outgoing: BTreeMap<TransferId, Sender>,
    queued: VecDeque<Queued>,
    /// Running or queued outgoing transfer per (partition, receiver), and the reverse.
    by_target: BTreeMap<(PartitionId, NodeId), TransferId>,
    incoming: BTreeMap<(NodeId, TransferId), Receiver>,
    /// Completed receivers, and their keys oldest first.
    finished: BTreeMap<(NodeId, TransferId), Receiver>,
    finished_order: VecDeque<(NodeId, TransferId)>,
    totals: TransferTotals,
}

impl Transfers {
    /// No transfers yet. `config` applies to every transfer (clamped to the protocol bounds).
    pub fn new(config: TransferConfig) -> Self {
        Transfers {
            config: config.clamped(),
            outgoing: BTreeMap::new(),
            queued: VecDeque::new(),
            by_target: BTreeMap::new(),
            incoming: BTreeMap::new(),
            finished: BTreeMap::new(),
            finished_order: VecDeque::new(),
            totals: TransferTotals::default(),
        }
    }

    /// Starts copying `partition` to `to`, or queues it if [`TRANSFERS_CONCURRENT_MAX`] are
    /// running. Idempotent: if that copy is already running or queued, returns its id.
    ///
    /// Errors: [`CoreError::TransferQueueFull`] if [`TRANSFERS_QUEUED_MAX`] are waiting.
    pub fn start(
        &mut self,
        now: Tick,
        partition: PartitionId,
        to: NodeId,
        rng: &mut impl RngCore,
        out: &mut Vec<TransfersAction>,
    ) -> Result<TransferId, CoreError> {
        if let Some(&id) = self.by_target.get(&(partition, to)) {
            return Ok(id);
        }
        if self.queued.len() >= TRANSFERS_QUEUED_MAX {
            return Err(CoreError::TransferQueueFull {
                queued: self.queued.len(),
                max: TRANSFERS_QUEUED_MAX,
            });
        }
        // Random ids: a restarted node does not reuse an id a receiver still remembers.
        let mut id = TransferId(rng.next_u64());
        while self.outgoing.contains_key(&id) || self.queued.iter().any(|q| q.id == id) {
            id = TransferId(rng.next_u64());
        }
        self.by_target.insert((partition, to), id);
        self.queued.push_back(Queued { id, partition, to });
        self.promote(now, out);
        Ok(id)
    }

    /// Cancels outgoing transfer `id` (running or queued), reporting `SendFailed { Cancelled }`.
    /// Returns whether it existed.
    pub fn cancel(&mut self, now: Tick, id: TransferId, out: &mut Vec<TransfersAction>) -> bool {
        if let Some(at) = self.queued.iter().position(|q| q.id == id) {
            if let Some(q) = self.queued.remove(at) {
                self.by_target.remove(&(q.partition, q.to));
                self.totals.sent_failed += 1;
                out.push(TransfersAction::SendFailed {
                    id,
                    partition: q.partition,
                    to: q.to,
                    reason: AbortReason::Cancelled,
                });
            }
            return true;
        }
        let Some(sender) = self.outgoing.get_mut(&id) else {
            return false;
        };
        let mut actions = Vec::new();
        sender.cancel(&mut actions);
        self.after_sender(now, id, actions, out);
        true
    }

    /// Advances every transfer the input concerns.
    pub fn step(&mut self, now: Tick, input: TransfersInput, out: &mut Vec<TransfersAction>) {
        match input {
            TransfersInput::Read { id, entries, end } => {
                self.step_sender(now, id, SenderInput::Read { entries, end }, out);
            }
            TransfersInput::Stored { from, id, seq } => {
                self.step_receiver(now, (from, id), ReceiverInput::Stored { seq }, out);
            }
            TransfersInput::Message { from, message } => self.on_message(now, from, message, out),
            TransfersInput::Tick => {
                let ids: Vec<TransferId> = self.outgoing.keys().copied().collect();
                for id in ids {
                    self.step_sender(now, id, SenderInput::Tick, out);
                }
                let keys: Vec<_> = self.incoming.keys().copied().collect();
                for key in keys {
                    self.step_receiver(now, key, ReceiverInput::Tick, out);
                }
                self.finished.retain(|_, r| !r.is_expired(now));
                let finished = &self.finished;
                self.finished_order.retain(|key| finished.contains_key(key));
            }
        }
    }

    /// Outgoing transfers running (at most [`TRANSFERS_CONCURRENT_MAX`]).
    pub fn outgoing_running(&self) -> usize {
        self.outgoing.len()
    }

    /// Outgoing transfers queued (at most [`TRANSFERS_QUEUED_MAX`]).
    pub fn outgoing_queued(&self) -> usize {
        self.queued.len()
    }

    /// Incoming transfers running (at most [`TRANSFERS_CONCURRENT_MAX`]).
    pub fn incoming_running(&self) -> usize {
        self.incoming.len()
    }

    /// Totals since start.
    pub fn totals(&self) -> TransferTotals {
        self.totals
    }

    /// One line per transfer: running and queued outgoing, running and completed incoming.
    pub fn progress(&self) -> Vec<TransferProgress> {
        let outgoing = self.outgoing.values().map(|s| {
            let p = s.progress();
            TransferProgress {
                id: s.id(),
                partition: s.partition(),
                peer: s.to(),
                direction: Direction::Outgoing,
                state: if s.is_streaming() {
                    TransferState::Streaming
                } else {
                    TransferState::Offering
                },
                entries: p.entries_sent,
                bytes: p.bytes_sent,
                chunks_acked: p.chunks_acked,
            }
        });
        let queued = self.queued.iter().map(|q| TransferProgress {
            id: q.id,
            partition: q.partition,
            peer: q.to,
            direction: Direction::Outgoing,
            state: TransferState::Queued,
            entries: 0,
            bytes: 0,
            chunks_acked: 0,
        });
        let incoming = self
            .incoming
            .values()
            .chain(self.finished.values())
            .map(|r| {
                let p = r.progress();
                TransferProgress {
                    id: r.id(),
                    partition: r.partition(),
                    peer: r.from(),
                    direction: Direction::Incoming,
                    state: if r.is_completed() {
                        TransferState::Completed
                    } else {
                        TransferState::Streaming
                    },
                    entries: p.entries_stored,
                    bytes: p.bytes_stored,
                    chunks_acked: p.chunks_stored,
                }
            });
        outgoing.chain(queued).chain(incoming).collect()
    }

    fn on_message(
        &mut self,
        now: Tick,
        from: NodeId,
        message: TransferMessage,
        out: &mut Vec<TransfersAction>,
    ) {
        let id = message.id();
        let key = (from, id);
        match &message {
            TransferMessage::Offer { partition, .. } => {
                if self.incoming.contains_key(&key) || self.finished.contains_key(&key) {
                    self.step_receiver(now, key, ReceiverInput::Message(message), out);
                } else if self.incoming.len() < TRANSFERS_CONCURRENT_MAX {
                    let mut actions = Vec::new();
                    let receiver =
                        Receiver::accept(id, *partition, from, self.config, now, &mut actions);
                    self.incoming.insert(key, receiver);
                    self.after_receiver(key, actions, out);
                } else {
                    self.totals.received_failed += 1;
                    let reason = AbortReason::ReceiverBusy;
                    let message = TransferMessage::Abort { id, reason };
                    out.push(TransfersAction::Send { to: from, message });
                }
            }
            TransferMessage::Chunk { .. } => {
                if self.incoming.contains_key(&key) || self.finished.contains_key(&key) {
                    self.step_receiver(now, key, ReceiverInput::Message(message), out);
                } else {
                    // Restarted or gave up: tell the sender rather than let it resend in vain.
                    let reason = AbortReason::UnknownTransfer;
                    let message = TransferMessage::Abort { id, reason };
                    out.push(TransfersAction::Send { to: from, message });
                }
            }
            TransferMessage::Ack { .. } => {
                if self.outgoing.get(&id).is_some_and(|s| s.to() == from) {
                    self.step_sender(now, id, SenderInput::Message(message), out);
                }
            }
            TransferMessage::Abort { .. } => {
                // Either direction; unknown ids are dropped (no abort ping-pong).
                if self.outgoing.get(&id).is_some_and(|s| s.to() == from) {
                    self.step_sender(now, id, SenderInput::Message(message.clone()), out);
                }
                if self.incoming.contains_key(&key) {
                    self.step_receiver(now, key, ReceiverInput::Message(message), out);
                }
            }
        }
    }

    fn step_sender(
        &mut self,
        now: Tick,
        id: TransferId,
        input: SenderInput,
        out: &mut Vec<TransfersAction>,
    ) {
        let Some(sender) = self.outgoing.get_mut(&id) else {
            return;
        };
        let mut actions = Vec::new();
        sender.step(now, input, &mut actions);
        self.after_sender(now, id, actions, out);
    }

    /// Translates a sender's actions; retires it when finished and starts queued transfers.
    fn after_sender(
        &mut self,
        now: Tick,
        id: TransferId,
        actions: Vec<SenderAction>,
        out: &mut Vec<TransfersAction>,
    ) {
        let Some(sender) = self.outgoing.get(&id) else {
            return;
        };
        let to = sender.to();
        for action in actions {
            out.push(match action {
                SenderAction::ReadRange {
                    partition,
                    after,
                    max_entries,
                    max_bytes,
                } => TransfersAction::ReadRange {
                    id,
                    partition,
                    after,
                    max_entries,
                    max_bytes,
                },
                SenderAction::Send(message) => TransfersAction::Send { to, message },
                SenderAction::Completed { partition, to } => {
                    self.totals.sent_completed += 1;
                    TransfersAction::SendCompleted { id, partition, to }
                }
                SenderAction::Failed {
                    partition,
                    to,
                    reason,
                } => {
                    self.totals.sent_failed += 1;
                    TransfersAction::SendFailed {
                        id,
                        partition,
                        to,
                        reason,
                    }
                }
            });
        }
        if sender.outcome().is_some() {
            self.by_target.remove(&(sender.partition(), to));
            self.outgoing.remove(&id);
            self.promote(now, out);
        }
    }

    /// Starts queued transfers while slots are free.
    fn promote(&mut self, now: Tick, out: &mut Vec<TransfersAction>) {
        while self.outgoing.len() < TRANSFERS_CONCURRENT_MAX {
            let Some(q) = self.queued.pop_front() else {
                break;
            };
            let mut actions = Vec::new();
            let sender = Sender::start(q.id, q.partition, q.to, self.config, now, &mut actions);
            self.outgoing.insert(q.id, sender);
            self.after_sender(now, q.id, actions, out);
        }
    }

    fn step_receiver(
        &mut self,
        now: Tick,
        key: (NodeId, TransferId),
        input: ReceiverInput,
        out: &mut Vec<TransfersAction>,
    ) {
        let receiver = match self.incoming.get_mut(&key) {
            Some(r) => r,
            None => match self.finished.get_mut(&key) {
                Some(r) => r,
                None => return,
            },
        };
        let mut actions = Vec::new();
        receiver.step(now, input, &mut actions);
        self.after_receiver(key, actions, out);
    }

    /// Translates a receiver's actions; moves it to `finished` or drops it when done.
    fn after_receiver(
        &mut self,
        key: (NodeId, TransferId),
        actions: Vec<ReceiverAction>,
        out: &mut Vec<TransfersAction>,
    ) {
        let (from, id) = key;
        for action in actions {
            out.push(match action {
                ReceiverAction::Store {
                    partition,
                    seq,
                    entries,
                } => TransfersAction::Store {
                    from,
                    id,
                    partition,
                    seq,
                    entries,
                },
                ReceiverAction::Send(message) => TransfersAction::Send { to: from, message },
                ReceiverAction::Completed { partition, from } => {
                    self.totals.received_completed += 1;
                    TransfersAction::ReceiveCompleted {
                        id,
                        partition,
                        from,
                    }
                }
                ReceiverAction::Failed {
                    partition,
                    from,
                    reason,
                } => {
                    self.totals.received_failed += 1;
                    TransfersAction::ReceiveFailed {
                        id,
                        partition,
                        from,
                        reason,
                    }
                }
            });
        }
        let Some(receiver) = self.incoming.get(&key) else {
            return;
        };
        if receiver.is_failed() {
            self.incoming.remove(&key);
        } else if receiver.is_completed() {
            if let Some(receiver) = self.incoming.remove(&key) {
                if self.finished_order.len() >= TRANSFERS_FINISHED_MAX {
                    if let Some(oldest) = self.finished_order.pop_front() {
                        self.finished.remove(&oldest);
                    }
                }
                self.finished.insert(key, receiver);
                self.finished_order.push_back(key);
            }
        }
    }
}
