//! The receiving side of one partition transfer.
//!
//! A [`Receiver`] is created when an offer is accepted. Each new chunk goes to the driver as a
//! [`ReceiverAction::Store`]; the driver merges every object into the partition with
//! [`crate::Object::merge`], makes it durable and answers [`ReceiverInput::Stored`]; only then
//! is the chunk acknowledged. Because merge is idempotent, storing a chunk twice is harmless,
//! so duplicates of a stored chunk are simply acknowledged again (their first ack may have been
//! lost) and duplicates of a chunk being stored are dropped (its ack is coming).
//!
//! Invariants:
//! - every chunk below `next_missing` is durable; `slots` holds only chunks in
//!   `next_missing..next_missing + TRANSFER_WINDOW_CHUNKS_MAX` (a correct sender never sends
//!   beyond, since it has fewer unacknowledged chunks than that), so the state is bounded;
//! - `Completed` is reported once, when the chunk marked `last` and every chunk before it are
//!   durable. A completed receiver keeps acknowledging resent chunks until it has heard
//!   nothing for [`TransferConfig::receiver_idle_ticks`], then [`Receiver::is_expired`].
//! - A running receiver that hears nothing from its sender for that long gives up.

use std::collections::BTreeMap;

use crate::constants::{TRANSFER_CHUNK_ENTRIES_MAX, TRANSFER_WINDOW_CHUNKS_MAX};
use crate::ids::{NodeId, PartitionId};
use crate::tick::Tick;
use crate::transfer::{
    entry_wire_bytes, AbortReason, Entry, TransferConfig, TransferId, TransferMessage,
};

/// What the driver and the network hand a [`Receiver`].
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverInput {
    /// A message from the sender.
    Message(TransferMessage),
    /// The driver made chunk `seq` durable (answer to [`ReceiverAction::Store`]).
    Stored {
        /// The chunk.
        seq: u64,
    },
    /// Time passed; give up on a silent sender, expire when finished.
    Tick,
}

/// What a [`Receiver`] asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverAction {
    /// Merge every entry into `partition` with `Object::merge`, fsync, then answer
    /// [`ReceiverInput::Stored`] with `seq`.
    Store {
        /// The partition.
        partition: PartitionId,
        /// The chunk, to name in the answer.
        seq: u64,
        /// The entries, in key order.
        entries: Vec<Entry>,
    },
    /// Send this message to the sender.
    Send(TransferMessage),
    /// Every chunk is durable here.
    Completed {
        /// The partition.
        partition: PartitionId,
        /// The sender.
        from: NodeId,
    },
    /// The transfer stopped; the chunks stored so far stay (harmless, merge is idempotent).
    Failed {
        /// The partition.
        partition: PartitionId,
        /// The sender.
        from: NodeId,
        /// Why.
        reason: AbortReason,
    },
}

/// Counters of one incoming transfer, for `tessera status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverProgress {
    /// Entries made durable.
    pub entries_stored: u64,
    /// Wire bytes of the entries made durable.
    pub bytes_stored: u64,
    /// Chunks made durable and acknowledged.
    pub chunks_stored: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Handed to the driver; counts to add once stored.
    Storing {
        entries: u64,
        bytes: u64,
    },
    Stored,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Completed,
    Failed,
}

/// One incoming partition copy. See the module docs.
#[derive(Clone, Debug)]
pub struct Receiver {
    id: TransferId,
    partition: PartitionId,
    from: NodeId,
    idle_ticks: u64,
    heard_at: Tick,
    /// The first chunk not yet durable; every chunk below it is.
    next_missing: u64,
    slots: BTreeMap<u64, Slot>,
    /// The seq of the chunk marked `last`, once seen.
    last: Option<u64>,
    state: State,
    progress: ReceiverProgress,
}

impl Receiver {
    /// Accepts the offer of transfer `id` of `partition` from `from`: acknowledges it.
    pub fn accept(
        id: TransferId,
        partition: PartitionId,
        from: NodeId,
        config: TransferConfig,
        now: Tick,
        out: &mut Vec<ReceiverAction>,
    ) -> Receiver {
        out.push(ReceiverAction::Send(TransferMessage::Ack { id, seq: 0 }));
        Receiver {
            id,
            partition,
            from,
            idle_ticks: config.clamped().receiver_idle_ticks(),
            heard_at: now,
            next_missing: 1,
            slots: BTreeMap::new(),
            last: None,
            state: State::Running,
            progress: ReceiverProgress::default(),
        }
    }

    /// The transfer.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// The partition being copied.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The sending node.
    pub fn from(&self) -> NodeId {
        self.from
    }

    /// The counters so far.
    pub fn progress(&self) -> ReceiverProgress {
        self.progress
    }

    /// Whether every chunk is durable.
    pub fn is_completed(&self) -> bool {
        self.state == State::Completed
    }

    /// Whether the transfer stopped without completing.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Whether a finished receiver may be forgotten: the sender has been silent long enough
    /// that it no longer resends.
    pub fn is_expired(&self, now: Tick) -> bool {
        self.state != State::Running && now.since(self.heard_at) >= self.idle_ticks
    }

    /// Advances the transfer by one input.
    pub fn step(&mut self, now: Tick, input: ReceiverInput, out: &mut Vec<ReceiverAction>) {
        if self.state == State::Failed {
            return;
        }
        match input {
            ReceiverInput::Message(message) => self.on_message(now, message, out),
            ReceiverInput::Stored { seq } => self.on_stored(seq, out),
            ReceiverInput::Tick => {
                if self.state == State::Running && now.since(self.heard_at) >= self.idle_ticks {
                    self.fail(AbortReason::TimedOut, true, out);
                }
            }
        }
    }

    fn on_message(&mut self, now: Tick, message: TransferMessage, out: &mut Vec<ReceiverAction>) {
        if message.id() != self.id {
            return;
        }
        match message {
            TransferMessage::Offer { partition, .. } if partition == self.partition => {
                // Our first ack was lost or is slow.
                self.heard_at = now;
                self.ack(0, out);
            }
            TransferMessage::Chunk {
                partition,
                seq,
                entries,
                last,
                ..
            } if partition == self.partition => {
                self.heard_at = now;
                self.on_chunk(seq, entries, last, out);
            }
            TransferMessage::Abort { reason, .. } if self.state == State::Running => {
                self.heard_at = now;
                self.fail(reason, false, out);
            }
            // Acks travel the other way; a completed receiver has nothing to abort; a message
            // naming another partition is bad input and is dropped.
            _ => {}
        }
    }

    fn on_chunk(
        &mut self,
        seq: u64,
        entries: Vec<Entry>,
        last: bool,
        out: &mut Vec<ReceiverAction>,
    ) {
        let contradicts_end = match self.last {
            Some(end) => seq > end || (last && seq != end),
            None => false,
        };
        if seq == 0 || entries.len() > TRANSFER_CHUNK_ENTRIES_MAX || contradicts_end {
            return; // not something a correct sender sends
        }
        if seq < self.next_missing {
            self.ack(seq, out); // durable already; the ack was lost
            return;
        }
        if seq - self.next_missing >= TRANSFER_WINDOW_CHUNKS_MAX as u64 {
            return; // beyond any window: keeps `slots` bounded
        }
        match self.slots.get(&seq) {
            Some(Slot::Stored) => self.ack(seq, out),
            Some(Slot::Storing { .. }) => {} // its ack follows the store
            None => {
                if last {
                    self.last = Some(seq);
                }
                let slot = Slot::Storing {
                    entries: entries.len() as u64,
                    bytes: entries.iter().map(entry_wire_bytes).sum::<usize>() as u64,
                };
                self.slots.insert(seq, slot);
                out.push(ReceiverAction::Store {
                    partition: self.partition,
                    seq,
                    entries,
                });
            }
        }
    }

    fn on_stored(&mut self, seq: u64, out: &mut Vec<ReceiverAction>) {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Slot::Storing { entries, bytes } = *slot else {
            return;
        };
        *slot = Slot::Stored;
        self.progress.entries_stored += entries;
        self.progress.bytes_stored += bytes;
        self.progress.chunks_stored += 1;
        self.ack(seq, out);
        while self.slots.get(&self.next_missing) == Some(&Slot::Stored) {
            self.slots.remove(&self.next_missing);
            self.next_missing += 1;
        }
        if self.state == State::Running && self.last.is_some_and(|end| self.next_missing > end) {
            debug_assert!(
                self.slots.is_empty(),
                "chunks past the last one were stored"
            );
            self.state = State::Completed;
            out.push(ReceiverAction::Completed {
                partition: self.partition,
                from: self.from,
            });
        }
    }

    fn ack(&self, seq: u64, out: &mut Vec<ReceiverAction>) {
        out.push(ReceiverAction::Send(TransferMessage::Ack {
            id: self.id,
            seq,
        }));
    }

    fn fail(&mut self, reason: AbortReason, tell_sender: bool, out: &mut Vec<ReceiverAction>) {
        if tell_sender {
            out.push(ReceiverAction::Send(TransferMessage::Abort {
                id: self.id,
                reason,
            }));
        }
        self.state = State::Failed;
        self.slots.clear();
        out.push(ReceiverAction::Failed {
            partition: self.partition,
            from: self.from,
            reason,
        });
    }
}

#[cfg(test)]
mod tests;
