//! Every bound and default of the runner, named in one place.
//!
//! A bound that is not here does not exist. Names end in the unit and the kind of bound.

use std::time::Duration;

/// Most sessions (logical connections) one run may use. Each is one socket, or one per
/// shard for the native protocol.
pub const CONNECTIONS_MAX: usize = 4096;

/// Default sessions of a run.
pub const CONNECTIONS_DEFAULT: usize = 50;

/// Most operations one session keeps in flight.
pub const PIPELINE_MAX: usize = 1024;

/// Most driver threads.
pub const THREADS_MAX: usize = 64;

/// Default measured duration when neither `--duration` nor `--ops` is given.
pub const DURATION_SECS_DEFAULT: f64 = 10.0;

/// Longest measured duration or warm-up.
pub const DURATION_SECS_MAX: f64 = 24.0 * 3600.0;

/// Most records loaded; bounds the ledger (one small entry per record written).
pub const RECORDS_MAX: u64 = 50_000_000;

/// Default records.
pub const RECORDS_DEFAULT: u64 = 100_000;

/// Most records inserted during one run (workload D) on top of the loaded ones.
pub const INSERTS_MAX: u64 = 10_000_000;

/// Largest value written: the Tessera server's default value limit.
pub const VALUE_BYTES_MAX: usize = tessera_core::constants::VALUE_BYTES_MAX_DEFAULT;

/// Sessions of the load and check phases (at most; fewer if the run has fewer).
pub const LOAD_CONNECTIONS_MAX: usize = 16;

/// Operations each session of the load and check phases keeps in flight.
pub const LOAD_PIPELINE: usize = 32;

/// How long connecting one socket may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest epoll sleep: timeouts and the end of the run are checked at least this often.
pub const POLL_IDLE_MAX: Duration = Duration::from_millis(100);

/// Below this much time to the next scheduled operation, the loop polls without sleeping
/// (epoll sleeps in whole milliseconds).
pub const SPIN_BELOW: Duration = Duration::from_millis(2);

/// Largest echo frame body, both for echo runs and what the echo server accepts.
pub const ECHO_FRAME_BYTES_MAX: usize = 16 << 20;

/// Connections one echo-server shard serves at once; more are closed on arrival.
pub const ECHO_CONNECTIONS_PER_SHARD_MAX: usize = 4 * CONNECTIONS_MAX;

/// Most echo-server shards.
pub const ECHO_SHARDS_MAX: u16 = tessera_core::constants::SHARD_COUNT_MAX;

/// How often an echo-server shard checks whether it was asked to stop.
pub const ECHO_SHUTDOWN_POLL_MS: u64 = 50;

/// Significant decimal digits of every latency histogram.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Default seed of the key and operation choices (runs are repeatable per session).
pub const SEED_DEFAULT: u64 = 0x7e55_e7a0;

const _: () = assert!(VALUE_BYTES_MAX <= ECHO_FRAME_BYTES_MAX);
