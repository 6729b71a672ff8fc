//! The shard runtime: what runs on each shard's executor.
//!
//! - `shard.rs` starts a shard: recovery, mesh, listeners, shutdown.
//! - `conn.rs` serves one client connection: framed reads, pipelined requests, batched writes.
//! - `route.rs` sends each request to the shard that owns its keys (locally or by message),
//!   keeping the order requests were started in (`turns.rs`).
//! - `clustered.rs` runs requests through the cluster node instead, on a cluster member.
//! - `resp/` is the Redis (RESP2) front door: Redis commands become requests routed the same
//!   way, on every shard's share of the `resp_listen` port.
//!
//! A shard never locks and never blocks; it talks to other shards only through the mesh.

pub mod clustered;
pub mod conn;
pub mod resp;
pub mod route;
pub mod shard;
pub mod turns;

pub use shard::{run_shard, ShardReady, ShardSetup};
