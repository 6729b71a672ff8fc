//! The peer decoder refuses what is over a limit (`PEER_*` in `limits.rs`) with a typed error,
//! accepts the largest legal messages within the verifier's budgets, and refuses values that
//! break an invariant of core's types (version vectors, objects, tree shapes, rings) instead of
//! handing them to core.

mod peer_common;

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use peer_common::{body, crafted, key, records, tag, Decoded};
use tessera_core::antientropy::{AeMessage, SegmentEntry};
use tessera_core::membership::GossipMessage;
use tessera_core::node::{PeerMessage, RingState};
use tessera_core::placement::{Member, Ring};
use tessera_core::quorum::RequestId;
use tessera_core::transfer::{TransferId, TransferMessage};
use tessera_core::{
    CoreError, Dot, NodeId, Object, PartitionCount, PartitionId, Sibling, Token, VersionVector,
};
use tessera_schema::generated::peer as wire;
use tessera_schema::{
    decode_peer, DecodeError, PEER_AE_SEGMENT_ENTRIES_MAX, PEER_CLOCK_ENTRIES_MAX,
    PEER_ERROR_TEXT_BYTES_MAX, PEER_FETCH_KEYS_MAX, PEER_GOSSIP_RECORDS_MAX, PEER_KEY_BYTES_MAX,
    PEER_MEMBER_ADDR_BYTES_MAX, PEER_OBJECT_SIBLINGS_MAX, PEER_REAP_KEYS_MAX,
    PEER_RING_MEMBERS_MAX, PEER_RING_PARTITIONS_MAX, PEER_TRANSFER_CHUNK_ENTRIES_MAX,
};

/// A version vector from entries already in node order. (Collecting dots goes through
/// `VersionVector::add`, whose debug-build invariant check makes that quadratic.)
fn clock_of(entries: impl IntoIterator<Item = (u64, u64)>) -> VersionVector {
    let entries = entries
        .into_iter()
        .map(|(node, counter)| (NodeId(node), counter));
    VersionVector::from_sorted_entries(entries.collect()).expect("sorted, unique, non-zero")
}

fn too_many(count: usize, max: usize) -> Decoded {
    Err(DecodeError::TooManyItems { count, max })
}

#[test]
fn lists_over_their_limits_are_refused() {
    let fetch = PeerMessage::Fetch {
        keys: vec![key(b""); PEER_FETCH_KEYS_MAX + 1],
    };
    assert_eq!(
        decode_peer(&body(&fetch)),
        too_many(PEER_FETCH_KEYS_MAX + 1, PEER_FETCH_KEYS_MAX)
    );

    let chunk = PeerMessage::Transfer(TransferMessage::Chunk {
        id: TransferId(1),
        partition: PartitionId(0),
        seq: 1,
        entries: vec![(vec![], Object::new()); PEER_TRANSFER_CHUNK_ENTRIES_MAX + 1],
        last: false,
    });
    assert_eq!(
        decode_peer(&body(&chunk)),
        too_many(
            PEER_TRANSFER_CHUNK_ENTRIES_MAX + 1,
            PEER_TRANSFER_CHUNK_ENTRIES_MAX
        )
    );

    let ack2 = PeerMessage::Gossip(GossipMessage::Ack2 {
        records: records(PEER_GOSSIP_RECORDS_MAX + 1),
    });
    assert_eq!(
        decode_peer(&body(&ack2)),
        too_many(PEER_GOSSIP_RECORDS_MAX + 1, PEER_GOSSIP_RECORDS_MAX)
    );

    let entry = SegmentEntry {
        token: Token(0),
        key: vec![],
        version: 0,
        weight: 0,
    };
    let reply = PeerMessage::Ae(AeMessage::SegmentReply {
        tag: tag(),
        entries: vec![entry; PEER_AE_SEGMENT_ENTRIES_MAX + 1],
        more: false,
    });
    assert_eq!(
        decode_peer(&body(&reply)),
        too_many(PEER_AE_SEGMENT_ENTRIES_MAX + 1, PEER_AE_SEGMENT_ENTRIES_MAX)
    );

    let clock = clock_of((1..=PEER_CLOCK_ENTRIES_MAX as u64 + 1).map(|node| (node, 1)));
    let update = PeerMessage::Update {
        op: RequestId(1),
        key: key(b"k"),
        context: clock,
        value: None,
        timestamp_ms: 0,
        durable: false,
        ring: 0,
    };
    assert_eq!(
        decode_peer(&body(&update)),
        too_many(PEER_CLOCK_ENTRIES_MAX + 1, PEER_CLOCK_ENTRIES_MAX)
    );

    let siblings: Vec<Sibling> = (1..=PEER_OBJECT_SIBLINGS_MAX as u64 + 1)
        .map(|counter| Sibling {
            dot: Dot {
                node: NodeId(1),
                counter,
            },
            timestamp_ms: 0,
            value: None,
        })
        .collect();
    let clock = clock_of([(1, PEER_OBJECT_SIBLINGS_MAX as u64 + 1)]);
    let crowded = Object::from_parts(clock, siblings).expect("valid");
    let reply = PeerMessage::ReadReply {
        op: RequestId(1),
        object: crowded,
    };
    assert_eq!(
        decode_peer(&body(&reply)),
        too_many(PEER_OBJECT_SIBLINGS_MAX + 1, PEER_OBJECT_SIBLINGS_MAX)
    );
}

#[test]
fn fields_over_their_limits_are_refused() {
    let read = PeerMessage::Read {
        op: RequestId(1),
        key: key(&vec![0; PEER_KEY_BYTES_MAX + 1]),
    };
    assert_eq!(
        decode_peer(&body(&read)),
        Err(DecodeError::TooLong {
            field: "Key.bytes",
            len: PEER_KEY_BYTES_MAX + 1,
            max: PEER_KEY_BYTES_MAX
        })
    );
    let at_limit = PeerMessage::Read {
        op: RequestId(1),
        key: key(&vec![0; PEER_KEY_BYTES_MAX]),
    };
    assert!(decode_peer(&body(&at_limit)).is_ok());

    let updated = PeerMessage::Updated {
        op: RequestId(1),
        result: Err(CoreError::InvalidMembers {
            detail: "x".repeat(PEER_ERROR_TEXT_BYTES_MAX + 1),
        }),
    };
    assert!(matches!(
        decode_peer(&body(&updated)),
        Err(DecodeError::TooLong {
            field: "Error.text",
            ..
        })
    ));

    let mut long = records(1);
    long[0].addr = "a".repeat(PEER_MEMBER_ADDR_BYTES_MAX + 1);
    let ack = PeerMessage::Gossip(GossipMessage::Ack {
        records: long,
        requests: vec![],
    });
    assert!(matches!(
        decode_peer(&body(&ack)),
        Err(DecodeError::TooLong {
            field: "MemberRecord.addr",
            ..
        })
    ));
}

/// The largest legal messages, in the shapes with the most verifier work per byte, pass the
/// verifier's budgets.
#[test]
fn largest_legal_messages_decode() {
    let fetch = PeerMessage::Fetch {
        keys: vec![key(b""); PEER_FETCH_KEYS_MAX],
    };
    let chunk = PeerMessage::Transfer(TransferMessage::Chunk {
        id: TransferId(1),
        partition: PartitionId(0),
        seq: 1,
        entries: vec![(vec![], Object::new()); PEER_TRANSFER_CHUNK_ENTRIES_MAX],
        last: true,
    });
    let mut empty = records(PEER_GOSSIP_RECORDS_MAX);
    for record in &mut empty {
        record.addr.clear();
        record.rack.clear();
        record.dc.clear();
    }
    let ack2 = PeerMessage::Gossip(GossipMessage::Ack2 { records: empty });
    let entry = SegmentEntry {
        token: Token(0),
        key: vec![],
        version: 0,
        weight: 0,
    };
    let reply = PeerMessage::Ae(AeMessage::SegmentReply {
        tag: tag(),
        entries: vec![entry; PEER_AE_SEGMENT_ENTRIES_MAX],
        more: true,
    });
    let tombstones: Vec<Sibling> = (1..=PEER_OBJECT_SIBLINGS_MAX as u64)
        .map(|node| Sibling {
            dot: Dot {
                node: NodeId(node),
                counter: 1,
            },
            timestamp_ms: 0,
            value: None,
        })
        .collect();
    let clock = clock_of(tombstones.iter().map(|s| (s.dot.node.0, s.dot.counter)));
    let crowded = PeerMessage::Repair {
        key: key(b""),
        object: Object::from_parts(clock, tombstones).expect("valid"),
    };
    // Built from parts with round-robin owners: the claim over this many partitions and
    // members is too slow for a debug-build test, and the wire carries any valid ring.
    let partitions = u32::try_from(PEER_RING_PARTITIONS_MAX).expect("fits");
    let members: Vec<Member> = (1..=PEER_RING_MEMBERS_MAX as u64)
        .map(|id| Member::new(NodeId(id), format!("r{}", id % 7), "dc1", 1))
        .collect();
    let owners: Vec<NodeId> = (0..PEER_RING_PARTITIONS_MAX)
        .map(|p| members[p % members.len()].id)
        .collect();
    let q = PartitionCount::new(partitions).expect("valid");
    let big = Ring::from_parts(q, 9, members, &owners).expect("valid");
    let state = RingState::initial(big.clone()).propose(big);
    let rings = PeerMessage::Ring(Box::new(state));
    for message in [fetch, chunk, ack2, reply, crowded, rings] {
        let decoded = decode_peer(&body(&message));
        assert_eq!(decoded, Ok((NodeId(7), message)));
    }
}

/// `n` reap entries, each a distinct key with a tombstone of one sibling.
fn reap_entries(n: usize) -> Vec<(tessera_core::node::Key, Object)> {
    (1..=n as u64)
        .map(|counter| {
            let dot = Dot {
                node: NodeId(1),
                counter,
            };
            let deleted = Sibling {
                dot,
                timestamp_ms: 0,
                value: None,
            };
            let tombstone = Object::from_parts(clock_of([(1, counter)]), vec![deleted]);
            (key(&counter.to_be_bytes()), tombstone.expect("valid"))
        })
        .collect()
}

/// Reap checks, votes and reaps over `PEER_REAP_KEYS_MAX` entries or vetoed indices are
/// refused; at the limit they decode whole. A vetoed index that no check can have is refused.
#[test]
fn reap_messages_are_bounded() {
    let (max, over) = (PEER_REAP_KEYS_MAX, PEER_REAP_KEYS_MAX + 1);
    let check = |n| PeerMessage::ReapCheck {
        round: 1,
        ring: 2,
        entries: reap_entries(n),
    };
    let vote = |n: usize| PeerMessage::ReapVote {
        round: 1,
        vetoed: (0..n as u32).map(|i| i % max as u32).collect(),
    };
    let reap = |n| PeerMessage::Reap {
        ring: 2,
        entries: reap_entries(n),
    };
    for message in [check(over), vote(over), reap(over)] {
        assert_eq!(decode_peer(&body(&message)), too_many(over, max));
    }
    for message in [check(max), vote(max), reap(max)] {
        let decoded = decode_peer(&body(&message));
        assert_eq!(decoded, Ok((NodeId(7), message)));
    }

    let last = u32::try_from(max - 1).expect("fits");
    let at_bound = PeerMessage::ReapVote {
        round: 1,
        vetoed: vec![last],
    };
    assert_eq!(
        decode_peer(&body(&at_bound)),
        Ok((NodeId(7), at_bound.clone()))
    );
    for index in [last + 1, u32::MAX] {
        let past = PeerMessage::ReapVote {
            round: 1,
            vetoed: vec![0, index],
        };
        assert_eq!(
            decode_peer(&body(&past)),
            Err(DecodeError::OutOfRange {
                field: "ReapVote.vetoed",
                value: u64::from(index),
                max: u64::from(last),
            })
        );
    }
}

/// A reap entry without its key or its tombstone is refused, not defaulted.
#[test]
fn reap_entries_need_a_key_and_an_object() {
    for (with_key, with_object, field) in [
        (false, true, "ReapEntry.key"),
        (true, false, "ReapEntry.object"),
    ] {
        let body = crafted(|fbb| {
            let key = with_key.then(|| wire::Key::create(fbb, &wire::KeyArgs::default()));
            let object =
                with_object.then(|| wire::Object::create(fbb, &wire::ObjectArgs::default()));
            let entry = wire::ReapEntry::create(fbb, &wire::ReapEntryArgs { key, object });
            let entries = Some(fbb.create_vector(&[entry]));
            let args = wire::ReapArgs { ring: 1, entries };
            let reap = wire::Reap::create(fbb, &args);
            (wire::PeerMessage::Reap, reap.as_union_value())
        });
        assert_eq!(decode_peer(&body), Err(DecodeError::MissingField(field)));
    }
}

fn object_message(clock: &[(u64, u64)], siblings: &[(u64, u64, bool, Option<&[u8]>)]) -> Vec<u8> {
    crafted(|fbb| {
        let mut offsets = Vec::new();
        for &(node, counter, tombstone, value) in siblings {
            let value = value.map(|v| fbb.create_vector(v));
            let args = wire::SiblingArgs {
                dot: Some(&wire::Dot::new(node, counter)),
                timestamp_ms: 0,
                value,
                tombstone,
            };
            offsets.push(wire::Sibling::create(fbb, &args));
        }
        let siblings = Some(fbb.create_vector(&offsets));
        let dots: Vec<wire::Dot> = clock.iter().map(|&(n, c)| wire::Dot::new(n, c)).collect();
        let clock = Some(fbb.create_vector(&dots));
        let object = Some(wire::Object::create(
            fbb,
            &wire::ObjectArgs { clock, siblings },
        ));
        let args = wire::ReadReplyArgs { op: 1, object };
        let reply = wire::ReadReply::create(fbb, &args);
        (wire::PeerMessage::ReadReply, reply.as_union_value())
    })
}

fn is_invariant(result: Decoded) -> bool {
    matches!(result, Err(DecodeError::Invariant(_)))
}

#[test]
fn objects_that_break_core_invariants_are_refused() {
    assert!(decode_peer(&object_message(&[(1, 2)], &[(1, 2, false, Some(b"v"))])).is_ok());
    // Clock unsorted, duplicated, or with a zero counter.
    assert!(is_invariant(decode_peer(&object_message(
        &[(2, 1), (1, 1)],
        &[]
    ))));
    assert!(is_invariant(decode_peer(&object_message(
        &[(1, 1), (1, 2)],
        &[]
    ))));
    assert!(is_invariant(decode_peer(&object_message(&[(1, 0)], &[]))));
    // A sibling the clock does not cover, two siblings with one dot, a zero counter.
    assert!(is_invariant(decode_peer(&object_message(
        &[(1, 1)],
        &[(1, 2, true, None)]
    ))));
    let twice = [(1, 1, true, None), (1, 1, true, None)];
    assert!(is_invariant(decode_peer(&object_message(
        &[(1, 1)],
        &twice
    ))));
    assert!(is_invariant(decode_peer(&object_message(
        &[(1, 1)],
        &[(1, 0, true, None)]
    ))));
    // A tombstone carrying a value.
    assert_eq!(
        decode_peer(&object_message(&[(1, 1)], &[(1, 1, true, Some(b""))])),
        Err(DecodeError::Malformed("a tombstone sibling holds a value"))
    );
}

#[test]
fn updated_must_be_object_or_error() {
    for (with_object, with_error) in [(false, false), (true, true)] {
        let body = crafted(|fbb| {
            let object =
                with_object.then(|| wire::Object::create(fbb, &wire::ObjectArgs::default()));
            let args = wire::ErrorArgs {
                code: wire::ErrorCode::StaleRing,
                ..Default::default()
            };
            let error = with_error.then(|| wire::Error::create(fbb, &args));
            let args = wire::UpdatedArgs {
                op: 1,
                object,
                error,
            };
            let updated = wire::Updated::create(fbb, &args);
            (wire::PeerMessage::Updated, updated.as_union_value())
        });
        assert!(decode_peer(&body).is_err(), "{with_object} {with_error}");
    }
}

#[test]
fn a_delete_update_with_a_value_is_refused() {
    let body = crafted(|fbb| {
        let key = Some(wire::Key::create(fbb, &wire::KeyArgs::default()));
        let value = Some(fbb.create_vector(b"v"));
        let args = wire::UpdateArgs {
            key,
            value,
            delete: true,
            ..Default::default()
        };
        let update = wire::Update::create(fbb, &args);
        (wire::PeerMessage::Update, update.as_union_value())
    });
    assert!(matches!(decode_peer(&body), Err(DecodeError::Malformed(_))));
}

#[test]
fn impossible_tree_shapes_are_refused() {
    for (level_bits, levels) in [(0, 1), (1, 0), (13, 1), (8, 3)] {
        let body = crafted(|fbb| {
            let args = wire::AeRootReplyArgs {
                tag: Some(&wire::AeTag::new(1, 2, 3)),
                level_bits,
                levels,
                root: 0,
            };
            let reply = wire::AeRootReply::create(fbb, &args);
            (wire::PeerMessage::AeRootReply, reply.as_union_value())
        });
        assert_eq!(
            decode_peer(&body),
            Err(DecodeError::Invariant(CoreError::InvalidTreeShape {
                level_bits,
                levels
            }))
        );
    }
}

/// A ring of `partitions` partitions, with members `ids` and owner indexes `owners`.
fn ring_table(
    fbb: &mut FlatBufferBuilder<'static>,
    partitions: u32,
    ids: &[u64],
    owners: &[u32],
) -> WIPOffset<wire::Ring<'static>> {
    let members: Vec<_> = ids
        .iter()
        .map(|&id| {
            let args = wire::MemberArgs {
                id,
                weight: 1,
                ..Default::default()
            };
            wire::Member::create(fbb, &args)
        })
        .collect();
    let members = Some(fbb.create_vector(&members));
    let owners = Some(fbb.create_vector(owners));
    let args = wire::RingArgs {
        partitions,
        version: 1,
        members,
        owners,
    };
    wire::Ring::create(fbb, &args)
}

fn ring_state_body(
    current: (u32, &[u64], &[u32]),
    next: Option<(u32, &[u64], &[u32])>,
    flipped: bool,
) -> Vec<u8> {
    crafted(|fbb| {
        let current = Some(ring_table(fbb, current.0, current.1, current.2));
        let next = next.map(|(q, ids, owners)| ring_table(fbb, q, ids, owners));
        let args = wire::RingStateArgs {
            epoch: 2,
            current,
            next,
            flipped,
            removed: None,
        };
        let state = wire::RingState::create(fbb, &args);
        (wire::PeerMessage::RingState, state.as_union_value())
    })
}

#[test]
fn broken_rings_are_refused() {
    // Unsorted members are fine on the wire: owners name them by position, and the ring sorts.
    let body = ring_state_body((2, &[5, 3], &[0, 1]), None, false);
    let Ok((_, PeerMessage::Ring(state))) = decode_peer(&body) else {
        panic!("a valid ring state");
    };
    assert_eq!(state.current().owners(), vec![NodeId(5), NodeId(3)]);

    let owner_out_of_range = ring_state_body((2, &[1, 2], &[0, 2]), None, false);
    assert!(matches!(
        decode_peer(&owner_out_of_range),
        Err(DecodeError::Malformed(_))
    ));
    let not_a_power_of_two = ring_state_body((3, &[1], &[0, 0, 0]), None, false);
    assert_eq!(
        decode_peer(&not_a_power_of_two),
        Err(DecodeError::Invariant(CoreError::InvalidPartitionCount(3)))
    );
    let short_owner_table = ring_state_body((4, &[1], &[0, 0]), None, false);
    assert!(is_invariant(decode_peer(&short_owner_table)));
    let duplicate_member = ring_state_body((1, &[1, 1], &[0]), None, false);
    assert!(is_invariant(decode_peer(&duplicate_member)));
    let no_members = ring_state_body((1, &[], &[]), None, false);
    assert!(is_invariant(decode_peer(&no_members)));
    let flipped_alone = ring_state_body((1, &[1], &[0]), None, true);
    assert!(matches!(
        decode_peer(&flipped_alone),
        Err(DecodeError::Malformed(_))
    ));
    let sizes_differ = ring_state_body((1, &[1], &[0]), Some((2, &[1], &[0, 0])), false);
    assert!(matches!(
        decode_peer(&sizes_differ),
        Err(DecodeError::Malformed(_))
    ));
}
