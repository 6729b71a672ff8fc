//! Every peer message, with every nested message variant and arbitrary contents within the
//! limits, survives encode → frame → decode unchanged (up to the one documented normalisation:
//! a `CoreError::Malformed` comes back with `MALFORMED_FROM_PEER` as its text), including many
//! frames pipelined through one encoder and one peer frame buffer.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use tessera_core::antientropy::{
    AeMessage, AeTag, ExchangeId, ListCursor, RefuseReason, SegmentEntry, TreeShape,
};
use tessera_core::constants::{
    AE_TREE_LEVEL_BITS_MAX, AE_TREE_SEGMENT_BITS_MAX, MEMBER_WEIGHT_MAX, REAP_KEYS_MAX,
};
use tessera_core::membership::{Digest, GossipMessage, MemberRecord, Status};
use tessera_core::node::{Key, PeerMessage, RingState};
use tessera_core::placement::{Member, Ring};
use tessera_core::quorum::RequestId;
use tessera_core::transfer::{AbortReason, TransferId, TransferMessage};
use tessera_core::{
    CoreError, Dot, NodeId, Object, PartitionCount, PartitionId, Sibling, Token, VersionVector,
};
use tessera_schema::{
    decode_peer, decode_peer_addressed, Encoder, FrameBuffer, FRAME_HEADER_BYTES,
    MALFORMED_FROM_PEER, PEER_FRAME_BYTES_MAX,
};

const CASES: u32 = 256;
const FAMILY_CASES: u32 = 128;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

/// Small ids collide often (sorted, unique lists get exercised); the extremes are included.
fn node() -> impl Strategy<Value = NodeId> {
    prop_oneof![0u64..8, Just(u64::MAX), any::<u64>()].prop_map(NodeId)
}

fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..4, Just(u64::MAX), 1..=u64::MAX]
}

fn key() -> impl Strategy<Value = Key> {
    (any::<u64>(), bytes()).prop_map(|(token, bytes)| Key {
        token: Token(token),
        bytes,
    })
}

fn version_vector() -> impl Strategy<Value = VersionVector> {
    btree_map(node(), counter(), 0..6).prop_map(|entries| {
        VersionVector::from_sorted_entries(entries.into_iter().collect()).expect("canonical")
    })
}

/// Siblings with unique dots (a map keyed by dot, hence sorted), a tombstone or a value (empty
/// values included), and a clock covering every dot plus more.
fn object() -> impl Strategy<Value = Object> {
    let value = prop::option::of(bytes());
    let siblings = btree_map((node(), counter()), (any::<u64>(), value), 0..4);
    (siblings, version_vector()).prop_map(|(siblings, extra): (BTreeMap<_, _>, _)| {
        let siblings: Vec<Sibling> = siblings
            .into_iter()
            .map(|((node, counter), (timestamp_ms, value))| Sibling {
                dot: Dot { node, counter },
                timestamp_ms,
                value,
            })
            .collect();
        let mut clock: VersionVector = siblings.iter().map(|s| s.dot).collect();
        clock.join(&extra);
        Object::from_parts(clock, siblings).expect("every dot is covered")
    })
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        proptest::string::string_regex(&format!("[a-z0-9:.]{{1,{max}}}")).expect("a valid regex"),
        "\\PC{0,8}".prop_filter("within the byte bound", move |s: &String| s.len() <= max),
    ]
}

fn core_error() -> impl Strategy<Value = CoreError> {
    let usize_any = any::<usize>();
    prop_oneof![
        prop::sample::select(vec![
            "version vector: entry count",
            "object: format tag",
            ""
        ])
        .prop_map(|what| CoreError::Malformed { what }),
        any::<u32>().prop_map(CoreError::InvalidPartitionCount),
        any::<u32>().prop_map(CoreError::InvalidShardCount),
        text(64).prop_map(|detail| CoreError::InvalidShardTable { detail }),
        (usize_any, usize_any).prop_map(|(count, max)| CoreError::TooManySiblings { count, max }),
        (usize_any, usize_any)
            .prop_map(|(count, max)| CoreError::TooManyClockEntries { count, max }),
        (usize_any, usize_any)
            .prop_map(|(size_bytes, max)| CoreError::ValueTooLarge { size_bytes, max }),
        node().prop_map(|node| CoreError::CounterExhausted { node }),
        (any::<u8>(), any::<u8>())
            .prop_map(|(level_bits, levels)| CoreError::InvalidTreeShape { level_bits, levels }),
        (usize_any, usize_any)
            .prop_map(|(queued, max)| CoreError::TransferQueueFull { queued, max }),
        text(64).prop_map(|detail| CoreError::InvalidMembers { detail }),
        (any::<u64>(), any::<u64>()).prop_map(|(coordinator, replica)| CoreError::StaleRing {
            coordinator,
            replica
        }),
        text(64).prop_map(|detail| CoreError::InvalidReplication { detail }),
    ]
}

fn replica_message() -> impl Strategy<Value = PeerMessage> {
    let op = any::<u64>().prop_map(RequestId);
    prop_oneof![
        (
            op.clone(),
            key(),
            version_vector(),
            prop::option::of(bytes()),
            any::<u64>(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(op, key, context, value, timestamp_ms, durable, ring)| {
                PeerMessage::Update {
                    op,
                    key,
                    context,
                    value,
                    timestamp_ms,
                    durable,
                    ring,
                }
            }),
        (op.clone(), prop::result::maybe_ok(object(), core_error()))
            .prop_map(|(op, result)| PeerMessage::Updated { op, result }),
        (
            op.clone(),
            key(),
            object(),
            prop::option::of(node()),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(op, key, object, hint_for, durable, ring)| {
                PeerMessage::Replicate {
                    op,
                    key,
                    object,
                    hint_for,
                    durable,
                    ring,
                }
            }),
        op.clone().prop_map(|op| PeerMessage::ReplicateAck { op }),
        (op.clone(), key()).prop_map(|(op, key)| PeerMessage::Read { op, key }),
        (op, object()).prop_map(|(op, object)| PeerMessage::ReadReply { op, object }),
        (key(), object()).prop_map(|(key, object)| PeerMessage::Repair { key, object }),
        vec(key(), 0..6).prop_map(|keys| PeerMessage::Fetch { keys }),
        (any::<u64>(), key(), object()).prop_map(|(delivery, key, object)| {
            PeerMessage::HintDeliver {
                delivery,
                key,
                object,
            }
        }),
        any::<u64>().prop_map(|delivery| PeerMessage::HintAck { delivery }),
    ]
}

fn member_record() -> impl Strategy<Value = MemberRecord> {
    let status = prop::sample::select(vec![
        Status::Joining,
        Status::Up,
        Status::Leaving,
        Status::Left,
    ]);
    (
        (node(), text(32), text(16), text(16), any::<u32>(), status),
        (any::<u64>(), any::<u64>(), any::<u64>(), text(32)),
    )
        .prop_map(
            |(
                (id, addr, rack, dc, weight, status),
                (generation, heartbeat, ring_version, client_addr),
            )| {
                MemberRecord {
                    id,
                    addr,
                    client_addr,
                    rack,
                    dc,
                    weight,
                    status,
                    generation,
                    heartbeat,
                    ring_version,
                }
            },
        )
}

fn gossip() -> impl Strategy<Value = GossipMessage> {
    let digest =
        (node(), any::<u64>(), any::<u64>()).prop_map(|(id, generation, heartbeat)| Digest {
            id,
            generation,
            heartbeat,
        });
    prop_oneof![
        vec(digest, 0..6).prop_map(|digests| GossipMessage::Syn { digests }),
        (vec(member_record(), 0..4), vec(node(), 0..6))
            .prop_map(|(records, requests)| GossipMessage::Ack { records, requests }),
        vec(member_record(), 0..4).prop_map(|records| GossipMessage::Ack2 { records }),
    ]
}

fn tree_shape() -> impl Strategy<Value = TreeShape> {
    (1..=AE_TREE_LEVEL_BITS_MAX)
        .prop_flat_map(|bits| (Just(bits), 1..=AE_TREE_SEGMENT_BITS_MAX / bits))
        .prop_map(|(bits, levels)| TreeShape::new(bits, levels).expect("a valid shape"))
}

fn ae() -> impl Strategy<Value = AeMessage> {
    let tag = (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(exchange, p, round)| AeTag {
        exchange: ExchangeId(exchange),
        partition: PartitionId(p),
        round,
    });
    let cursor = (any::<u64>(), bytes()).prop_map(|(token, key)| ListCursor {
        token: Token(token),
        key,
    });
    let entry = (any::<u64>(), bytes(), any::<u64>(), any::<u64>()).prop_map(
        |(token, key, version, weight)| SegmentEntry {
            token: Token(token),
            key,
            version,
            weight,
        },
    );
    let reason = prop::sample::select(vec![
        RefuseReason::NotOwned,
        RefuseReason::BadRequest,
        RefuseReason::Busy,
    ]);
    prop_oneof![
        tag.clone().prop_map(|tag| AeMessage::RootRequest { tag }),
        (tag.clone(), tree_shape(), any::<u64>())
            .prop_map(|(tag, shape, root)| AeMessage::RootReply { tag, shape, root }),
        (tag.clone(), any::<u8>(), vec(any::<u32>(), 0..8)).prop_map(|(tag, level, parents)| {
            AeMessage::BranchRequest {
                tag,
                level,
                parents,
            }
        }),
        (tag.clone(), any::<u8>(), vec(any::<u64>(), 0..8))
            .prop_map(|(tag, level, hashes)| AeMessage::BranchReply { tag, level, hashes }),
        (
            tag.clone(),
            vec(any::<u32>(), 0..8),
            prop::option::of(cursor)
        )
            .prop_map(|(tag, segments, after)| AeMessage::SegmentRequest {
                tag,
                segments,
                after
            }),
        (tag.clone(), vec(entry, 0..5), any::<bool>())
            .prop_map(|(tag, entries, more)| AeMessage::SegmentReply { tag, entries, more }),
        (tag, reason).prop_map(|(tag, reason)| AeMessage::Refused { tag, reason }),
    ]
}

fn transfer() -> impl Strategy<Value = TransferMessage> {
    let id = any::<u64>().prop_map(TransferId);
    let partition = any::<u32>().prop_map(PartitionId);
    let reason = prop::sample::select(vec![
        AbortReason::ReceiverBusy,
        AbortReason::UnknownTransfer,
        AbortReason::TimedOut,
        AbortReason::Cancelled,
    ]);
    prop_oneof![
        (id.clone(), partition.clone())
            .prop_map(|(id, partition)| TransferMessage::Offer { id, partition }),
        (
            id.clone(),
            partition,
            any::<u64>(),
            vec((bytes(), object()), 0..4),
            any::<bool>()
        )
            .prop_map(
                |(id, partition, seq, entries, last)| TransferMessage::Chunk {
                    id,
                    partition,
                    seq,
                    entries,
                    last
                }
            ),
        (id.clone(), any::<u64>()).prop_map(|(id, seq)| TransferMessage::Ack { id, seq }),
        (id, reason).prop_map(|(id, reason)| TransferMessage::Abort { id, reason }),
    ]
}

/// A ring of `partitions` partitions: 1 to 5 members with arbitrary locations and weights, and
/// arbitrary owners among them (not necessarily a balanced claim: the wire carries any ring).
fn ring(partitions: u32) -> impl Strategy<Value = Ring> {
    let location = (text(8), text(8), 1..=MEMBER_WEIGHT_MAX);
    let owners = vec(any::<prop::sample::Index>(), partitions as usize);
    (btree_map(node(), location, 1..6), owners, any::<u64>()).prop_map(
        move |(members, owners, version)| {
            let members: Vec<Member> = members
                .into_iter()
                .map(|(id, (rack, dc, weight))| Member::new(id, rack, dc, weight))
                .collect();
            let owners: Vec<NodeId> = owners.iter().map(|i| i.get(&members).id).collect();
            let partitions = PartitionCount::new(partitions).expect("a power of two");
            Ring::from_parts(partitions, version, members, &owners).expect("a valid ring")
        },
    )
}

fn ring_state() -> impl Strategy<Value = RingState> {
    (0u32..=6)
        .prop_flat_map(|bits| {
            let partitions = 1 << bits;
            let next = prop::option::of((ring(partitions), any::<bool>()));
            (any::<u32>(), ring(partitions), next, any::<u64>())
        })
        .prop_map(|(epoch, current, next, removed_mask)| {
            // During a change, some members of the current ring may be removed.
            let removed: Vec<NodeId> = match next {
                Some(_) => current
                    .members()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| removed_mask >> (i % 64) & 1 == 1)
                    .map(|(_, m)| m.id)
                    .collect(),
                None => Vec::new(),
            };
            RingState::from_parts(epoch, current, next)
                .expect("rings of one size")
                .with_removed(removed)
                .expect("removed members of the current ring during a change")
        })
}

/// A tombstone: one deleted sibling or several concurrent ones, under a clock that may cover
/// more.
fn tombstone() -> impl Strategy<Value = Object> {
    let siblings = btree_map((node(), counter()), any::<u64>(), 1..3);
    (siblings, version_vector()).prop_map(|(siblings, extra)| {
        let siblings: Vec<Sibling> = siblings
            .into_iter()
            .map(|((node, counter), timestamp_ms)| Sibling {
                dot: Dot { node, counter },
                timestamp_ms,
                value: None,
            })
            .collect();
        let mut clock: VersionVector = siblings.iter().map(|s| s.dot).collect();
        clock.join(&extra);
        Object::from_parts(clock, siblings).expect("every dot is covered")
    })
}

/// Reap entries are tombstones in practice; any object is carried alike.
fn reap_entries() -> impl Strategy<Value = Vec<(Key, Object)>> {
    vec((key(), prop_oneof![tombstone(), object()]), 0..5)
}

fn reap_message() -> impl Strategy<Value = PeerMessage> {
    let index = 0..REAP_KEYS_MAX as u32;
    prop_oneof![
        (any::<u64>(), any::<u64>(), reap_entries()).prop_map(|(round, ring, entries)| {
            PeerMessage::ReapCheck {
                round,
                ring,
                entries,
            }
        }),
        (any::<u64>(), vec(index, 0..8))
            .prop_map(|(round, vetoed)| PeerMessage::ReapVote { round, vetoed }),
        (any::<u64>(), reap_entries())
            .prop_map(|(ring, entries)| PeerMessage::Reap { ring, entries }),
    ]
}

fn peer_message() -> impl Strategy<Value = PeerMessage> {
    let moves = vec((any::<u32>().prop_map(PartitionId), node()), 0..8);
    prop_oneof![
        4 => replica_message(),
        1 => gossip().prop_map(PeerMessage::Gossip),
        2 => ae().prop_map(PeerMessage::Ae),
        1 => transfer().prop_map(PeerMessage::Transfer),
        1 => ring_state().prop_map(|state| PeerMessage::Ring(Box::new(state))),
        1 => (any::<u64>(), moves).prop_map(|(ring, moves)| PeerMessage::MovesDone { ring, moves }),
        1 => vec(node(), 0..8).prop_map(|nodes| PeerMessage::Remove { nodes }),
        1 => reap_message(),
    ]
}

/// What a message decodes to: the same, with a `Malformed` error's text replaced.
fn normalized(mut message: PeerMessage) -> PeerMessage {
    if let PeerMessage::Updated {
        result: Err(CoreError::Malformed { what }),
        ..
    } = &mut message
    {
        *what = MALFORMED_FROM_PEER;
    }
    message
}

fn encode(from: NodeId, message: &PeerMessage) -> Vec<u8> {
    let mut wire = Vec::new();
    Encoder::new().encode_peer(from, message, &mut wire);
    wire
}

/// Strips and checks the length header of the single frame in `wire`.
fn body_of(wire: &[u8]) -> &[u8] {
    let (header, body) = wire.split_at(FRAME_HEADER_BYTES);
    assert_eq!(
        u32::from_le_bytes(header.try_into().expect("4-byte header")) as usize,
        body.len()
    );
    body
}

fn assert_round_trips(from: NodeId, message: PeerMessage) -> Result<(), TestCaseError> {
    let wire = encode(from, &message);
    prop_assert_eq!(decode_peer(body_of(&wire)), Ok((from, normalized(message))));
    Ok(())
}

// One property per family, so that every nested variant is drawn often, then a mix.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(FAMILY_CASES))]

    #[test]
    fn replica_messages_round_trip(from in node(), message in replica_message()) {
        assert_round_trips(from, message)?;
    }

    #[test]
    fn core_errors_round_trip(op: u64, error in core_error()) {
        let message = PeerMessage::Updated { op: RequestId(op), result: Err(error) };
        assert_round_trips(NodeId(op), message)?;
    }

    #[test]
    fn gossip_messages_round_trip(from in node(), message in gossip()) {
        assert_round_trips(from, PeerMessage::Gossip(message))?;
    }

    #[test]
    fn ae_messages_round_trip(from in node(), message in ae()) {
        assert_round_trips(from, PeerMessage::Ae(message))?;
    }

    #[test]
    fn transfer_messages_round_trip(from in node(), message in transfer()) {
        assert_round_trips(from, PeerMessage::Transfer(message))?;
    }

    #[test]
    fn ring_states_round_trip(from in node(), state in ring_state()) {
        assert_round_trips(from, PeerMessage::Ring(Box::new(state)))?;
    }

    #[test]
    fn reap_messages_round_trip(from in node(), message in reap_message()) {
        assert_round_trips(from, message)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn peer_message_round_trips(from in node(), message in peer_message()) {
        assert_round_trips(from, message)?;
    }

    /// A frame addressed to a node says so; an unaddressed one says nothing.
    #[test]
    fn addressed_frames_name_their_recipient(
        from in node(),
        to in (1u64..).prop_map(NodeId),
        message in peer_message(),
    ) {
        let mut wire = Vec::new();
        Encoder::new().encode_peer_to(from, to, &message, &mut wire);
        let expected = normalized(message.clone());
        prop_assert_eq!(
            decode_peer_addressed(body_of(&wire)),
            Ok((from, Some(to), expected.clone()))
        );
        let unaddressed = encode(from, &message);
        prop_assert_eq!(
            decode_peer_addressed(body_of(&unaddressed)),
            Ok((from, None, expected))
        );
    }

    /// Many frames from one encoder, read back through a peer `FrameBuffer` fed in random-sized
    /// pieces: the path of a real peer connection.
    #[test]
    fn pipelined_peer_frames_survive_arbitrary_splits(
        messages in vec((node(), peer_message()), 1..8),
        cuts in vec(1usize..128, 1..32),
    ) {
        let mut encoder = Encoder::new();
        let mut wire = Vec::new();
        for (from, message) in &messages {
            encoder.encode_peer(*from, message, &mut wire);
        }
        let mut frames = FrameBuffer::for_peers(PEER_FRAME_BYTES_MAX);
        let mut bodies = Vec::new();
        let mut rest = &wire[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*cut).min(rest.len()));
            frames.extend(piece);
            rest = tail;
            while let Some(body) = frames.next_frame().expect("valid framing") {
                bodies.push(body);
            }
        }
        prop_assert!(frames.is_empty());
        prop_assert_eq!(bodies.len(), messages.len());
        for ((from, message), body) in messages.iter().zip(&bodies) {
            prop_assert_eq!(decode_peer(body), Ok((*from, normalized(message.clone()))));
        }
    }

    /// A reused encoder produces the same bytes as a fresh one: no state leaks between messages
    /// (the table stack and the dot scratch are left empty).
    #[test]
    fn encoder_reuse_is_deterministic(first in peer_message(), second in peer_message()) {
        let mut reused = Encoder::new();
        reused.encode_peer(NodeId(1), &first, &mut Vec::new());
        let mut from_reused = Vec::new();
        reused.encode_peer(NodeId(2), &second, &mut from_reused);
        prop_assert_eq!(from_reused, encode(NodeId(2), &second));
    }
}

/// The corner cases the strategies reach only by chance, pinned.
#[test]
fn empty_values_deletes_and_tombstones_stay_distinct() {
    let sibling = |counter, value| Sibling {
        dot: Dot {
            node: NodeId(1),
            counter,
        },
        timestamp_ms: 0,
        value,
    };
    let siblings = vec![
        sibling(1, None),
        sibling(2, Some(vec![])),
        sibling(3, Some(vec![7])),
    ];
    let clock: VersionVector = siblings.iter().map(|s| s.dot).collect();
    let object = Object::from_parts(clock, siblings).expect("valid");
    let key = Key {
        token: Token(0),
        bytes: vec![],
    };
    let messages = [
        PeerMessage::ReadReply {
            op: RequestId(0),
            object: Object::new(),
        },
        PeerMessage::Repair {
            key: key.clone(),
            object,
        },
        PeerMessage::Replicate {
            op: RequestId(1),
            key: key.clone(),
            object: Object::new(),
            hint_for: Some(NodeId(0)),
            durable: false,
            ring: 0,
        },
    ];
    for value in [None, Some(vec![])] {
        let update = PeerMessage::Update {
            op: RequestId(0),
            key: key.clone(),
            context: VersionVector::new(),
            value,
            timestamp_ms: 0,
            durable: true,
            ring: 0,
        };
        assert_eq!(
            decode_peer(body_of(&encode(NodeId(0), &update))),
            Ok((NodeId(0), update))
        );
    }
    for message in messages {
        let wire = encode(NodeId(9), &message);
        assert_eq!(decode_peer(body_of(&wire)), Ok((NodeId(9), message)));
    }
}

/// A reap round's messages as core sends them: tombstone entries, a vote that vetoes nothing
/// and one that vetoes every entry, and a reap of what is left.
#[test]
fn reap_round_messages_round_trip() {
    let tombstone = |node, counter| {
        let dot = Dot {
            node: NodeId(node),
            counter,
        };
        let deleted = Sibling {
            dot,
            timestamp_ms: 1_000,
            value: None,
        };
        let clock: VersionVector = [dot].into_iter().collect();
        Object::from_parts(clock, vec![deleted]).expect("valid")
    };
    let entry = |token, bytes: &[u8], object| {
        let key = Key {
            token: Token(token),
            bytes: bytes.to_vec(),
        };
        (key, object)
    };
    let entries = vec![
        entry(1, b"a", tombstone(1, 3)),
        entry(2, b"", tombstone(u64::MAX, u64::MAX)),
        entry(u64::MAX, b"c", tombstone(2, 1)),
    ];
    let messages = [
        PeerMessage::ReapCheck {
            round: 1,
            ring: 4,
            entries: entries.clone(),
        },
        PeerMessage::ReapCheck {
            round: 2,
            ring: 4,
            entries: Vec::new(),
        },
        PeerMessage::ReapVote {
            round: 1,
            vetoed: Vec::new(),
        },
        PeerMessage::ReapVote {
            round: 1,
            vetoed: vec![0, 1, 2],
        },
        PeerMessage::Reap {
            ring: 4,
            entries: entries[1..].to_vec(),
        },
        PeerMessage::Reap {
            ring: 0,
            entries: Vec::new(),
        },
    ];
    for message in messages {
        let wire = encode(NodeId(5), &message);
        assert_eq!(decode_peer(body_of(&wire)), Ok((NodeId(5), message)));
    }
}

/// Rings as the claim builds them (balanced, many partitions), in every phase of a change.
#[test]
fn claimed_rings_round_trip_in_every_phase() {
    let members = |ids: std::ops::Range<u64>| -> Vec<Member> {
        ids.map(|id| Member::new(NodeId(id), format!("r{}", id % 3), "dc1", 1 + id as u32 % 4))
            .collect()
    };
    let partitions = PartitionCount::new(1024).expect("valid");
    let current = Ring::new(partitions, members(1..6)).expect("valid");
    let next = current.with_members(members(2..9)).expect("valid");
    let initial = RingState::initial(current);
    let pending = initial.propose(next);
    let flipped = pending.flip().expect("pending flips");
    let committed = flipped.commit().expect("flipped commits");
    for state in [initial, pending, flipped, committed] {
        let message = PeerMessage::Ring(Box::new(state));
        let wire = encode(NodeId(3), &message);
        assert_eq!(decode_peer(body_of(&wire)), Ok((NodeId(3), message)));
    }
}

/// Peer encoders live in per-core tasks and decoded messages cross shards by channel.
#[test]
fn peer_types_can_move_between_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<PeerMessage>();
}
