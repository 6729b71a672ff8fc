//! Every bound in `tessera-core`, named in one place.
//!
//! A bound that is not here does not exist. Names end in the unit (`_BYTES`) and the kind of
//! bound (`_MAX`, `_DEFAULT`). Values marked "stable" are part of an on-disk or on-wire format
//! and are never lowered, because data written under the old bound must stay readable.

/// Default largest key, in bytes. A keyspace may configure another limit; callers enforce it.
pub const KEY_BYTES_MAX_DEFAULT: usize = 1024;

/// Default largest value, in bytes. A keyspace may configure another limit; callers enforce it.
pub const VALUE_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Largest value the stored object format can hold (its length field is a `u32`). Keyspace
/// limits sit far below; this bound only makes encoding total. Stable.
pub const SIBLING_VALUE_BYTES_MAX: usize = u32::MAX as usize;

/// Default number of ring partitions (`Q`). Must satisfy [`crate::PartitionCount::new`].
pub const PARTITION_COUNT_DEFAULT: u32 = 1024;

/// Largest number of ring partitions. A partition id is a `u32`, but tables indexed by partition
/// (the shard map, per-partition Merkle trees) are kept small enough to publish and hold whole.
pub const PARTITION_COUNT_MAX: u32 = 1 << 16;

/// Largest number of shards (cores) in one node. A shard id is a `u16`; 256 cores is above any
/// machine we plan for, and every shard keeps per-peer state, so the product must stay small.
pub const SHARD_COUNT_MAX: u16 = 256;

/// Largest number of siblings a *write* may leave on a key. Blind writes pile up siblings; past
/// this bound a write is refused with [`crate::CoreError::TooManySiblings`] until a client
/// resolves them by writing with a context. Merges never refuse (that would drop acknowledged
/// writes), so a merged object may hold more; the stored format has no such limit.
pub const SIBLINGS_MAX: usize = 64;

/// Largest number of entries (distinct coordinating nodes) in a version vector that a write may
/// produce, and in a causal context a client may send. Stable: a context encoded under this
/// bound must decode under every later version.
pub const CLOCK_ENTRIES_MAX: usize = 1024;

/// Longest keyspace name, in bytes.
pub const KEYSPACE_BYTES_MAX: usize = 64;

/// The keyspace that exists out of the box; the Redis front door maps onto it.
pub const DEFAULT_KEYSPACE: &str = "default";

/// Most chunks a partition transfer may have sent and not yet acknowledged. Protocol bound: a
/// receiver ignores chunks this far or farther ahead of its first chunk not yet stored, so a
/// receiver holds at most this many chunks' bookkeeping and a sender this many chunks' data.
pub const TRANSFER_WINDOW_CHUNKS_MAX: usize = 8;

/// Default transfer window, in chunks (at most [`TRANSFER_WINDOW_CHUNKS_MAX`]).
pub const TRANSFER_WINDOW_CHUNKS_DEFAULT: usize = 4;

/// Most entries (key, object) in one transfer chunk. Protocol bound: a receiver ignores a
/// chunk with more.
pub const TRANSFER_CHUNK_ENTRIES_MAX: usize = 1024;

/// Default entries per transfer chunk (at most [`TRANSFER_CHUNK_ENTRIES_MAX`]).
pub const TRANSFER_CHUNK_ENTRIES_DEFAULT: usize = 256;

/// Default size of a transfer chunk in bytes: the driver stops reading once a chunk reaches it,
/// so a chunk exceeds it by at most one entry.
pub const TRANSFER_CHUNK_BYTES_DEFAULT: usize = 1 << 20;

/// Default ticks a transfer waits for an acknowledgement before sending again.
pub const TRANSFER_RETRANSMIT_TICKS_DEFAULT: u64 = 2_000;

/// Default number of times a transfer resends one message before it gives up.
pub const TRANSFER_RETRIES_MAX_DEFAULT: u32 = 5;

/// Most partition transfers one node runs at once in each direction (sending, receiving).
pub const TRANSFERS_CONCURRENT_MAX: usize = 4;

/// Most outgoing partition transfers one node keeps waiting to start.
pub const TRANSFERS_QUEUED_MAX: usize = 8192;

/// Most completed incoming transfers a node remembers (to acknowledge a resent last chunk
/// whose acknowledgement was lost); the oldest is forgotten first.
pub const TRANSFERS_FINISHED_MAX: usize = 256;

/// Largest number of nodes one gossip membership table holds, counting nodes that have left
/// (their records are kept so that stale gossip cannot bring them back). Also bounds a digest.
pub const MEMBERS_MAX: usize = 1024;

/// Largest number of full member records in one gossip message; the rest follow next round.
pub const GOSSIP_RECORDS_PER_MESSAGE_MAX: usize = 64;

/// Longest member address (`host:port`), in bytes. Longer records from peers are ignored.
pub const MEMBER_ADDR_BYTES_MAX: usize = 256;

/// Longest rack or datacenter name, in bytes. Longer records from peers are ignored.
pub const MEMBER_LABEL_BYTES_MAX: usize = 64;

/// Default gossip round interval: every node bumps its heartbeat and gossips this often.
pub const GOSSIP_INTERVAL_TICKS_DEFAULT: u64 = 250;

/// Default number of live peers a node gossips with per round.
pub const GOSSIP_FANOUT_DEFAULT: usize = 2;

/// Largest gossip fanout (peers per round).
pub const GOSSIP_FANOUT_MAX: usize = 16;

/// Default phi above which a node is considered down (1e-8 odds that it is merely late).
pub const PHI_THRESHOLD_DEFAULT: f64 = 8.0;

/// Default number of heartbeat inter-arrival samples a phi-accrual detector keeps.
pub const PHI_WINDOW_SAMPLES_DEFAULT: usize = 200;

/// Largest phi-accrual window, in samples (memory is one `u64` per sample per member).
pub const PHI_WINDOW_SAMPLES_MAX: usize = 1000;

/// Default floor on the detector's standard deviation, so perfectly regular heartbeats do not
/// make a single late one look like a death.
pub const PHI_MIN_STD_DEV_TICKS_DEFAULT: u64 = 100;

/// Default pause a healthy node may take on top of its mean heartbeat interval (GC, a stalled
/// core, gossip propagation lag) before suspicion rises.
pub const PHI_ACCEPTABLE_PAUSE_TICKS_DEFAULT: u64 = 2000;

/// Default longest inter-arrival sample the detector records; longer gaps are outages (the node
/// was already judged down), not part of the healthy heartbeat distribution.
pub const PHI_INTERVAL_TICKS_MAX_DEFAULT: u64 = 5000;

/// Default tictac tree shape: bits per branch level (64 children per branch).
pub const AE_TREE_LEVEL_BITS_DEFAULT: u8 = 6;

/// Default tictac tree shape: levels below the root, the last being the segments (2 levels of
/// width 64 give 4096 segments per partition, 33 KiB of hashes per tree).
pub const AE_TREE_LEVELS_DEFAULT: u8 = 2;

/// Largest bits per branch level (4096 children): a branch reply carries whole child rows.
pub const AE_TREE_LEVEL_BITS_MAX: u8 = 12;

/// Largest total segment bits of a tree (65536 segments, 512 KiB of hashes per partition).
pub const AE_TREE_SEGMENT_BITS_MAX: u8 = 16;

/// Most child hashes in one anti-entropy branch reply (32 KiB of hashes); a request asks for
/// `max(1, this / width)` parents and the rest of a level follows in later rounds.
pub const AE_BRANCH_HASHES_PER_MESSAGE_MAX: usize = 4096;

/// Most segments named in one anti-entropy segment request.
pub const AE_SEGMENTS_PER_REQUEST_MAX: usize = 256;

/// Most (key, version) entries in one anti-entropy segment listing or reply.
pub const AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX: usize = 4096;

/// Byte budget of one segment listing or reply; a listing holds at least one entry whatever
/// its size, so a page always makes progress.
pub const AE_SEGMENT_REPLY_BYTES_MAX: usize = 1 << 20;

/// Most keys one anti-entropy fetch (`PeerMessage::Fetch`) may name; a node ignores a fetch with
/// more, and the peer wire protocol refuses one.
pub const AE_FETCH_KEYS_MAX: usize = 4_096;

/// Most tombstones one reap round checks (`PeerMessage::ReapCheck`, `Reap`); a node ignores a
/// check with more, and the peer wire protocol refuses one. Tombstones are small (a key, a
/// clock and a few dots), so a round's messages stay far below the frame limit.
pub const REAP_KEYS_MAX: usize = 256;

/// Default ticks an anti-entropy initiator waits for a peer's reply before giving up.
pub const AE_REPLY_TIMEOUT_TICKS_DEFAULT: u64 = 10_000;

/// Default most keys one anti-entropy exchange hands to repair (pushed plus pulled); past it
/// the exchange ends early and the next exchange of the partition continues the work.
pub const AE_REPAIR_KEYS_PER_EXCHANGE_MAX_DEFAULT: usize = 16_384;

/// Most members a placement ring holds. Claim and preference walks cost O(Q · members), and
/// the ring is published whole to every client.
pub const RING_MEMBERS_MAX: usize = 4096;

/// Largest weight (relative capacity) of one ring member.
pub const MEMBER_WEIGHT_MAX: u32 = 1 << 16;

/// Longest rack or datacenter name of a ring member, in bytes.
pub const LOCATION_NAME_BYTES_MAX: usize = 64;

/// Most replicas of a partition (all datacenters together), and most datacenters a
/// per-datacenter replication setting names.
pub const REPLICATION_N_MAX: usize = 16;

/// Claim tries to keep any `CLAIM_SPREAD_PARTITIONS_DEFAULT` consecutive partitions on
/// distinct nodes (Riak's `target_n_val`), so preference lists of `n` up to this value are the
/// owners of the first `n` partitions of the walk. Relaxed when the members cannot satisfy it.
pub const CLAIM_SPREAD_PARTITIONS_DEFAULT: usize = 4;
