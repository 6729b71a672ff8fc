//! A tiny cluster: several [`Gossip`]s and a seeded network between them.

use std::collections::BTreeMap;

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{record, INTERVAL};
use crate::ids::NodeId;
use crate::membership::*;
use crate::tick::Tick;

/// Harness time step: drivers tick far more often than the gossip interval.
const STEP: u64 = 10;

/// A cluster of gossip nodes and the network between them.
struct Sim {
    now: Tick,
    rng: Xoshiro256PlusPlus,
    /// Running nodes, with the tick from which they start ticking (staggered, as real nodes).
    nodes: BTreeMap<NodeId, (Gossip, Tick)>,
    /// In-flight messages keyed by (delivery time, sequence number).
    wire: BTreeMap<(Tick, u64), (NodeId, NodeId, GossipMessage)>,
    seq: u64,
    /// Extra delivery delay, uniform in `0..=delay_max`, drawn per message (so reordering too).
    delay_max: u64,
    /// Messages lost, per thousand.
    drop_per_mille: u64,
    /// Nodes in different groups cannot talk (a network partition); empty means none.
    group: BTreeMap<NodeId, u8>,
    bytes: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim {
            now: Tick(0),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            nodes: BTreeMap::new(),
            wire: BTreeMap::new(),
            seq: 0,
            delay_max: 20,
            drop_per_mille: 0,
            group: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// `n` nodes `0..n` with generation 1, all seeded with node 0.
    fn cluster(seed: u64, n: u64) -> Sim {
        let mut sim = Sim::new(seed);
        for id in 0..n {
            sim.start(record(id, 1), vec![NodeId(0)]);
        }
        sim
    }

    fn start(&mut self, me: MemberRecord, seeds: Vec<NodeId>) {
        let first = self.now + self.rng.next_u64() % INTERVAL;
        let id = me.id;
        self.nodes
            .insert(id, (Gossip::new(me, seeds, GossipConfig::default()), first));
    }

    fn stop(&mut self, id: u64) -> Gossip {
        self.nodes.remove(&NodeId(id)).expect("running").0
    }

    fn node(&self, id: u64) -> &Gossip {
        &self.nodes[&NodeId(id)].0
    }

    fn send(&mut self, from: NodeId, actions: Vec<GossipAction>) {
        for GossipAction::Send { to, msg } in actions {
            self.bytes += msg.wire_bytes() as u64;
            let cut = self.group.get(&from) != self.group.get(&to);
            if cut || self.rng.next_u64() % 1000 < self.drop_per_mille {
                continue;
            }
            let at = self.now + 1 + self.rng.next_u64() % (self.delay_max + 1);
            self.seq += 1;
            self.wire.insert((at, self.seq), (from, to, msg));
        }
    }

    /// Advances one step: delivers due messages, then ticks every started node.
    fn step(&mut self) {
        self.now = self.now + STEP;
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (from, to, msg) = entry.remove();
            let now = self.now;
            let mut out = Vec::new();
            if let Some((g, _)) = self.nodes.get_mut(&to) {
                g.step(
                    now,
                    GossipInput::Message { from, msg },
                    &mut self.rng,
                    &mut out,
                );
            }
            self.send(to, out);
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let now = self.now;
            let mut out = Vec::new();
            let (g, first) = self.nodes.get_mut(&id).expect("listed");
            if now >= *first {
                g.step(now, GossipInput::Tick, &mut self.rng, &mut out);
            }
            self.send(id, out);
        }
    }

    /// Steps until `done` holds, at most `limit` ticks; returns the ticks it took.
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&Sim) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now - start <= limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.step();
        }
        None
    }

    fn run_for(&mut self, ticks: u64) {
        let end = self.now + ticks;
        while self.now < end {
            self.step();
        }
    }

    /// Whether every running node knows every running node and believes it alive.
    fn all_see_all_alive(&self) -> bool {
        self.nodes
            .values()
            .all(|(g, _)| self.nodes.keys().all(|&other| g.is_alive(other, self.now)))
    }
}

#[test]
fn all_nodes_learn_all_members_from_one_seed() {
    let mut worst = 0;
    for seed in 0..20 {
        let mut sim = Sim::cluster(seed, 16);
        let took = sim
            .run_until(100 * INTERVAL, |s| {
                s.nodes.values().all(|(g, _)| g.records().count() == 16)
            })
            .unwrap_or_else(|| panic!("seed {seed}: never converged"));
        worst = worst.max(took);
        assert!(sim.all_see_all_alive(), "seed {seed}");
    }
    // Startup is staggered over one interval; spreading takes a few rounds more.
    assert!(worst <= 8 * INTERVAL, "slowest convergence {worst} ticks");
}

#[test]
fn a_stopped_node_is_seen_down_by_every_peer_in_bounded_time() {
    let mut worst = 0;
    for seed in 0..10 {
        let mut sim = Sim::cluster(seed, 10);
        sim.delay_max = 100;
        sim.run_for(60_000);
        assert!(
            sim.all_see_all_alive(),
            "seed {seed}: not healthy before the stop"
        );
        sim.stop(3);
        let took = sim
            .run_until(20_000, |s| {
                s.nodes.values().all(|(g, _)| !g.is_alive(NodeId(3), s.now))
            })
            .unwrap_or_else(|| panic!("seed {seed}: node 3 never seen down by all"));
        worst = worst.max(took);
        // It stays down: nobody can forge its heartbeat.
        sim.run_for(10_000);
        assert!(sim
            .nodes
            .values()
            .all(|(g, _)| !g.is_alive(NodeId(3), sim.now)));
        // And the others are still up.
        assert!(sim.all_see_all_alive());
    }
    // The driver's budget is 10 s of real ticks; keep a wide margin.
    assert!(worst < 6_000, "slowest detection {worst} ticks");
}

#[test]
fn no_false_downs_over_a_long_healthy_run_with_jitter_and_loss() {
    let mut sim = Sim::cluster(42, 12);
    // Delays up to 1.2 intervals (so heavy reordering) and 2% loss.
    sim.delay_max = 300;
    sim.drop_per_mille = 20;
    sim.run_until(20 * INTERVAL, Sim::all_see_all_alive)
        .expect("converged");
    // Half an hour of simulated time, checked every step.
    let end = sim.now + 30 * 60 * 1000;
    while sim.now < end {
        sim.step();
        for (g, _) in sim.nodes.values() {
            for &other in sim.nodes.keys() {
                assert!(
                    g.is_alive(other, sim.now),
                    "{} falsely saw {other} down at {} (phi {})",
                    g.me().id,
                    sim.now,
                    g.phi(other, sim.now)
                );
            }
        }
    }
}

#[test]
fn a_restarted_node_is_alive_again_within_a_few_intervals() {
    let mut sim = Sim::cluster(7, 10);
    sim.run_for(30_000);
    let old = sim.stop(4);
    sim.run_until(20_000, |s| {
        s.nodes.values().all(|(g, _)| !g.is_alive(NodeId(4), s.now))
    })
    .expect("seen down");
    // Restart with the next generation and an empty table; it knows only the seed.
    let mut me = old.me().clone();
    me.generation += 1;
    me.heartbeat = 0;
    sim.start(me, vec![NodeId(0)]);
    let took = sim
        .run_until(20 * INTERVAL, Sim::all_see_all_alive)
        .expect("restarted node back up");
    // One interval of staggered start, then a few rounds of spreading.
    assert!(took <= 6 * INTERVAL, "took {took} ticks");
    assert!(sim
        .nodes
        .values()
        .all(|(g, _)| g.record(NodeId(4)).is_some_and(|r| r.generation == 2)));
}

#[test]
fn status_and_ring_version_changes_spread() {
    let mut sim = Sim::cluster(3, 10);
    sim.run_for(10_000);
    sim.nodes
        .get_mut(&NodeId(5))
        .expect("running")
        .0
        .set_status(Status::Leaving);
    sim.nodes
        .get_mut(&NodeId(6))
        .expect("running")
        .0
        .set_ring_version(9);
    let took = sim
        .run_until(20 * INTERVAL, |s| {
            s.nodes.values().all(|(g, _)| {
                g.record(NodeId(5)).map(|r| r.status) == Some(Status::Leaving)
                    && g.record(NodeId(6)).map(|r| r.ring_version) == Some(9)
            })
        })
        .expect("spread");
    assert!(took <= 6 * INTERVAL, "took {took} ticks");
    assert_eq!(sim.node(1).newer_ring_source(sim.now), Some((NodeId(6), 9)));
    assert_eq!(sim.node(6).newer_ring_source(sim.now), None);
    // Left spreads too, and a node that has left is no longer alive to anyone.
    sim.nodes
        .get_mut(&NodeId(5))
        .expect("running")
        .0
        .set_status(Status::Left);
    sim.run_until(20 * INTERVAL, |s| {
        s.nodes
            .iter()
            .filter(|(&id, _)| id != NodeId(5))
            .all(|(_, (g, _))| !g.is_alive(NodeId(5), s.now))
    })
    .expect("left spread");
    // Left is final for this generation.
    let left = &mut sim.nodes.get_mut(&NodeId(5)).expect("running").0;
    left.set_status(Status::Up);
    assert_eq!(left.me().status, Status::Left);
}

#[test]
fn a_healed_partition_merges_again() {
    let mut sim = Sim::cluster(11, 10);
    sim.run_for(10_000);
    // Split 0-4 | 5-9: the seed is on one side only.
    for id in 5..10 {
        sim.group.insert(NodeId(id), 1);
    }
    sim.run_until(20_000, |s| {
        !s.node(1).is_alive(NodeId(7), s.now) && !s.node(7).is_alive(NodeId(1), s.now)
    })
    .expect("sides see each other down");
    sim.group.clear();
    let took = sim
        .run_until(60_000, Sim::all_see_all_alive)
        .expect("healed");
    assert!(took < 10_000, "took {took} ticks");
}

#[test]
fn runs_are_deterministic_per_seed() {
    let trace = |seed| {
        let mut sim = Sim::cluster(seed, 8);
        sim.delay_max = 200;
        sim.drop_per_mille = 50;
        sim.run_for(20_000);
        (sim.bytes, sim.seq)
    };
    assert_eq!(trace(5), trace(5));
    assert_ne!(trace(5), trace(6));
}

/// Figures for the design notes, not a pass/fail test:
/// `cargo test -p tessera-core --release --lib membership::tests::cluster::measure -- --ignored --nocapture`
#[test]
#[ignore]
fn measure() {
    for (n, delay_max, drop) in [(10, 20, 0), (10, 300, 20), (50, 100, 10), (200, 100, 10)] {
        let (mut converge, mut detect, mut restart, mut phi_max) = (0, 0, 0, 0.0f64);
        let mut bytes_per_node_s = 0.0f64;
        let seeds = if n > 100 { 3 } else { 10 };
        for seed in 0..seeds {
            let mut sim = Sim::cluster(seed, n);
            sim.delay_max = delay_max;
            sim.drop_per_mille = drop;
            let took = sim
                .run_until(200 * INTERVAL, |s| {
                    s.nodes
                        .values()
                        .all(|(g, _)| g.records().count() == n as usize)
                })
                .expect("converged");
            converge = converge.max(took);
            sim.run_for(10_000);
            let bytes0 = sim.bytes;
            let end = sim.now + 120_000;
            while sim.now < end {
                sim.step();
                if sim.now.0.is_multiple_of(100) {
                    for (g, _) in sim.nodes.values() {
                        for &o in sim.nodes.keys() {
                            phi_max = phi_max.max(g.phi(o, sim.now));
                        }
                    }
                }
            }
            bytes_per_node_s = bytes_per_node_s.max((sim.bytes - bytes0) as f64 / n as f64 / 120.0);
            let old = sim.stop(3);
            let took = sim
                .run_until(60_000, |s| {
                    s.nodes.values().all(|(g, _)| !g.is_alive(NodeId(3), s.now))
                })
                .expect("detected");
            detect = detect.max(took);
            let mut me = old.me().clone();
            me.generation += 1;
            sim.start(me, vec![NodeId(0)]);
            let took = sim.run_until(60_000, Sim::all_see_all_alive).expect("back");
            restart = restart.max(took);
        }
        println!(
            "n={n} delay<={delay_max} drop={drop}/1000: converge<={converge} detect<={detect} \
             restart<={restart} ticks; healthy phi max {phi_max:.2}; <= {bytes_per_node_s:.0} B/s per node sent"
        );
    }
}
