//! `tessera-core`: the pure logic of Tessera, a Dynamo-style distributed key-value store.
//!
//! Nothing here performs I/O, reads a clock, spawns a thread or draws randomness: time and
//! randomness are inputs, so every function is deterministic and can be driven by the
//! production shard runtime and by the simulator alike.
//!
//! - [`constants`] names every bound.
//! - [`error`] holds [`CoreError`], the crate's one error type.
//! - [`ids`] holds the identifier newtypes [`NodeId`], [`ShardId`], [`PartitionId`], [`Token`].
//! - [`token`] holds [`token_of`], the stable hash placing a (keyspace, key) on the ring.
//! - [`ring`] holds [`PartitionCount`] (the ring cut into `Q` contiguous partitions) and
//!   [`ShardMap`] (partition to shard inside a node).
//! - [`version`] holds dotted version vectors with sibling sets: [`Dot`], [`VersionVector`]
//!   (also the client's causal context), [`Sibling`] and [`Object`] (a key's state on one
//!   replica), with their stable byte formats.

pub mod antientropy;
pub mod constants;
pub mod error;
pub mod handoff;
pub mod ids;
pub mod membership;
pub mod node;
pub mod placement;
pub mod quorum;
pub mod ring;
pub mod sim;
pub mod tick;
pub mod token;
pub mod transfer;
pub mod version;

pub use error::CoreError;
pub use ids::{NodeId, PartitionId, ShardId, Token};
pub use ring::{PartitionCount, ShardMap};
pub use tick::Tick;
pub use token::token_of;
pub use version::{Dot, Object, Sibling, VersionVector};
