//! Owned, plain-Rust forms of the client protocol's messages.
//!
//! These are what the rest of Tessera works with; only `encode.rs` and `decode.rs` touch the
//! flatbuffers types. Invariants:
//! - Every type is `Send + Clone + Debug + PartialEq` and holds no borrowed wire bytes.
//! - An empty byte vector and an absent one are the same thing on the wire.
//! - A decoded keyspace is never empty: the wire's empty keyspace becomes [`DEFAULT_KEYSPACE`].
//! - The numbers of [`Durability`], [`QuorumMode`] and [`ErrorCode`] on the wire are fixed
//!   forever; the mapping lives here, next to the types, and a test pins it.
#![forbid(unsafe_code)]

use std::fmt;

use crate::generated as wire;

/// Keyspace used when a request names none (an empty keyspace on the wire): core's.
pub use tessera_core::constants::DEFAULT_KEYSPACE;

/// How durable a write must be before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// The keyspace's setting (durable unless configured otherwise).
    #[default]
    Default,
    /// Fsynced on `w` replicas before the reply.
    Durable,
    /// In memory (commit log written, not synced) on `w` replicas before the reply.
    Relaxed,
}

/// Which nodes may count toward a request's quorum (DESIGN §2, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QuorumMode {
    /// The node's choice, which is [`QuorumMode::Sloppy`].
    #[default]
    Default,
    /// Sloppy quorum: for every owner the coordinating node believes down, the next healthy node
    /// in ring order stands in and keeps the write as a hint that it hands back to the owner once
    /// it is reachable (hinted handoff). Writes stay available while owners are down; a read may
    /// count a stand-in that holds nothing of the key.
    Sloppy,
    /// Strict quorum: only the key's preference list (its `n` owners) counts. An owner that is
    /// down does not answer, so a request that needs it fails with `QuorumNotReached` instead
    /// of being acknowledged by a stand-in.
    Strict,
}

/// Where the answers a request counts toward its quorum come from (DESIGN §2): anywhere, the
/// coordinating node's datacenter only (like Cassandra's LOCAL_QUORUM), or each datacenter
/// holding replicas of the key (like EACH_QUORUM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckScope {
    /// Any of the key's replicas count.
    #[default]
    Any,
    /// Only replicas in the coordinating node's datacenter count: `replicas` of them, or with
    /// `replicas` 0 a majority of the key's replicas there. A datacenter holding no replica of
    /// the key is refused with a `BadRequest`.
    LocalDc,
    /// `replicas` answers from each datacenter holding replicas of the key, or with `replicas`
    /// 0 a majority of each one's replicas.
    EachDc,
}

/// How many replicas a request waits for and which nodes may count among them. The default
/// (all zero) asks for the node's own settings: its `r` or `w`, and a sloppy quorum.
///
/// Only a cluster member acts on it; a single node (not in a cluster) has one copy of every key
/// and ignores it.
///
/// For example, `Consistency { replicas: 3, quorum: QuorumMode::Strict }` with `n = 3` makes a
/// read wait for every replica of the key's preference list, and a write be acknowledged only
/// once all three owners have it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Consistency {
    /// Replicas that must answer: `r` for a read, `w` for a write. `0` means the node's default
    /// (its `read_quorum` or `write_quorum`). At most
    /// [`CONSISTENCY_REPLICAS_MAX`](crate::CONSISTENCY_REPLICAS_MAX) on the wire; more than the
    /// key's replicas (`n`) is refused with a `BadRequest` that says how many there are.
    pub replicas: u8,
    /// Whether fallback nodes may stand in for owners that are down.
    pub quorum: QuorumMode,
    /// Where the answers that count come from.
    pub scope: AckScope,
}

impl Consistency {
    /// Waits for `replicas` replicas, with the node's default quorum mode.
    pub fn replicas(replicas: u8) -> Self {
        Consistency {
            replicas,
            ..Consistency::default()
        }
    }

    /// The same, with a strict quorum: only the key's preference list counts.
    pub fn strict(self) -> Self {
        Consistency {
            quorum: QuorumMode::Strict,
            ..self
        }
    }

    /// The same, with a sloppy quorum: fallbacks may stand in for owners that are down.
    pub fn sloppy(self) -> Self {
        Consistency {
            quorum: QuorumMode::Sloppy,
            ..self
        }
    }

    /// The same, counting only answers from the coordinating node's datacenter
    /// ([`AckScope::LocalDc`]).
    pub fn local_dc(self) -> Self {
        Consistency {
            scope: AckScope::LocalDc,
            ..self
        }
    }

    /// The same, counting answers in each datacenter holding replicas ([`AckScope::EachDc`]).
    pub fn each_dc(self) -> Self {
        Consistency {
            scope: AckScope::EachDc,
            ..self
        }
    }

    /// The read a write starts with (for the context it supersedes): the node's default r,
    /// in this write's quorum mode (its `replicas` is a w, not an r).
    pub fn read_before_write(self) -> Self {
        Consistency {
            replicas: 0,
            ..self
        }
    }
}

/// Read every sibling of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    /// Keyspace name; empty means [`DEFAULT_KEYSPACE`].
    pub keyspace: String,
    /// The key.
    pub key: Vec<u8>,
    /// Replicas to wait for and whether the quorum may be sloppy (cluster members only).
    pub consistency: Consistency,
}

/// Write one value, superseding what `context` saw (empty context: a blind write), or
/// everything stored for the key with `overwrite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    /// Keyspace name; empty means [`DEFAULT_KEYSPACE`].
    pub keyspace: String,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Causal context from an earlier read, or empty.
    pub context: Vec<u8>,
    /// Durability asked for.
    pub durability: Durability,
    /// Supersede every version this node holds for the key (last-writer-wins for this
    /// write); `context` is ignored. Redis-style SET and DEL use it.
    pub overwrite: bool,
    /// Replicas to wait for and whether the quorum may be sloppy (cluster members only).
    pub consistency: Consistency,
}

/// Delete one key by writing a tombstone that supersedes what `context` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Keyspace name; empty means [`DEFAULT_KEYSPACE`].
    pub keyspace: String,
    /// The key.
    pub key: Vec<u8>,
    /// Causal context from an earlier read, or empty.
    pub context: Vec<u8>,
    /// Durability asked for.
    pub durability: Durability,
    /// Supersede every version this node holds for the key (last-writer-wins for this
    /// write); `context` is ignored. Redis-style SET and DEL use it.
    pub overwrite: bool,
    /// Replicas to wait for and whether the quorum may be sloppy (cluster members only).
    pub consistency: Consistency,
}

/// One write of a [`BatchPutRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Causal context from an earlier read, or empty.
    pub context: Vec<u8>,
}

/// Read many keys of one keyspace (at most [`BATCH_ITEMS_MAX`](crate::BATCH_ITEMS_MAX)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchGetRequest {
    /// Keyspace name; empty means [`DEFAULT_KEYSPACE`].
    pub keyspace: String,
    /// The keys, answered in this order.
    pub keys: Vec<Vec<u8>>,
    /// Replicas to wait for and whether the quorum may be sloppy (cluster members only).
    pub consistency: Consistency,
}

/// Write many keys of one keyspace (at most [`BATCH_ITEMS_MAX`](crate::BATCH_ITEMS_MAX)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPutRequest {
    /// Keyspace name; empty means [`DEFAULT_KEYSPACE`].
    pub keyspace: String,
    /// The writes, answered in this order. Each succeeds or fails on its own.
    pub items: Vec<PutItem>,
    /// Durability asked for, for every item.
    pub durability: Durability,
    /// Supersede every version this node holds for each item's key (last-writer-wins for
    /// these writes); the items' contexts are ignored. Redis-style MSET uses it.
    pub overwrite: bool,
    /// Replicas to wait for and whether the quorum may be sloppy (cluster members only).
    pub consistency: Consistency,
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read one key.
    Get(GetRequest),
    /// Write one key.
    Put(PutRequest),
    /// Delete one key.
    Delete(DeleteRequest),
    /// Read many keys.
    BatchGet(BatchGetRequest),
    /// Write many keys.
    BatchPut(BatchPutRequest),
    /// Liveness probe; the payload is echoed in [`Response::Pong`].
    Ping(Vec<u8>),
    /// Ask for the node's shard layout.
    Topology,
    /// Ask the node to describe the cluster as it sees it; answered by
    /// [`Response::ClusterStatus`].
    ClusterStatus,
    /// Ask the node to leave the cluster: hand off its partitions, then stop serving. Answered
    /// by [`Response::ClusterStatus`], or [`Response::Error`] if the node cannot leave.
    Leave,
    /// Ask the node to remove member `node`, gone for good (a lost machine, a wiped disk):
    /// the cluster takes it out of the ring without waiting for it. Answered by
    /// [`Response::ClusterStatus`], or [`Response::Error`] if it cannot be removed (it is
    /// alive, or not a member).
    Remove {
        /// The member's node id.
        node: u64,
    },
}

/// Every sibling value of a key and the causal context covering them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetResponse {
    /// Sibling values (at most [`GET_VALUES_MAX`](crate::GET_VALUES_MAX)); empty means not found.
    pub values: Vec<Vec<u8>>,
    /// Context to pass to the next write of this key.
    pub context: Vec<u8>,
}

impl GetResponse {
    /// Whether the key had no value.
    pub fn is_not_found(&self) -> bool {
        self.values.is_empty()
    }
}

/// A successful write or delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteResponse {
    /// Context covering the write just made.
    pub context: Vec<u8>,
}

/// Where one shard of a node listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardEndpoint {
    /// Shard (core) index on the node.
    pub shard: u16,
    /// TCP port of that shard.
    pub port: u16,
}

/// A node's shard layout: partition `p` is served by shard `partition_shard[p]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopologyInfo {
    /// The answering node.
    pub node_id: u64,
    /// Partitions in the ring (`Q`).
    pub partitions: u32,
    /// Each shard's port.
    pub shards: Vec<ShardEndpoint>,
    /// Shard serving each partition, indexed by partition.
    pub partition_shard: Vec<u16>,
}

/// The cluster as the answering node sees it: the answer to [`Request::ClusterStatus`],
/// [`Request::Leave`] and [`Request::Remove`].
///
/// The text fields are labels for people and tools (at most
/// [`CLUSTER_LABEL_BYTES_MAX`](crate::CLUSTER_LABEL_BYTES_MAX) bytes each), not enums, so a newer
/// node may report states this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: u64,
    /// This node's membership status, e.g. `Up`, `Joining`, `Leaving`, `Left`.
    pub status: String,
    /// Epoch of the node's current ring.
    pub ring_epoch: u32,
    /// Where the ring change stands: `Stable`, `Pending`, `Flipped`.
    pub ring_phase: String,
    /// Replicas per key (`n`).
    pub replicas: u32,
    /// Default read quorum (`r`).
    pub read_quorum: u32,
    /// Default write quorum (`w`).
    pub write_quorum: u32,
    /// Every member the node knows of (at most
    /// [`CLUSTER_MEMBERS_MAX`](crate::CLUSTER_MEMBERS_MAX)).
    pub members: Vec<ClusterMember>,
    /// Partition transfers the node takes part in (at most
    /// [`CLUSTER_TRANSFERS_MAX`](crate::CLUSTER_TRANSFERS_MAX)).
    pub transfers: Vec<TransferInfo>,
    /// Partitions still to move in the ring change in progress; zero when none is.
    pub moves_pending: u32,
    /// Hinted writes the node holds for replicas it could not reach.
    pub hints_held: u64,
    /// The Merkle (tictac) tree root of every partition, indexed by partition id; 0 where the
    /// node holds nothing for that partition. Empty if the node reports none (at most
    /// [`CLUSTER_PARTITION_ROOTS_MAX`](crate::CLUSTER_PARTITION_ROOTS_MAX)).
    pub partition_roots: Vec<u64>,
    /// Anti-entropy exchanges the node completed since it started.
    pub ae_exchanges: u64,
    /// Keys anti-entropy repaired (pushed to or pulled from a peer) since the node started.
    pub ae_keys_repaired: u64,
    /// Bytes of anti-entropy traffic (tree exchange messages, repairs and fetches) the node sent
    /// to peers since it started.
    pub ae_bytes_sent: u64,
    /// Read-repair objects the node sent since it started.
    pub read_repairs: u64,
    /// Hints the node delivered and had acknowledged since it started.
    pub hints_delivered: u64,
    /// Each partition's replicas by the ring the node reads from: `replicas` entries per
    /// partition, in partition order, each an index into `members` or
    /// [`NO_REPLICA`](crate::NO_REPLICA) where the ring names fewer. Empty if the node reports
    /// none.
    pub partition_replicas: Vec<u16>,
    /// Client requests the node coordinated since it started.
    pub requests_coordinated: u64,
    /// Of those, requests for keys the node holds no replica of: each cost an extra network
    /// hop that a cluster-aware client ([`crate::ClusterMember::client_addr`]) avoids.
    pub requests_coordinated_off_replica: u64,
    /// Tombstones reap rounds purged from the node's storage since it started.
    pub tombstones_reaped: u64,
}

/// One member of the cluster, as a [`ClusterStatus`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClusterMember {
    /// The member's node id.
    pub id: u64,
    /// Its peer address, `host:port`.
    pub addr: String,
    /// Its rack.
    pub rack: String,
    /// Its datacenter.
    pub dc: String,
    /// Its membership status as gossip reports it.
    pub status: String,
    /// The failure detector's verdict: whether the member is reachable.
    pub alive: bool,
    /// Partitions it owns in the current ring.
    pub partitions: u32,
    /// Partitions it owns in the ring being moved to; equal to `partitions` when no change is in
    /// progress.
    pub next_partitions: u32,
    /// Where clients reach it (its client port, `host:port`); empty if unknown.
    pub client_addr: String,
}

/// One partition transfer the node reporting a [`ClusterStatus`] takes part in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TransferInfo {
    /// The partition being moved.
    pub partition: u32,
    /// The other node of the transfer.
    pub peer: u64,
    /// Whether this node sends the partition (`true`) or receives it (`false`).
    pub outgoing: bool,
    /// The transfer's state, as text.
    pub state: String,
    /// Entries moved so far.
    pub entries: u64,
    /// Bytes moved so far.
    pub bytes: u64,
}

/// Why a request failed. Values are fixed on the wire (see `fbs/client.fbs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Anything else, including codes from a newer peer.
    #[default]
    Unknown,
    /// The request is malformed or breaks a rule.
    BadRequest,
    /// A frame, key, value or batch is over its limit.
    TooLarge,
    /// The key has no value.
    NotFound,
    /// The node is shedding load; back off and retry.
    Overloaded,
    /// Too few replicas answered; see `answered`/`required`.
    QuorumNotReached,
    /// The caller may not do this.
    Unauthorized,
    /// The node cannot serve this right now.
    Unavailable,
    /// The request ran out of time on the node.
    Timeout,
    /// A bug or unexpected local failure on the node.
    Internal,
}

impl ErrorCode {
    /// Whether retrying the same request later may succeed (after a backoff).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Overloaded
                | ErrorCode::QuorumNotReached
                | ErrorCode::Unavailable
                | ErrorCode::Timeout
        )
    }

    /// A short lowercase name, as in logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unknown => "unknown error",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::TooLarge => "too large",
            ErrorCode::NotFound => "not found",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::QuorumNotReached => "quorum not reached",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed error carried on the wire, for a whole request or one batch item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireError {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail; may be empty.
    pub message: String,
    /// For `QuorumNotReached`: replicas that answered in time. Zero otherwise.
    pub answered: u32,
    /// For `QuorumNotReached`: replicas that had to answer. Zero otherwise.
    pub required: u32,
}

impl WireError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            answered: 0,
            required: 0,
        }
    }

    /// `QuorumNotReached`: only `answered` of `required` replicas answered in time.
    pub fn quorum_not_reached(answered: u32, required: u32) -> Self {
        WireError {
            code: ErrorCode::QuorumNotReached,
            message: String::new(),
            answered,
            required,
        }
    }

    /// `BadRequest` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        WireError::new(ErrorCode::BadRequest, message)
    }

    /// `TooLarge` with a message.
    pub fn too_large(message: impl Into<String>) -> Self {
        WireError::new(ErrorCode::TooLarge, message)
    }

    /// `Overloaded` with a message.
    pub fn overloaded(message: impl Into<String>) -> Self {
        WireError::new(ErrorCode::Overloaded, message)
    }

    /// `Internal` with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        WireError::new(ErrorCode::Internal, message)
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if self.code == ErrorCode::QuorumNotReached {
            write!(
                f,
                " ({} of {} replicas answered)",
                self.answered, self.required
            )?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for WireError {}

/// A server's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::Get`].
    Get(GetResponse),
    /// Answer to [`Request::Put`].
    Put(WriteResponse),
    /// Answer to [`Request::Delete`].
    Delete(WriteResponse),
    /// Answer to [`Request::BatchGet`]: one result per key, in request order.
    BatchGet(Vec<Result<GetResponse, WireError>>),
    /// Answer to [`Request::BatchPut`]: one result per write, in request order.
    BatchPut(Vec<Result<WriteResponse, WireError>>),
    /// Answer to [`Request::Ping`], echoing its payload.
    Pong(Vec<u8>),
    /// Answer to [`Request::Topology`].
    Topology(TopologyInfo),
    /// The whole request failed.
    Error(WireError),
    /// Answer to [`Request::ClusterStatus`], [`Request::Leave`] and [`Request::Remove`]. Boxed: it is much larger
    /// than the other answers, and every `Response` would pay for it inline.
    ClusterStatus(Box<ClusterStatus>),
}

// ---- Wire numbering of the enums. Writers and readers of each mapping sit side by side. ----

impl Durability {
    pub(crate) fn to_wire(self) -> wire::Durability {
        match self {
            Durability::Default => wire::Durability::Default,
            Durability::Durable => wire::Durability::Durable,
            Durability::Relaxed => wire::Durability::Relaxed,
        }
    }

    /// `None` for a value this version does not know. The caller refuses the request: silently
    /// weakening a durability request a newer client made would be worse than failing it.
    pub(crate) fn from_wire(value: wire::Durability) -> Option<Self> {
        match value {
            wire::Durability::Default => Some(Durability::Default),
            wire::Durability::Durable => Some(Durability::Durable),
            wire::Durability::Relaxed => Some(Durability::Relaxed),
            _ => None,
        }
    }
}

impl QuorumMode {
    pub(crate) fn to_wire(self) -> wire::QuorumMode {
        match self {
            QuorumMode::Default => wire::QuorumMode::Default,
            QuorumMode::Sloppy => wire::QuorumMode::Sloppy,
            QuorumMode::Strict => wire::QuorumMode::Strict,
        }
    }

    /// `None` for a value this version does not know. The caller refuses the request: a newer
    /// client's mode may promise more than sloppy or strict, and guessing could break it.
    pub(crate) fn from_wire(value: wire::QuorumMode) -> Option<Self> {
        match value {
            wire::QuorumMode::Default => Some(QuorumMode::Default),
            wire::QuorumMode::Sloppy => Some(QuorumMode::Sloppy),
            wire::QuorumMode::Strict => Some(QuorumMode::Strict),
            _ => None,
        }
    }
}

impl AckScope {
    pub(crate) fn to_wire(self) -> wire::AckScope {
        match self {
            AckScope::Any => wire::AckScope::Any,
            AckScope::LocalDc => wire::AckScope::LocalDc,
            AckScope::EachDc => wire::AckScope::EachDc,
        }
    }

    /// `None` for a value this version does not know; the caller refuses the request.
    pub(crate) fn from_wire(value: wire::AckScope) -> Option<Self> {
        match value {
            wire::AckScope::Any => Some(AckScope::Any),
            wire::AckScope::LocalDc => Some(AckScope::LocalDc),
            wire::AckScope::EachDc => Some(AckScope::EachDc),
            _ => None,
        }
    }
}

impl ErrorCode {
    pub(crate) fn to_wire(self) -> wire::ErrorCode {
        match self {
            ErrorCode::Unknown => wire::ErrorCode::Unknown,
            ErrorCode::BadRequest => wire::ErrorCode::BadRequest,
            ErrorCode::TooLarge => wire::ErrorCode::TooLarge,
            ErrorCode::NotFound => wire::ErrorCode::NotFound,
            ErrorCode::Overloaded => wire::ErrorCode::Overloaded,
            ErrorCode::QuorumNotReached => wire::ErrorCode::QuorumNotReached,
            ErrorCode::Unauthorized => wire::ErrorCode::Unauthorized,
            ErrorCode::Unavailable => wire::ErrorCode::Unavailable,
            ErrorCode::Timeout => wire::ErrorCode::Timeout,
            ErrorCode::Internal => wire::ErrorCode::Internal,
        }
    }

    /// Codes from a newer peer become `Unknown`: an error is still an error, and the message
    /// still says what happened.
    pub(crate) fn from_wire(value: wire::ErrorCode) -> Self {
        match value {
            wire::ErrorCode::BadRequest => ErrorCode::BadRequest,
            wire::ErrorCode::TooLarge => ErrorCode::TooLarge,
            wire::ErrorCode::NotFound => ErrorCode::NotFound,
            wire::ErrorCode::Overloaded => ErrorCode::Overloaded,
            wire::ErrorCode::QuorumNotReached => ErrorCode::QuorumNotReached,
            wire::ErrorCode::Unauthorized => ErrorCode::Unauthorized,
            wire::ErrorCode::Unavailable => ErrorCode::Unavailable,
            wire::ErrorCode::Timeout => ErrorCode::Timeout,
            wire::ErrorCode::Internal => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers are a wire format: this test changes only when a value is appended.
    #[test]
    fn wire_numbers_are_pinned() {
        let codes = [
            (ErrorCode::Unknown, 0),
            (ErrorCode::BadRequest, 1),
            (ErrorCode::TooLarge, 2),
            (ErrorCode::NotFound, 3),
            (ErrorCode::Overloaded, 4),
            (ErrorCode::QuorumNotReached, 5),
            (ErrorCode::Unauthorized, 6),
            (ErrorCode::Unavailable, 7),
            (ErrorCode::Timeout, 8),
            (ErrorCode::Internal, 9),
        ];
        for (code, number) in codes {
            assert_eq!(code.to_wire().0, number, "{code}");
            assert_eq!(ErrorCode::from_wire(wire::ErrorCode(number)), code);
        }
        assert_eq!(
            ErrorCode::from_wire(wire::ErrorCode(10)),
            ErrorCode::Unknown
        );
        assert_eq!(
            ErrorCode::from_wire(wire::ErrorCode(u16::MAX)),
            ErrorCode::Unknown
        );

        let levels = [
            (Durability::Default, 0),
            (Durability::Durable, 1),
            (Durability::Relaxed, 2),
        ];
        for (level, number) in levels {
            assert_eq!(level.to_wire().0, number);
            assert_eq!(Durability::from_wire(wire::Durability(number)), Some(level));
        }
        assert_eq!(Durability::from_wire(wire::Durability(3)), None);

        let modes = [
            (QuorumMode::Default, 0),
            (QuorumMode::Sloppy, 1),
            (QuorumMode::Strict, 2),
        ];
        for (mode, number) in modes {
            assert_eq!(mode.to_wire().0, number);
            assert_eq!(QuorumMode::from_wire(wire::QuorumMode(number)), Some(mode));
        }
        assert_eq!(QuorumMode::from_wire(wire::QuorumMode(3)), None);
        assert_eq!(QuorumMode::from_wire(wire::QuorumMode(u8::MAX)), None);
    }

    #[test]
    fn wire_error_display_says_how_many_answered() {
        let err = WireError::quorum_not_reached(1, 2);
        assert_eq!(
            err.to_string(),
            "quorum not reached (1 of 2 replicas answered)"
        );
        let err = WireError::bad_request("empty key");
        assert_eq!(err.to_string(), "bad request: empty key");
        assert!(!err.code.is_retryable());
        assert!(ErrorCode::Overloaded.is_retryable());
    }
}
