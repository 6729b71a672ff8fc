//! The quorum coordinator: one state machine per client request (DESIGN §4).
//!
//! A coordinator fans a get, put or delete out to the key's replicas and answers as soon as `r`
//! (or `w`) of them have answered. It owns no storage and sends nothing itself: it returns
//! actions ("ask node X to apply the update", "send this object to Y", "reply to the client")
//! and is fed replies and clock ticks by its driver, the cluster node ([`crate::node`]).
//!
//! - [`targets`] picks the nodes a request goes to: the preference list (strict quorum) or the
//!   first healthy nodes with fallbacks standing in for unhealthy owners (sloppy quorum), each
//!   fallback carrying a hint that names the owner it stands in for.
//! - [`put`] coordinates a write: one replica (the *updater*) applies it to its own copy and
//!   assigns the new dot from it (the local read that makes the dot fresh), then the resulting
//!   object is replicated to the others; acknowledgements are counted against `w`.
//! - [`get`] coordinates a read: replies are merged as they arrive, the client gets the merge
//!   once `r` replicas answered, and replicas that answered with less than the merge are sent it
//!   (read repair).
//!
//! Invariants: a coordinator replies to its client exactly once; it never counts one node
//! twice; a failure says how many replicas answered and how many were needed.

pub mod get;
pub mod put;
pub mod tally;
pub mod targets;

use crate::error::CoreError;
use crate::ids::NodeId;

pub use get::{GetAction, GetCoordinator};
pub use put::{PutAction, PutCoordinator};
pub use tally::{AckScope, Tally};
pub use targets::{choose_targets, Target};

/// Names a client request on its coordinating node: never reused by that node, not even after
/// a restart, because replicas remember recent `(coordinator, request)` pairs to answer a
/// retried update without applying it twice; a reused id is taken for such a retry and gets
/// the old answer, so the new write would be acknowledged without being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// What a request asks of the quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumOptions {
    /// Replicas that must answer a read.
    pub r: usize,
    /// Replicas that must acknowledge a write.
    pub w: usize,
    /// Whether fallbacks may stand in for unhealthy owners (sloppy quorum).
    pub sloppy: bool,
    /// Whether each acknowledgement means "synced to disk".
    pub durable: bool,
    /// Where the answers counted against r or w must come from.
    pub scope: AckScope,
}

impl Default for QuorumOptions {
    /// DESIGN §2: r=2, w=2, sloppy allowed, durable.
    fn default() -> Self {
        QuorumOptions {
            r: 2,
            w: 2,
            sloppy: true,
            durable: true,
            scope: AckScope::Any,
        }
    }
}

/// Why a request failed. Every variant says how many replicas answered and how many were
/// needed, so a client can tell "retry later" from "ask for less".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// Fewer replicas are reachable than the request needs; nothing was sent.
    #[error(
        "only {reachable} of the {needed} replicas this request needs are reachable: retry \
         later, or ask for a smaller r/w, or allow a sloppy quorum"
    )]
    Unavailable {
        /// Replicas (or fallbacks) believed healthy.
        reachable: usize,
        /// Replicas the request needs.
        needed: usize,
    },
    /// The deadline passed before enough replicas answered. A write may still have been
    /// applied by some replicas: it is not acknowledged, and not necessarily absent.
    #[error(
        "timed out: {answered} of the {needed} replicas the request needs answered in time; a \
         write may have reached some replicas and will spread from them"
    )]
    Timeout {
        /// Replicas that answered.
        answered: usize,
        /// Replicas the request needs.
        needed: usize,
    },
    /// The write itself was refused (too many siblings, a forged context...).
    #[error("the write was refused: {0}")]
    Rejected(CoreError),
    /// The node asked is not a member of the ring (still joining, or it left), so its view of
    /// the ring may be stale: it coordinates nothing.
    #[error(
        "{node} is not a member of the ring (it is joining, or it left): send the request to \
         a member"
    )]
    NotAMember {
        /// The node asked.
        node: NodeId,
    },
    /// The request counts answers in a datacenter that holds no replica of the key (the
    /// coordinator's own, for a local-datacenter quorum).
    #[error(
        "datacenter {dc:?} holds no replica of this key: send the request to a node in a \
         datacenter that does, or count answers anywhere"
    )]
    NoReplicasInDc {
        /// The datacenter.
        dc: String,
    },
    /// The options cannot be met by any cluster of this replication factor.
    #[error("the request asks for {asked} replicas but keys have only {n}: ask for at most {n}")]
    TooManyAsked {
        /// r or w as asked.
        asked: usize,
        /// The replication factor.
        n: usize,
    },
}
