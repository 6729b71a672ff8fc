//! What a cluster node exchanges with its peers and asks of its storage.
//!
//! [`PeerMessage`] is everything one node sends another; [`StorageOp`] is everything a node
//! asks its driver's storage to do, answered by a [`StorageResult`]. Both are plain data: the
//! shard runtime maps them to flatbuffers and to its storage engine, the simulator to its
//! in-memory network and disks. `wire_bytes` estimates each message's encoded size so that
//! simulations can count traffic.

use super::RingState;
use crate::antientropy::{AeMessage, ListingRequest, SegmentListing};
use crate::error::CoreError;
use crate::ids::{NodeId, PartitionId, Token};
use crate::membership::GossipMessage;
use crate::quorum::RequestId;
use crate::transfer::TransferMessage;
use crate::version::{Object, VersionVector};

/// A key as the cluster sees it: its ring position and its storage bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// `token_of(keyspace, key)`.
    pub token: Token,
    /// The key's bytes in storage (keyspace and key, as the driver encodes them).
    pub bytes: Vec<u8>,
}

impl Key {
    /// Estimated encoded size.
    pub fn wire_bytes(&self) -> usize {
        8 + 4 + self.bytes.len()
    }

    /// The key as a transfer entry names it: the token in 8 big-endian bytes, then the stored
    /// key. Byte order of these is `Key` order (token, then bytes), so a transfer's cursor
    /// and its chunks' key order mean the same to both ends.
    pub fn to_entry_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bytes.len());
        out.extend_from_slice(&self.token.0.to_be_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Reads [`Key::to_entry_bytes`] back; `None` if there are fewer than 8 bytes.
    pub fn from_entry_bytes(bytes: &[u8]) -> Option<Key> {
        let (token, key) = bytes.split_first_chunk::<8>()?;
        Some(Key {
            token: Token(u64::from_be_bytes(*token)),
            bytes: key.to_vec(),
        })
    }
}

/// A message between two cluster nodes. `op` fields name the coordinator's request, so that
/// answers find their coordinator; they are unique per coordinating node.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerMessage {
    /// Coordinator → updater: apply this write to your own copy, assigning the dot.
    Update {
        /// The coordinator's request.
        op: RequestId,
        /// The key.
        key: Key,
        /// What the client read (empty for a blind write).
        context: VersionVector,
        /// The value, `None` for a delete.
        value: Option<Vec<u8>>,
        /// The coordinator's wall clock, for last-write-wins keyspaces.
        timestamp_ms: u64,
        /// Sync before answering.
        durable: bool,
        /// The coordinator's [`RingState::version`]; a replica with a newer ring refuses.
        ring: u64,
    },
    /// Updater → coordinator: the object after the update, or why it refused.
    Updated {
        /// The coordinator's request.
        op: RequestId,
        /// The result.
        result: Result<Object, CoreError>,
    },
    /// Coordinator → replica or fallback: merge this object (or keep it as a hint).
    Replicate {
        /// The coordinator's request.
        op: RequestId,
        /// The key.
        key: Key,
        /// The updated object.
        object: Object,
        /// For a fallback: the owner it keeps the write for.
        hint_for: Option<NodeId>,
        /// Sync before acknowledging.
        durable: bool,
        /// The coordinator's [`RingState::version`]; a replica with a newer ring refuses.
        ring: u64,
    },
    /// Replica → coordinator: the replicated object is stored (durably if asked).
    ReplicateAck {
        /// The coordinator's request.
        op: RequestId,
    },
    /// Coordinator → replica: send me your copy of this key.
    Read {
        /// The coordinator's request.
        op: RequestId,
        /// The key.
        key: Key,
    },
    /// Replica → coordinator: my copy (empty if I have none).
    ReadReply {
        /// The coordinator's request.
        op: RequestId,
        /// The copy.
        object: Object,
    },
    /// Read repair or an anti-entropy push: merge this object. Not acknowledged.
    Repair {
        /// The key.
        key: Key,
        /// What to merge.
        object: Object,
    },
    /// Anti-entropy pull: send me (as [`PeerMessage::Repair`]) your copies of these keys.
    Fetch {
        /// The keys, of one partition.
        keys: Vec<Key>,
    },
    /// Fallback → owner: a hinted write, handed back.
    HintDeliver {
        /// Names the attempt.
        delivery: u64,
        /// The key.
        key: Key,
        /// The hint's object.
        object: Object,
    },
    /// Owner → fallback: the delivered hint is merged durably; the fallback may forget it.
    HintAck {
        /// The attempt.
        delivery: u64,
    },
    /// Membership gossip.
    Gossip(GossipMessage),
    /// A Merkle-tree exchange.
    Ae(AeMessage),
    /// A partition transfer.
    Transfer(TransferMessage),
    /// A newer ring state, pushed to a peer whose gossip shows an older one.
    Ring(Box<RingState>),
    /// Source → claimant: these moves of the ring change at `ring` are durable on their
    /// receivers. Sent again every report interval until the claimant flips the ring.
    MovesDone {
        /// The [`RingState::version`] the moves belong to.
        ring: u64,
        /// (partition, receiver) of every move this node has completed.
        moves: Vec<(PartitionId, NodeId)>,
    },
    /// Any member → claimant: the operator removed these dead members (see
    /// [`super::Node::remove`]). Sent again until the ring no longer names them.
    Remove {
        /// The members to remove, at most one ring's worth.
        nodes: Vec<NodeId>,
    },
    /// Reaper → every member of a stable ring: may these tombstones go? (see `node::reap`)
    ReapCheck {
        /// Names the reaper's round.
        round: u64,
        /// The reaper's [`RingState::version`]: a member with another vetoes every entry.
        ring: u64,
        /// Keys of one partition, each with the reaper's tombstone of it (at most
        /// [`crate::constants::REAP_KEYS_MAX`]).
        entries: Vec<(Key, Object)>,
    },
    /// Member → reaper: the entries of a [`PeerMessage::ReapCheck`] that must stay.
    ReapVote {
        /// The round.
        round: u64,
        /// Indices into the check's entries.
        vetoed: Vec<u32>,
    },
    /// Reaper → every member, once all voted: drop each key whose copy is exactly its
    /// tombstone.
    Reap {
        /// The round's [`RingState::version`]: a member with another ignores the message.
        ring: u64,
        /// The entries no member vetoed.
        entries: Vec<(Key, Object)>,
    },
}

impl PeerMessage {
    /// Estimated encoded size in bytes (a tag and the fields).
    pub fn wire_bytes(&self) -> usize {
        let object = |o: &Object| o.encoded_len();
        1 + match self {
            PeerMessage::Update {
                key,
                context,
                value,
                ..
            } => {
                8 + key.wire_bytes()
                    + 4
                    + 16 * context.len()
                    + 5
                    + value.as_ref().map_or(0, Vec::len)
                    + 17
            }
            PeerMessage::Updated { result, .. } => 8 + result.as_ref().map_or(16, object),
            PeerMessage::Replicate { key, object: o, .. } => 8 + key.wire_bytes() + object(o) + 18,
            PeerMessage::ReplicateAck { .. } => 8,
            PeerMessage::Read { key, .. } => 8 + key.wire_bytes(),
            PeerMessage::ReadReply { object: o, .. } => 8 + object(o),
            PeerMessage::Repair { key, object: o } => key.wire_bytes() + object(o),
            PeerMessage::Fetch { keys } => 4 + keys.iter().map(Key::wire_bytes).sum::<usize>(),
            PeerMessage::HintDeliver { key, object: o, .. } => 8 + key.wire_bytes() + object(o),
            PeerMessage::HintAck { .. } => 8,
            PeerMessage::Gossip(m) => m.wire_bytes(),
            PeerMessage::Ae(m) => m.wire_bytes(),
            PeerMessage::Transfer(m) => m.wire_bytes(),
            PeerMessage::Ring(r) => r.wire_bytes(),
            PeerMessage::MovesDone { moves, .. } => 8 + 4 + 12 * moves.len(),
            PeerMessage::Remove { nodes } => 4 + 8 * nodes.len(),
            PeerMessage::ReapCheck { entries, .. } | PeerMessage::Reap { entries, .. } => {
                16 + 4
                    + entries
                        .iter()
                        .map(|(k, o)| k.wire_bytes() + object(o))
                        .sum::<usize>()
            }
            PeerMessage::ReapVote { vetoed, .. } => 8 + 4 + 4 * vetoed.len(),
        }
    }
}

/// Something the node asks its storage to do. Every op is answered by exactly one
/// [`StorageResult`] with the same id, unless the node crashes first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Apply a coordinated write to this node's copy: `Object::update_above(context, me,
    /// dot_floor, ts, value)`; in a last-write-wins keyspace (`lww`), the write replaces every
    /// sibling. Answered by [`StorageResult::Changed`] or [`StorageResult::Refused`].
    Update {
        /// The key.
        key: Key,
        /// What the client read.
        context: VersionVector,
        /// The value, `None` for a delete.
        value: Option<Vec<u8>>,
        /// The coordinator's wall clock.
        timestamp_ms: u64,
        /// The least dot counter to mint: [`crate::version::dot_floor`] of the later of this
        /// node's wall clock and the coordinator's (see `node::reap`).
        dot_floor: u64,
        /// Last-write-wins keyspace.
        lww: bool,
    },
    /// Merge an object into this node's copy (`Object::merge`; in a last-write-wins keyspace
    /// followed by [`lww_resolve`]). Answered by [`StorageResult::Changed`].
    Merge {
        /// The key.
        key: Key,
        /// What to merge.
        object: Object,
        /// Last-write-wins keyspace.
        lww: bool,
    },
    /// Read this node's copy. Answered by [`StorageResult::Read`].
    Read {
        /// The key.
        key: Key,
    },
    /// Persist a hint (replacing the one held for this owner and key). Answered by
    /// [`StorageResult::Done`].
    PutHint {
        /// The owner the hint is for.
        owner: NodeId,
        /// The key.
        key: Key,
        /// The hint's object.
        object: Object,
    },
    /// Forget a hint. Answered by [`StorageResult::Done`].
    DeleteHint {
        /// The owner the hint was for.
        owner: NodeId,
        /// The key.
        key: Key,
    },
    /// List one page of an anti-entropy segment request: every key whose token lies in one of
    /// `ranges` (inclusive, in order), fed in `(token, key)` order to a
    /// [`crate::antientropy::ListingBuilder`] for `request`. Answered by
    /// [`StorageResult::Listed`].
    List {
        /// The request (partition, segments, cursor).
        request: ListingRequest,
        /// Its segments' token ranges.
        ranges: Vec<(u64, u64)>,
    },
    /// Read the objects of `keys` (anti-entropy push or a fetch from a peer). Answered by
    /// [`StorageResult::Objects`].
    ReadMany {
        /// The keys.
        keys: Vec<Key>,
    },
    /// Read the next keys of `partition` after `after` (from its start if `None`) in `Key`
    /// order, stopping after `max_entries` or once the entries reach `max_bytes` (one entry at
    /// least). Answered by [`StorageResult::Range`].
    ReadRange {
        /// The partition.
        partition: PartitionId,
        /// Its first and last token, both inclusive.
        tokens: (u64, u64),
        /// The last key already read.
        after: Option<Key>,
        /// Most entries.
        max_entries: usize,
        /// Soft byte limit.
        max_bytes: usize,
    },
    /// Merge every object into this node's copy, as [`StorageOp::Merge`] does for one (a
    /// transfer chunk). Answered by [`StorageResult::ChangedMany`].
    MergeMany {
        /// The keys and objects, in key order.
        entries: Vec<(Key, Object)>,
        /// Last-write-wins keyspace.
        lww: bool,
    },
    /// Persist the ring state, replacing the one stored. Answered by [`StorageResult::Done`].
    SaveRing(Box<RingState>),
    /// Drop each key whose copy is exactly its tombstone, leaving it absent (an empty
    /// object); leave every other key as it is (a newer write, and an older copy too: were it
    /// kept while the others purge, it would come back). Need not be synced: a purge
    /// lost in a crash leaves a tombstone, which is reaped again. Answered by
    /// [`StorageResult::ChangedMany`].
    Purge {
        /// The keys and the tombstones reaped.
        entries: Vec<(Key, Object)>,
    },
}

/// What storage answers to a [`StorageOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageResult {
    /// The key's copy before and after an update or merge; synced if the op was durable.
    Changed {
        /// Before (empty if the key was absent).
        before: Object,
        /// After.
        after: Object,
    },
    /// The update was refused (too many siblings...); nothing changed.
    Refused(CoreError),
    /// The key's copy (empty if absent).
    Read(Object),
    /// Done (synced if durable).
    Done,
    /// One page of a segment listing.
    Listed(SegmentListing),
    /// Copies of the keys asked for (empty objects for absent keys), in the same order.
    Objects(Vec<(Key, Object)>),
    /// Entries of a [`StorageOp::ReadRange`], in key order.
    Range {
        /// The entries.
        entries: Vec<(Key, Object)>,
        /// Whether the partition has no keys after these.
        end: bool,
    },
    /// Each key's copy before and after a [`StorageOp::MergeMany`], in the same order.
    ChangedMany(Vec<(Key, Object, Object)>),
    /// Storage failed (disk full, corruption): the op did nothing.
    Failed(String),
}

/// Keeps only the newest sibling by `(timestamp_ms, dot)`: what a last-write-wins keyspace
/// stores after every merge. The clock is kept whole, so the dropped siblings stay "seen".
pub fn lww_resolve(object: Object) -> Object {
    let (clock, siblings) = object.into_parts();
    let newest = siblings
        .into_iter()
        .max_by(|a, b| (a.timestamp_ms, a.dot).cmp(&(b.timestamp_ms, b.dot)));
    // One sibling out of a valid object is still covered by the same clock.
    match Object::from_parts(clock.clone(), newest.into_iter().collect()) {
        Ok(o) => o,
        Err(_) => Object::from_parts(clock, Vec::new()).unwrap_or_default(),
    }
}
