//! The shard side of a cluster node: what core's [`Node`](tessera_core::node::Node) asks of
//! storage, carried out on the engine ([`storage`]).
//!
//! Still to come (issue #6): the peer transport, the driver that runs the node on the shard
//! runtime, and membership flags.

pub mod storage;
