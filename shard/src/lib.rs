//! `tessera-shard`: the Tessera server.
//!
//! Per shard: a storage engine (commit log + memtable, `engine.rs`, `log/`, `memtable.rs`), a
//! request executor (`service.rs`) and the runtime that feeds it from the network and the other
//! shards (`runtime/`: the native protocol, and the Redis RESP2 front door in
//! `runtime/resp/`). `node.rs` starts one shard per core. Protocol logic lives in
//! `tessera-core`; kernel I/O in `tessera-io`; this crate drives them.

pub mod cache;
pub mod cluster;
pub mod compaction;
pub mod config;
pub mod constants;
pub mod engine;
pub mod error;
pub mod flush;
pub mod log;
pub mod lsm;
pub mod manifest;
pub mod memtable;
pub mod merge;
pub mod node;
pub mod runtime;
pub mod service;
pub mod sstable;

pub use config::NodeConfig;
pub use node::{start, start_with_shutdown, NodeError, RunningNode};
