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
        .map(|i| node_config(NodeId(i), None))
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
            let source = state.source_of(m, &plan).unwrap();
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
