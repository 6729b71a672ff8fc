//! One [`Gossip`] driven by hand: the protocol's answers, and its handling of bad input.

use proptest::prelude::*;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{record, INTERVAL};
use crate::constants::{GOSSIP_RECORDS_PER_MESSAGE_MAX, MEMBERS_MAX};
use crate::ids::NodeId;
use crate::membership::*;
use crate::tick::Tick;

fn g(id: u64) -> Gossip {
    Gossip::new(record(id, 1), vec![NodeId(0)], GossipConfig::default())
}

fn deliver(g: &mut Gossip, now: u64, from: u64, msg: GossipMessage) -> Vec<GossipAction> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut out = Vec::new();
    g.step(
        Tick(now),
        GossipInput::Message {
            from: NodeId(from),
            msg,
        },
        &mut rng,
        &mut out,
    );
    out
}

#[test]
fn a_lone_node_contacts_its_seed_and_a_seedless_one_waits() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut node = g(1);
    let mut out = Vec::new();
    node.step(Tick(0), GossipInput::Tick, &mut rng, &mut out);
    assert_eq!(out.len(), 1);
    let GossipAction::Send { to, msg } = &out[0];
    assert_eq!(*to, NodeId(0));
    assert_eq!(
        *msg,
        GossipMessage::Syn {
            digests: vec![node.me().digest()]
        }
    );
    assert_eq!(node.me().heartbeat, 1);
    // Not due again before the interval.
    out.clear();
    node.step(Tick(INTERVAL - 1), GossipInput::Tick, &mut rng, &mut out);
    assert!(out.is_empty());
    assert_eq!(node.next_round_at(), Some(Tick(INTERVAL)));
    // The seed itself, alone, has nobody to talk to.
    let mut seed = g(0);
    seed.step(Tick(0), GossipInput::Tick, &mut rng, &mut out);
    assert!(out.is_empty());
    assert!(seed.is_alive(NodeId(0), Tick(0)));
    assert!(!seed.is_alive(NodeId(9), Tick(0)));
    assert_eq!(seed.phi(NodeId(9), Tick(0)), f64::INFINITY);
}

#[test]
fn records_about_me_are_ignored() {
    let mut node = g(1);
    let mut forged = record(1, 99);
    forged.status = Status::Left;
    forged.addr = "evil:1".into();
    let out = deliver(
        &mut node,
        5,
        2,
        GossipMessage::Ack2 {
            records: vec![forged.clone()],
        },
    );
    assert!(out.is_empty());
    assert_eq!(node.me(), &record(1, 1));
    assert_eq!(
        node.records().count(),
        1,
        "a copy of me entered the peer table"
    );
    // A digest claiming a newer me is not requested; an older one gets my record.
    let out = deliver(
        &mut node,
        5,
        2,
        GossipMessage::Syn {
            digests: vec![forged.digest()],
        },
    );
    assert!(out.is_empty(), "{out:?}");
    let mut stale = record(1, 0);
    stale.heartbeat = 5;
    let out = deliver(
        &mut node,
        5,
        2,
        GossipMessage::Syn {
            digests: vec![stale.digest()],
        },
    );
    assert_eq!(
        out,
        vec![GossipAction::Send {
            to: NodeId(2),
            msg: GossipMessage::Ack {
                records: vec![record(1, 1)],
                requests: vec![]
            }
        }]
    );
}

#[test]
fn bad_messages_are_ignored_whole() {
    let mut node = g(1);
    let huge = GossipMessage::Ack2 {
        records: (2..2 + GOSSIP_RECORDS_PER_MESSAGE_MAX as u64 + 1)
            .map(|i| record(i, 1))
            .collect(),
    };
    assert!(deliver(&mut node, 0, 2, huge).is_empty());
    assert_eq!(node.records().count(), 1);
    let mut long = record(3, 1);
    long.addr = "a".repeat(100_000);
    deliver(
        &mut node,
        0,
        2,
        GossipMessage::Ack2 {
            records: vec![long, record(4, 1)],
        },
    );
    assert_eq!(node.records().count(), 1);
    // From myself: ignored.
    deliver(
        &mut node,
        0,
        1,
        GossipMessage::Ack2 {
            records: vec![record(4, 1)],
        },
    );
    assert_eq!(node.records().count(), 1);
    // A huge request list: ignored; duplicates in a fine one answered once.
    let out = deliver(
        &mut node,
        0,
        2,
        GossipMessage::Ack {
            records: vec![],
            requests: vec![NodeId(1); MEMBERS_MAX + 1],
        },
    );
    assert!(out.is_empty());
    let out = deliver(
        &mut node,
        0,
        2,
        GossipMessage::Ack {
            records: vec![],
            requests: vec![NodeId(1); 10],
        },
    );
    assert_eq!(
        out,
        vec![GossipAction::Send {
            to: NodeId(2),
            msg: GossipMessage::Ack2 {
                records: vec![record(1, 1)]
            }
        }]
    );
}

#[test]
fn the_table_is_bounded_and_left_nodes_make_room() {
    let mut node = g(0);
    let mut next = 1;
    while next < 3 * MEMBERS_MAX as u64 {
        let records = (next..next + GOSSIP_RECORDS_PER_MESSAGE_MAX as u64)
            .map(|i| {
                let mut r = record(i, 1);
                if i == 7 {
                    r.status = Status::Left;
                }
                r
            })
            .collect();
        deliver(&mut node, 0, 1, GossipMessage::Ack2 { records });
        next += GOSSIP_RECORDS_PER_MESSAGE_MAX as u64;
    }
    assert_eq!(node.records().count(), MEMBERS_MAX);
    // Node 7 had left: a newcomer took its place.
    assert!(node.record(NodeId(7)).is_none());
    // Answers stay within bounds however large the table.
    let out = deliver(&mut node, 0, 5000, GossipMessage::Syn { digests: vec![] });
    let GossipAction::Send { msg, .. } = &out[0];
    assert!(msg.is_within_bounds());
}

#[test]
fn a_new_generation_resets_the_detector() {
    let mut node = g(0);
    deliver(
        &mut node,
        0,
        2,
        GossipMessage::Ack2 {
            records: vec![record(2, 1)],
        },
    );
    assert!(node.is_alive(NodeId(2), Tick(0)));
    assert!(!node.is_alive(NodeId(2), Tick(60_000)));
    // Same generation, older heartbeat: not an arrival.
    deliver(
        &mut node,
        60_000,
        3,
        GossipMessage::Ack2 {
            records: vec![record(2, 1)],
        },
    );
    assert!(!node.is_alive(NodeId(2), Tick(60_000)));
    // New generation: up at once.
    deliver(
        &mut node,
        60_000,
        3,
        GossipMessage::Ack2 {
            records: vec![record(2, 2)],
        },
    );
    assert!(node.is_alive(NodeId(2), Tick(60_000)));
    assert!(node.phi(NodeId(2), Tick(60_000)) < 1.0);
}

fn arb_record() -> impl Strategy<Value = MemberRecord> {
    (1u64..6, 1u64..4, 0u64..5).prop_map(|(id, generation, heartbeat)| {
        let mut r = record(id, generation);
        r.heartbeat = heartbeat;
        // Content is a function of the version, as it is when only the owner writes.
        r.ring_version = generation * 10 + heartbeat;
        r
    })
}

proptest! {
    /// Keeping the newer record is a join: the table is the same whatever order, grouping or
    /// duplication the records arrive in.
    #[test]
    fn merging_is_order_independent(
        records in proptest::collection::vec(arb_record(), 0..40),
        split in 0usize..40,
    ) {
        let mut forward = g(0);
        let mut backward = g(0);
        let split = split.min(records.len());
        for chunk in records.chunks(7) {
            deliver(&mut forward, 0, 9, GossipMessage::Ack2 { records: chunk.to_vec() });
        }
        let mut reversed = records.clone();
        reversed.reverse();
        reversed.extend_from_slice(&records[..split]);
        for r in reversed {
            deliver(&mut backward, 0, 9, GossipMessage::Ack2 { records: vec![r] });
        }
        let a: Vec<MemberRecord> = forward.records().cloned().collect();
        let b: Vec<MemberRecord> = backward.records().cloned().collect();
        prop_assert_eq!(&a, &b);
        for r in &records {
            prop_assert!(forward.record(r.id).is_some_and(|kept| kept.version() >= r.version()));
        }
    }
}
