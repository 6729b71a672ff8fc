//! The sending side of one partition transfer.
//!
//! A [`Sender`] offers the partition, then loops: ask the driver for the next chunk of entries
//! after a cursor (one read outstanding at a time), send it, and wait for acknowledgements,
//! with at most `window_chunks` chunks unacknowledged. Every unacknowledged message is sent
//! again after `retransmit_ticks`; after `retries_max` resends of one message the sender gives
//! up (`Failed { reason: TimedOut }`), so a vanished receiver is detected within
//! [`TransferConfig::give_up_ticks`].
//!
//! Invariant: `Completed` is reported only when the driver has said the partition ended and
//! every chunk, the last included, was acknowledged (acknowledged means durable on the
//! receiver). A finished sender ignores every later input.

use std::collections::BTreeMap;

use crate::ids::{NodeId, PartitionId};
use crate::tick::Tick;
use crate::transfer::{AbortReason, Entry, TransferConfig, TransferId, TransferMessage};

/// What the driver and the network hand a [`Sender`].
#[derive(Clone, Debug, PartialEq)]
pub enum SenderInput {
    /// The answer to [`SenderAction::ReadRange`]: the next entries after the cursor in key
    /// order, at most `max_entries`, stopping once `max_bytes` is reached; `end` when no entry
    /// follows them. An empty read also ends the partition.
    Read {
        /// The entries read.
        entries: Vec<Entry>,
        /// Whether the partition has no entries after these.
        end: bool,
    },
    /// A message from the receiver.
    Message(TransferMessage),
    /// Time passed; resend or give up as due.
    Tick,
}

/// What a [`Sender`] asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum SenderAction {
    /// Read the partition's entries with keys greater than `after` (from the start if `None`)
    /// in key order and answer with [`SenderInput::Read`].
    ReadRange {
        /// The partition.
        partition: PartitionId,
        /// The last key already read.
        after: Option<Vec<u8>>,
        /// Most entries to return.
        max_entries: usize,
        /// Stop adding entries once the chunk has this many bytes.
        max_bytes: usize,
    },
    /// Send this message to the receiver.
    Send(TransferMessage),
    /// Every entry is durable on `to`: ownership may flip.
    Completed {
        /// The partition.
        partition: PartitionId,
        /// The receiver.
        to: NodeId,
    },
    /// The transfer stopped without completing; `to` may hold part of the data (harmless).
    Failed {
        /// The partition.
        partition: PartitionId,
        /// The receiver.
        to: NodeId,
        /// Why.
        reason: AbortReason,
    },
}

/// Counters of one outgoing transfer, for `tessera status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderProgress {
    /// Entries sent (each counted once, resends not included).
    pub entries_sent: u64,
    /// Wire bytes of the chunks sent (each counted once).
    pub bytes_sent: u64,
    /// Chunks the receiver acknowledged as durable.
    pub chunks_acked: u64,
    /// Messages sent again after a timeout.
    pub resends: u64,
}

/// One message awaiting its acknowledgement.
#[derive(Clone, Debug)]
struct InFlight {
    message: TransferMessage,
    sent_at: Tick,
    resends: u32,
}

#[derive(Clone, Debug)]
enum Phase {
    /// The offer is out; waiting for `Ack { seq: 0 }`.
    Offering(InFlight),
    /// Copying chunks.
    Streaming {
        /// The last key read so far.
        cursor: Option<Vec<u8>>,
        /// A `ReadRange` is outstanding.
        reading: bool,
        /// The driver said the partition ended; the last chunk exists.
        read_all: bool,
        /// The number the next chunk gets.
        next_seq: u64,
        /// Chunks sent and not yet acknowledged, by seq; at most `window_chunks`.
        window: BTreeMap<u64, InFlight>,
    },
    /// Completed (`None`) or failed; no more actions.
    Finished(Option<AbortReason>),
}

/// One outgoing partition copy. See the module docs.
#[derive(Clone, Debug)]
pub struct Sender {
    id: TransferId,
    partition: PartitionId,
    to: NodeId,
    config: TransferConfig,
    phase: Phase,
    progress: SenderProgress,
}

impl Sender {
    /// Starts copying `partition` to `to`: sends the offer.
    pub fn start(
        id: TransferId,
        partition: PartitionId,
        to: NodeId,
        config: TransferConfig,
        now: Tick,
        out: &mut Vec<SenderAction>,
    ) -> Sender {
        let offer = TransferMessage::Offer { id, partition };
        out.push(SenderAction::Send(offer.clone()));
        Sender {
            id,
            partition,
            to,
            config: config.clamped(),
            phase: Phase::Offering(InFlight {
                message: offer,
                sent_at: now,
                resends: 0,
            }),
            progress: SenderProgress::default(),
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

    /// The receiving node.
    pub fn to(&self) -> NodeId {
        self.to
    }

    /// The counters so far.
    pub fn progress(&self) -> SenderProgress {
        self.progress
    }

    /// Whether the offer was accepted and chunks are flowing.
    pub fn is_streaming(&self) -> bool {
        matches!(self.phase, Phase::Streaming { .. })
    }

    /// `None` while running, then `Some(Ok(()))` if completed or `Some(Err(reason))`.
    pub fn outcome(&self) -> Option<Result<(), AbortReason>> {
        match self.phase {
            Phase::Finished(None) => Some(Ok(())),
            Phase::Finished(Some(reason)) => Some(Err(reason)),
            _ => None,
        }
    }

    /// Chunks sent and not yet acknowledged (the offer counts as one while it is out).
    pub fn unacked(&self) -> usize {
        match &self.phase {
            Phase::Offering(_) => 1,
            Phase::Streaming { window, .. } => window.len(),
            Phase::Finished(_) => 0,
        }
    }

    /// Stops the transfer: tells the receiver and reports `Failed { reason: Cancelled }`.
    pub fn cancel(&mut self, out: &mut Vec<SenderAction>) {
        if self.outcome().is_none() {
            self.fail(AbortReason::Cancelled, true, out);
        }
    }

    /// Advances the transfer by one input.
    pub fn step(&mut self, now: Tick, input: SenderInput, out: &mut Vec<SenderAction>) {
        match input {
            SenderInput::Read { entries, end } => self.on_read(now, entries, end, out),
            SenderInput::Message(message) => self.on_message(message, out),
            SenderInput::Tick => self.on_tick(now, out),
        }
        self.fill_window(out);
        self.complete_if_done(out);
    }

    fn on_message(&mut self, message: TransferMessage, out: &mut Vec<SenderAction>) {
        if message.id() != self.id {
            return;
        }
        match (message, &mut self.phase) {
            (TransferMessage::Ack { seq: 0, .. }, Phase::Offering(_)) => {
                self.phase = Phase::Streaming {
                    cursor: None,
                    reading: false,
                    read_all: false,
                    next_seq: 1,
                    window: BTreeMap::new(),
                };
            }
            (TransferMessage::Ack { seq, .. }, Phase::Streaming { window, .. }) => {
                // A duplicate ack, or one for a chunk never sent, finds nothing and is ignored.
                self.progress.chunks_acked += u64::from(window.remove(&seq).is_some());
            }
            (
                TransferMessage::Abort { reason, .. },
                Phase::Offering(_) | Phase::Streaming { .. },
            ) => {
                self.fail(reason, false, out);
            }
            // Offers and chunks travel the other way; anything else is stale.
            _ => {}
        }
    }

    fn on_read(&mut self, now: Tick, entries: Vec<Entry>, end: bool, out: &mut Vec<SenderAction>) {
        let Phase::Streaming {
            cursor,
            reading,
            read_all,
            next_seq,
            window,
        } = &mut self.phase
        else {
            return; // a read that finishes after the transfer did
        };
        if !*reading {
            return;
        }
        debug_assert!(
            entries.len() <= self.config.chunk_entries,
            "driver read more entries than asked"
        );
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0)
                && entries
                    .first()
                    .is_none_or(|(k, _)| cursor.as_ref().is_none_or(|c| c < k)),
            "driver read out of key order"
        );
        *reading = false;
        // An empty read ends the partition even without `end`, so a confused driver cannot
        // make the sender loop; an empty last chunk still tells the receiver where the end is.
        let last = end || entries.is_empty();
        *read_all = last;
        if let Some((key, _)) = entries.last() {
            *cursor = Some(key.clone());
        }
        let seq = *next_seq;
        *next_seq += 1;
        let entry_count = entries.len() as u64;
        let chunk = TransferMessage::Chunk {
            id: self.id,
            partition: self.partition,
            seq,
            entries,
            last,
        };
        self.progress.entries_sent += entry_count;
        self.progress.bytes_sent += chunk.wire_bytes() as u64;
        out.push(SenderAction::Send(chunk.clone()));
        window.insert(
            seq,
            InFlight {
                message: chunk,
                sent_at: now,
                resends: 0,
            },
        );
    }

    fn on_tick(&mut self, now: Tick, out: &mut Vec<SenderAction>) {
        let config = self.config;
        let mut gave_up = false;
        let mut resend = |flight: &mut InFlight, out: &mut Vec<SenderAction>| {
            if now.since(flight.sent_at) < config.retransmit_ticks {
                return 0;
            }
            if flight.resends >= config.retries_max {
                gave_up = true;
                return 0;
            }
            flight.resends += 1;
            flight.sent_at = now;
            out.push(SenderAction::Send(flight.message.clone()));
            1
        };
        let resends: u64 = match &mut self.phase {
            Phase::Offering(flight) => resend(flight, out),
            Phase::Streaming { window, .. } => window.values_mut().map(|f| resend(f, out)).sum(),
            Phase::Finished(_) => 0,
        };
        self.progress.resends += resends;
        if gave_up {
            self.fail(AbortReason::TimedOut, true, out);
        }
    }

    /// Asks for the next chunk when the window has room and no read is outstanding.
    fn fill_window(&mut self, out: &mut Vec<SenderAction>) {
        if let Phase::Streaming {
            cursor,
            reading,
            read_all,
            window,
            ..
        } = &mut self.phase
        {
            if !*reading && !*read_all && window.len() < self.config.window_chunks {
                *reading = true;
                out.push(SenderAction::ReadRange {
                    partition: self.partition,
                    after: cursor.clone(),
                    max_entries: self.config.chunk_entries,
                    max_bytes: self.config.chunk_bytes,
                });
            }
        }
    }

    fn complete_if_done(&mut self, out: &mut Vec<SenderAction>) {
        if let Phase::Streaming {
            reading: false,
            read_all: true,
            window,
            ..
        } = &self.phase
        {
            if window.is_empty() {
                self.phase = Phase::Finished(None);
                out.push(SenderAction::Completed {
                    partition: self.partition,
                    to: self.to,
                });
            }
        }
    }

    fn fail(&mut self, reason: AbortReason, tell_receiver: bool, out: &mut Vec<SenderAction>) {
        if tell_receiver {
            // Best effort: a lost abort leaves the receiver to time out on its own.
            out.push(SenderAction::Send(TransferMessage::Abort {
                id: self.id,
                reason,
            }));
        }
        self.phase = Phase::Finished(Some(reason));
        out.push(SenderAction::Failed {
            partition: self.partition,
            to: self.to,
            reason,
        });
    }
}

#[cfg(test)]
mod tests;
