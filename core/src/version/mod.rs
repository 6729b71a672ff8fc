//! Versions and conflicts: dotted version vectors with sibling sets.
//!
//! - [`vector`] holds [`Dot`], which names one write, and [`VersionVector`], a set of seen
//!   writes; the vector is also the opaque causal context clients read and send back.
//! - [`object`] holds [`Object`], the state of one key on one replica, with `update` (a
//!   coordinated write) and `merge` (the join used by replication and repair), and [`Sibling`].
//! - [`format`] holds the stable byte encodings of contexts and objects, writer beside reader.
//!
//! The guarantee the module exists for: a write is removed only when a later write's context
//! covered it, so concurrent acknowledged writes survive as siblings until a client resolves
//! them, and replicas that exchange state converge whatever the order.

pub mod format;
pub mod object;
pub mod vector;

pub use object::{dot_floor, Object, Sibling};
pub use vector::{Dot, VersionVector};
