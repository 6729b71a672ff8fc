//! The deterministic simulator: whole clusters of [`crate::node::Node`]s in one thread.
//!
//! One seeded generator drives everything: the network's delays, drops, duplicates and
//! partitions ([`network`]), the disks that lose unsynced writes on a crash ([`disk`]), node
//! crashes, restarts, pauses and wall-clock jumps, and the clients of a workload
//! ([`workload`]). Virtual time advances from event to event ([`cluster`]), so a run of a
//! minute of cluster time takes milliseconds, and the same seed gives the same run: its trace
//! hash (every event's time, kind and parties) is printed with every failure together with
//! the one command that replays it.
//!
//! A run has a workload phase with faults, then three checking phases on a healed, calm
//! cluster, each checking one mechanism so that a broken one cannot hide behind another:
//! 1. **Hints**: clients stop, anti-entropy pauses; within [`HINT_DRAIN_TICKS_MAX`] every hint
//!    must be delivered (no node holds any).
//! 2. **Read repair**: a read with r = n of every even-numbered key; afterwards every replica of
//!    those keys must hold the same object.
//! 3. **Anti-entropy**: exchanges resume; within [`AE_CONVERGE_TICKS_MAX`] every replica of
//!    every key must hold the same object and every partition's Merkle roots must agree.
//!
//! Then the workload's own check: no acknowledged add lost (set), no stale read (register).
//! The canaries break one mechanism on purpose ([`Canary`]); a run with a canary *must* fail.

pub mod cluster;
pub mod disk;
pub mod network;
pub mod workload;

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::ids::NodeId;
use crate::node::{ClientOp, ConflictMode, NodeConfig};
use crate::placement::{Member, Replication, Ring};
use crate::quorum::{AckScope, QuorumOptions};
use crate::ring::PartitionCount;
use crate::tick::Tick;

use cluster::World;
use network::{NetFaults, Network};
use workload::{ClientRequest, Step, Workload, WorkloadKind};

/// Ticks the cluster may take, once healed, to settle on one stable ring, at most.
pub const RING_SETTLE_TICKS_MAX: u64 = 60_000;

/// Ticks of the hint phase, at most.
pub const HINT_DRAIN_TICKS_MAX: u64 = 30_000;

/// Ticks the anti-entropy phase may take to converge, at most.
pub const AE_CONVERGE_TICKS_MAX: u64 = 60_000;

/// Ticks between convergence checks in the checking phases.
const CHECK_EVERY_TICKS: u64 = 500;

/// A mechanism broken on purpose, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canary {
    /// Last-write-wins instead of siblings: concurrent adds are dropped.
    Lww,
    /// Reads never repair stale replicas.
    NoReadRepair,
    /// Fallbacks never hand hints back.
    NoHints,
    /// Ring changes flip ownership at once, without moving any data.
    EarlyFlip,
}

impl Canary {
    /// The name `tessera sim --canary` takes.
    pub fn name(self) -> &'static str {
        match self {
            Canary::Lww => "lww",
            Canary::NoReadRepair => "no-read-repair",
            Canary::NoHints => "no-hints",
            Canary::EarlyFlip => "early-flip",
        }
    }
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything follows from it.
    pub seed: u64,
    /// The workload.
    pub workload: WorkloadKind,
    /// A mechanism to break, or none.
    pub canary: Option<Canary>,
    /// Ticks of the workload phase (with faults).
    pub workload_ticks: u64,
    /// A spare node joins during the workload phase, and (every other seed) a member leaves.
    pub membership_changes: bool,
    /// Two datacenters (two replicas of each key in dc-1, one in dc-2), and set clients that
    /// count acknowledgements anywhere, in their node's datacenter only, or in each
    /// datacenter. Every third seed.
    pub datacenters: bool,
}

impl SimConfig {
    /// The default run for `seed`.
    pub fn new(seed: u64, workload: WorkloadKind, canary: Option<Canary>) -> SimConfig {
        SimConfig {
            seed,
            workload,
            canary,
            workload_ticks: 20_000,
            membership_changes: true,
            datacenters: seed % 3 == 2,
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let workload = match self.workload {
            WorkloadKind::Set => "set",
            WorkloadKind::Register => "register",
        };
        let canary = self
            .canary
            .map(|c| format!(" --canary {}", c.name()))
            .unwrap_or_default();
        format!(
            "tessera sim --seeds 1 --first-seed {} --workload {workload}{canary}",
            self.seed
        )
    }
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Hash of the whole trace; equal for equal seeds.
    pub trace_hash: u64,
    /// Checker failures; empty if the run passed.
    pub violations: Vec<String>,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Client operations acknowledged and failed.
    pub acknowledged: u64,
    /// Client operations that failed or timed out.
    pub failed: u64,
    /// Acknowledged adds (set workload).
    pub acked_adds: usize,
    /// Faults injected.
    pub faults: u64,
    /// Events processed.
    pub events: u64,
    /// Coverage: hints stored and delivered, read repairs, writes through sloppy quorums,
    /// anti-entropy exchanges and keys they repaired, summed over nodes.
    pub hints_stored: u64,
    /// See `hints_stored`.
    pub hints_delivered: u64,
    /// See `hints_stored`.
    pub read_repairs: u64,
    /// See `hints_stored`.
    pub sloppy_writes: u64,
    /// See `hints_stored`.
    pub ae_exchanges: u64,
    /// See `hints_stored`.
    pub ae_keys_repaired: u64,
    /// Nodes that joined and left the ring.
    pub joined: usize,
    /// See `joined`.
    pub left: usize,
    /// Partition moves streamed completely, summed over nodes.
    pub moves_completed: u64,
    /// Writes refused for a stale ring, summed over nodes.
    pub stale_ring_refusals: u64,
    /// The run had two datacenters.
    pub datacenters: bool,
    /// Set requests sent counting in the local datacenter only, and in each datacenter.
    pub scoped_local: u64,
    /// See `scoped_local`.
    pub scoped_each: u64,
    /// Set writes acknowledged that counted per datacenter.
    pub scoped_writes_acked: u64,
    /// Deletes of churn keys acknowledged (set workload).
    pub acked_deletes: usize,
    /// Tombstones purged by reap rounds, summed over nodes.
    pub tombstones_reaped: u64,
}

impl SimReport {
    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs one simulation.
pub fn run(config: &SimConfig) -> SimReport {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
    use rand_core::RngCore;
    // 4 or 5 nodes: with n = 3 there is always a node outside a preference list to act as
    // a fallback, so sloppy quorums and hints happen.
    // With membership changes, one more node waits to join.
    let members_first = 4 + (rng.next_u64() % 2) as usize;
    let nodes = members_first + usize::from(config.membership_changes);
    let members: Vec<Member> = (0..members_first)
        .map(|i| {
            let (rack, dc) = location(i, config.datacenters);
            Member::new(NodeId(i as u64 + 1), rack, dc, 1)
        })
        .collect();
    let partitions = PartitionCount::new(16).unwrap_or_default();
    let ring = match Ring::new(partitions, members) {
        Ok(r) => r,
        Err(e) => {
            return SimReport {
                seed: config.seed,
                violations: vec![format!("the ring could not be built: {e}")],
                ..SimReport::default()
            }
        }
    };
    let configs = (0..nodes)
        .map(|i| node_config(NodeId(i as u64 + 1), config.canary, config.datacenters))
        .collect();
    let (keys, clients) = match config.workload {
        WorkloadKind::Set => (4, 5),
        WorkloadKind::Register => (6, 9),
    };
    let faults = NetFaults {
        drop_per_mille: 20 + (rng.next_u32() % 60),
        duplicate_per_mille: 20,
        delay_min_ticks: 1,
        delay_max_ticks: 20,
    };
    let mut world = World::new(
        rng,
        ring,
        configs,
        Network::new(faults),
        Workload::new(config.workload, keys).scoped(config.datacenters),
        clients,
    );
    // Let gossip find everyone before the clients start.
    world.run_until(Tick(2_000));
    world.set_clients_active(true);
    let changes = config.membership_changes.then(|| faults::MembershipPlan {
        joiner: nodes - 1,
        leaver: (world.below(2) == 0).then(|| world.below(members_first as u64) as usize),
    });
    let fault_count = faults::run_with_faults(&mut world, config.workload_ticks, changes);
    let mut violations = check_phases(&mut world, changes);
    // Every replica the final ring names holds every acknowledged write.
    for (k, key) in world.workload.keys().to_vec().iter().enumerate() {
        for (i, node) in replicas_of(&world, key) {
            let copy = world.stored(i, key);
            violations.extend(world.workload.check_copy(k, &node.to_string(), &copy));
        }
    }
    // No replica the final ring names holds a deleted value. (A node that lost the key's
    // partition may keep a stale copy: it is never read, and a reap round purges it too.)
    for (k, key) in world.workload.churn_keys().to_vec().iter().enumerate() {
        for (i, node) in replicas_of(&world, key) {
            let copy = world.stored(i, key);
            violations.extend(world.workload.check_churn_copy(k, &node.to_string(), &copy));
        }
    }
    if config.workload == WorkloadKind::Register {
        violations.extend(world.workload.check_register());
    }
    let mut report = SimReport {
        seed: config.seed,
        trace_hash: world.trace_hash(),
        violations,
        nodes,
        acknowledged: world.workload.acknowledged,
        failed: world.workload.failed,
        acked_adds: world.workload.acked_adds(),
        faults: fault_count,
        events: world.events_processed,
        joined: changes.map_or(0, |_| 1),
        left: changes.map_or(0, |c| usize::from(c.leaver.is_some())),
        datacenters: config.datacenters,
        scoped_local: world.workload.scopes_used[1],
        scoped_each: world.workload.scopes_used[2],
        scoped_writes_acked: world.workload.scoped_writes_acked,
        acked_deletes: world.workload.acked_deletes(),
        ..SimReport::default()
    };
    for slot in &world.slots {
        if let Some(node) = &slot.node {
            let s = node.stats();
            report.hints_stored += s.hints_stored;
            report.hints_delivered += s.hints_delivered;
            report.read_repairs += s.read_repairs;
            report.sloppy_writes += s.sloppy_writes;
            report.ae_exchanges += s.ae_exchanges;
            report.ae_keys_repaired += s.ae_keys_repaired;
            report.moves_completed += s.moves_completed;
            report.stale_ring_refusals += s.stale_ring_refusals;
            report.tombstones_reaped += s.tombstones_reaped;
        }
    }
    report
}

/// Rack and datacenter of slot `i`: two racks in one datacenter, or with `datacenters` two
/// datacenters (even slots in dc-1, odd in dc-2) of two racks each.
pub(crate) fn location(i: usize, datacenters: bool) -> (String, String) {
    if datacenters {
        (format!("rack-{}", (i / 2) % 2), format!("dc-{}", 1 + i % 2))
    } else {
        (format!("rack-{}", i % 2), "dc-1".to_string())
    }
}

/// Three replicas per key: anywhere, or with `datacenters` two in dc-1 and one in dc-2.
fn replication(datacenters: bool) -> Replication {
    let per_dc = vec![("dc-1".to_string(), 2), ("dc-2".to_string(), 1)];
    match datacenters {
        true => Replication::per_dc(per_dc).unwrap_or_else(|_| Replication::uniform(3)),
        false => Replication::uniform(3),
    }
}

pub(crate) fn node_config(id: NodeId, canary: Option<Canary>, datacenters: bool) -> NodeConfig {
    let mut c = NodeConfig::new(id, replication(datacenters));
    c.quorum = QuorumOptions::default();
    c.tree_shape = crate::antientropy::TreeShape::new(2, 2).unwrap_or_default();
    c.ae_interval_ticks = 300;
    // Tombstones of the set workload's churn keys are reaped during the run: the grace period
    // is longer than any pause or delay the faults make, so nothing older is in flight.
    c.tombstone_grace_ticks = 3_000;
    c.reap_interval_ticks = 100;
    // Small chunks and quick resends: many chunks per transfer, over a lossy network.
    c.transfer.chunk_entries = 1;
    c.transfer.retransmit_ticks = 200;
    match canary {
        Some(Canary::Lww) => c.conflict = ConflictMode::LastWriteWins,
        Some(Canary::NoReadRepair) => c.read_repair = false,
        Some(Canary::NoHints) => c.hint_delivery = false,
        Some(Canary::EarlyFlip) => c.flip_after_moves = false,
        None => {}
    }
    c
}

/// The replicas of `key` under the world's ring: (slot index, node id).
fn replicas_of(world: &World, key: &crate::node::Key) -> Vec<(usize, NodeId)> {
    let p = world.ring.partitions().partition_of(key.token);
    world
        .ring
        .preference_list(p, world.replication())
        .into_iter()
        .map(|n| ((n.0 - 1) as usize, n))
        .collect()
}

/// Keys whose replicas hold different objects.
fn divergent_keys(world: &World, keys: &[crate::node::Key]) -> Vec<String> {
    let mut out = Vec::new();
    for key in keys {
        let copies: Vec<_> = replicas_of(world, key)
            .into_iter()
            .map(|(i, _)| world.stored(i, key))
            .collect();
        if copies.windows(2).any(|w| w[0] != w[1]) {
            out.push(String::from_utf8_lossy(&key.bytes).into_owned());
        }
    }
    out
}

/// Partitions whose replicas' Merkle roots differ.
fn divergent_roots(world: &World) -> Vec<String> {
    let rep = world.replication();
    let mut out = Vec::new();
    for p in world.ring.partitions().iter() {
        let roots: Vec<u64> = world
            .ring
            .preference_list(p, rep)
            .into_iter()
            .filter_map(|n| world.slots[(n.0 - 1) as usize].node.as_ref())
            .map(|node| node.tree_root(p))
            .collect();
        if roots.windows(2).any(|w| w[0] != w[1]) {
            out.push(p.to_string());
        }
    }
    out
}

/// The checking phases; returns their violations.
fn check_phases(world: &mut World, changes: Option<faults::MembershipPlan>) -> Vec<String> {
    let mut violations = Vec::new();
    world.set_clients_active(false);
    world.network.heal();
    world.network.set_faults(NetFaults::CALM);
    world.unpause_all();
    for i in 0..world.slots.len() {
        world.start_node(i);
        if let Some(node) = world.slots[i].node.as_mut() {
            node.set_anti_entropy(0);
            // A reap whose last message was lost leaves replicas apart until anti-entropy
            // brings the tombstone back: reaping waits for phase 3 too.
            node.set_reaping(0);
        }
    }
    // 0. The ring settles: one stable ring everywhere, with the joiner and without the leaver.
    if let Err(violation) = settle_ring(world, changes) {
        violations.push(violation);
        return violations;
    }
    // 1. Hints drain.
    let drained = wait_for(world, HINT_DRAIN_TICKS_MAX, |world| {
        let held: usize = world
            .slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(|n| n.hints().len())
            .sum();
        if held == 0 && !world.clients_busy() {
            return Ok(());
        }
        Err(format!(
            "hints did not drain: {held} hints still held {HINT_DRAIN_TICKS_MAX} ticks after the faults ended"
        ))
    });
    violations.extend(drained.err());
    // 2. Read repair of the even-numbered keys.
    let mut keys = world.workload.keys().to_vec();
    keys.extend_from_slice(world.workload.churn_keys());
    let even: Vec<_> = keys.iter().step_by(2).cloned().collect();
    for key in &even {
        // A member coordinates: a node that left refuses (its ring may be stale).
        let members = world.ring.members().len() as u64;
        let at = world.below(members) as usize;
        let node = (world.ring.members()[at].id.0 - 1) as usize;
        let body = ClientRequest {
            op: ClientOp::Get { key: key.clone() },
            options: QuorumOptions {
                r: 3,
                w: 3,
                sloppy: false,
                durable: true,
                scope: AckScope::Any,
            },
            step: Step::RegisterRead { key: 0 },
        };
        world.checker_request(node, body);
    }
    let until = world.now + 5_000;
    world.run_until(until);
    let stale = divergent_keys(world, &even);
    if !stale.is_empty() {
        violations.push(format!(
            "replicas differ after a read with r = n (read repair): keys {stale:?}"
        ));
    }
    // 3. Anti-entropy.
    for slot in &mut world.slots {
        if let Some(node) = slot.node.as_mut() {
            node.set_anti_entropy(100);
            node.set_reaping(100);
        }
    }
    let converged = wait_for(world, AE_CONVERGE_TICKS_MAX, |world| {
        let keys_left = divergent_keys(world, &keys);
        let roots_left = divergent_roots(world);
        if keys_left.is_empty() && roots_left.is_empty() {
            return Ok(());
        }
        Err(format!(
            "anti-entropy did not converge in {AE_CONVERGE_TICKS_MAX} ticks: keys {keys_left:?}, partitions {roots_left:?}"
        ))
    });
    violations.extend(converged.err());
    violations
}

/// Checks `done` every [`CHECK_EVERY_TICKS`] of virtual time until it passes or `max_ticks`
/// have gone by; returns its last answer.
fn wait_for(
    world: &mut World,
    max_ticks: u64,
    mut done: impl FnMut(&mut World) -> Result<(), String>,
) -> Result<(), String> {
    let start = world.now;
    loop {
        let answer = done(world);
        if answer.is_ok() || world.now.since(start) >= max_ticks {
            return answer;
        }
        let next = world.now + CHECK_EVERY_TICKS;
        world.run_until(next);
    }
}

/// Runs until every started node holds the same stable ring with the expected members, and
/// makes it the ring the checks use.
fn settle_ring(world: &mut World, changes: Option<faults::MembershipPlan>) -> Result<(), String> {
    let mut expected: Vec<NodeId> = world.ring.members().iter().map(|m| m.id).collect();
    if let Some(plan) = changes {
        expected.push(NodeId(plan.joiner as u64 + 1));
        expected.retain(|&n| Some(n) != plan.leaver.map(|l| NodeId(l as u64 + 1)));
    }
    expected.sort_unstable();
    wait_for(world, RING_SETTLE_TICKS_MAX, |world| {
        if let Some(state) = world.settled_ring() {
            let members: Vec<NodeId> = state.current().members().iter().map(|m| m.id).collect();
            if members == expected {
                world.ring = state.current().clone();
                return Ok(());
            }
        }
        let views: Vec<String> = world
            .slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(|n| {
                let s = n.ring_state();
                format!("{}: epoch {} {:?}", n.id(), s.epoch(), s.phase())
            })
            .collect();
        Err(format!(
            "the ring did not settle on members {expected:?} within {RING_SETTLE_TICKS_MAX} \
             ticks: {views:?}"
        ))
    })
}

mod faults;
