//! Gossip messages: a three-way exchange as in Cassandra.
//!
//! 1. The initiator sends [`GossipMessage::Syn`] with the digest of every record it holds.
//! 2. The receiver answers [`GossipMessage::Ack`]: the records it holds newer than (or missing
//!    from) the digest, and the ids of records the initiator has newer.
//! 3. The initiator answers [`GossipMessage::Ack2`] with those records.
//!
//! Both sides end up with the newer of each pair of records, for the price of one digest and
//! only the records that differ. Sizes are bounded: a digest or a request list holds at most
//! [`MEMBERS_MAX`] entries, a record list at most [`GOSSIP_RECORDS_PER_MESSAGE_MAX`]; a message
//! over a bound is ignored whole ([`GossipMessage::is_within_bounds`]).

use crate::constants::{GOSSIP_RECORDS_PER_MESSAGE_MAX, MEMBERS_MAX};
use crate::ids::NodeId;
use crate::membership::record::{Digest, MemberRecord};

/// A gossip message between two nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum GossipMessage {
    /// Opens a round: the digest of every record the sender holds, its own included.
    Syn {
        /// One entry per record.
        digests: Vec<Digest>,
    },
    /// Answers a `Syn`.
    Ack {
        /// Records the receiver of the `Syn` holds newer than the digest, or that the digest
        /// lacks.
        records: Vec<MemberRecord>,
        /// Nodes whose records the `Syn` sender holds newer; it answers with an `Ack2`.
        requests: Vec<NodeId>,
    },
    /// Closes a round: the records an `Ack` asked for.
    Ack2 {
        /// The requested records.
        records: Vec<MemberRecord>,
    },
}

impl GossipMessage {
    /// Estimated encoded size: a 1-byte tag, a 4-byte length per list, 24 bytes per digest,
    /// 8 per node id, and each record's [`MemberRecord::wire_bytes`].
    pub fn wire_bytes(&self) -> usize {
        let records = |rs: &[MemberRecord]| 4 + rs.iter().map(|r| r.wire_bytes()).sum::<usize>();
        1 + match self {
            GossipMessage::Syn { digests } => 4 + digests.len() * Digest::WIRE_BYTES,
            GossipMessage::Ack {
                records: rs,
                requests,
            } => records(rs) + 4 + 8 * requests.len(),
            GossipMessage::Ack2 { records: rs } => records(rs),
        }
    }

    /// Whether every list is within its bound and every record within its field bounds. A
    /// message that is not is dropped whole: it came from a broken or hostile peer.
    pub fn is_within_bounds(&self) -> bool {
        let records_ok = |rs: &[MemberRecord]| {
            rs.len() <= GOSSIP_RECORDS_PER_MESSAGE_MAX && rs.iter().all(|r| r.is_well_formed())
        };
        match self {
            GossipMessage::Syn { digests } => digests.len() <= MEMBERS_MAX,
            GossipMessage::Ack { records, requests } => {
                records_ok(records) && requests.len() <= MEMBERS_MAX
            }
            GossipMessage::Ack2 { records } => records_ok(records),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::record::Status;

    fn record() -> MemberRecord {
        MemberRecord {
            id: NodeId(1),
            addr: "a:1".into(),
            client_addr: "a:2".into(),
            rack: String::new(),
            dc: String::new(),
            weight: 1,
            status: Status::Up,
            generation: 1,
            heartbeat: 1,
            ring_version: 0,
        }
    }

    #[test]
    fn wire_bytes_sums_fields() {
        let d = record().digest();
        assert_eq!(
            GossipMessage::Syn {
                digests: vec![d; 3]
            }
            .wire_bytes(),
            1 + 4 + 72
        );
        let r = record();
        let rb = r.wire_bytes();
        assert_eq!(
            GossipMessage::Ack {
                records: vec![r.clone()],
                requests: vec![NodeId(2), NodeId(3)]
            }
            .wire_bytes(),
            1 + 4 + rb + 4 + 16
        );
        assert_eq!(GossipMessage::Ack2 { records: vec![] }.wire_bytes(), 1 + 4);
    }

    #[test]
    fn oversized_messages_are_out_of_bounds() {
        let d = record().digest();
        assert!(GossipMessage::Syn {
            digests: vec![d; MEMBERS_MAX]
        }
        .is_within_bounds());
        assert!(!GossipMessage::Syn {
            digests: vec![d; MEMBERS_MAX + 1]
        }
        .is_within_bounds());
        assert!(!GossipMessage::Ack2 {
            records: vec![record(); GOSSIP_RECORDS_PER_MESSAGE_MAX + 1]
        }
        .is_within_bounds());
        let mut long = record();
        long.rack = "r".repeat(10_000);
        assert!(!GossipMessage::Ack {
            records: vec![long],
            requests: vec![]
        }
        .is_within_bounds());
        assert!(!GossipMessage::Ack {
            records: vec![],
            requests: vec![NodeId(1); MEMBERS_MAX + 1]
        }
        .is_within_bounds());
    }
}
