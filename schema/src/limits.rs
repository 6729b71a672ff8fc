//! Every bound of the wire protocols (client and peer), in one place.
//!
//! Invariants:
//! - Nothing is allocated from a length read off the wire before that length is checked against
//!   a bound here: frame lengths against [`FRAME_BYTES_MAX`] or [`PEER_FRAME_BYTES_MAX`] (in
//!   `frame.rs`), element counts and field lengths against the `*_MAX` bounds below (in
//!   `decode.rs` and `peer/`).
//! - The flatbuffers verifier runs with [`VERIFIER_DEPTH_MAX`], [`VERIFIER_TABLES_MAX`] (peer
//!   frames: [`PEER_VERIFIER_TABLES_MAX`]) and an
//!   apparent-size budget of [`VERIFIER_AMPLIFICATION_MAX`] times the body length, so verifying
//!   *and* decoding a body costs time and memory linear in its length, however its offsets are
//!   shared (flatbuffers lets many offsets point at one table; the apparent-size budget counts
//!   every visit).
//! - Both ends use the same constants. A sender that exceeds one gets a typed error from the
//!   receiver, never a truncated answer.
#![forbid(unsafe_code)]

use tessera_core::constants as core_limits;

/// Bytes of the little-endian `u32` length that precedes every frame body.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Hard ceiling on one frame body. A receiver may set a lower limit, never a higher one.
///
/// Values are capped at 1 MiB by default (DESIGN.md §2), so 16 MiB leaves room for a full batch
/// of mid-sized values while bounding what one frame can make a node buffer.
pub const FRAME_BYTES_MAX: usize = 16 << 20;

/// Most keys in a `BatchGet`, writes in a `BatchPut`, and items in their results.
pub const BATCH_ITEMS_MAX: usize = 4096;

/// Most replicas a request's `Consistency` may ask for (its `replicas`, r or w): core's
/// `REPLICATION_N_MAX`, the most replicas any key can have. A request within this bound but above
/// the cluster's `n` decodes, and the node answers it with an error that names `n`.
pub const CONSISTENCY_REPLICAS_MAX: usize = core_limits::REPLICATION_N_MAX;

/// Most values (siblings) in one `GetResult`, i.e. for one key.
///
/// Core refuses a *write* that would leave more than its `SIBLINGS_MAX` (64) siblings, but
/// merging replicas never refuses, so a key can briefly hold more. This is the hard wire ceiling,
/// set well above that; a server must answer a key over it with a `TooLarge` error rather than
/// send a frame the client will refuse.
pub const GET_VALUES_MAX: usize = 1024;

/// Most partitions a `Topology` may describe (the ring's `Q`): core's `PARTITION_COUNT_MAX`.
pub const TOPOLOGY_PARTITIONS_MAX: usize = core_limits::PARTITION_COUNT_MAX as usize;

/// Most shards (cores) of one node a `Topology` may list: core's `SHARD_COUNT_MAX`.
pub const TOPOLOGY_SHARDS_MAX: usize = core_limits::SHARD_COUNT_MAX as usize;

/// Most members a `ClusterStatus` may list: core's `RING_MEMBERS_MAX` (4096), which is at least
/// as many as gossip tracks (`MEMBERS_MAX`), so every node a status could mention fits.
pub const CLUSTER_MEMBERS_MAX: usize = core_limits::RING_MEMBERS_MAX;

/// Most transfers a `ClusterStatus` may list: one per partition of the largest ring (core's
/// `PARTITION_COUNT_MAX`, 65536), far above the transfers a node runs, queues and remembers at
/// once.
pub const CLUSTER_TRANSFERS_MAX: usize = core_limits::PARTITION_COUNT_MAX as usize;

/// Most Merkle tree roots a `ClusterStatus` may list: one per partition of the largest ring
/// (core's `PARTITION_COUNT_MAX`, 65536), since `partition_roots` is indexed by partition id.
pub const CLUSTER_PARTITION_ROOTS_MAX: usize = core_limits::PARTITION_COUNT_MAX as usize;

/// Most entries of a `ClusterStatus`'s `partition_replicas`: a full preference list for every
/// partition of the largest ring (2 MB at most on the wire).
pub const CLUSTER_PARTITION_REPLICAS_MAX: usize =
    core_limits::PARTITION_COUNT_MAX as usize * core_limits::REPLICATION_N_MAX;

/// A `partition_replicas` entry naming no member (the ring names fewer replicas than n).
pub const NO_REPLICA: u16 = u16::MAX;

/// Longest text field of a `ClusterStatus`, in bytes: a status or phase name, a member's address
/// (`host:port`), rack or datacenter, a transfer's state. Core's `MEMBER_ADDR_BYTES_MAX` (256),
/// the longest of the values these fields report.
pub const CLUSTER_LABEL_BYTES_MAX: usize = core_limits::MEMBER_ADDR_BYTES_MAX;

/// Deepest table nesting the verifier accepts. The schema nests at most five tables
/// (`ResponseFrame` → `BatchGetResult` → `BatchGetItem` → `GetResult` → `Blob`); the slack
/// allows future messages without letting a crafted buffer recurse deeply.
pub const VERIFIER_DEPTH_MAX: usize = 16;

/// Most tables the verifier visits in one buffer: as many as a maximal frame can honestly hold.
/// Every table costs at least 8 bytes (its 4-byte vtable offset and the 4-byte offset that
/// refers to it), so this admits any legal message, including a [`BATCH_ITEMS_MAX`] batch of
/// items with many siblings each; only a buffer that reuses tables through shared offsets can
/// reach it.
pub const VERIFIER_TABLES_MAX: usize = FRAME_BYTES_MAX / 8;

/// The verifier may read at most this many bytes per byte of body (its "apparent size").
/// Nothing but vtables is read twice in an honest buffer, and our encoder's output stays at or
/// under 2.5 (worst measured: a batch of empty errors, whose tables each re-read one shared
/// vtable). A crafted buffer whose offsets all point at one big table hits this bound instead of
/// making the decoder copy that table thousands of times.
pub const VERIFIER_AMPLIFICATION_MAX: usize = 4;

/// Floor of the verifier's apparent-size budget, so that tiny frames (a `Ping`, a
/// `TopologyRequest`) are never refused for their fixed overhead.
pub const VERIFIER_APPARENT_BYTES_MIN: usize = 4096;

/// Bytes a [`FrameBuffer`](crate::FrameBuffer) asks the socket for when it does not know the size
/// of the next frame yet. Small enough that an idle connection costs little, large enough to
/// pick up many pipelined requests per read.
pub const FRAME_READ_CHUNK_BYTES: usize = 16 << 10;

/// A [`FrameBuffer`](crate::FrameBuffer) that grew for a large frame gives memory back down to
/// this size once it is drained, so one big request does not pin megabytes per connection.
pub const FRAME_BUFFER_RETAINED_BYTES_MAX: usize = 64 << 10;

/// An [`Encoder`](crate::Encoder) whose last message was larger than this drops its builder
/// buffer afterwards, for the same reason.
pub const ENCODER_RETAINED_BYTES_MAX: usize = 1 << 20;

// ---- The peer (node-to-node) protocol, `fbs/peer.fbs` ----
//
// Where core already bounds a list (a gossip message, an anti-entropy page, a transfer chunk),
// the wire bound is core's constant, so a peer that breaks core's protocol bound is refused at
// the door instead of being parsed and then ignored. Where core deliberately leaves a list
// unbounded (merged objects), the wire bound is far above what a healthy cluster produces: it
// limits what a broken peer can make a node build, and refusing more never drops data (the
// sender keeps it and retries).

/// Hard ceiling on one peer frame body. Twice the client ceiling: an `Update` carries a value as
/// large as a client frame allows plus its key and context, and a transfer chunk stops at a soft
/// byte budget (`TRANSFER_CHUNK_BYTES_DEFAULT`, 1 MiB) plus one whole object.
pub const PEER_FRAME_BYTES_MAX: usize = 32 << 20;

/// Most tables the verifier visits in one peer frame; see [`VERIFIER_TABLES_MAX`].
pub const PEER_VERIFIER_TABLES_MAX: usize = PEER_FRAME_BYTES_MAX / 8;

/// Longest key a peer message may carry, in bytes: a stored key (keyspace and key as the storing
/// node encodes them; a node may configure client keys up to 1 MiB) or a transfer entry's key
/// (8 token bytes, then a stored key), with room for the keyspace prefix.
pub const PEER_KEY_BYTES_MAX: usize = (1 << 20) + (4 << 10);

/// Longest error text (a `CoreError`'s detail) in a peer message, in bytes.
pub const PEER_ERROR_TEXT_BYTES_MAX: usize = 4096;

/// Most entries in one version vector (an object's clock or an update's context).
///
/// Core bounds the vectors a *write* produces by `CLOCK_ENTRIES_MAX`, but merges never refuse,
/// so a stored clock may exceed it; this ceiling is well above.
pub const PEER_CLOCK_ENTRIES_MAX: usize = 16 * core_limits::CLOCK_ENTRIES_MAX;

/// Most siblings in one object. Core refuses a write past `SIBLINGS_MAX` (64) but never a merge;
/// this ceiling is far above what merging diverged replicas produces.
pub const PEER_OBJECT_SIBLINGS_MAX: usize = 64 * core_limits::SIBLINGS_MAX;

/// Most keys in one anti-entropy `Fetch`: core's `AE_FETCH_KEYS_MAX`.
pub const PEER_FETCH_KEYS_MAX: usize = core_limits::AE_FETCH_KEYS_MAX;

/// Most digests in a gossip `Syn` and node ids in an `Ack`'s requests: core's `MEMBERS_MAX`.
pub const PEER_GOSSIP_DIGESTS_MAX: usize = core_limits::MEMBERS_MAX;

/// Most member records in one gossip message: core's `GOSSIP_RECORDS_PER_MESSAGE_MAX`.
pub const PEER_GOSSIP_RECORDS_MAX: usize = core_limits::GOSSIP_RECORDS_PER_MESSAGE_MAX;

/// Longest member address (`host:port`) in a gossip record: core's `MEMBER_ADDR_BYTES_MAX`.
pub const PEER_MEMBER_ADDR_BYTES_MAX: usize = core_limits::MEMBER_ADDR_BYTES_MAX;

/// Longest rack or datacenter label in a gossip record: core's `MEMBER_LABEL_BYTES_MAX`.
pub const PEER_MEMBER_LABEL_BYTES_MAX: usize = core_limits::MEMBER_LABEL_BYTES_MAX;

/// Longest rack or datacenter name of a ring member: core's `LOCATION_NAME_BYTES_MAX`.
pub const PEER_RING_LOCATION_BYTES_MAX: usize = core_limits::LOCATION_NAME_BYTES_MAX;

/// Most parents in an anti-entropy branch request and hashes in a branch reply: core's
/// `AE_BRANCH_HASHES_PER_MESSAGE_MAX` (a request names at most `max(1, that / width)` parents,
/// and a reply holds `width` hashes per parent).
pub const PEER_AE_BRANCH_HASHES_MAX: usize = core_limits::AE_BRANCH_HASHES_PER_MESSAGE_MAX;

/// Most segments in an anti-entropy segment request: core's `AE_SEGMENTS_PER_REQUEST_MAX`.
pub const PEER_AE_SEGMENTS_MAX: usize = core_limits::AE_SEGMENTS_PER_REQUEST_MAX;

/// Most entries in an anti-entropy segment reply: core's `AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX`.
pub const PEER_AE_SEGMENT_ENTRIES_MAX: usize = core_limits::AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX;

/// Most entries in one transfer chunk: core's `TRANSFER_CHUNK_ENTRIES_MAX`.
pub const PEER_TRANSFER_CHUNK_ENTRIES_MAX: usize = core_limits::TRANSFER_CHUNK_ENTRIES_MAX;

/// Most members of one ring: core's `RING_MEMBERS_MAX`.
pub const PEER_RING_MEMBERS_MAX: usize = core_limits::RING_MEMBERS_MAX;

/// Most partitions (owner entries) of one ring: core's `PARTITION_COUNT_MAX`.
pub const PEER_RING_PARTITIONS_MAX: usize = core_limits::PARTITION_COUNT_MAX as usize;

/// Most moves in one `MovesDone`: every replica of every partition could move in one change.
pub const PEER_MOVES_MAX: usize = PEER_RING_PARTITIONS_MAX * core_limits::REPLICATION_N_MAX;

/// Most entries in a reap `ReapCheck` or `Reap`, and vetoed indices in a `ReapVote`: core's
/// `REAP_KEYS_MAX`. A vetoed index names an entry of the check, so it is below this bound too.
pub const PEER_REAP_KEYS_MAX: usize = core_limits::REAP_KEYS_MAX;

// The frame header is a u32, so the ceiling must fit in it.
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(PEER_FRAME_BYTES_MAX <= u32::MAX as usize);
// A peer frame must carry any write a client frame can carry, with room for its envelope.
const _: () = assert!(PEER_FRAME_BYTES_MAX >= 2 * FRAME_BYTES_MAX);
// The largest `MovesDone` (16 bytes per move) must fit in a frame.
const _: () = assert!(PEER_MOVES_MAX * 16 < PEER_FRAME_BYTES_MAX);
// A vote's indices into a check's entries are the wire's `uint`s.
const _: () = assert!(PEER_REAP_KEYS_MAX <= u32::MAX as usize);
// Whatever core lets a write produce must fit on the peer wire.
const _: () = assert!(PEER_CLOCK_ENTRIES_MAX >= core_limits::CLOCK_ENTRIES_MAX);
const _: () = assert!(PEER_OBJECT_SIBLINGS_MAX >= core_limits::SIBLINGS_MAX);
const _: () = assert!(FRAME_HEADER_BYTES == core::mem::size_of::<u32>());
// A request may ask for every replica a key can have, and the bound fits the wire's `ubyte`.
const _: () = assert!(CONSISTENCY_REPLICAS_MAX <= u8::MAX as usize);
// Whatever core lets a write produce must fit on the wire.
const _: () = assert!(GET_VALUES_MAX >= core_limits::SIBLINGS_MAX);
// Whatever core can report must fit in a `ClusterStatus`.
const _: () = assert!(CLUSTER_MEMBERS_MAX >= core_limits::MEMBERS_MAX);
const _: () = assert!(
    CLUSTER_TRANSFERS_MAX
        >= core_limits::TRANSFERS_CONCURRENT_MAX
            + core_limits::TRANSFERS_QUEUED_MAX
            + core_limits::TRANSFERS_FINISHED_MAX
);
const _: () = assert!(CLUSTER_LABEL_BYTES_MAX >= core_limits::MEMBER_LABEL_BYTES_MAX);
const _: () = assert!(CLUSTER_LABEL_BYTES_MAX >= core_limits::LOCATION_NAME_BYTES_MAX);
// Retention thresholds must be real limits, not larger than what they limit.
const _: () = assert!(FRAME_BUFFER_RETAINED_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(FRAME_READ_CHUNK_BYTES <= FRAME_BUFFER_RETAINED_BYTES_MAX);
