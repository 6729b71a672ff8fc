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
//!
//! Consistency: by default a request waits for the node's `r` or `w` replicas (n=3, r=w=2
//! unless the cluster says otherwise) and fallback nodes may stand in for owners that are down
//! (sloppy quorum). [`ClientConfig::consistency`] changes that for every request, and the
//! `*_with` methods for one call:
//!
//! ```no_run
//! use tessera_client::{Client, ClientConfig, Consistency};
//! let client = Client::connect("127.0.0.1:7000", ClientConfig::default())?;
//! // Acknowledged only once all three owners hold it; fails while one of them is down.
//! client.put_with(b"user:1", b"ada", None, Consistency::replicas(3).strict())?;
//! // Waits for every owner's copy.
//! let read = client.get_with(b"user:1", Consistency::replicas(3).strict())?;
//! # Ok::<(), tessera_client::ClientError>(())
//! ```
//!
//! A [`ClusterClient`] does the same for a whole cluster: it learns every member's address and
//! every partition's replicas from any node, sends each request straight to a node holding a
//! replica of the key (so it coordinates without an extra hop), skips nodes it cannot reach,
//! and follows ring changes:
//!
//! ```no_run
//! use tessera_client::{ClusterClient, ClusterConfig};
//! let seeds = ["10.0.0.1:7000".parse().unwrap()];
//! let cluster = ClusterClient::connect(&seeds, ClusterConfig::default())?;
//! cluster.put(b"user:1", b"ada", None)?;
//! # Ok::<(), tessera_client::ClientError>(())
//! ```

mod client;
mod cluster;
mod connection;
mod error;

pub use client::{Client, ClientConfig, Context, Pending, Versions};
pub use cluster::{ClusterClient, ClusterConfig};
pub use error::ClientError;
pub use tessera_schema::{
    AckScope, ClusterMember, ClusterStatus, Consistency, Durability, ErrorCode, QuorumMode,
    TopologyInfo, TransferInfo, WireError, CONSISTENCY_REPLICAS_MAX, NO_REPLICA,
};
