//! The shard side of a cluster node: what core's [`Node`](tessera_core::node::Node) asks of
//! storage, carried out on the engine ([`storage`]), and the connections between nodes
//! ([`peers`]).
//!
//! Still to come (issue #6): the driver that runs the node on the shard runtime, and the
//! membership flags.

pub mod peers;
pub mod storage;
