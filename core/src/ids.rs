//! Identifier newtypes shared by every crate.
//!
//! Each is a transparent wrapper with a public field so that codecs can build and take them
//! apart freely; the type only stops a shard id from being passed where a node id was meant.
//! Ordering is numeric and is relied on: version vectors sort by [`NodeId`].

use std::fmt;

/// A physical node of the cluster. Assigned once, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A shard (one core) inside a node, `0..shard_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u16);

/// A partition of the ring, `0..partition_count`; partition `p` owns a contiguous token range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);

/// A position on the ring: the hash of (keyspace, key). See [`crate::token_of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for Token {
    /// Fixed-width hex, so that tokens line up and sort visually like they sort numerically.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_short_and_typed() {
        assert_eq!(NodeId(3).to_string(), "n3");
        assert_eq!(ShardId(2).to_string(), "s2");
        assert_eq!(PartitionId(17).to_string(), "p17");
        assert_eq!(Token(0xab).to_string(), "0x00000000000000ab");
        assert_eq!(Token(u64::MAX).to_string(), "0xffffffffffffffff");
    }
}
