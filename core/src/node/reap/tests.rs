//! Reaping on a calm simulated cluster: tombstones leave every replica together, only when
//! every member answers, never over a copy the tombstone does not supersede, and a write after
//! a reap is kept.

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::ids::NodeId;
use crate::node::{ClientOp, Key, StorageOp};
use crate::placement::{Member, Ring};
use crate::quorum::{AckScope, QuorumError, QuorumOptions};
use crate::ring::PartitionCount;
use crate::sim::cluster::World;
use crate::sim::network::{NetFaults, Network};
use crate::sim::node_config;
use crate::sim::workload::{ClientRequest, Step, Workload, WorkloadKind};
use crate::tick::Tick;
use crate::version::{Object, VersionVector};

/// Grace period of the tests.
const GRACE_TICKS: u64 = 2_000;

/// Three nodes, three replicas per key, reaping every 50 ticks after a short grace.
fn world() -> World {
    let members: Vec<Member> = (1..=3)
        .map(|i| Member::new(NodeId(i), format!("rack-{i}"), "dc-1", 1))
        .collect();
    let ring = Ring::new(PartitionCount::new(16).unwrap(), members).unwrap();
    let configs = (1..=3)
        .map(|i| {
            let mut c = node_config(NodeId(i), None, false);
            c.tombstone_grace_ticks = GRACE_TICKS;
            c.reap_interval_ticks = 50;
            c
        })
        .collect();
    let mut world = World::new(
        Xoshiro256PlusPlus::seed_from_u64(11),
        ring,
        configs,
        Network::new(NetFaults::CALM),
        Workload::new(WorkloadKind::Set, 8),
        0,
    );
    world.run_until(Tick(3_000));
    world
}

/// Sends `op` to node `at` with r = w = `quorum`, strict, and waits for the answer.
fn request(
    world: &mut World,
    at: usize,
    op: ClientOp,
    quorum: usize,
) -> Result<Object, QuorumError> {
    let options = QuorumOptions {
        r: quorum,
        w: quorum,
        sloppy: false,
        durable: true,
        scope: AckScope::Any,
    };
    let step = Step::RegisterRead { key: 0 };
    let id = world.checker_request(at, ClientRequest { op, options, step });
    for _ in 0..500 {
        if let Some(Some(answer)) = world.checker_answers.get(&id) {
            return answer.clone();
        }
        let next = world.now + 10;
        world.run_until(next);
    }
    panic!("no answer to {id:?}");
}

/// Writes a value to every key, then deletes it with the write's context.
fn write_and_delete(world: &mut World, quorum: usize) -> Vec<Key> {
    let keys = world.workload.keys().to_vec();
    for key in &keys {
        let put = ClientOp::Put {
            key: key.clone(),
            context: VersionVector::new(),
            value: b"doomed".to_vec(),
        };
        let written = request(world, 0, put, quorum).expect("put");
        let delete = ClientOp::Delete {
            key: key.clone(),
            context: written.clock().clone(),
        };
        if let Err(e) = request(world, 1, delete, quorum) {
            for i in 0..3 {
                eprintln!("node {i}: {:?}", world.stored(i, key));
            }
            panic!("delete: {e:?} at {:?}", world.now);
        }
    }
    keys
}

fn reaped(world: &World) -> u64 {
    let nodes = world.slots.iter().filter_map(|s| s.node.as_ref());
    nodes.map(|n| n.stats().tombstones_reaped).sum()
}

/// Runs until `done` holds, checking every 100 ticks, for at most `ticks`.
fn run_until(world: &mut World, ticks: u64, done: impl Fn(&World) -> bool) -> bool {
    let end = world.now + ticks;
    while world.now < end {
        if done(world) {
            return true;
        }
        let next = world.now + 100;
        world.run_until(next);
    }
    done(world)
}

/// Merges `copies` into node `i`'s disk (synced) and restarts it, so that its Merkle tree is
/// rebuilt from them; anti-entropy stays off on it.
fn restart_holding(world: &mut World, i: usize, copies: Vec<(Key, Object)>) {
    let me = NodeId(i as u64 + 1);
    for (key, object) in copies {
        let lww = false;
        let merge = StorageOp::Merge { key, object, lww };
        world.slots[i].disk.apply(me, merge, true);
    }
    world.crash(i);
    world.start_node(i);
    world.slots[i].node.as_mut().unwrap().set_anti_entropy(0);
}

fn absent_everywhere(world: &World, key: &Key) -> bool {
    (0..3).all(|i| world.stored(i, key).is_empty())
}

#[test]
fn tombstones_leave_every_replica_and_a_later_write_is_kept() {
    let mut world = world();
    let keys = write_and_delete(&mut world, 3);
    for key in &keys {
        for i in 0..3 {
            let copy = world.stored(i, key);
            assert!(
                copy.is_deleted() && !copy.is_empty(),
                "node {i} lacks the tombstone"
            );
        }
    }
    assert_eq!(reaped(&world), 0, "nothing goes before the grace period");
    let all_gone = run_until(&mut world, 20_000, |w| {
        keys.iter().all(|k| absent_everywhere(w, k))
    });
    assert!(all_gone, "tombstones still stored after the grace period");
    assert_eq!(reaped(&world), 3 * keys.len() as u64);
    for p in 0..16 {
        let p = crate::ids::PartitionId(p);
        let roots: Vec<u64> = world
            .slots
            .iter()
            .map(|s| s.node.as_ref().unwrap().tree_root(p))
            .collect();
        assert!(
            roots.iter().all(|&r| r == roots[0]),
            "trees differ in {p:?}"
        );
    }
    // A blind write after the reap, through each node in turn, is read back everywhere.
    for (n, key) in keys.iter().enumerate() {
        let put = ClientOp::Put {
            key: key.clone(),
            context: VersionVector::new(),
            value: format!("back-{n}").into_bytes(),
        };
        request(&mut world, n % 3, put, 3).expect("put after the reap");
    }
    for (n, key) in keys.iter().enumerate() {
        let read = request(
            &mut world,
            (n + 1) % 3,
            ClientOp::Get { key: key.clone() },
            3,
        );
        let values: Vec<Vec<u8>> = read
            .expect("read")
            .live_values()
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(values, vec![format!("back-{n}").into_bytes()]);
    }
}

#[test]
fn a_member_down_keeps_every_tombstone_until_it_is_back() {
    let mut world = world();
    world.crash(2);
    let keys = write_and_delete(&mut world, 2);
    let end = world.now + 4 * GRACE_TICKS;
    world.run_until(end);
    assert_eq!(reaped(&world), 0, "reaped while a member was down");
    for key in &keys {
        assert!(!world.stored(0, key).is_empty());
    }
    world.start_node(2);
    let all_gone = run_until(&mut world, 30_000, |w| {
        keys.iter().all(|k| absent_everywhere(w, k))
    });
    assert!(
        all_gone,
        "tombstones still stored once every member was back"
    );
}

#[test]
fn a_copy_newer_than_the_tombstone_is_kept_and_spreads() {
    let mut world = world();
    let keys = write_and_delete(&mut world, 3);
    for slot in &mut world.slots {
        slot.node.as_mut().unwrap().set_anti_entropy(0);
    }
    // Node 2 holds a write made after the delete (as if it landed just before its vote):
    // written on its disk and recovered, so its tree knows it.
    let kept = keys[0].clone();
    let mut newer = world.stored(1, &kept);
    newer
        .update(
            &newer.clock().clone(),
            NodeId(2),
            world.now.0,
            Some(b"newer".to_vec()),
        )
        .unwrap();
    restart_holding(&mut world, 1, vec![(kept.clone(), newer)]);
    let others_gone = run_until(&mut world, 20_000, |w| {
        keys[1..].iter().all(|k| absent_everywhere(w, k))
    });
    assert!(others_gone, "the other tombstones were not reaped");
    assert!(
        world.stored(1, &kept).live_values().count() == 1,
        "the newer write was purged"
    );
    for i in [0, 2] {
        let copy = world.stored(i, &kept);
        assert!(
            copy.is_deleted() && !copy.is_empty(),
            "node {i} dropped a vetoed tombstone"
        );
    }
    for slot in &mut world.slots {
        slot.node.as_mut().unwrap().set_anti_entropy(100);
    }
    let spread = run_until(&mut world, 20_000, |w| {
        (0..3).all(|i| w.stored(i, &kept).live_values().eq([b"newer".as_slice()]))
    });
    assert!(spread, "anti-entropy did not spread the newer write");
}

#[test]
fn a_sweep_counts_the_grace_from_first_sight_and_forgets_what_went() {
    use super::ReapState;
    use crate::ids::Token;
    use std::ops::Bound;

    let key = |i: u64| Key {
        token: Token(i),
        bytes: vec![i as u8],
    };
    let tombstone = |writer: u64| {
        let mut o = Object::new();
        o.update(&VersionVector::new(), NodeId(writer), 0, None)
            .unwrap();
        o
    };
    let all = (Bound::Unbounded, Bound::Unbounded);
    let mut state = ReapState::new(Tick(0), 1, 100);
    let page = vec![(key(1), tombstone(1)), (key(2), tombstone(1))];
    assert!(state
        .note_page(Tick(0), all.clone(), page.clone())
        .is_empty());
    assert!(state
        .note_page(Tick(99), all.clone(), page.clone())
        .is_empty());
    // Key 2's tombstone changed at 99: its grace starts again.
    let changed = vec![(key(1), tombstone(1)), (key(2), tombstone(2))];
    let due = state.note_page(Tick(100), all.clone(), changed.clone());
    assert_eq!(due, vec![(key(1), tombstone(1))]);
    let due = state.note_page(Tick(200), all.clone(), changed);
    assert_eq!(due.len(), 2);
    // A key the page's span no longer holds is forgotten; one outside the span is kept.
    let span = (Bound::Included(key(2)), Bound::Unbounded);
    assert!(state.note_page(Tick(300), span, Vec::new()).is_empty());
    assert_eq!(state.seen.keys().cloned().collect::<Vec<_>>(), vec![key(1)]);
    // A value written over a tombstone is no candidate, and is forgotten too.
    let mut live = tombstone(1);
    live.update(&live.clock().clone(), NodeId(1), 0, Some(b"v".to_vec()))
        .unwrap();
    assert!(state
        .note_page(Tick(400), all, vec![(key(1), live)])
        .is_empty());
    assert!(state.seen.is_empty());
}

#[test]
fn an_older_copy_takes_the_tombstone_before_anything_is_reaped() {
    let mut world = world();
    let keys = write_and_delete(&mut world, 3);
    for slot in &mut world.slots {
        slot.node.as_mut().unwrap().set_anti_entropy(0);
    }
    // Node 3 holds the value as it was before the delete (a copy anti-entropy never fixed):
    // on its disk, and recovered, so its tree knows it.
    let stale = keys[0].clone();
    let tombstone = world.stored(0, &stale);
    let mut older = Object::new();
    older
        .update(
            &VersionVector::new(),
            NodeId(1),
            1,
            Some(b"doomed".to_vec()),
        )
        .unwrap();
    assert!(tombstone.supersedes(&older));
    world.slots[2].disk = crate::sim::disk::SimDisk::default();
    let mut copies: Vec<(Key, Object)> = keys[1..]
        .iter()
        .map(|k| (k.clone(), world.stored(0, k)))
        .collect();
    copies.push((stale.clone(), older));
    restart_holding(&mut world, 2, copies);
    // Node 3 first takes the tombstone (the round it vetoes gives it), and only then does the
    // key go; the tombstone never leaves node 1 while node 3 holds the value it deleted.
    let mut took_tombstone = false;
    for _ in 0..4_000 {
        let copy = world.stored(2, &stale);
        took_tombstone |= copy == tombstone;
        let holds_value = copy.live_values().any(|v| v == b"doomed");
        assert!(
            !holds_value || !world.stored(0, &stale).is_empty(),
            "the tombstone went while node 3 held the value it deleted"
        );
        if keys.iter().all(|k| absent_everywhere(&world, k)) {
            break;
        }
        let next = world.now + 10;
        world.run_until(next);
    }
    assert!(took_tombstone, "node 3 never took the tombstone");
    assert!(
        keys.iter().all(|k| absent_everywhere(&world, k)),
        "the stale key was never reaped"
    );
}

#[test]
fn a_voter_vetoes_tombstones_it_took_within_the_grace_period_and_all_after_a_start() {
    use super::ReapState;
    use crate::ids::Token;

    let key = |i: u64| Key {
        token: Token(i),
        bytes: vec![i as u8],
    };
    let mut state = ReapState::new(Tick(1_000), 1, 100);
    // Just started: it cannot know when its tombstones came.
    assert!(state.too_recent(Tick(1_099), &key(1)));
    assert!(!state.too_recent(Tick(1_100), &key(1)));
    state.tombstone_arrived(Tick(1_200), &key(1));
    assert!(state.too_recent(Tick(1_299), &key(1)));
    assert!(!state.too_recent(Tick(1_299), &key(2)));
    assert!(!state.too_recent(Tick(1_300), &key(1)));
    // A later arrival of the same key counts from then.
    state.tombstone_arrived(Tick(1_250), &key(2));
    state.tombstone_arrived(Tick(1_280), &key(2));
    assert!(state.too_recent(Tick(1_370), &key(2)));
    assert!(!state.too_recent(Tick(1_380), &key(2)));
    // Round ids differ between incarnations with the same round count.
    let mut other = ReapState::new(Tick(0), 2, 100);
    let mut again = ReapState::new(Tick(0), 1, 100);
    let (a, b) = (other.next_round_id(), again.next_round_id());
    assert_ne!(a, b);
    assert_ne!(again.next_round_id(), b);
}
