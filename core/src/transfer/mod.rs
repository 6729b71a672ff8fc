//! Partition transfers: copying one partition's data from an old replica to a new one when the
//! ring changes (DESIGN §5, join and leave).
//!
//! - [`sender`] holds [`Sender`], one outgoing copy: it offers the partition, reads it from the
//!   driver's storage in key order a bounded chunk at a time, keeps at most a window of chunks
//!   unacknowledged, resends on timeout and gives up after a bounded number of resends.
//! - [`receiver`] holds [`Receiver`], one incoming copy: it hands each chunk to the driver to
//!   merge durably and acknowledges a chunk only once the driver reports it stored.
//! - [`manager`] holds [`Transfers`], one node's set of transfers: a bounded number running in
//!   each direction, the rest queued (bounded), and progress for `tessera status`.
//!
//! The protocol, per transfer `id` (chosen by the sender, unique per sender node):
//! ```text
//! sender                         receiver
//! Offer{id, p}            --->   accept (or Abort{ReceiverBusy})
//!                         <---   Ack{id, seq 0}
//! Chunk{id, p, seq 1..}   --->   Store -> driver merges + fsyncs -> Stored
//!                         <---   Ack{id, seq}          (only once durable)
//! ... the chunk marked `last` carries the final entries (none for an empty partition)
//! ```
//!
//! Invariants:
//! - Chunks are numbered `1..=last` without gaps and cover the partition in key order.
//! - The sender reports `Completed` only after every chunk, the last included, was
//!   acknowledged, so the receiver holds every entry durably: ownership may flip then.
//! - Duplicated, reordered or lost messages are harmless: the driver merges with
//!   [`Object::merge`], which is idempotent, and the receiver acknowledges duplicates again.
//! - An abort or a give-up leaves the receiver with partial data. That is harmless: the old
//!   replicas keep ownership and the transfer is started again.
//! - Every collection is bounded: windows by [`TRANSFER_WINDOW_CHUNKS_MAX`], chunks by
//!   [`TRANSFER_CHUNK_ENTRIES_MAX`], the manager by [`TRANSFERS_CONCURRENT_MAX`],
//!   [`TRANSFERS_QUEUED_MAX`] and [`TRANSFERS_FINISHED_MAX`].
//!
//! Nothing here checks that a chunk's keys belong to its partition: keys are stored keys whose
//! keyspace the driver knows, so the driver checks them when it merges.

pub mod manager;
pub mod receiver;
pub mod sender;

#[cfg(test)]
mod sim;

pub use manager::{
    Direction, TransferProgress, TransferState, TransferTotals, Transfers, TransfersAction,
    TransfersInput,
};
pub use receiver::{Receiver, ReceiverAction, ReceiverInput};
pub use sender::{Sender, SenderAction, SenderInput};

#[cfg(doc)]
use crate::constants::{TRANSFERS_CONCURRENT_MAX, TRANSFERS_FINISHED_MAX, TRANSFERS_QUEUED_MAX};
use crate::constants::{
    TRANSFER_CHUNK_BYTES_DEFAULT, TRANSFER_CHUNK_ENTRIES_DEFAULT, TRANSFER_CHUNK_ENTRIES_MAX,
    TRANSFER_RETRANSMIT_TICKS_DEFAULT, TRANSFER_RETRIES_MAX_DEFAULT,
    TRANSFER_WINDOW_CHUNKS_DEFAULT, TRANSFER_WINDOW_CHUNKS_MAX,
};
use crate::ids::PartitionId;
use crate::version::Object;

/// Names one transfer. Chosen at random by the sending node, so that a restarted sender does
/// not reuse the id of a transfer a receiver still remembers; receivers key transfers by
/// (sender node, id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

impl std::fmt::Display for TransferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "x{:016x}", self.0)
    }
}

/// One stored entry of a partition: a stored key and its object.
pub type Entry = (Vec<u8>, Object);

/// Why a transfer stopped without completing. Travels in [`TransferMessage::Abort`] and is
/// reported in the `Failed` actions; the variant says whose side stopped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// The receiver already runs [`TRANSFERS_CONCURRENT_MAX`] incoming transfers.
    ReceiverBusy,
    /// The receiver does not know the transfer (it restarted, or gave up on an idle sender).
    UnknownTransfer,
    /// A peer stopped answering: the sender after its resends ran out, the receiver after no
    /// message for its idle timeout.
    TimedOut,
    /// The local node cancelled the transfer (the ring changed again, say).
    Cancelled,
}

impl AbortReason {
    /// A stable one-byte code for the wire.
    pub fn code(self) -> u8 {
        match self {
            AbortReason::ReceiverBusy => 1,
            AbortReason::UnknownTransfer => 2,
            AbortReason::TimedOut => 3,
            AbortReason::Cancelled => 4,
        }
    }

    /// Reads [`AbortReason::code`] back; `None` for a code this version does not know.
    pub fn from_code(code: u8) -> Option<AbortReason> {
        match code {
            1 => Some(AbortReason::ReceiverBusy),
            2 => Some(AbortReason::UnknownTransfer),
            3 => Some(AbortReason::TimedOut),
            4 => Some(AbortReason::Cancelled),
            _ => None,
        }
    }
}

/// The transfer protocol's messages. Plain data; the schema crate maps them to flatbuffers.
#[derive(Clone, Debug, PartialEq)]
pub enum TransferMessage {
    /// Sender to receiver: "I will copy `partition` to you". Answered by `Ack { seq: 0 }`.
    Offer {
        /// The transfer.
        id: TransferId,
        /// The partition to copy.
        partition: PartitionId,
    },
    /// Sender to receiver: entries `seq` of the partition, in key order after chunk `seq - 1`.
    Chunk {
        /// The transfer.
        id: TransferId,
        /// The partition, repeated so that a receiver can check it.
        partition: PartitionId,
        /// Chunk number, from 1.
        seq: u64,
        /// At most [`TRANSFER_CHUNK_ENTRIES_MAX`] entries, sorted by key.
        entries: Vec<Entry>,
        /// Whether this is the partition's final chunk.
        last: bool,
    },
    /// Receiver to sender: chunk `seq` is durable (`seq` 0: the offer is accepted).
    Ack {
        /// The transfer.
        id: TransferId,
        /// The chunk stored, or 0 for the offer.
        seq: u64,
    },
    /// Either way: the transfer is over without completing.
    Abort {
        /// The transfer.
        id: TransferId,
        /// Why.
        reason: AbortReason,
    },
}

/// Wire-size estimate of a `u64`, a `u32` id and a length prefix.
const U64_BYTES: usize = 8;
const U32_BYTES: usize = 4;
const LEN_BYTES: usize = 4;
/// The message tag, a `bool` or an abort code.
const BYTE: usize = 1;

/// Estimated wire size of one entry: length-prefixed key and encoded object.
pub fn entry_wire_bytes((key, object): &Entry) -> usize {
    LEN_BYTES + key.len() + LEN_BYTES + object.encoded_len()
}

impl TransferMessage {
    /// The transfer this message belongs to.
    pub fn id(&self) -> TransferId {
        match self {
            TransferMessage::Offer { id, .. }
            | TransferMessage::Chunk { id, .. }
            | TransferMessage::Ack { id, .. }
            | TransferMessage::Abort { id, .. } => *id,
        }
    }

    /// Estimated encoded size, for simulations that count bytes: the sum of the field sizes
    /// (8 per `u64`, 4 per partition id and length prefix, 1 per tag, flag or code).
    pub fn wire_bytes(&self) -> usize {
        BYTE + U64_BYTES
            + match self {
                TransferMessage::Offer { .. } => U32_BYTES,
                TransferMessage::Chunk { entries, .. } => {
                    U32_BYTES
                        + U64_BYTES
                        + BYTE
                        + LEN_BYTES
                        + entries.iter().map(entry_wire_bytes).sum::<usize>()
                }
                TransferMessage::Ack { .. } => U64_BYTES,
                TransferMessage::Abort { .. } => BYTE,
            }
    }
}

/// Tunables of one transfer. [`Default`] takes the `*_DEFAULT` constants; simulations shrink
/// chunks to exercise many of them. Values above the protocol bounds are clamped by
/// [`TransferConfig::clamped`], which [`Sender::start`] and [`Transfers::new`] apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferConfig {
    /// Chunks sent and not yet acknowledged, `1..=TRANSFER_WINDOW_CHUNKS_MAX`.
    pub window_chunks: usize,
    /// Entries per chunk, `1..=TRANSFER_CHUNK_ENTRIES_MAX`.
    pub chunk_entries: usize,
    /// Bytes per chunk (soft: a chunk ends once it reaches this size).
    pub chunk_bytes: usize,
    /// Ticks without an acknowledgement before a message is sent again.
    pub retransmit_ticks: u64,
    /// Resends of one message before the sender gives up.
    pub retries_max: u32,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            window_chunks: TRANSFER_WINDOW_CHUNKS_DEFAULT,
            chunk_entries: TRANSFER_CHUNK_ENTRIES_DEFAULT,
            chunk_bytes: TRANSFER_CHUNK_BYTES_DEFAULT,
            retransmit_ticks: TRANSFER_RETRANSMIT_TICKS_DEFAULT,
            retries_max: TRANSFER_RETRIES_MAX_DEFAULT,
        }
    }
}

impl TransferConfig {
    /// The config with every field inside the protocol bounds (window and chunk entries in
    /// `1..=max`, chunk bytes and retransmit ticks at least 1).
    pub fn clamped(self) -> Self {
        TransferConfig {
            window_chunks: self.window_chunks.clamp(1, TRANSFER_WINDOW_CHUNKS_MAX),
            chunk_entries: self.chunk_entries.clamp(1, TRANSFER_CHUNK_ENTRIES_MAX),
            chunk_bytes: self.chunk_bytes.max(1),
            retransmit_ticks: self.retransmit_ticks.max(1),
            retries_max: self.retries_max,
        }
    }

    /// Longest a sender keeps trying one message before it gives up: every send and resend
    /// waits `retransmit_ticks`. A vanished receiver is reported `Failed` within this many
    /// ticks (plus the driver's tick interval) of the last message sent for the first time.
    pub fn give_up_ticks(&self) -> u64 {
        (u64::from(self.retries_max) + 1).saturating_mul(self.retransmit_ticks)
    }

    /// Ticks a receiver waits without hearing from its sender before it drops the transfer,
    /// and a finished receiver stays to acknowledge resent chunks: longer than a sender keeps
    /// trying, so a live sender is never dropped and a lost final ack is always repeated.
    pub fn receiver_idle_ticks(&self) -> u64 {
        self.give_up_ticks().saturating_add(self.retransmit_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;
    use crate::version::VersionVector;

    #[test]
    fn wire_bytes_counts_fields_and_payload() {
        let id = TransferId(7);
        let ack = TransferMessage::Ack { id, seq: 3 };
        assert_eq!(ack.wire_bytes(), 1 + 8 + 8);
        let empty = TransferMessage::Chunk {
            id,
            partition: PartitionId(1),
            seq: 1,
            entries: vec![],
            last: true,
        };
        let mut object = Object::new();
        object
            .update(&VersionVector::new(), NodeId(1), 0, Some(vec![0; 100]))
            .unwrap();
        let entry = (b"key".to_vec(), object.clone());
        let one = TransferMessage::Chunk {
            id,
            partition: PartitionId(1),
            seq: 1,
            entries: vec![entry.clone()],
            last: true,
        };
        assert_eq!(
            one.wire_bytes() - empty.wire_bytes(),
            4 + 3 + 4 + object.encoded_len()
        );
        assert!(entry_wire_bytes(&entry) > 100);
        assert_eq!(one.id(), id);
    }

    #[test]
    fn config_is_clamped_to_protocol_bounds() {
        let wild = TransferConfig {
            window_chunks: 0,
            chunk_entries: usize::MAX,
            chunk_bytes: 0,
            retransmit_ticks: 0,
            retries_max: 2,
        }
        .clamped();
        assert_eq!(wild.window_chunks, 1);
        assert_eq!(wild.chunk_entries, TRANSFER_CHUNK_ENTRIES_MAX);
        assert_eq!((wild.chunk_bytes, wild.retransmit_ticks), (1, 1));
        assert_eq!(wild.give_up_ticks(), 3);
        assert!(wild.receiver_idle_ticks() > wild.give_up_ticks());
        assert_eq!(
            TransferConfig::default().clamped(),
            TransferConfig::default()
        );
    }
}
