//! The shard side of a cluster node: core's [`Node`](tessera_core::node::Node) run on the
//! shard's executor ([`driver`]), what it asks of storage carried out on the engine
//! ([`storage`]), and the connections between nodes ([`peers`]).

pub mod driver;
pub mod peers;
pub mod storage;
