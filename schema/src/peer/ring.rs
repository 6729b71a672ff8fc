//! Ring states and completed moves on the peer wire.
//!
//! A ring travels as its partition count, version, members (sorted by id) and one owner per
//! partition, written as an index into the member list (4 bytes per partition instead of an
//! 8-byte node id: a ring of 65536 partitions is pushed whole). Decoding maps the indexes back
//! to node ids and rebuilds the ring with [`Ring::from_parts`] and the state with
//! [`RingState::from_parts`], which check everything core relies on (partition count, member
//! rules, owners that are members, two rings of one size).
#![forbid(unsafe_code)]

use tessera_core::node::{PeerMessage, RingPhase, RingState};
use tessera_core::placement::{Member, Ring};
use tessera_core::{NodeId, PartitionCount, PartitionId};

use super::{required, text_within, wire, DecodeError, Union, Writer};
use crate::decode::counted;
use crate::limits::{
    PEER_MOVES_MAX, PEER_RING_LOCATION_BYTES_MAX, PEER_RING_MEMBERS_MAX, PEER_RING_PARTITIONS_MAX,
};

// ---- Writing ----

impl Writer<'_> {
    pub(super) fn ring_state_message(&mut self, state: &RingState) -> Union {
        let current = Some(self.ring(state.current()));
        let next = state.next().map(|next| self.ring(next));
        let removed = state.removed();
        let removed = (!removed.is_empty()).then(|| {
            self.fbb
                .create_vector_from_iter(removed.iter().map(|n| n.0))
        });
        let args = wire::RingStateArgs {
            epoch: state.epoch(),
            current,
            next,
            flipped: state.phase() == RingPhase::Flipped,
            removed,
        };
        let state = wire::RingState::create(self.fbb, &args);
        (wire::PeerMessage::RingState, state.as_union_value())
    }

    fn ring(&mut self, ring: &Ring) -> flatbuffers::WIPOffset<wire::Ring<'static>> {
        let start = self.tables.len();
        for member in ring.members() {
            let args = wire::MemberArgs {
                id: member.id.0,
                rack: self.text(&member.rack),
                dc: self.text(&member.dc),
                weight: member.weight,
            };
            let offset = wire::Member::create(self.fbb, &args);
            self.tables.push(offset.value());
        }
        let members = self.tables_since(start);
        // Every owner is a member and the members are sorted by id (`Ring`'s invariants), so
        // the search always finds it, and a ring has at most `RING_MEMBERS_MAX` members.
        let owners: Vec<u32> = ring
            .owners()
            .iter()
            .map(|owner| {
                let index = ring.members().binary_search_by_key(owner, |m| m.id);
                debug_assert!(
                    index.is_ok(),
                    "{owner} owns a partition but is not a member"
                );
                index.unwrap_or(0) as u32
            })
            .collect();
        let owners = Some(self.fbb.create_vector(&owners));
        let args = wire::RingArgs {
            partitions: ring.partitions().get(),
            version: ring.version(),
            members,
            owners,
        };
        wire::Ring::create(self.fbb, &args)
    }

    pub(super) fn moves_done(&mut self, ring: u64, moves: &[(PartitionId, NodeId)]) -> Union {
        let moves = (!moves.is_empty()).then(|| {
            let moves = moves
                .iter()
                .map(|(partition, receiver)| wire::PartitionMove::new(partition.0, receiver.0));
            self.fbb.create_vector_from_iter(moves)
        });
        let done = wire::MovesDone::create(self.fbb, &wire::MovesDoneArgs { ring, moves });
        (wire::PeerMessage::MovesDone, done.as_union_value())
    }

    pub(super) fn remove_members(&mut self, nodes: &[NodeId]) -> Union {
        let nodes = (!nodes.is_empty())
            .then(|| self.fbb.create_vector_from_iter(nodes.iter().map(|n| n.0)));
        let remove = wire::RemoveMembers::create(self.fbb, &wire::RemoveMembersArgs { nodes });
        (wire::PeerMessage::RemoveMembers, remove.as_union_value())
    }
}

// ---- Reading ----

pub(super) fn ring_state(state: wire::RingState<'_>) -> Result<RingState, DecodeError> {
    let current = ring(required(state.current(), "RingState.current")?)?;
    let next = match (state.next(), state.flipped()) {
        (Some(next), flipped) => Some((ring(next)?, flipped)),
        (None, false) => None,
        (None, true) => {
            return Err(DecodeError::Malformed(
                "a flipped RingState has no next ring",
            ))
        }
    };
    let removed = counted(state.removed(), PEER_RING_MEMBERS_MAX)?;
    let removed = removed.iter().map(NodeId).collect();
    RingState::from_parts(state.epoch(), current, next)
        .ok_or(DecodeError::Malformed(
            "the current and next rings of a RingState have different partition counts",
        ))?
        .with_removed(removed)
        .ok_or(DecodeError::Malformed(
            "a RingState removes a node that is in neither ring, or has no change",
        ))
}

fn ring(ring: wire::Ring<'_>) -> Result<Ring, DecodeError> {
    let partitions = PartitionCount::new(ring.partitions())?;
    let members = counted(ring.members(), PEER_RING_MEMBERS_MAX)?;
    let owners = counted(ring.owners(), PEER_RING_PARTITIONS_MAX)?;
    let members = members
        .iter()
        .map(|member| {
            let location = |text, field| text_within(text, PEER_RING_LOCATION_BYTES_MAX, field);
            Ok(Member {
                id: NodeId(member.id()),
                rack: location(member.rack(), "Member.rack")?,
                dc: location(member.dc(), "Member.dc")?,
                weight: member.weight(),
            })
        })
        .collect::<Result<Vec<Member>, DecodeError>>()?;
    // Indexes refer to the members in wire order; `Ring::from_parts` sorts them afterwards.
    let owners = owners
        .iter()
        .map(|index| {
            let member = usize::try_from(index).ok().and_then(|i| members.get(i));
            member
                .map(|m| m.id)
                .ok_or(DecodeError::Malformed("a ring owner index names no member"))
        })
        .collect::<Result<Vec<NodeId>, DecodeError>>()?;
    Ok(Ring::from_parts(
        partitions,
        ring.version(),
        members,
        &owners,
    )?)
}

pub(super) fn remove_members(remove: wire::RemoveMembers<'_>) -> Result<PeerMessage, DecodeError> {
    let nodes = counted(remove.nodes(), PEER_RING_MEMBERS_MAX)?;
    Ok(PeerMessage::Remove {
        nodes: nodes.iter().map(NodeId).collect(),
    })
}

pub(super) fn moves_done(done: wire::MovesDone<'_>) -> Result<PeerMessage, DecodeError> {
    let moves = counted(done.moves(), PEER_MOVES_MAX)?;
    Ok(PeerMessage::MovesDone {
        ring: done.ring(),
        moves: moves
            .iter()
            .map(|m| (PartitionId(m.partition()), NodeId(m.receiver())))
            .collect(),
    })
}
