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
