//! `tessera-client`: the Tessera client library, for ordinary synchronous Rust code.
//!
//! A [`Client`] connects to any node address, learns the node's topology (partitions, the
//! partition → shard map and each shard's port) and sends every request straight to the
//! shard that owns its key, over one connection per shard. Each connection carries many
//! requests at once (pipelining): answers are matched to requests by id, in any order.
//!
//! ```no_run
//! use tessera_client::{Client, ClientConfig};
//! let client = Client::connect("127.0.0.1:7000", ClientConfig::default())?;
//! let ctx = client.put(b"user:1", b"ada", None)?;          // blind write
//! let read = client.get(b"user:1")?;                        // all siblings + context
//! client.put(b"user:1", b"ada lovelace", Some(&read.context))?; // supersedes what was read
//! # Ok::<(), tessera_client::ClientError>(())
//! ```
//!
//! Semantics (DESIGN §2): a put with the context of a read supersedes exactly what that read
//! saw; a put without context is a blind write that becomes a sibling of whatever exists.

mod client;
mod connection;
mod error;

pub use client::{Client, ClientConfig, Context, Pending, Versions};
pub use error::ClientError;
pub use tessera_schema::{
    ClusterMember, ClusterStatus, Durability, ErrorCode, TopologyInfo, TransferInfo, WireError,
    NO_REPLICA,
};
