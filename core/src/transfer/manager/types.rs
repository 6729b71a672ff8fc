//! The inputs, actions and status lines of [`super::Transfers`].

#[cfg(doc)]
use super::Transfers;
use crate::ids::{NodeId, PartitionId};
use crate::transfer::{AbortReason, Entry, TransferId, TransferMessage};
#[cfg(doc)]
use crate::transfer::{ReceiverAction, SenderAction};

/// What the driver and the network hand [`Transfers`].
#[derive(Clone, Debug, PartialEq)]
pub enum TransfersInput {
    /// Answer to [`TransfersAction::ReadRange`] for outgoing transfer `id`.
    Read {
        /// The transfer.
        id: TransferId,
        /// Entries after the cursor, in key order.
        entries: Vec<Entry>,
        /// Whether the partition has no entries after these.
        end: bool,
    },
    /// Answer to [`TransfersAction::Store`]: chunk `seq` of incoming transfer (`from`, `id`)
    /// is durable.
    Stored {
        /// The sending node.
        from: NodeId,
        /// The transfer.
        id: TransferId,
        /// The chunk.
        seq: u64,
    },
    /// A transfer message from a peer.
    Message {
        /// The peer that sent it.
        from: NodeId,
        /// The message.
        message: TransferMessage,
    },
    /// Time passed.
    Tick,
}

/// What [`Transfers`] asks its driver to do. See [`SenderAction`] and [`ReceiverAction`].
#[derive(Clone, Debug, PartialEq)]
pub enum TransfersAction {
    /// Read entries of `partition` after `after`; answer with [`TransfersInput::Read`].
    ReadRange {
        /// The transfer.
        id: TransferId,
        /// The partition.
        partition: PartitionId,
        /// The last key already read.
        after: Option<Vec<u8>>,
        /// Most entries to return.
        max_entries: usize,
        /// Stop once the chunk has this many bytes.
        max_bytes: usize,
    },
    /// Merge entries into `partition` durably; answer with [`TransfersInput::Stored`].
    Store {
        /// The sending node.
        from: NodeId,
        /// The transfer.
        id: TransferId,
        /// The partition.
        partition: PartitionId,
        /// The chunk.
        seq: u64,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// Send `message` to `to`.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: TransferMessage,
    },
    /// Outgoing transfer done: every entry is durable on `to`; ownership may flip.
    SendCompleted {
        /// The transfer.
        id: TransferId,
        /// The partition.
        partition: PartitionId,
        /// The receiver.
        to: NodeId,
    },
    /// Outgoing transfer stopped (or was cancelled while queued); start it again if needed.
    SendFailed {
        /// The transfer.
        id: TransferId,
        /// The partition.
        partition: PartitionId,
        /// The receiver.
        to: NodeId,
        /// Why.
        reason: AbortReason,
    },
    /// Incoming transfer done: every entry is durable here.
    ReceiveCompleted {
        /// The transfer.
        id: TransferId,
        /// The partition.
        partition: PartitionId,
        /// The sender.
        from: NodeId,
    },
    /// Incoming transfer stopped; what was stored stays.
    ReceiveFailed {
        /// The transfer.
        id: TransferId,
        /// The partition.
        partition: PartitionId,
        /// The sender.
        from: NodeId,
        /// Why.
        reason: AbortReason,
    },
}

/// Which way a transfer goes, seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node sends.
    Outgoing,
    /// This node receives.
    Incoming,
}

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// Waiting for a free slot (outgoing only).
    Queued,
    /// Offered, not yet accepted (outgoing only).
    Offering,
    /// Chunks flowing.
    Streaming,
    /// Every chunk durable; kept to acknowledge resends (incoming only).
    Completed,
}

/// One transfer's line in `tessera status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferProgress {
    /// The transfer.
    pub id: TransferId,
    /// The partition.
    pub partition: PartitionId,
    /// The other node.
    pub peer: NodeId,
    /// Which way.
    pub direction: Direction,
    /// Where it is.
    pub state: TransferState,
    /// Entries sent (outgoing) or made durable (incoming).
    pub entries: u64,
    /// Wire bytes of those entries' chunks.
    pub bytes: u64,
    /// Chunks acknowledged (durable on the receiver).
    pub chunks_acked: u64,
}

/// Totals since the node started, for `tessera status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferTotals {
    /// Outgoing transfers completed.
    pub sent_completed: u64,
    /// Outgoing transfers failed or cancelled.
    pub sent_failed: u64,
    /// Incoming transfers completed.
    pub received_completed: u64,
    /// Incoming transfers failed, and offers refused as busy.
    pub received_failed: u64,
}
