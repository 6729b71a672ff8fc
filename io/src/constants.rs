//! Every bound of the I/O layer, named in one place.

/// Alignment of every DMA write and read. 4 KiB covers every logical block size we meet
/// (512 and 4096), so one constant serves all devices.
pub const DMA_ALIGNMENT_BYTES: u64 = 4096;

/// Default preempt timer: glommio yields to other task queues at least this often. The
/// default of 100 ms is far too long for a latency-sensitive server.
pub const PREEMPT_TIMER_MS_DEFAULT: u64 = 2;

/// Capacity of each one-way channel between two shards.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Bytes a framed connection reads at a time, and the most its buffer grows past the bytes
/// that arrived (requests are mostly well under 10 KiB; larger frames grow by doubling).
pub const FRAME_READ_CHUNK_BYTES: usize = 16 * 1024;
