//! The error type of `tessera-core`.
//!
//! One enum for the whole crate, because the crate is one layer: pure logic that either rejects
//! its input or refuses an operation. Every message says what a person can do about it. Bad
//! bytes are always an error ([`CoreError::Malformed`]), never a panic.

use crate::constants::{PARTITION_COUNT_MAX, SHARD_COUNT_MAX};
use crate::ids::NodeId;

/// Everything that can go wrong in `tessera-core`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Bytes handed to a decoder (a causal context from a client, an object from the log or an
    /// SSTable) are not a valid encoding. `what` names the field that failed the check.
    #[error(
        "malformed {what}: the bytes are damaged or were not produced by Tessera; \
         a client should read the key again for a fresh context, storage should treat the \
         record as corrupt"
    )]
    Malformed {
        /// The part of the encoding that failed validation.
        what: &'static str,
    },

    /// A partition count that is not a power of two in `1..=PARTITION_COUNT_MAX`.
    #[error(
        "partition count {0} is invalid: choose a power of two between 1 and {max}",
        max = PARTITION_COUNT_MAX
    )]
    InvalidPartitionCount(u32),

    /// A shard count outside `1..=SHARD_COUNT_MAX` or larger than the partition count.
    #[error(
        "shard count {0} is invalid: choose between 1 and {max} shards, and no more shards \
         than partitions",
        max = SHARD_COUNT_MAX
    )]
    InvalidShardCount(u32),

    /// A partition-to-shard table that does not fit its partition and shard counts, typically
    /// from a published topology that is damaged or from a different cluster.
    #[error("shard table is invalid: {detail}; fetch the topology again")]
    InvalidShardTable {
        /// What is wrong with the table.
        detail: String,
    },

    /// A write would grow the key's sibling set past [`crate::constants::SIBLINGS_MAX`].
    #[error(
        "this write would leave {count} siblings on the key (limit {max}): read the key and \
         write the resolved value back with the returned context"
    )]
    TooManySiblings {
        /// Siblings the key would hold after the write.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// A write would grow the key's version vector past [`crate::constants::CLOCK_ENTRIES_MAX`].
    #[error(
        "this write would grow the key's version vector to {count} entries (limit {max}): the \
         context names nodes that never wrote this key; read the key again and write with the \
         fresh context"
    )]
    TooManyClockEntries {
        /// Entries the version vector would hold after the write.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// A value larger than the stored format can hold.
    #[error(
        "a value of {size_bytes} bytes is larger than the stored format allows ({max} bytes): \
         split it or store it elsewhere"
    )]
    ValueTooLarge {
        /// Size of the rejected value.
        size_bytes: usize,
        /// The limit.
        max: usize,
    },

    /// A context claims the largest possible counter for the coordinating node, so no newer dot
    /// can be assigned. Only a forged or corrupt context can do this.
    #[error(
        "the causal context claims the last possible version for node {node}: it is forged or \
         corrupt; read the key again for a fresh context"
    )]
    CounterExhausted {
        /// The coordinating node whose counter would overflow.
        node: NodeId,
    },

    /// A tictac tree shape outside the supported bounds.
    #[error(
        "tictac tree shape of {levels} levels of {level_bits} bits is invalid: choose 1 to \
         {bits_max} bits per level and at most {segment_bits_max} segment bits in all",
        bits_max = crate::constants::AE_TREE_LEVEL_BITS_MAX,
        segment_bits_max = crate::constants::AE_TREE_SEGMENT_BITS_MAX
    )]
    InvalidTreeShape {
        /// Bits per branch level asked for.
        level_bits: u8,
        /// Levels below the root asked for.
        levels: u8,
    },

    /// Too many outgoing partition transfers are already waiting to start.
    #[error(
        "{queued} partition transfers are already waiting to start (limit {max}): start this \
         one again once some have finished"
    )]
    TransferQueueFull {
        /// Transfers waiting.
        queued: usize,
        /// The limit ([`crate::constants::TRANSFERS_QUEUED_MAX`]).
        max: usize,
    },

    /// A ring member set that cannot be placed: empty, too large, a duplicate node id, a zero
    /// or oversized weight, or an oversized rack or datacenter name.
    #[error("ring members are invalid: {detail}; fix the member list and try again")]
    InvalidMembers {
        /// What is wrong with the members.
        detail: String,
    },

    /// A write routed by an older ring than the replica's: the cluster's ring changed while
    /// the request was on its way. Retry: the coordinator has been sent the new ring.
    #[error(
        "the coordinator routed this write by ring version {coordinator:#x} but the replica \
         has {replica:#x}: the ring changed; retry the request"
    )]
    StaleRing {
        /// The coordinator's ring version.
        coordinator: u64,
        /// The replica's.
        replica: u64,
    },

    /// A replication setting that cannot be honoured: no replicas, too many, or a datacenter
    /// named twice.
    #[error("replication setting is invalid: {detail}; fix the keyspace's replication")]
    InvalidReplication {
        /// What is wrong with the setting.
        detail: String,
    },
}
