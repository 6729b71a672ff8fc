//! Ring changes end to end on a calm simulated cluster: the data is on the new replicas before
//! any node reads from them, and the departed node ends `Left`. (The simulator's seeds run the
//! same changes under faults; these tests pin the order of events without them.)

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::ids::NodeId;
use crate::membership::Status;
use crate::placement::{Member, Replication, Ring};
use crate::ring::PartitionCount;
use crate::sim::cluster::World;
use crate::sim::network::{NetFaults, Network};
use crate::sim::node_config;
use crate::sim::workload::{Workload, WorkloadKind};
use crate::tick::Tick;

use super::RingPhase;

/// A calm world: `members` nodes in the first ring, `spares` more that can join.
fn world(members: u64, spares: u64) -> World {
    let ring_members: Vec<Member> = (1..=members)
        .map(|i| Member::new(NodeId(i), format!("rack-{}", i % 2), "dc-1", 1))
        .collect();
    let ring = Ring::new(PartitionCount::new(16).unwrap(), ring_members).unwrap();
    let configs = (1..=members + spares)
        .map(|i| node_config(NodeId(i), None, false))
        .collect();
    World::new(
        Xoshiro256PlusPlus::seed_from_u64(7),
        ring,
        configs,
        Network::new(NetFaults::CALM),
        Workload::new(WorkloadKind::Set, 8),
        4,
    )
}

/// Writes for a while, then stops the clients and lets every write land.
fn write_then_settle(world: &mut World) {
    world.run_until(Tick(2_000));
    world.set_clients_active(true);
    world.run_until(Tick(6_000));
    world.set_clients_active(false);
    world.run_until(Tick(8_000));
    for slot in &mut world.slots {
        if let Some(node) = slot.node.as_mut() {
            node.set_anti_entropy(0); // only transfers may move data from here on
        }
    }
}

/// Steps until a node first reads from the next ring; returns that ring state.
fn run_until_flipped(world: &mut World) -> super::RingState {
    for _ in 0..2_000 {
        let flipped = world
            .slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .find(|n| n.ring_state().phase() == RingPhase::Flipped);
        if let Some(node) = flipped {
            return node.ring_state().clone();
        }
        let next = world.now + 10;
        world.run_until(next);
    }
    panic!("no node ever flipped");
}

/// Every key's copy on each node that gains it equals the copy on the replica it replaces.
fn assert_moved(world: &World, state: &super::RingState) {
    let rep = Replication::uniform(3);
    let plan = state.plan(&rep);
    assert!(!plan.moves.is_empty(), "the change moves nothing");
    let partitions = state.current().partitions();
    let mut checked = 0;
    for key in world.workload.keys() {
        let p = partitions.partition_of(key.token);
        for m in plan.moves.iter().filter(|m| m.partition == p) {
            let sources = state.sources_of(m, &plan);
            assert_eq!(sources.len(), 1, "nothing was removed: one source per move");
            let source = sources[0];
            let had = world.stored((source.0 - 1) as usize, key);
            let has = world.stored((m.to.0 - 1) as usize, key);
            assert!(!had.is_empty(), "{source} held no copy of the key");
            assert_eq!(has, had, "{} lacks {source}'s copy at the flip", m.to);
            checked += 1;
        }
    }
    assert!(checked > 0, "no written key was in a moved partition");
}

#[test]
fn a_joining_node_holds_its_partitions_before_anyone_reads_from_it() {
    let mut world = world(3, 1);
    write_then_settle(&mut world);
    world.start_node(3);
    let flipped = run_until_flipped(&mut world);
    assert!(flipped.next().unwrap().member(NodeId(4)).is_some());
    assert_moved(&world, &flipped);
    let until = world.now + 10_000;
    world.run_until(until);
    let settled = world.settled_ring().expect("one stable ring everywhere");
    assert_eq!(settled.current().members().len(), 4);
    let joiner = world.slots[3].node.as_ref().unwrap();
    assert_eq!(joiner.status(), Status::Up);
    assert!(
        joiner.stats().moves_completed == 0,
        "the joiner sends nothing"
    );
}

#[test]
fn a_leaving_node_streams_its_partitions_out_and_ends_left() {
    let mut world = world(4, 0);
    write_then_settle(&mut world);
    world.leave(1);
    let flipped = run_until_flipped(&mut world);
    assert!(flipped.next().unwrap().member(NodeId(2)).is_none());
    assert_moved(&world, &flipped);
    let until = world.now + 10_000;
    world.run_until(until);
    let settled = world.settled_ring().expect("one stable ring everywhere");
    assert_eq!(settled.current().members().len(), 3);
    let leaver = world.slots[1].node.as_ref().unwrap();
    assert_eq!(leaver.status(), Status::Left);
    assert!(leaver.stats().moves_completed > 0);
    // A node that left coordinates nothing: its view of the ring may go stale.
    assert!(settled.current().member(NodeId(2)).is_none());
}

/// The one stable ring every running node holds, if they agree.
fn agreed_stable_ring(world: &World) -> Option<super::RingState> {
    let mut states = world
        .slots
        .iter()
        .filter_map(|s| s.node.as_ref())
        .filter(|n| n.status() != Status::Left)
        .map(|n| n.ring_state());
    let first = states.next()?;
    let same = states.all(|s| s.version() == first.version());
    (same && first.phase() == RingPhase::Stable).then(|| first.clone())
}

/// Steps (at most 30,000 ticks) until every running node holds one stable ring without node 2
/// and, with `joined`, with that node; returns it, or `None` if that never happened.
fn settle_without_node_2(world: &mut World, joined: Option<NodeId>) -> Option<super::RingState> {
    for _ in 0..3_000 {
        let next = world.now + 10;
        world.run_until(next);
        let settled = agreed_stable_ring(world)
            .filter(|s| s.current().member(NodeId(2)).is_none())
            .filter(|s| joined.is_none_or(|j| s.current().member(j).is_some()));
        if settled.is_some() {
            return settled;
        }
    }
    None
}

/// Crashes node 2 for good and runs long enough for every peer to see it down.
fn lose_node_2(world: &mut World) {
    world.crash(1);
    let until = world.now + 3_000;
    world.run_until(until);
}

/// The operator asks node 1 to remove node 2.
fn remove_node_2(world: &mut World) {
    let now = world.now;
    let node1 = world.slots[0].node.as_mut().unwrap();
    node1.remove(now, NodeId(2)).unwrap();
}

#[test]
fn a_dead_node_removed_by_the_operator_is_replaced_from_the_surviving_replicas() {
    // Node 2's disk is lost: it never comes back under its id. Node 5 (its machine with a new
    // disk, hence a new id) joins, and the operator removes node 2.
    let mut world = world(4, 1);
    write_then_settle(&mut world);
    lose_node_2(&mut world);
    let now = world.now;
    let node1 = world.slots[0].node.as_mut().unwrap();
    assert_eq!(
        node1.remove(now, NodeId(1)),
        Err(super::RemoveError::Myself(NodeId(1)))
    );
    assert_eq!(
        node1.remove(now, NodeId(3)),
        Err(super::RemoveError::Alive(NodeId(3)))
    );
    assert_eq!(
        node1.remove(now, NodeId(9)),
        Err(super::RemoveError::NotAMember(NodeId(9)))
    );
    // Asked of a node that is not the claimant (node 1 is: the lowest live id), so the
    // request also has to travel: ask node 4.
    let node4 = world.slots[3].node.as_mut().unwrap();
    node4.remove(now, NodeId(2)).unwrap();
    world.start_node(4);
    let settled = settle_without_node_2(&mut world, Some(NodeId(5)))
        .expect("the ring never settled without node 2 and with node 5");
    assert_eq!(settled.current().members().len(), 4);
    assert_eq!(world.slots[0].node.as_ref().unwrap().removals().count(), 0);
    // Every key is on each of its three replicas, all equal: the copies node 2 held were
    // rebuilt from the surviving replicas (the joiner runs anti-entropy; the test of a write
    // on one survivor below checks transfers alone).
    let rep = Replication::uniform(3);
    let partitions = settled.current().partitions();
    let mut checked = 0;
    for key in world.workload.keys() {
        let list = settled
            .current()
            .preference_list(partitions.partition_of(key.token), &rep);
        let copies: Vec<_> = list
            .iter()
            .map(|n| world.stored((n.0 - 1) as usize, key))
            .collect();
        if copies.iter().all(|c| c.is_empty()) {
            continue; // never written
        }
        assert!(
            copies.iter().all(|c| !c.is_empty() && *c == copies[0]),
            "replicas {list:?} of a key differ: {copies:?}"
        );
        checked += 1;
    }
    assert!(checked > 0, "no written key was checked");
}

#[test]
fn a_removed_node_that_comes_back_under_its_old_id_turns_itself_left() {
    let mut world = world(4, 0);
    world.run_until(Tick(2_000));
    lose_node_2(&mut world);
    remove_node_2(&mut world);
    assert!(
        settle_without_node_2(&mut world, None).is_some(),
        "node 2 was never taken out of the ring"
    );
    world.start_node(1);
    let mut status = Status::Up;
    for _ in 0..1_000 {
        let next = world.now + 10;
        world.run_until(next);
        status = world.slots[1].node.as_ref().unwrap().status();
        if status == Status::Left {
            break;
        }
    }
    assert_eq!(
        status,
        Status::Left,
        "the removed node still claims to be a member"
    );
    assert!(agreed_stable_ring(&world).is_some_and(|s| s.current().members().len() == 3));
}

#[test]
fn a_write_held_by_the_removed_node_and_one_survivor_reaches_its_replacement() {
    // Node 2 and one other replica acknowledged a write the third replica missed; node 2's
    // disk is then lost. Its replacement must get the write, or a read quorum of the new list
    // made of it and the replica that missed the write would not find it.
    let mut world = world(4, 1);
    write_then_settle(&mut world);
    let rep = Replication::uniform(3);
    let ring = world.ring.clone();
    let partitions = ring.partitions();
    let (key, list) = world
        .workload
        .keys()
        .iter()
        .map(|k| {
            (
                k.clone(),
                ring.preference_list(partitions.partition_of(k.token), &rep),
            )
        })
        .find(|(_, list)| list.contains(&NodeId(2)))
        .expect("some key has node 2 among its replicas");
    // The last of the survivors in list order: a replacement streaming from the first old
    // replica alone would miss the write.
    let holder = list
        .iter()
        .rev()
        .copied()
        .find(|&n| n != NodeId(2))
        .unwrap();
    let slot = (holder.0 - 1) as usize;
    let mut newer = world.stored(slot, &key);
    let context = newer.clock().clone();
    newer
        .update(&context, NodeId(2), 1, Some(b"only on two".to_vec()))
        .unwrap();
    world.crash(1);
    // The holder gets the write as node 2 sent it (applied to its disk while it is down, so
    // its Merkle tree is rebuilt with it on restart).
    world.crash(slot);
    world.slots[slot].disk.apply(
        holder,
        super::StorageOp::Merge {
            key: key.clone(),
            object: newer.clone(),
            lww: false,
        },
        true,
    );
    world.start_node(slot);
    // Only transfers may move the write from here on.
    world.slots[slot].node.as_mut().unwrap().set_anti_entropy(0);
    let until = world.now + 3_000;
    world.run_until(until);
    remove_node_2(&mut world);
    world.start_node(4);
    world.slots[4].node.as_mut().unwrap().set_anti_entropy(0);
    let settled = settle_without_node_2(&mut world, Some(NodeId(5)))
        .expect("the ring never settled without node 2");
    let new_list = settled
        .current()
        .preference_list(partitions.partition_of(key.token), &rep);
    let lacking: Vec<NodeId> = new_list
        .iter()
        .copied()
        .filter(|n| {
            let copy = world.stored((n.0 - 1) as usize, &key);
            !copy.clock().descends(newer.clock())
        })
        .collect();
    assert!(
        lacking.len() <= 1,
        "replicas {lacking:?} of {new_list:?} lack the write: a read quorum of two could miss it"
    );
}
