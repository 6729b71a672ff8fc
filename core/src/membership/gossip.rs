//! The gossip state machine: this node's membership table and one detector per peer.
//!
//! Every `interval_ticks` the node bumps its own heartbeat and opens a round ([`GossipMessage`])
//! with `fanout` random peers it believes alive; sometimes also with one it believes dead (so a
//! healed partition is noticed) and with a seed (so a lone node, or an island of nodes, finds
//! the cluster). Cassandra's `Gossiper` picks its targets the same way.
//!
//! Invariants:
//! - Only this node writes its own record (`me`); a record about `me` received from anyone is
//!   ignored, so a forged or stale copy can never override it.
//! - For every peer, the table keeps the record with the largest `(generation, heartbeat)` ever
//!   received. A larger heartbeat, learned from anyone, is an arrival for that peer's detector;
//!   a larger generation (a restart) replaces the detector, so a restarted node is up at once.
//! - The table holds at most [`MEMBERS_MAX`] records, `me` included. When full, a new node
//!   displaces a node that has `Left`, or is not admitted.
//! - Peers are kept in a `BTreeMap`, so iteration order, and hence every choice made with the
//!   caller's seeded generator, is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;

use crate::constants::{
    GOSSIP_FANOUT_DEFAULT, GOSSIP_FANOUT_MAX, GOSSIP_INTERVAL_TICKS_DEFAULT,
    GOSSIP_RECORDS_PER_MESSAGE_MAX, MEMBERS_MAX, PHI_THRESHOLD_DEFAULT,
};
use crate::ids::NodeId;
use crate::membership::message::GossipMessage;
use crate::membership::phi::{PhiConfig, PhiDetector};
use crate::membership::record::{Digest, MemberRecord, Status};
use crate::tick::Tick;

/// Tuning of the gossip protocol.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GossipConfig {
    /// Ticks between rounds (at least 1).
    pub interval_ticks: u64,
    /// Live peers contacted per round (clamped to `1..=GOSSIP_FANOUT_MAX`).
    pub fanout: usize,
    /// Phi at or above which a peer is considered down.
    pub phi_threshold: f64,
    /// The detector's tuning; `first_interval_estimate_ticks` should match `interval_ticks`.
    pub phi: PhiConfig,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            interval_ticks: GOSSIP_INTERVAL_TICKS_DEFAULT,
            fanout: GOSSIP_FANOUT_DEFAULT,
            phi_threshold: PHI_THRESHOLD_DEFAULT,
            phi: PhiConfig::default(),
        }
    }
}

/// An input to [`Gossip::step`].
#[derive(Clone, Debug, PartialEq)]
pub enum GossipInput {
    /// Time passed; the driver calls this at least every `interval_ticks`
    /// (see [`Gossip::next_round_at`]).
    Tick,
    /// A message from a peer.
    Message {
        /// The sender, as authenticated by the connection.
        from: NodeId,
        /// The message.
        msg: GossipMessage,
    },
}

/// What [`Gossip::step`] asks the driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum GossipAction {
    /// Send `msg` to `to` (best effort: gossip tolerates loss).
    Send {
        /// The destination.
        to: NodeId,
        /// The message.
        msg: GossipMessage,
    },
}

#[derive(Clone, Debug)]
struct Peer {
    record: MemberRecord,
    detector: PhiDetector,
}

/// The membership table and gossip protocol of one node.
#[derive(Clone, Debug)]
pub struct Gossip {
    config: GossipConfig,
    me: MemberRecord,
    /// Deduplicated, without `me`, at most `MEMBERS_MAX`.
    seeds: Vec<NodeId>,
    /// Every other known node; never contains `me.id`.
    peers: BTreeMap<NodeId, Peer>,
    /// When the next round is due; `None` until the first tick.
    next_round: Option<Tick>,
}

impl Gossip {
    /// A node with only itself in its table.
    ///
    /// `me.generation` is chosen by the driver: larger than any generation this node used
    /// before (it persists a counter), so peers tell a restart from an old record. Config values
    /// out of range are clamped (see [`GossipConfig`]); a non-positive or NaN threshold becomes
    /// [`PHI_THRESHOLD_DEFAULT`].
    pub fn new(me: MemberRecord, seeds: Vec<NodeId>, config: GossipConfig) -> Gossip {
        let phi_threshold = if config.phi_threshold > 0.0 {
            config.phi_threshold
        } else {
            PHI_THRESHOLD_DEFAULT
        };
        let config = GossipConfig {
            interval_ticks: config.interval_ticks.max(1),
            fanout: config.fanout.clamp(1, GOSSIP_FANOUT_MAX),
            phi_threshold,
            phi: config.phi,
        };
        let mut unique = BTreeSet::new();
        let seeds = seeds
            .into_iter()
            .filter(|&s| s != me.id && unique.insert(s))
            .take(MEMBERS_MAX)
            .collect();
        Gossip {
            config,
            me,
            seeds,
            peers: BTreeMap::new(),
            next_round: None,
        }
    }

    /// Adds a seed (ignored if it is this node, already a seed, or the seed list is full).
    pub fn add_seed(&mut self, seed: NodeId) {
        if seed != self.me.id && !self.seeds.contains(&seed) && self.seeds.len() < MEMBERS_MAX {
            self.seeds.push(seed);
        }
    }

    /// Advances the protocol: on [`GossipInput::Tick`] runs a round if one is due; on a message,
    /// merges what it carries and answers. Messages from `me`, and messages over their bounds,
    /// are ignored.
    pub fn step(
        &mut self,
        now: Tick,
        input: GossipInput,
        rng: &mut impl RngCore,
        out: &mut Vec<GossipAction>,
    ) {
        match input {
            GossipInput::Tick => {
                if self.next_round.is_none_or(|due| now >= due) {
                    self.next_round = Some(now + self.config.interval_ticks);
                    self.round(now, rng, out);
                }
            }
            GossipInput::Message { from, msg } => {
                if from != self.me.id && msg.is_within_bounds() {
                    self.receive(now, from, msg, rng, out);
                }
            }
        }
    }

    /// Whether `node` is believed up: always for `me`; never for an unknown node or one that
    /// has `Left`; otherwise its phi is below the threshold.
    pub fn is_alive(&self, node: NodeId, now: Tick) -> bool {
        if node == self.me.id {
            return true;
        }
        self.peers.get(&node).is_some_and(|p| {
            p.record.status != Status::Left
                && p.detector.is_available(now, self.config.phi_threshold)
        })
    }

    /// Suspicion of `node`: 0 for `me`, infinity for an unknown node, else its detector's phi
    /// (also for a node that has `Left`; [`Gossip::is_alive`] is what excludes it).
    pub fn phi(&self, node: NodeId, now: Tick) -> f64 {
        if node == self.me.id {
            return 0.0;
        }
        self.peers
            .get(&node)
            .map_or(f64::INFINITY, |p| p.detector.phi(now))
    }

    /// Every record: `me` first, then peers by id.
    pub fn records(&self) -> impl Iterator<Item = &MemberRecord> {
        std::iter::once(&self.me).chain(self.peers.values().map(|p| &p.record))
    }

    /// The record of `node`, if known.
    pub fn record(&self, node: NodeId) -> Option<&MemberRecord> {
        if node == self.me.id {
            Some(&self.me)
        } else {
            self.peers.get(&node).map(|p| &p.record)
        }
    }

    /// This node's own record.
    pub fn me(&self) -> &MemberRecord {
        &self.me
    }

    /// When the next round is due (`None` before the first tick: the first tick runs one).
    pub fn next_round_at(&self) -> Option<Tick> {
        self.next_round
    }

    /// Changes this node's status; gossip spreads it. `Left` is final: once left, a node
    /// rejoins only by restarting with a new generation, so later changes are ignored.
    pub fn set_status(&mut self, status: Status) {
        if self.me.status != Status::Left && self.me.status != status {
            self.me.status = status;
            self.bump();
        }
    }

    /// Raises the ring version this node advertises, so peers with an older ring fetch the
    /// newer one. Ring versions only grow: a smaller `v` is ignored.
    pub fn set_ring_version(&mut self, v: u64) {
        if v > self.me.ring_version {
            self.me.ring_version = v;
            self.bump();
        }
    }

    /// The live peer advertising the largest ring version, if it is larger than ours: where to
    /// fetch a newer ring. Ties go to the smallest node id.
    pub fn newer_ring_source(&self, now: Tick) -> Option<(NodeId, u64)> {
        self.peers
            .values()
            .filter(|p| p.record.ring_version > self.me.ring_version)
            .filter(|p| self.is_alive(p.record.id, now))
            .map(|p| (p.record.id, p.record.ring_version))
            .fold(None, |best: Option<(NodeId, u64)>, c| match best {
                Some(b) if b.1 >= c.1 => Some(b),
                _ => Some(c),
            })
    }

    /// A new version of our own record: the heartbeat doubles as its version number.
    fn bump(&mut self) {
        self.me.heartbeat = self.me.heartbeat.saturating_add(1);
    }

    fn round(&mut self, now: Tick, rng: &mut impl RngCore, out: &mut Vec<GossipAction>) {
        self.bump();
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (&id, peer) in &self.peers {
            if peer.record.status == Status::Left {
                continue;
            }
            if peer.detector.is_available(now, self.config.phi_threshold) {
                live.push(id);
            } else {
                dead.push(id);
            }
        }
        let mut targets = choose(&mut live, self.config.fanout, rng);
        // One believed-dead peer with probability dead / (live + 1): often enough that a healed
        // partition is found within a few rounds, rarely enough not to waste a live cluster's
        // bandwidth on many long-dead nodes.
        if !dead.is_empty() && below(rng, live.len() + 1) < dead.len() {
            targets.push(dead[below(rng, dead.len())]);
        }
        // A seed, unless one was already picked: always when no peer is believed alive (a lone
        // or restarted node), else with probability seeds / (live + dead) so that islands that
        // each know a seed merge.
        let seeds: Vec<NodeId> = self
            .seeds
            .iter()
            .copied()
            .filter(|s| {
                self.peers
                    .get(s)
                    .is_none_or(|p| p.record.status != Status::Left)
            })
            .collect();
        // A seed this node has never heard from comes first, whatever else was picked: with
        // every node a seed of every other, two nodes that first found each other would
        // otherwise gossip only with each other forever (an island), since each already is
        // the other's seed. The set of unheard seeds only shrinks, so this costs a few rounds.
        let unheard: Vec<NodeId> = seeds
            .iter()
            .copied()
            .filter(|s| !self.peers.contains_key(s))
            .collect();
        if !unheard.is_empty() {
            targets.push(unheard[below(rng, unheard.len())]);
        } else if !seeds.is_empty() && !targets.iter().any(|t| seeds.contains(t)) {
            let known = live.len() + dead.len();
            if live.is_empty() || below(rng, known.max(1)) < seeds.len() {
                targets.push(seeds[below(rng, seeds.len())]);
            }
        }
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            return;
        }
        let digests: Vec<Digest> = self.records().map(MemberRecord::digest).collect();
        for to in targets {
            out.push(GossipAction::Send {
                to,
                msg: GossipMessage::Syn {
                    digests: digests.clone(),
                },
            });
        }
    }

    fn receive(
        &mut self,
        now: Tick,
        from: NodeId,
        msg: GossipMessage,
        rng: &mut impl RngCore,
        out: &mut Vec<GossipAction>,
    ) {
        match msg {
            GossipMessage::Syn { digests } => {
                let mut records = Vec::new();
                let mut requests = Vec::new();
                let mut mentioned = BTreeSet::new();
                for d in &digests {
                    if !mentioned.insert(d.id) {
                        continue; // a duplicate entry: answer the first only
                    }
                    match self.record(d.id) {
                        Some(local) if local.version() > d.version() => {
                            records.push(local.clone());
                        }
                        // Never ask for `me`: only we write our record.
                        _ if d.id == self.me.id => {}
                        Some(local) if local.version() == d.version() => {}
                        _ => requests.push(d.id),
                    }
                }
                // Records the sender has not heard of at all.
                records.extend(
                    self.records()
                        .filter(|r| !mentioned.contains(&r.id))
                        .cloned(),
                );
                let records = cap_records(records, rng);
                if !records.is_empty() || !requests.is_empty() {
                    out.push(GossipAction::Send {
                        to: from,
                        msg: GossipMessage::Ack { records, requests },
                    });
                }
            }
            GossipMessage::Ack { records, requests } => {
                for r in records {
                    self.merge(now, r);
                }
                let mut unique = BTreeSet::new();
                let answer: Vec<MemberRecord> = requests
                    .into_iter()
                    .filter(|id| unique.insert(*id))
                    .filter_map(|id| self.record(id).cloned())
                    .collect();
                let answer = cap_records(answer, rng);
                if !answer.is_empty() {
                    out.push(GossipAction::Send {
                        to: from,
                        msg: GossipMessage::Ack2 { records: answer },
                    });
                }
            }
            GossipMessage::Ack2 { records } => {
                for r in records {
                    self.merge(now, r);
                }
            }
        }
    }

    /// Keeps `record` if it is newer than what the table holds (see the module invariants).
    fn merge(&mut self, now: Tick, record: MemberRecord) {
        if record.id == self.me.id || !record.is_well_formed() {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&record.id) {
            if record.version() <= peer.record.version() {
                return;
            }
            if record.generation > peer.record.generation {
                peer.detector = PhiDetector::new(self.config.phi, now);
            } else {
                peer.detector.heartbeat(now);
            }
            peer.record = record;
            return;
        }
        if self.peers.len() + 1 >= MEMBERS_MAX {
            let gone = self
                .peers
                .iter()
                .find(|(_, p)| p.record.status == Status::Left)
                .map(|(&id, _)| id);
            match gone {
                Some(id) => {
                    self.peers.remove(&id);
                }
                None => return, // table full of members: the newcomer is not admitted
            }
        }
        let detector = PhiDetector::new(self.config.phi, now);
        self.peers.insert(record.id, Peer { record, detector });
    }
}

/// A uniform index in `0..n` (`n > 0`); the modulo bias is below 2^-50 for any table size.
fn below(rng: &mut impl RngCore, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// Up to `k` distinct elements of `items`, uniformly (a partial Fisher-Yates shuffle).
fn choose(items: &mut [NodeId], k: usize, rng: &mut impl RngCore) -> Vec<NodeId> {
    let k = k.min(items.len());
    for i in 0..k {
        let j = i + below(rng, items.len() - i);
        items.swap(i, j);
    }
    items[..k].to_vec()
}

/// Trims a record list to the per-message bound, keeping a random subset so that no record is
/// starved when many differ; the rest go in later rounds.
fn cap_records(mut records: Vec<MemberRecord>, rng: &mut impl RngCore) -> Vec<MemberRecord> {
    if records.len() > GOSSIP_RECORDS_PER_MESSAGE_MAX {
        for i in 0..GOSSIP_RECORDS_PER_MESSAGE_MAX {
            let j = i + below(rng, records.len() - i);
            records.swap(i, j);
        }
        records.truncate(GOSSIP_RECORDS_PER_MESSAGE_MAX);
    }
    records
}
