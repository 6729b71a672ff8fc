//! Every bound of the server, named in one place. Defaults that a deployment may change live in
//! [`crate::config::NodeConfig`]; these are the fixed ones and the defaults' values.

/// Default cap on one frame body on the client port (a batch of 4 MiB of pairs).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 4 << 20;
/// Default number of connections one shard serves at once; more are closed on accept.
pub const CONNECTIONS_PER_SHARD_MAX_DEFAULT: usize = 4096;
/// Default requests one connection may have in flight; the reader stops reading beyond it.
pub const INFLIGHT_PER_CONNECTION_MAX_DEFAULT: usize = 512;
/// Default size at which a commit-log segment is closed.
pub const LOG_SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Default bound on log bytes waiting for the next group commit (also bounds one batch).
pub const LOG_PENDING_BYTES_MAX_DEFAULT: usize = 16 << 20;
/// Largest encoded object (all siblings of one key) a write may produce.
pub const OBJECT_BYTES_MAX: usize = 8 << 20;
/// Default cap on one shard's memtables (the active one and the one being flushed); the
/// memory budget's memtable share applies when it is smaller, which by default it is.
pub const MEMTABLE_BYTES_MAX_DEFAULT: usize = 4 << 30;
/// How often a shard checks whether the node is shutting down.
pub const SHUTDOWN_POLL_MS: u64 = 20;
/// Largest batch of responses one connection writes in one system call.
pub const CONNECTION_WRITE_BYTES_MAX: usize = 1 << 20;
/// Most bytes of values one answer may carry. Well under the wire's `FRAME_BYTES_MAX`
/// (16 MiB), which a client refuses beyond, leaving room for keys, contexts and framing; a
/// batch get whose answer would exceed it is refused as too large.
pub const ANSWER_VALUE_BYTES_MAX: usize = 12 << 20;
/// Answer bytes a connection may have queued for the client before the server stops reading
/// its further requests (so a client that does not read cannot make the server buffer
/// without bound).
pub const CONNECTION_OUTPUT_BYTES_MAX: usize = 4 << 20;
/// How long writing answers to a client may block before the connection is dropped.
pub const CONNECTION_WRITE_TIMEOUT_SECS: u64 = 30;
/// Bytes a RESP connection asks the socket for at least, per read. Reads grow with what is
/// buffered (a large command arrives in few reads), up to the command bound.
pub const RESP_READ_CHUNK_BYTES: usize = 16 << 10;
/// Read-buffer capacity an idle RESP connection keeps; a larger one (left by a large command)
/// is released once drained.
pub const RESP_READ_RETAINED_BYTES_MAX: usize = 64 << 10;
/// How far past the native key and value limits a RESP bulk string may go and still be read:
/// a value a little too large then gets Tessera's own "too large" error and the connection
/// keeps serving, instead of a protocol error that closes it.
pub const RESP_BULK_SLACK_BYTES: usize = 1 << 20;
/// Capacity above which a finished reply buffer is freed rather than kept for reuse.
pub const RESP_REPLY_RETAINED_BYTES_MAX: usize = 16 << 10;
/// Reply buffers a RESP connection keeps for reuse.
pub const RESP_REPLY_POOL_MAX: usize = 64;

/// Largest `log_pending_bytes_max` accepted: a batch retried after a full disk can hold a few
/// times the pending limit, and a batch's length must fit the log format's `u32` field.
pub const LOG_PENDING_BYTES_MAX_LIMIT: usize = 256 << 20;
/// Largest `log_segment_bytes` accepted, so that recovery can bound the segment files it reads
/// whole (see [`LOG_SEGMENT_FILE_BYTES_MAX`]).
pub const LOG_SEGMENT_BYTES_LIMIT: u64 = 1 << 30;
/// Largest commit-log segment file recovery reads; a longer one is refused as corrupt. A
/// segment grows past `log_segment_bytes` only when its first batch alone is larger (a fresh
/// segment takes any batch), and one batch holds at most about twice `log_pending_bytes_max`
/// (a batch retried after a full disk: the failed batch plus what was appended before the
/// failure was seen), so this leaves room to spare.
pub const LOG_SEGMENT_FILE_BYTES_MAX: u64 =
    LOG_SEGMENT_BYTES_LIMIT + 4 * LOG_PENDING_BYTES_MAX_LIMIT as u64;
