//! Every bound of the I/O layer, named in one place.

/// Default preempt timer: glommio yields to other task queues at least this often. The
/// default of 100 ms is far too long for a latency-sensitive server.
pub const PREEMPT_TIMER_MS_DEFAULT: u64 = 2;

/// Capacity of each one-way channel between two shards.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Bytes a framed connection reads at a time, and the most its buffer grows past the bytes
/// that arrived (requests are mostly well under 10 KiB; larger frames grow by doubling).
pub const FRAME_READ_CHUNK_BYTES: usize = 16 * 1024;
