//! One cluster node as a sans-IO state machine: the composition of every protocol in `core/`.
//!
//! A [`Node`] is fed [`Input`]s (client requests, peer messages, storage completions, clock
//! ticks) through [`Node::step`] and answers with [`Action`]s (sends, storage operations,
//! client replies). It owns the coordinators of its client requests ([`crate::quorum`]), its
//! hints ([`crate::handoff`]), its membership view and failure detector
//! ([`crate::membership`]), its Merkle trees and exchanges ([`crate::antientropy`]) and its
//! view of the ring ([`crate::placement`]). The shard runtime drives it in production and the
//! simulator ([`crate::sim`]) drives many of them in one thread; neither re-implements any of
//! this logic.
//!
//! Invariants:
//! - every [`StorageOp`] the node issues has a distinct id and is remembered until its result
//!   arrives; a result with an unknown id (from before a restart) is ignored;
//! - a replica acknowledges a write only after storage reported it done (and synced, when
//!   durable): an acknowledgement is a promise that the data survives a crash;
//! - a fallback acknowledges a hinted write only after the hint is persisted;
//! - the Merkle tree of a partition is updated from storage's before/after copies of every
//!   change, so it always matches what storage holds (given completions in storage order).

mod ae;
mod claim;
mod moves;
mod reap;
mod replica;
mod rings;
#[cfg(test)]
mod tests;

pub mod message;

use std::collections::{BTreeMap, VecDeque};

use rand_core::RngCore;

use crate::antientropy::{version_hash, TicTacTree, TreeShape};
use crate::handoff::{HintBook, HINT_RETRY_TICKS_DEFAULT};
use crate::ids::{NodeId, PartitionId};
use crate::membership::{Gossip, GossipAction, GossipConfig, GossipInput, MemberRecord};
use crate::placement::{Replication, Ring};
use crate::quorum::{
    choose_targets, tally::Placement, AckScope, GetAction, GetCoordinator, PutAction,
    PutCoordinator, QuorumError, QuorumOptions, RequestId, Tally, Target,
};
use crate::tick::Tick;
use crate::transfer::{TransferConfig, Transfers};
use crate::version::{Object, VersionVector};

pub use claim::{RemoveError, CLAIM_TICKS, RING_PUSH_TICKS};
pub use message::{lww_resolve, Key, PeerMessage, StorageOp, StorageResult};
pub use moves::{MOVES_DRIVE_TICKS, MOVES_REPORT_TICKS};
pub use reap::{REAP_INTERVAL_TICKS_DEFAULT, REAP_ROUND_TICKS, TOMBSTONE_GRACE_TICKS_DEFAULT};
pub use rings::{RingPhase, RingState};

/// Default deadline of a client request.
pub const REQUEST_TIMEOUT_TICKS_DEFAULT: u64 = 2_000;

/// Default interval between anti-entropy exchanges a node starts.
pub const AE_INTERVAL_TICKS_DEFAULT: u64 = 1_000;

/// Default interval between hint delivery rounds.
pub const HINT_ROUND_TICKS_DEFAULT: u64 = 200;

/// Most client requests one node coordinates at once; more are refused as overload.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 16_384;

/// Most storage operations in flight on one node.
pub const STORAGE_OPS_IN_FLIGHT_MAX: usize = 65_536;

/// How many recent coordinated updates a replica remembers, so that a duplicated `Update`
/// message is answered again instead of applied twice (which would mint a second dot).
pub const UPDATES_REMEMBERED_MAX: usize = 4_096;

/// How a keyspace resolves concurrent writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictMode {
    /// Concurrent writes become siblings that clients reconcile (the default).
    Siblings,
    /// The newest timestamp wins; concurrent writes are silently dropped. For data where that
    /// is acceptable, and as the simulator's canary.
    LastWriteWins,
}

/// Everything a node is configured with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// Replicas per key.
    pub replication: Replication,
    /// Request defaults.
    pub quorum: QuorumOptions,
    /// Deadline of a client request.
    pub request_timeout_ticks: u64,
    /// Interval between hint delivery rounds.
    pub hint_round_ticks: u64,
    /// Retry interval of an unacknowledged hint delivery.
    pub hint_retry_ticks: u64,
    /// Interval between anti-entropy exchanges started by this node; 0 turns them off.
    pub ae_interval_ticks: u64,
    /// Shape of the Merkle trees.
    pub tree_shape: TreeShape,
    /// Ticks the tombstone sweep spends per `REAP_KEYS_MAX` keys it reads (a page of fewer
    /// keys is followed sooner); 0 turns reaping off.
    pub reap_interval_ticks: u64,
    /// Ticks between a sweep first seeing a tombstone and the round that may reap it.
    pub tombstone_grace_ticks: u64,
    /// Concurrent writes: siblings or last-write-wins.
    pub conflict: ConflictMode,
    /// Read repair on (always, except in the simulator's canary).
    pub read_repair: bool,
    /// Hint delivery on (always, except in the simulator's canary).
    pub hint_delivery: bool,
    /// The claimant flips a ring change only once every move is done (always, except in the
    /// simulator's canary).
    pub flip_after_moves: bool,
    /// Membership gossip and failure detection.
    pub gossip: GossipConfig,
    /// Partition transfers of ring changes.
    pub transfer: TransferConfig,
}

impl NodeConfig {
    /// Production defaults for node `id` with `replication`.
    pub fn new(id: NodeId, replication: Replication) -> NodeConfig {
        NodeConfig {
            id,
            replication,
            quorum: QuorumOptions::default(),
            request_timeout_ticks: REQUEST_TIMEOUT_TICKS_DEFAULT,
            hint_round_ticks: HINT_ROUND_TICKS_DEFAULT,
            hint_retry_ticks: HINT_RETRY_TICKS_DEFAULT,
            ae_interval_ticks: AE_INTERVAL_TICKS_DEFAULT,
            tree_shape: TreeShape::default(),
            reap_interval_ticks: REAP_INTERVAL_TICKS_DEFAULT,
            tombstone_grace_ticks: TOMBSTONE_GRACE_TICKS_DEFAULT,
            conflict: ConflictMode::Siblings,
            read_repair: true,
            hint_delivery: true,
            flip_after_moves: true,
            gossip: GossipConfig::default(),
            transfer: TransferConfig::default(),
        }
    }
}

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Read every sibling and the causal context.
    Get {
        /// The key.
        key: Key,
    },
    /// Write `value`, superseding what `context` covers.
    Put {
        /// The key.
        key: Key,
        /// What the client read (empty: a blind write).
        context: VersionVector,
        /// The value.
        value: Vec<u8>,
    },
    /// Write a tombstone, superseding what `context` covers.
    Delete {
        /// The key.
        key: Key,
        /// What the client read.
        context: VersionVector,
    },
}

/// What the driver feeds a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The clock advanced; the driver sends one at least every few ticks.
    Tick,
    /// A client request, named by an id the driver chose (unique on this node).
    Client {
        /// Names the request in the reply.
        request: RequestId,
        /// The operation.
        op: ClientOp,
        /// r, w, sloppy, durable.
        options: QuorumOptions,
    },
    /// A message from a peer.
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A storage operation finished.
    Storage {
        /// The id of the [`Action::Storage`] it answers.
        id: u64,
        /// Its result.
        result: StorageResult,
    },
}

/// What a node asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a message to a peer (never to this node itself).
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// Run a storage operation and answer with [`Input::Storage`] and the same id.
    Storage {
        /// Names the operation.
        id: u64,
        /// The operation.
        op: StorageOp,
        /// Sync before answering.
        durable: bool,
    },
    /// Answer a client request: the merged object (for a write, the object after it, whose
    /// clock is the new causal context) or why it failed.
    Reply {
        /// The request.
        request: RequestId,
        /// The answer.
        result: Result<Object, QuorumError>,
    },
}

/// What a node remembers about a storage operation in flight, to act on its result.
#[derive(Debug)]
enum Pending {
    /// A coordinated update for `coordinator`'s request `op`.
    Update {
        coordinator: NodeId,
        op: RequestId,
        key: Key,
    },
    /// A replicated object to acknowledge to `coordinator`.
    Replicate {
        coordinator: NodeId,
        op: RequestId,
        key: Key,
    },
    /// A hinted write to acknowledge once persisted.
    HintStored { coordinator: NodeId, op: RequestId },
    /// A read for `coordinator`'s request `op`.
    Read { coordinator: NodeId, op: RequestId },
    /// A repair merge (read repair, anti-entropy): nobody to answer, but the merge goes back
    /// to `from` (the sender and the version hash it sent) if it holds more than it sent.
    Repair {
        key: Key,
        from: Option<(NodeId, Option<u64>)>,
    },
    /// A delivered hint merged here; acknowledge to the fallback `from`.
    HintMerged {
        from: NodeId,
        delivery: u64,
        key: Key,
    },
    /// Hint bookkeeping that needs no answer.
    Quiet,
    /// Anti-entropy storage work.
    Ae(replica::AePending),
    /// Tombstone reaping storage work.
    Reap(reap::ReapPending),
    /// A partition transfer's read or store.
    Transfer(moves::TransferPending),
    /// The ring state of `version` is persisted: announce it.
    RingSaved { version: u64 },
}

/// A write being coordinated here.
#[derive(Debug)]
struct PutState {
    coordinator: PutCoordinator,
    key: Key,
    context: VersionVector,
    value: Option<Vec<u8>>,
    timestamp_ms: u64,
    durable: bool,
    /// The ring version the write was routed by: its messages carry it, so that a replica
    /// fences the write by the ring that chose its targets and `w`, not a later one.
    ring: u64,
}

/// A read being coordinated here.
#[derive(Debug)]
struct GetState {
    coordinator: GetCoordinator,
    key: Key,
}

/// Counters of what a node did, for tests, the simulator's coverage report and `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Hinted writes this node accepted as a fallback.
    pub hints_stored: u64,
    /// Hints delivered and acknowledged.
    pub hints_delivered: u64,
    /// Read-repair objects sent.
    pub read_repairs: u64,
    /// Anti-entropy exchanges completed.
    pub ae_exchanges: u64,
    /// Keys repaired by anti-entropy (pushed or pulled).
    pub ae_keys_repaired: u64,
    /// Repairs merged here and sent back because this node held versions the sender lacked.
    pub ae_keys_pushed_back: u64,
    /// Writes coordinated through a sloppy quorum with at least one fallback.
    pub sloppy_writes: u64,
    /// Partition moves this node streamed completely as a source.
    pub moves_completed: u64,
    /// Writes refused because the coordinator routed by an older ring.
    pub stale_ring_refusals: u64,
    /// Client requests coordinated (past the in-flight and membership checks).
    pub requests_coordinated: u64,
    /// Of those, requests for keys this node holds no replica of (by the list it routed by).
    pub requests_coordinated_off_replica: u64,
    /// Tombstones purged from this node's storage by reap rounds.
    pub tombstones_reaped: u64,
}

/// One cluster node. See the module docs.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    rings: RingState,
    /// `rings.version()`, cached: it digests both rings.
    ring_version: u64,
    /// When each peer was last pushed the ring state.
    ring_pushed: BTreeMap<NodeId, Tick>,
    claim: claim::ClaimState,
    moves: moves::MovesState,
    transfers: Transfers,
    gossip: Gossip,
    hints: HintBook,
    trees: BTreeMap<PartitionId, TicTacTree>,
    puts: BTreeMap<RequestId, PutState>,
    gets: BTreeMap<RequestId, GetState>,
    pending: BTreeMap<u64, Pending>,
    next_storage_id: u64,
    /// Recent coordinated updates by (coordinator, op): `None` while in progress.
    updates: BTreeMap<(NodeId, RequestId), Option<PeerMessage>>,
    updates_order: VecDeque<(NodeId, RequestId)>,
    last_hint_round: Tick,
    ae: replica::AeState,
    reap: reap::ReapState,
    /// The wall clock of the latest input (dot floors).
    wall_ms: u64,
    stats: NodeStats,
}

/// What a node recovers from its storage at start-up.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every persisted hint.
    pub hints: Vec<crate::handoff::Hint>,
    /// Every stored key with its object, to rebuild the Merkle trees.
    pub objects: Vec<(Key, Object)>,
    /// The last ring state persisted by [`StorageOp::SaveRing`], if any.
    pub ring: Option<RingState>,
}

impl Node {
    /// A node starting (or restarting) with the ring state `ring` (or the newer one it
    /// recovered), its membership record `me` (whose generation the driver made larger than
    /// any before; a node that is not yet a member starts `Joining`), the `seeds` it gossips
    /// with first, and what it recovered from storage.
    pub fn new(
        config: NodeConfig,
        ring: RingState,
        mut me: MemberRecord,
        seeds: Vec<NodeId>,
        recovered: Recovered,
        now: Tick,
    ) -> Node {
        let rings = match recovered.ring {
            Some(saved)
                if saved.version() > ring.version()
                    && saved.current().partitions() == ring.current().partitions() =>
            {
                saved
            }
            _ => ring,
        };
        let ring_version = rings.version();
        me.ring_version = ring_version;
        let me_generation = me.generation;
        let gossip = Gossip::new(me, seeds, config.gossip);
        let mut hints = HintBook::new(config.hint_retry_ticks);
        hints.restore(recovered.hints);
        let mut node = Node {
            gossip,
            hints,
            rings,
            ring_version,
            ring_pushed: BTreeMap::new(),
            claim: claim::ClaimState::default(),
            moves: moves::MovesState::default(),
            transfers: Transfers::new(config.transfer),
            trees: BTreeMap::new(),
            puts: BTreeMap::new(),
            gets: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_storage_id: 0,
            updates: BTreeMap::new(),
            updates_order: VecDeque::new(),
            last_hint_round: now,
            ae: replica::AeState::new(now),
            reap: reap::ReapState::new(now, me_generation, config.tombstone_grace_ticks),
            wall_ms: 0,
            stats: NodeStats::default(),
            config,
        };
        for (key, object) in &recovered.objects {
            // Tree only: a node that starts vetoes every reap for a grace period anyway.
            node.track_tree(key, &Object::new(), object);
        }
        let mut ignored = Vec::new();
        node.on_ring_changed(now, &mut ignored);
        node.update_status();
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The ring reads use, as this node sees it.
    pub fn ring(&self) -> &Ring {
        self.rings.read_ring()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The ring state: current ring and the change in progress.
    pub fn ring_state(&self) -> &RingState {
        &self.rings
    }

    /// This node's partition transfers.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// The membership view.
    pub fn gossip(&self) -> &Gossip {
        &self.gossip
    }

    /// Adds a seed learned at run time (a driver resolves seed addresses to node ids by
    /// connecting to them, which may succeed only after start-up).
    pub fn add_seed(&mut self, seed: NodeId) {
        self.gossip.add_seed(seed);
    }

    /// The hints held.
    pub fn hints(&self) -> &HintBook {
        &self.hints
    }

    /// The Merkle tree root of partition `p` (0, the empty root, if nothing was stored).
    pub fn tree_root(&self, p: PartitionId) -> u64 {
        self.trees.get(&p).map_or(0, TicTacTree::root)
    }

    /// What the node has done so far.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Client requests still being coordinated.
    pub fn requests_in_flight(&self) -> usize {
        self.puts.len() + self.gets.len()
    }

    /// Turns anti-entropy on or off (the simulator pauses it in some checking phases).
    pub fn set_anti_entropy(&mut self, interval_ticks: u64) {
        self.config.ae_interval_ticks = interval_ticks;
    }

    /// Turns tombstone reaping on or off (the simulator pauses it in some checking phases).
    pub fn set_reaping(&mut self, interval_ticks: u64) {
        self.config.reap_interval_ticks = interval_ticks;
    }

    /// Advances the node by one input. `wall_ms` is the wall clock for last-write-wins
    /// timestamps (it may jump; `now` may not go backwards).
    pub fn step(
        &mut self,
        now: Tick,
        wall_ms: u64,
        input: Input,
        rng: &mut impl RngCore,
        out: &mut Vec<Action>,
    ) {
        self.wall_ms = wall_ms;
        match input {
            Input::Tick => self.on_tick(now, rng, out),
            Input::Client {
                request,
                op,
                options,
            } => self.on_client(now, wall_ms, request, op, options, out),
            Input::Peer { from, message } => self.on_peer(now, from, message, rng, out),
            Input::Storage { id, result } => self.on_storage(now, id, result, out),
        }
    }

    fn on_tick(&mut self, now: Tick, rng: &mut impl RngCore, out: &mut Vec<Action>) {
        let mut gossip_out = Vec::new();
        self.gossip
            .step(now, GossipInput::Tick, rng, &mut gossip_out);
        self.forward_gossip(gossip_out, out);
        self.ring_tick(now, out);
        self.moves_tick(now, rng, out);

        let mut put_actions = Vec::new();
        for (request, put) in self.puts.iter_mut() {
            let mut actions = Vec::new();
            put.coordinator.on_tick(now, &mut actions);
            put_actions.extend(actions.into_iter().map(|a| (*request, a)));
        }
        for (request, action) in put_actions {
            self.run_put_action(now, request, action, out);
        }
        let mut get_actions = Vec::new();
        for (request, get) in self.gets.iter_mut() {
            let mut actions = Vec::new();
            get.coordinator.on_tick(now, &mut actions);
            get_actions.extend(actions.into_iter().map(|a| (*request, a)));
        }
        for (request, action) in get_actions {
            self.run_get_action(now, request, action, out);
        }
        self.puts.retain(|_, p| !p.coordinator.is_finished());
        self.gets.retain(|_, g| !g.coordinator.is_finished());

        if self.config.hint_delivery
            && now.since(self.last_hint_round) >= self.config.hint_round_ticks
        {
            self.last_hint_round = now;
            let (gossip, rings) = (&self.gossip, &self.rings);
            // A hint for a node that left the ring goes to the key's replicas instead.
            let due = self
                .hints
                .due(now, |n| gossip.is_alive(n, now) || !rings.has_member(n));
            for delivery in due {
                let key = Key {
                    token: delivery.hint.token,
                    bytes: delivery.hint.key,
                };
                let Some(to) = self.hint_destination(now, delivery.hint.owner, &key) else {
                    continue;
                };
                let message = PeerMessage::HintDeliver {
                    delivery: delivery.delivery,
                    key,
                    object: delivery.hint.object,
                };
                self.send(now, to, message, out);
            }
        }
        self.ae_tick(now, rng, out);
        self.reap_tick(now, out);
    }

    fn forward_gossip(&mut self, actions: Vec<GossipAction>, out: &mut Vec<Action>) {
        for GossipAction::Send { to, msg } in actions {
            if to != self.config.id {
                out.push(Action::Send {
                    to,
                    message: PeerMessage::Gossip(msg),
                });
            }
        }
    }

    fn on_client(
        &mut self,
        now: Tick,
        wall_ms: u64,
        request: RequestId,
        op: ClientOp,
        options: QuorumOptions,
        out: &mut Vec<Action>,
    ) {
        if self.requests_in_flight() >= REQUESTS_IN_FLIGHT_MAX {
            out.push(Action::Reply {
                request,
                result: Err(QuorumError::Unavailable {
                    reachable: 0,
                    needed: options.r.max(options.w),
                }),
            });
            return;
        }
        if !self.rings.is_known() || self.rings.target_ring().member(self.config.id).is_none() {
            // Only members of the ring being moved to stay inside the barriers of later ring
            // changes; anyone else (joining, leaving, left) may route by a stale ring and
            // read from replicas that no longer own the key.
            let result = Err(QuorumError::NotAMember {
                node: self.config.id,
            });
            out.push(Action::Reply { request, result });
            return;
        }
        let (key, write) = match op {
            ClientOp::Get { key } => (key, None),
            ClientOp::Put {
                key,
                context,
                value,
            } => (key, Some((context, Some(value)))),
            ClientOp::Delete { key, context } => (key, Some((context, None))),
        };
        let rep = &self.config.replication;
        let p = self.rings.current().partitions().partition_of(key.token);
        let n_read = rep.total().min(self.rings.read_ring().members().len());
        // A scoped request counts per datacenter; `asked` 0 means a majority in each.
        let asked = if write.is_none() {
            options.r
        } else {
            options.w
        };
        let (list, extra) = if write.is_none() {
            (self.rings.read_list(p, rep), 0)
        } else {
            // During a ring change a write reaches both rings' replicas and needs `extra`
            // more acks, so that both hold `w` (see `rings`).
            self.rings.write_list(p, rep)
        };
        // Counting anywhere, a write during a ring change needs `extra` more acks; more than n
        // is refused as TooManyAsked.
        let (asked_any, n) = if write.is_none() || asked > n_read {
            (asked, n_read)
        } else {
            ((asked.max(1) + extra).min(list.len()), list.len())
        };
        self.stats.requests_coordinated += 1;
        if !list.contains(&self.config.id) {
            self.stats.requests_coordinated_off_replica += 1;
        }
        let fallbacks = self.rings.fallbacks(p, rep, &list);
        let gossip = &self.gossip;
        let targets = choose_targets(&list, &fallbacks, options.sloppy, |node| {
            gossip.is_alive(node, now)
        });
        let tally = match options.scope {
            AckScope::Any => Tally::any(&targets, asked_any, n),
            scope => self.scoped_tally(&targets, &list, asked, extra, scope),
        };
        let tally = match tally {
            Ok(tally) => tally,
            Err(e) => {
                out.push(Action::Reply {
                    request,
                    result: Err(e),
                });
                return;
            }
        };
        let timeout = self.config.request_timeout_ticks;
        match write {
            None => {
                let mut actions = Vec::new();
                let coordinator = GetCoordinator::start(
                    now,
                    targets,
                    tally,
                    timeout,
                    self.config.read_repair,
                    &mut actions,
                );
                self.gets.insert(request, GetState { coordinator, key });
                for action in actions {
                    self.run_get_action(now, request, action, out);
                }
            }
            Some((context, value)) => {
                if targets.iter().any(|t| t.hint_for.is_some()) {
                    self.stats.sloppy_writes += 1;
                }
                let mut actions = Vec::new();
                let coordinator = PutCoordinator::start(
                    now,
                    self.config.id,
                    targets,
                    tally,
                    timeout,
                    &mut actions,
                );
                self.puts.insert(
                    request,
                    PutState {
                        coordinator,
                        key,
                        context,
                        value,
                        timestamp_ms: wall_ms,
                        durable: options.durable,
                        ring: self.ring_version,
                    },
                );
                for action in actions {
                    self.run_put_action(now, request, action, out);
                }
            }
        }
        self.puts.retain(|_, p| !p.coordinator.is_finished());
        self.gets.retain(|_, g| !g.coordinator.is_finished());
    }

    /// `asked` answers per datacenter at `scope`, over the datacenters of `replicas` as the
    /// ring being moved to places its members.
    fn scoped_tally(
        &self,
        targets: &[Target],
        replicas: &[NodeId],
        asked: usize,
        extra: usize,
        scope: AckScope,
    ) -> Result<Tally, QuorumError> {
        let ring = self.rings.target_ring();
        let dc_of = |node| ring.member(node).map(|m| m.dc.as_str());
        let local_dc = dc_of(self.config.id).unwrap_or("");
        let at = Placement {
            replicas,
            local_dc,
            dc_of,
        };
        Tally::scoped(targets, asked, extra, scope, at)
    }

    fn run_put_action(
        &mut self,
        now: Tick,
        request: RequestId,
        action: PutAction,
        out: &mut Vec<Action>,
    ) {
        let Some(put) = self.puts.get(&request) else {
            return;
        };
        let message = match action {
            PutAction::Reply(result) => {
                out.push(Action::Reply { request, result });
                return;
            }
            PutAction::Update { at } => (
                at,
                PeerMessage::Update {
                    op: request,
                    key: put.key.clone(),
                    context: put.context.clone(),
                    value: put.value.clone(),
                    timestamp_ms: put.timestamp_ms,
                    durable: put.durable,
                    ring: put.ring,
                },
            ),
            PutAction::Replicate { target, object } => (
                target.node,
                PeerMessage::Replicate {
                    op: request,
                    key: put.key.clone(),
                    object,
                    hint_for: target.hint_for,
                    durable: put.durable,
                    ring: put.ring,
                },
            ),
        };
        self.send(now, message.0, message.1, out);
    }

    fn run_get_action(
        &mut self,
        now: Tick,
        request: RequestId,
        action: GetAction,
        out: &mut Vec<Action>,
    ) {
        let Some(get) = self.gets.get(&request) else {
            return;
        };
        let key = get.key.clone();
        match action {
            GetAction::Reply(result) => out.push(Action::Reply { request, result }),
            GetAction::Read { at } => {
                self.send(now, at, PeerMessage::Read { op: request, key }, out)
            }
            GetAction::Repair { to, object } => {
                self.stats.read_repairs += 1;
                self.send(now, to, PeerMessage::Repair { key, object }, out)
            }
        }
    }

    /// Sends `message` to `to`; a message to this node itself is handled at once, so that the
    /// coordinator treats its own replica exactly like a remote one.
    fn send(&mut self, now: Tick, to: NodeId, message: PeerMessage, out: &mut Vec<Action>) {
        if to == self.config.id {
            self.on_data_message(now, to, message, out);
        } else {
            out.push(Action::Send { to, message });
        }
    }

    fn on_peer(
        &mut self,
        now: Tick,
        from: NodeId,
        message: PeerMessage,
        rng: &mut impl RngCore,
        out: &mut Vec<Action>,
    ) {
        match message {
            PeerMessage::Gossip(msg) => {
                let mut gossip_out = Vec::new();
                self.gossip.step(
                    now,
                    GossipInput::Message { from, msg },
                    rng,
                    &mut gossip_out,
                );
                self.forward_gossip(gossip_out, out);
            }
            PeerMessage::Ring(state) => self.adopt_ring(now, *state, out),
            PeerMessage::MovesDone { ring, moves } => self.on_moves_done(from, ring, moves),
            PeerMessage::Remove { nodes } => self.on_remove(now, nodes),
            PeerMessage::Transfer(message) => self.on_transfer_message(now, from, message, out),
            other => self.on_data_message(now, from, other, out),
        }
    }

    /// Issues a storage operation, remembering what to do with its result. Under overload the
    /// op is dropped: whoever waits for it times out and retries (nothing acknowledged
    /// depends on an op that was never issued).
    fn storage(&mut self, op: StorageOp, durable: bool, pending: Pending, out: &mut Vec<Action>) {
        self.try_storage(op, durable, pending, out);
    }

    /// [`Node::storage`] for a caller with no timeout of its own: false if the op was dropped.
    fn try_storage(
        &mut self,
        op: StorageOp,
        durable: bool,
        pending: Pending,
        out: &mut Vec<Action>,
    ) -> bool {
        if self.pending.len() >= STORAGE_OPS_IN_FLIGHT_MAX {
            return false;
        }
        self.next_storage_id += 1;
        let id = self.next_storage_id;
        self.pending.insert(id, pending);
        out.push(Action::Storage { id, op, durable });
        true
    }

    /// Keeps the partition's Merkle tree in step with a change storage reported at `now`,
    /// and notes a copy that became a tombstone (see `reap`).
    fn track_change(&mut self, now: Tick, key: &Key, before: &Object, after: &Object) {
        if self.track_tree(key, before, after) && !after.is_empty() && after.is_deleted() {
            self.reap.tombstone_arrived(now, key);
        }
    }

    /// Keeps the partition's Merkle tree in step with a change; whether the version changed.
    fn track_tree(&mut self, key: &Key, before: &Object, after: &Object) -> bool {
        let p = self.rings.current().partitions().partition_of(key.token);
        let tree = self.tree_mut(p);
        let old = (!before.is_empty()).then(|| version_hash(before));
        let new = (!after.is_empty()).then(|| version_hash(after));
        if old != new {
            tree.update(key.token, &key.bytes, old, new);
        }
        old != new
    }

    /// Where a hint for `owner` goes: the owner while the ring being moved to keeps it among
    /// the key's replicas, else that ring's first live replica of the key (the owner left or
    /// is losing the partition, and a copy handed to it could miss the partition's move).
    fn hint_destination(&self, now: Tick, owner: NodeId, key: &Key) -> Option<NodeId> {
        let rep = &self.config.replication;
        let p = self.rings.current().partitions().partition_of(key.token);
        let list = self.rings.target_ring().preference_list(p, rep);
        if list.contains(&owner) {
            return Some(owner);
        }
        list.into_iter().find(|&n| self.gossip.is_alive(n, now))
    }

    fn lww(&self) -> bool {
        self.config.conflict == ConflictMode::LastWriteWins
    }
}
