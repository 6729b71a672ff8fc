//! Bytes from a peer cannot make the peer decoder panic or over-allocate: random bytes, every
//! truncation and every single-byte flip of a valid frame of every message variant, crafted
//! buffers sharing one big table, unknown tags and enum values. (`peer_limits.rs` covers the
//! bounds and core's invariants.)

mod peer_common;

use flatbuffers::FlatBufferBuilder;
use peer_common::{body, crafted, key, records, tag, Decoded};
use proptest::collection::vec;
use proptest::prelude::*;
use tessera_core::antientropy::{AeMessage, ListCursor, RefuseReason, SegmentEntry, TreeShape};
use tessera_core::membership::{GossipMessage, MemberRecord};
use tessera_core::node::{PeerMessage, RingState};
use tessera_core::placement::{Member, Ring};
use tessera_core::quorum::RequestId;
use tessera_core::transfer::{AbortReason, TransferId, TransferMessage};
use tessera_core::{
    CoreError, Dot, NodeId, Object, PartitionCount, PartitionId, Sibling, Token, VersionVector,
};
use tessera_schema::generated::peer as wire;
use tessera_schema::{
    decode_peer, peer_frame_body_len, DecodeError, Encoder, FrameBuffer, FrameError,
    FRAME_HEADER_BYTES, PEER_FETCH_KEYS_MAX, PEER_FRAME_BYTES_MAX,
};

const CASES: u32 = 256;

/// An object with a value, an empty value and a tombstone, from two coordinators.
fn object() -> Object {
    let sibling = |node, counter, value: Option<&[u8]>| Sibling {
        dot: Dot {
            node: NodeId(node),
            counter,
        },
        timestamp_ms: 99,
        value: value.map(<[u8]>::to_vec),
    };
    let siblings = vec![
        sibling(1, 2, Some(b"v")),
        sibling(2, 1, None),
        sibling(2, 3, Some(b"")),
    ];
    let clock: VersionVector = siblings.iter().map(|s| s.dot).collect();
    Object::from_parts(clock, siblings).expect("valid")
}

fn ring(partitions: u32, members: u64) -> Ring {
    let members = (1..=members)
        .map(|id| Member::new(NodeId(id), "r1", "dc1", 1))
        .collect();
    Ring::new(PartitionCount::new(partitions).expect("valid"), members).expect("valid")
}

/// One small valid body of every message variant, as seeds for truncation and mutation.
fn sample_bodies() -> Vec<Vec<u8>> {
    let op = RequestId(11);
    let context: VersionVector = [Dot {
        node: NodeId(1),
        counter: 2,
    }]
    .into_iter()
    .collect();
    let state = RingState::initial(ring(4, 2)).propose(ring(4, 3));
    let messages = [
        PeerMessage::Update {
            op,
            key: key(b"k"),
            context,
            value: Some(b"value".to_vec()),
            timestamp_ms: 5,
            durable: true,
            ring: 1 << 32,
        },
        PeerMessage::Updated {
            op,
            result: Ok(object()),
        },
        PeerMessage::Updated {
            op,
            result: Err(CoreError::StaleRing {
                coordinator: 1,
                replica: 2,
            }),
        },
        PeerMessage::Replicate {
            op,
            key: key(b"k"),
            object: object(),
            hint_for: Some(NodeId(3)),
            durable: true,
            ring: 1,
        },
        PeerMessage::ReplicateAck { op },
        PeerMessage::Read { op, key: key(b"k") },
        PeerMessage::ReadReply {
            op,
            object: object(),
        },
        PeerMessage::Repair {
            key: key(b"k"),
            object: object(),
        },
        PeerMessage::Fetch {
            keys: vec![key(b"a"), key(b"")],
        },
        PeerMessage::HintDeliver {
            delivery: 1,
            key: key(b"k"),
            object: object(),
        },
        PeerMessage::HintAck { delivery: 1 },
        PeerMessage::Gossip(GossipMessage::Syn {
            digests: records(2).iter().map(MemberRecord::digest).collect(),
        }),
        PeerMessage::Gossip(GossipMessage::Ack {
            records: records(1),
            requests: vec![NodeId(2)],
        }),
        PeerMessage::Gossip(GossipMessage::Ack2 {
            records: records(2),
        }),
        PeerMessage::Ae(AeMessage::RootRequest { tag: tag() }),
        PeerMessage::Ae(AeMessage::RootReply {
            tag: tag(),
            shape: TreeShape::DEFAULT,
            root: 8,
        }),
        PeerMessage::Ae(AeMessage::BranchRequest {
            tag: tag(),
            level: 1,
            parents: vec![0, 3],
        }),
        PeerMessage::Ae(AeMessage::BranchReply {
            tag: tag(),
            level: 1,
            hashes: vec![1, 2, 3],
        }),
        PeerMessage::Ae(AeMessage::SegmentRequest {
            tag: tag(),
            segments: vec![1, 2],
            after: Some(ListCursor {
                token: Token(9),
                key: b"c".to_vec(),
            }),
        }),
        PeerMessage::Ae(AeMessage::SegmentReply {
            tag: tag(),
            entries: vec![SegmentEntry {
                token: Token(1),
                key: b"e".to_vec(),
                version: 2,
                weight: 2,
            }],
            more: true,
        }),
        PeerMessage::Ae(AeMessage::Refused {
            tag: tag(),
            reason: RefuseReason::Busy,
        }),
        PeerMessage::Transfer(TransferMessage::Offer {
            id: TransferId(1),
            partition: PartitionId(2),
        }),
        PeerMessage::Transfer(TransferMessage::Chunk {
            id: TransferId(1),
            partition: PartitionId(2),
            seq: 1,
            entries: vec![(b"k".to_vec(), object())],
            last: true,
        }),
        PeerMessage::Transfer(TransferMessage::Ack {
            id: TransferId(1),
            seq: 1,
        }),
        PeerMessage::Transfer(TransferMessage::Abort {
            id: TransferId(1),
            reason: AbortReason::TimedOut,
        }),
        PeerMessage::Ring(Box::new(state)),
        PeerMessage::MovesDone {
            ring: 3,
            moves: vec![(PartitionId(1), NodeId(2))],
        },
        PeerMessage::Remove {
            nodes: vec![NodeId(2), NodeId(5)],
        },
        PeerMessage::ReapCheck {
            round: 1,
            ring: 3,
            entries: vec![(key(b"k"), object())],
        },
        PeerMessage::ReapVote {
            round: 1,
            vetoed: vec![0, 2],
        },
        PeerMessage::Reap {
            ring: 3,
            entries: vec![(key(b"k"), object())],
        },
    ];
    messages.iter().map(body).collect()
}

/// Decoding must not panic; when it succeeds, what it produced is a message this side can
/// encode, and that encoding decodes to the same message.
fn decode_is_total(body: &[u8]) {
    if let Ok((from, message)) = decode_peer(body) {
        let mut again = Vec::new();
        Encoder::new().encode_peer(from, &message, &mut again);
        assert_eq!(
            decode_peer(&again[FRAME_HEADER_BYTES..]),
            Ok((from, message))
        );
    }
}

#[test]
fn every_truncation_is_handled() {
    for body in sample_bodies() {
        for len in 0..body.len() {
            decode_is_total(&body[..len]);
        }
    }
}

#[test]
fn every_single_byte_flip_is_handled() {
    for mut body in sample_bodies() {
        for at in 0..body.len() {
            for flip in [0xFF, 0x01, 0x80] {
                body[at] ^= flip;
                decode_is_total(&body);
                body[at] ^= flip;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn random_bytes_never_panic(body in vec(any::<u8>(), 0..512)) {
        decode_is_total(&body);
    }

    /// Several flipped bytes and a truncation at once.
    #[test]
    fn mutated_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bodies = sample_bodies();
        let mut body = bodies.swap_remove(seed.index(bodies.len()));
        for (at, byte) in flips {
            let at = at.index(body.len());
            body[at] ^= byte;
        }
        if let Some(at) = truncate {
            body.truncate(at.index(body.len()));
        }
        decode_is_total(&body);
    }
}

#[test]
fn peer_frame_headers_use_the_peer_ceiling() {
    let over = u32::try_from(PEER_FRAME_BYTES_MAX + 1).expect("fits");
    assert_eq!(
        peer_frame_body_len(over.to_le_bytes(), usize::MAX),
        Err(FrameError::TooLarge {
            len: PEER_FRAME_BYTES_MAX + 1,
            limit: PEER_FRAME_BYTES_MAX
        })
    );
    let at = u32::try_from(PEER_FRAME_BYTES_MAX).expect("fits");
    assert_eq!(
        peer_frame_body_len(at.to_le_bytes(), usize::MAX),
        Ok(PEER_FRAME_BYTES_MAX)
    );
    let mut frames = FrameBuffer::for_peers(usize::MAX);
    assert_eq!(frames.limit(), PEER_FRAME_BYTES_MAX);
    frames.extend(&over.to_le_bytes());
    assert!(matches!(
        frames.next_frame(),
        Err(FrameError::TooLarge { .. })
    ));
}

/// A small buffer whose fetch keys all point at one key holding 64 KiB would decode into
/// gigabytes; the verifier's apparent-size budget refuses it first.
#[test]
fn shared_offsets_cannot_amplify_memory() {
    let body = crafted(|fbb| {
        let bytes = fbb.create_vector(&vec![0xAB_u8; 64 << 10]);
        let args = wire::KeyArgs {
            token: 0,
            bytes: Some(bytes),
        };
        let key = wire::Key::create(fbb, &args);
        let keys = fbb.create_vector(&vec![key; PEER_FETCH_KEYS_MAX]);
        let fetch = wire::Fetch::create(fbb, &wire::FetchArgs { keys: Some(keys) });
        (wire::PeerMessage::Fetch, fetch.as_union_value())
    });
    assert!(body.len() < 128 << 10, "small: {}", body.len());
    assert!(matches!(
        decode_peer(&body),
        Err(DecodeError::Invalid(
            flatbuffers::InvalidFlatbuffer::ApparentSizeTooLarge
        ))
    ));
}

#[test]
fn unknown_and_missing_messages_are_refused() {
    let body = crafted(|fbb| {
        let ack = wire::HintAck::create(fbb, &wire::HintAckArgs { delivery: 1 });
        (wire::PeerMessage(200), ack.as_union_value())
    });
    assert_eq!(decode_peer(&body), Err(DecodeError::UnknownMessage));

    let mut fbb = FlatBufferBuilder::new();
    let frame = wire::PeerFrame::create(&mut fbb, &wire::PeerFrameArgs::default());
    fbb.finish_minimal(frame);
    assert_eq!(
        decode_peer(fbb.finished_data()),
        Err(DecodeError::MissingField("PeerFrame.message"))
    );

    let body = crafted(|fbb| {
        let read = wire::Read::create(fbb, &wire::ReadArgs { op: 1, key: None });
        (wire::PeerMessage::Read, read.as_union_value())
    });
    assert_eq!(
        decode_peer(&body),
        Err(DecodeError::MissingField("Read.key"))
    );
}

fn unknown_enum(field: &'static str, value: u32) -> Decoded {
    Err(DecodeError::UnknownEnumValue { field, value })
}

#[test]
fn unknown_enum_values_are_refused() {
    for code in [0u8, 5, u8::MAX] {
        let body = crafted(|fbb| {
            let args = wire::TransferAbortArgs {
                id: 1,
                reason: wire::AbortReason(code),
            };
            let abort = wire::TransferAbort::create(fbb, &args);
            (wire::PeerMessage::TransferAbort, abort.as_union_value())
        });
        let expected = unknown_enum("TransferAbort.reason", u32::from(code));
        assert_eq!(decode_peer(&body), expected);
    }

    for reason in [0u8, 4] {
        let body = crafted(|fbb| {
            let args = wire::AeRefusedArgs {
                tag: Some(&wire::AeTag::new(1, 2, 3)),
                reason: wire::AeRefuseReason(reason),
            };
            let refused = wire::AeRefused::create(fbb, &args);
            (wire::PeerMessage::AeRefused, refused.as_union_value())
        });
        let expected = unknown_enum("AeRefused.reason", u32::from(reason));
        assert_eq!(decode_peer(&body), expected);
    }

    let body = crafted(|fbb| {
        let args = wire::MemberRecordArgs {
            status: wire::MemberStatus(9),
            ..Default::default()
        };
        let record = wire::MemberRecord::create(fbb, &args);
        let records = fbb.create_vector(&[record]);
        let args = wire::GossipAck2Args {
            records: Some(records),
        };
        let ack2 = wire::GossipAck2::create(fbb, &args);
        (wire::PeerMessage::GossipAck2, ack2.as_union_value())
    });
    assert_eq!(decode_peer(&body), unknown_enum("MemberRecord.status", 9));

    for code in [0u16, 14, 999] {
        let body = crafted(|fbb| {
            let args = wire::ErrorArgs {
                code: wire::ErrorCode(code),
                ..Default::default()
            };
            let error = Some(wire::Error::create(fbb, &args));
            let args = wire::UpdatedArgs {
                op: 1,
                object: None,
                error,
            };
            let updated = wire::Updated::create(fbb, &args);
            (wire::PeerMessage::Updated, updated.as_union_value())
        });
        assert_eq!(
            decode_peer(&body),
            unknown_enum("Error.code", u32::from(code))
        );
    }
}
