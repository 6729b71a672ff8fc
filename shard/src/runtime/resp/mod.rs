//! The Redis (RESP2) front door: existing Redis clients and benchmarks read and write Tessera's
//! default keyspace (DESIGN §8). Every shard accepts on the RESP port (SO_REUSEPORT spreads
//! the connections), and each command reaches the shard that owns its keys through
//! [`ShardCtx`](super::route::ShardCtx), exactly as a native request entering the main port.
//!
//! | part | owns |
//! |---|---|
//! | `conn` | one connection: commands started as they arrive, answered inline or in tasks of their own; replies written many per system call |
//! | `input` | the bounded read buffer |
//! | `replies` | replies put back in command order |
//! | `order` | which earlier commands a command must wait for (a pipelined GET sees the SET before it) |
//! | `command` | a command's arguments to a typed [`Command`](command::Command) |
//! | `refusal` | why a command is refused, in Redis's words (unknown command, wrong arity) or naming the missing feature |
//! | `store` | the commands that touch data (GET SET DEL EXISTS MGET MSET) as native requests, and their answers as replies |
//! | `admin` | the rest (PING ECHO INFO COMMAND CONFIG SELECT CLIENT), answered from the command and this shard's state |
//!
//! What a Redis user should know:
//! - SET, MSET and DEL *overwrite*: they supersede every stored version of the key
//!   (last-writer-wins for that write). The keyspace itself stays in siblings mode, so native
//!   clients' blind writes still become siblings, and a GET of a key with siblings is an error
//!   that says how to resolve it, never an arbitrary pick.
//! - MSET is not atomic: each pair is written on its own; if some fail, the reply is the first
//!   error. DEL reads, then deletes what it found (see `store.rs` for the race).
//! - No TTL, no conditional SET, one database (0): those options are refused with an error
//!   that says so, never ignored.
//!
//! Invariants:
//! - A connection holds at most one command beyond [`RespConnLimits`] of input; a longer one,
//!   or bytes that are not RESP, get `-ERR Protocol error: …` and only that connection closes.
//! - Errors of Tessera itself (key too long, value too large, memory full…) are `-ERR` replies
//!   and the connection keeps serving.

use std::cell::Cell;
use std::time::Instant;

use tessera_schema::resp::RespLimits;
use tessera_schema::FRAME_BYTES_MAX;

use crate::config::NodeConfig;
use crate::constants::RESP_BULK_SLACK_BYTES;

mod admin;
mod command;
mod conn;
mod input;
mod order;
mod refusal;
mod replies;
mod store;

pub use conn::serve;

/// Bounds of one RESP connection.
#[derive(Clone, Copy, Debug)]
pub struct RespConnLimits {
    /// What the codec accepts in one command.
    pub codec: RespLimits,
    /// Most bytes one command may take on the wire; a longer one is a protocol error.
    pub command_bytes_max: usize,
    /// Commands of one connection running at once; the reader stops reading beyond it.
    pub inflight_max: usize,
}

impl RespConnLimits {
    /// The node's native limits, with a little slack on bulk strings so that a key or value
    /// slightly over its limit is answered by Tessera's own "too large" error (the connection
    /// survives) rather than by a protocol error (it closes).
    pub fn from_config(config: &NodeConfig) -> Self {
        let largest = config.value_bytes_max.max(config.key_bytes_max);
        let bulk_bytes_max = (largest + RESP_BULK_SLACK_BYTES).min(FRAME_BYTES_MAX);
        RespConnLimits {
            codec: RespLimits {
                bulk_bytes_max,
                ..RespLimits::default()
            },
            command_bytes_max: config.frame_bytes_max.max(bulk_bytes_max) + RESP_BULK_SLACK_BYTES,
            inflight_max: config.inflight_per_connection_max,
        }
    }
}

/// What every RESP connection of one shard shares.
#[derive(Debug)]
pub struct RespShared {
    /// Bounds of each connection.
    pub limits: RespConnLimits,
    /// This shard.
    pub shard: u16,
    /// Shards of the node.
    pub shards: u16,
    /// The RESP port (INFO's `tcp_port`).
    pub port: u16,
    /// Whether writes are fsynced before their reply (the node's `durable_writes`).
    pub durable_writes: bool,
    /// When this shard started serving (INFO's uptime).
    pub started: Instant,
    /// RESP connections this shard serves now (INFO's `connected_clients`).
    pub clients: Cell<usize>,
}

impl RespShared {
    /// The state of shard `shard` of a node configured by `config`, serving RESP on `port`.
    pub fn new(config: &NodeConfig, shard: u16, port: u16) -> Self {
        RespShared {
            limits: RespConnLimits::from_config(config),
            shard,
            shards: config.shards,
            port,
            durable_writes: config.durable_writes,
            started: Instant::now(),
            clients: Cell::new(0),
        }
    }
}
