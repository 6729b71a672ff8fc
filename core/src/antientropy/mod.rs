//! Anti-entropy: tictac Merkle trees and the exchange that compares two replicas' trees.
//!
//! This module owns:
//! - [`tree`]: [`TicTacTree`], one per partition, updated incrementally on every write, and
//!   its [`TreeShape`];
//! - [`version_hash`], the stable hash of a key's version that the trees and listings carry;
//! - [`message`]: the wire messages [`AeMessage`] and the segment listings the driver reads
//!   from storage ([`ListingRequest`], [`ListingBuilder`], [`SegmentListing`]);
//! - [`exchange`]: the initiator, a sans-IO state machine [`Exchange`] that descends only into
//!   differing branches and ends with the keys to push and to pull;
//! - [`responder`]: the stateless responder, [`respond`] and [`reply_with_listing`].
//!
//! Invariants the driver keeps: a partition's tree holds exactly the XOR of
//! `leaf_hash(key, version_hash(object))` over the keys storage holds for it (so `update` is
//! called with the old and new hash on every write, merge and delete, and a rebuild after a
//! crash); both replicas of an exchange use one [`TreeShape`]. Keys found different are repaired
//! by exchanging whole objects and merging them with `Object::merge` on both sides, which is
//! idempotent, so a needless repair is harmless.

pub mod exchange;
pub mod message;
pub mod responder;
pub mod tree;

#[cfg(test)]
mod tests;

use xxhash_rust::xxh3::Xxh3Default;

use crate::version::Object;

pub use exchange::{
    Exchange, ExchangeAction, ExchangeConfig, ExchangeFailure, ExchangeInput, ExchangeStats,
};
pub use message::{
    AeMessage, AeTag, ExchangeId, ListCursor, ListingBuilder, ListingRequest, RefuseReason,
    SegmentEntry, SegmentListing,
};
pub use responder::{parents_per_request_max, refuse, reply_with_listing, respond, Respond};
pub use tree::{leaf_hash, TicTacTree, TreeShape};

/// The causal weight of a stored object: the sum of its clock's counters. A version that
/// supersedes another has seen everything it has and more, so its weight is larger; two
/// concurrent versions may weigh anything. Anti-entropy uses it to guess which replica should
/// send a key that differs.
pub fn version_weight(obj: &Object) -> u64 {
    obj.clock()
        .iter()
        .fold(0u64, |sum, (_, counter)| sum.saturating_add(counter))
}

/// The version hash of a stored object: xxh3-64 (seed 0) over
///
/// ```text
/// clock entries u64 | entries x (node u64, counter u64) | siblings u64 | siblings x (node u64, counter u64)
/// ```
///
/// all little-endian: the clock and the sibling dots, not the values, because one dot always
/// names one value. Two replicas agree on the hash exactly when they hold the same state of the
/// key. Stable: replicas running different versions compare these hashes. A key that storage
/// does not hold has no hash (the tree records `None`), which differs from every object,
/// including the never-written one.
pub fn version_hash(obj: &Object) -> u64 {
    let mut hasher = Xxh3Default::new();
    hasher.update(&(obj.clock().len() as u64).to_le_bytes());
    for (node, counter) in obj.clock().iter() {
        hasher.update(&node.0.to_le_bytes());
        hasher.update(&counter.to_le_bytes());
    }
    hasher.update(&(obj.siblings().len() as u64).to_le_bytes());
    for sibling in obj.siblings() {
        hasher.update(&sibling.dot.node.0.to_le_bytes());
        hasher.update(&sibling.dot.counter.to_le_bytes());
    }
    hasher.digest()
}
