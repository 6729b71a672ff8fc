//! Every bound of the load generator, named in one place.
//!
//! A bound that is not here does not exist. Names end in the unit and the kind of bound.

/// Most connections (driver threads) one run may use. Each is one OS thread, and for `load`
/// also one `Client` with one TCP connection per server shard plus one reader thread each.
pub const CONNECTIONS_MAX: usize = 1024;

/// Default connections of a run.
pub const CONNECTIONS_DEFAULT: usize = 16;

/// Most requests one connection keeps in flight. The client allows 4096 per shard
/// connection, so any value up to this one is accepted by it.
pub const PIPELINE_MAX: usize = 1024;

/// Default measured duration when neither `--duration` nor `--ops` is given.
pub const DURATION_SECS_DEFAULT: f64 = 10.0;

/// Longest measured duration or warm-up.
pub const DURATION_SECS_MAX: f64 = 24.0 * 3600.0;

/// Most measured operations (`--ops`) one run may ask for.
pub const OPS_MAX: u64 = 1 << 40;

/// Most distinct keys `load` draws from. Bounds the shared context table (one small entry per
/// key) and keeps `key-%08d` keys at most 12 bytes.
pub const KEYS_MAX: u64 = 10_000_000;

/// Largest value `load` writes: the server's default value limit.
pub const VALUE_BYTES_MAX: usize = tessera_core::constants::VALUE_BYTES_MAX_DEFAULT;

/// Keys written per `put_many` call while prefilling (the client splits it per shard).
pub const PREFILL_BATCH_KEYS: usize = 1024;

/// Largest echo frame body, both for `echo --size` and what the echo server accepts.
pub const ECHO_FRAME_BYTES_MAX: usize = 16 << 20;

/// Most echo bytes (prefix included) one pipelined connection may have in flight. The echo
/// driver writes its whole window before it reads, so a window larger than the socket
/// buffers on both ends could deadlock; 128 KiB stays well below Linux's defaults.
pub const ECHO_INFLIGHT_BYTES_MAX: usize = 128 << 10;

/// Connections one echo-server shard serves at once; more are closed on arrival.
pub const ECHO_CONNECTIONS_PER_SHARD_MAX: usize = 4 * CONNECTIONS_MAX;

/// Most echo-server shards.
pub const ECHO_SHARDS_MAX: u16 = tessera_core::constants::SHARD_COUNT_MAX;

/// How often an echo-server shard checks whether it was asked to stop.
pub const ECHO_SHUTDOWN_POLL_MS: u64 = 50;

/// Consecutive failed operations after which a connection gives up (a dead server would
/// otherwise make every thread spin on instant failures).
pub const CONSECUTIVE_ERRORS_MAX: u32 = 100;

/// Significant decimal digits of every latency histogram.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Stack of each driver thread: the loop is shallow, and 1024 threads must stay cheap.
pub const DRIVER_THREAD_STACK_BYTES: usize = 256 << 10;

/// Default seed of the key and operation choices (runs are repeatable per connection).
pub const SEED_DEFAULT: u64 = 0x7e55_e7a0;

const _: () = assert!(PIPELINE_MAX <= 4096, "the client's default in-flight limit");
const _: () = assert!(KEYS_MAX <= 100_000_000, "keys stay `key-` plus 8 digits");
