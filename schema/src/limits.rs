//! Every bound of the client wire protocol, in one place.
//!
//! Invariants:
//! - Nothing is allocated from a length read off the wire before that length is checked against
//!   a bound here: frame lengths against [`FRAME_BYTES_MAX`] (in `frame.rs`), element counts
//!   against the `*_MAX` counts below (in `decode.rs`).
//! - The flatbuffers verifier runs with [`VERIFIER_DEPTH_MAX`], [`VERIFIER_TABLES_MAX`] and an
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

// The frame header is a u32, so the ceiling must fit in it.
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(FRAME_HEADER_BYTES == core::mem::size_of::<u32>());
// Whatever core lets a write produce must fit on the wire.
const _: () = assert!(GET_VALUES_MAX >= core_limits::SIBLINGS_MAX);
// Retention thresholds must be real limits, not larger than what they limit.
const _: () = assert!(FRAME_BUFFER_RETAINED_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(FRAME_READ_CHUNK_BYTES <= FRAME_BUFFER_RETAINED_BYTES_MAX);
