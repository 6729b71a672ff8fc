//! Membership gossip on the peer wire: the three-way `Syn` / `Ack` / `Ack2` exchange.
//!
//! Digests travel as structs (three `u64`s each, no vtable); records as tables. A member's status
//! uses core's stable numbers ([`Status::to_wire`]). Lists and labels over core's bounds are
//! refused here, where core would ignore the whole message anyway
//! ([`GossipMessage::is_within_bounds`]).
#![forbid(unsafe_code)]

use flatbuffers::{ForwardsUOffset, Vector};
use tessera_core::membership::{Digest, GossipMessage, MemberRecord, Status};
use tessera_core::NodeId;

use super::{member, text_within, wire, DecodeError, TableVector, Union, Writer};
use crate::decode::counted;
use crate::limits::{
    PEER_GOSSIP_DIGESTS_MAX, PEER_GOSSIP_RECORDS_MAX, PEER_MEMBER_ADDR_BYTES_MAX,
    PEER_MEMBER_LABEL_BYTES_MAX,
};

type Records = Option<TableVector<wire::MemberRecord<'static>>>;

// ---- Writing ----

impl Writer<'_> {
    pub(super) fn gossip(&mut self, message: &GossipMessage) -> Union {
        use wire::PeerMessage as Tag;
        match message {
            GossipMessage::Syn { digests } => {
                let digests = (!digests.is_empty()).then(|| {
                    let digests = digests
                        .iter()
                        .map(|d| wire::Digest::new(d.id.0, d.generation, d.heartbeat));
                    self.fbb.create_vector_from_iter(digests)
                });
                let syn = wire::GossipSyn::create(self.fbb, &wire::GossipSynArgs { digests });
                (Tag::GossipSyn, syn.as_union_value())
            }
            GossipMessage::Ack { records, requests } => {
                let records = self.member_records(records);
                let requests = (!requests.is_empty()).then(|| {
                    self.fbb
                        .create_vector_from_iter(requests.iter().map(|n| n.0))
                });
                let args = wire::GossipAckArgs { records, requests };
                (
                    Tag::GossipAck,
                    wire::GossipAck::create(self.fbb, &args).as_union_value(),
                )
            }
            GossipMessage::Ack2 { records } => {
                let records = self.member_records(records);
                let args = wire::GossipAck2Args { records };
                (
                    Tag::GossipAck2,
                    wire::GossipAck2::create(self.fbb, &args).as_union_value(),
                )
            }
        }
    }

    fn member_records(&mut self, records: &[MemberRecord]) -> Records {
        let start = self.tables.len();
        for record in records {
            let args = wire::MemberRecordArgs {
                id: record.id.0,
                addr: self.text(&record.addr),
                client_addr: self.text(&record.client_addr),
                rack: self.text(&record.rack),
                dc: self.text(&record.dc),
                weight: record.weight,
                status: wire::MemberStatus(record.status.to_wire()),
                generation: record.generation,
                heartbeat: record.heartbeat,
                ring_version: record.ring_version,
            };
            let offset = wire::MemberRecord::create(self.fbb, &args);
            self.tables.push(offset.value());
        }
        self.tables_since(start)
    }
}

// ---- Reading ----

/// The gossip message behind the frame's union tag.
pub(super) fn decode(frame: &wire::PeerFrame<'_>) -> Result<GossipMessage, DecodeError> {
    use wire::PeerMessage as Tag;
    Ok(match frame.message_type() {
        Tag::GossipSyn => {
            let syn = member(frame.message_as_gossip_syn())?;
            let digests = counted(syn.digests(), PEER_GOSSIP_DIGESTS_MAX)?;
            GossipMessage::Syn {
                digests: digests
                    .iter()
                    .map(|d| Digest {
                        id: NodeId(d.id()),
                        generation: d.generation(),
                        heartbeat: d.heartbeat(),
                    })
                    .collect(),
            }
        }
        Tag::GossipAck => {
            let ack = member(frame.message_as_gossip_ack())?;
            let requests = counted(ack.requests(), PEER_GOSSIP_DIGESTS_MAX)?;
            GossipMessage::Ack {
                records: member_records(ack.records())?,
                requests: requests.iter().map(NodeId).collect(),
            }
        }
        Tag::GossipAck2 => {
            let ack2 = member(frame.message_as_gossip_ack_2())?;
            GossipMessage::Ack2 {
                records: member_records(ack2.records())?,
            }
        }
        _ => return Err(DecodeError::UnknownMessage),
    })
}

fn member_records(
    records: Option<Vector<'_, ForwardsUOffset<wire::MemberRecord<'_>>>>,
) -> Result<Vec<MemberRecord>, DecodeError> {
    counted(records, PEER_GOSSIP_RECORDS_MAX)?
        .iter()
        .map(member_record)
        .collect()
}

fn member_record(record: wire::MemberRecord<'_>) -> Result<MemberRecord, DecodeError> {
    let status = record.status();
    let label = |text, field| text_within(text, PEER_MEMBER_LABEL_BYTES_MAX, field);
    Ok(MemberRecord {
        id: NodeId(record.id()),
        addr: text_within(
            record.addr(),
            PEER_MEMBER_ADDR_BYTES_MAX,
            "MemberRecord.addr",
        )?,
        client_addr: text_within(
            record.client_addr(),
            PEER_MEMBER_ADDR_BYTES_MAX,
            "MemberRecord.client_addr",
        )?,
        rack: label(record.rack(), "MemberRecord.rack")?,
        dc: label(record.dc(), "MemberRecord.dc")?,
        weight: record.weight(),
        status: Status::from_wire(status.0).ok_or(DecodeError::UnknownEnumValue {
            field: "MemberRecord.status",
            value: u32::from(status.0),
        })?,
        generation: record.generation(),
        heartbeat: record.heartbeat(),
        ring_version: record.ring_version(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fbs/peer.fbs` names core's status numbers; both must keep agreeing.
    #[test]
    fn statuses_match_the_schema() {
        let statuses = [
            (Status::Joining, wire::MemberStatus::Joining),
            (Status::Up, wire::MemberStatus::Up),
            (Status::Leaving, wire::MemberStatus::Leaving),
            (Status::Left, wire::MemberStatus::Left),
        ];
        for (status, named) in statuses {
            assert_eq!(status.to_wire(), named.0);
            assert_eq!(Status::from_wire(named.0), Some(status));
        }
        assert_eq!(Status::from_wire(wire::MemberStatus::ENUM_MAX + 1), None);
    }
}
