//! One member's record in the membership table, and the digest gossip compares.
//!
//! A record is written only by the node it describes; everyone else copies it. Its version is
//! the pair `(generation, heartbeat)`: the generation grows with each restart (chosen by the
//! driver from a persisted counter), the heartbeat with each gossip round and each local change
//! of the record. So for one node the versions are totally ordered, and "keep the newer record"
//! is a join: commutative, associative and idempotent, whatever order gossip delivers them in.

use crate::constants::{MEMBER_ADDR_BYTES_MAX, MEMBER_LABEL_BYTES_MAX, MEMBER_WEIGHT_MAX};
use crate::ids::NodeId;

/// Where a node is in its life in the cluster.
///
/// The wire values ([`Status::to_wire`]) are stable and never renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Announced, receiving partitions; does not own any yet.
    Joining,
    /// A full member.
    Up,
    /// Handing its partitions to others before it goes.
    Leaving,
    /// Gone for good (after a leave). Its record is kept so that stale gossip cannot bring it
    /// back; a node that returns does so as a new member or with a new generation.
    Left,
}

impl Status {
    /// The stable one-byte wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            Status::Joining => 0,
            Status::Up => 1,
            Status::Leaving => 2,
            Status::Left => 3,
        }
    }

    /// Decodes a wire value; `None` for an unknown one (the caller ignores the record).
    pub fn from_wire(byte: u8) -> Option<Status> {
        match byte {
            0 => Some(Status::Joining),
            1 => Some(Status::Up),
            2 => Some(Status::Leaving),
            3 => Some(Status::Left),
            _ => None,
        }
    }
}

/// What the cluster knows about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The node.
    pub id: NodeId,
    /// Where peers reach it (`host:port`), at most [`MEMBER_ADDR_BYTES_MAX`] bytes.
    pub addr: String,
    /// Where clients reach it (`host:port` of its client port), at most
    /// [`MEMBER_ADDR_BYTES_MAX`] bytes; empty if unknown. Cluster-aware clients route by it.
    pub client_addr: String,
    /// Rack label for replica spreading, at most [`MEMBER_LABEL_BYTES_MAX`] bytes.
    pub rack: String,
    /// Datacenter label, at most [`MEMBER_LABEL_BYTES_MAX`] bytes.
    pub dc: String,
    /// Relative capacity: partitions are claimed in proportion to it. At most
    /// [`MEMBER_WEIGHT_MAX`].
    pub weight: u32,
    /// Life-cycle status.
    pub status: Status,
    /// Incarnation: larger after every restart of the node.
    pub generation: u64,
    /// Version within the generation: bumped every gossip round and on every local change.
    pub heartbeat: u64,
    /// Newest ring version this node has; peers that see a larger one fetch the ring.
    pub ring_version: u64,
}

impl MemberRecord {
    /// The record's version; a larger one supersedes a smaller one.
    pub fn version(&self) -> (u64, u64) {
        (self.generation, self.heartbeat)
    }

    /// This record's digest.
    pub fn digest(&self) -> Digest {
        Digest {
            id: self.id,
            generation: self.generation,
            heartbeat: self.heartbeat,
        }
    }

    /// Whether the record's fields are within their bounds. Records from peers that are not are
    /// ignored.
    pub fn is_well_formed(&self) -> bool {
        self.addr.len() <= MEMBER_ADDR_BYTES_MAX
            && self.client_addr.len() <= MEMBER_ADDR_BYTES_MAX
            && self.rack.len() <= MEMBER_LABEL_BYTES_MAX
            && self.dc.len() <= MEMBER_LABEL_BYTES_MAX
            && self.weight <= MEMBER_WEIGHT_MAX
    }

    /// Estimated encoded size: 8 bytes per `u64`, a 4-byte length plus the bytes per string,
    /// 4 for the weight, 1 for the status.
    pub fn wire_bytes(&self) -> usize {
        8 + (4 + self.addr.len())
            + (4 + self.client_addr.len())
            + (4 + self.rack.len())
            + (4 + self.dc.len())
            + 4
            + 1
            + 8 * 3
    }
}

/// A record's identity and version, without its contents: what a gossip round compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    /// The node the record describes.
    pub id: NodeId,
    /// Its generation.
    pub generation: u64,
    /// Its heartbeat.
    pub heartbeat: u64,
}

impl Digest {
    /// The version of the record it stands for.
    pub fn version(&self) -> (u64, u64) {
        (self.generation, self.heartbeat)
    }

    /// Encoded size: three `u64`s.
    pub const WIRE_BYTES: usize = 24;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64) -> MemberRecord {
        MemberRecord {
            id: NodeId(id),
            addr: format!("10.0.0.{id}:7000"),
            client_addr: format!("10.0.0.{id}:9000"),
            rack: "r1".into(),
            dc: "dc1".into(),
            weight: 1,
            status: Status::Up,
            generation: 1,
            heartbeat: 0,
            ring_version: 0,
        }
    }

    #[test]
    fn status_wire_values_are_stable() {
        for (s, b) in [
            (Status::Joining, 0),
            (Status::Up, 1),
            (Status::Leaving, 2),
            (Status::Left, 3),
        ] {
            assert_eq!(s.to_wire(), b);
            assert_eq!(Status::from_wire(b), Some(s));
        }
        assert_eq!(Status::from_wire(4), None);
    }

    #[test]
    fn version_orders_generation_first() {
        let mut old = record(1);
        old.heartbeat = 1_000_000;
        let mut restarted = record(1);
        restarted.generation = 2;
        assert!(restarted.version() > old.version());
        assert_eq!(restarted.digest().version(), restarted.version());
    }

    #[test]
    fn bounds_and_sizes() {
        let mut r = record(1);
        assert!(r.is_well_formed());
        // 8 + (4+13) + (4+13) + (4+2) + (4+3) + 4 + 1 + 24
        assert_eq!(r.wire_bytes(), 84);
        r.addr = "x".repeat(MEMBER_ADDR_BYTES_MAX + 1);
        assert!(!r.is_well_formed());
        let mut r = record(1);
        r.client_addr = "x".repeat(MEMBER_ADDR_BYTES_MAX + 1);
        assert!(!r.is_well_formed());
        let mut r = record(1);
        r.dc = "x".repeat(MEMBER_LABEL_BYTES_MAX + 1);
        assert!(!r.is_well_formed());
        let mut r = record(1);
        r.weight = MEMBER_WEIGHT_MAX + 1;
        assert!(!r.is_well_formed());
    }
}
