//! Membership and failure detection (DESIGN §5): who is in the cluster, and who is up.
//!
//! - [`record`]: a member's record ([`MemberRecord`], [`Status`]) and its [`Digest`]. Records
//!   are versioned by `(generation, heartbeat)` and written only by the node they describe.
//! - [`phi`]: the phi-accrual failure detector ([`PhiDetector`]).
//! - [`message`]: the three-way gossip exchange ([`GossipMessage`]).
//! - [`gossip`]: the sans-IO state machine ([`Gossip`]) that holds the table, runs rounds and
//!   feeds each peer's detector with the heartbeats gossip brings in.
//!
//! Nothing here reads a clock or draws its own randomness: the driver hands in [`crate::Tick`]s
//! and a seeded generator, so a cluster of [`Gossip`]s runs deterministically in simulation.

pub mod gossip;
pub mod message;
pub mod phi;
pub mod record;

#[cfg(test)]
mod tests;

pub use gossip::{Gossip, GossipAction, GossipConfig, GossipInput};
pub use message::GossipMessage;
pub use phi::{PhiConfig, PhiDetector};
pub use record::{Digest, MemberRecord, Status};
