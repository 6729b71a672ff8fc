//! The cluster driver: runs core's [`Node`] on a shard's executor.
//!
//! The node is a sans-IO state machine; this module feeds it and carries out what it asks:
//! - inputs: a clock tick every [`TICK`], peer messages from the peer listener, client
//!   requests from the connections, and the results of the storage operations it asked for;
//! - actions: peer messages go out through the [`PeerPool`], storage operations run on the
//!   shard's engine ([`storage::execute`]) as tasks that feed their result back, replies
//!   complete the waiting client request.
//!
//! Membership bootstrap: a node introduces itself by sending its own membership record (a
//! gossip `Ack2`, which any node merges) to each seed address, and after a restart to each
//! peer address it saved, until that address shows up in its gossip view; from then on gossip
//! carries every address. Peer links follow the addresses gossip reports. The saved addresses
//! matter: peers learn a restarted node's new incarnation only from the node itself, and a
//! node started without seeds (the one that founded the cluster) has nobody else to ask.
//!
//! Invariants: the node is borrowed only inside [`step`], never across an `.await`, so every
//! input is applied whole and in arrival order; storage results of one key come back in the
//! order the node issued them (each op starts in issue order under the key's turn, and its
//! result is fed back in the same poll in which it completes).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use tessera_core::membership::{GossipMessage, MemberRecord, Status};
use tessera_core::node::{
    Action, ClientOp, ConflictMode, Input, Node, NodeConfig as CoreNodeConfig, PeerMessage,
    Recovered, RemoveError, RingState,
};
use tessera_core::placement::{Member, Ring};
use tessera_core::quorum::{AckScope, QuorumError, QuorumOptions, RequestId};
use tessera_core::transfer::Direction;
use tessera_core::{NodeId, Object, PartitionCount, Tick};
use tessera_schema::{
    AckScope as WireScope, ClusterMember, ClusterStatus, Consistency, Encoder, QuorumMode,
    TransferInfo, NO_REPLICA,
};

use super::peers::{PeerPool, SendError};
use super::storage::{self, engine_key, is_internal, parse_hint, HINTS_KEYSPACE};
use crate::config::{ClusterSettings, ConflictSetting};
use crate::engine::Engine;
use crate::error::ShardError;

/// How often the node's clock ticks.
pub const TICK: Duration = Duration::from_millis(5);
/// How often peer links are matched to the addresses gossip reports.
pub const ADDRESS_REFRESH: Duration = Duration::from_millis(100);
/// How often a node that has not yet heard of a seed introduces itself to it again.
pub const HELLO_INTERVAL: Duration = Duration::from_secs(1);
/// How often the node starts an anti-entropy exchange (one at a time, each for the next
/// partition it replicates, in turn): a sweep over 1,024 partitions takes about 10 s, so a
/// replica that missed writes is repaired within a sweep or two of coming back. An exchange
/// of equal trees costs one small message each way (about 170 bytes); the budget is the one
/// exchange in flight, so repairs never crowd out client traffic.
pub const AE_INTERVAL: Duration = Duration::from_millis(10);
/// How long an introduction may take to connect and send.
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);

/// A client request waiting for the node's reply.
type Waiter = oneshot::Sender<Result<Object, QuorumError>>;

/// One shard's cluster node and what it needs to run.
pub struct Driver {
    node: RefCell<Node>,
    me: NodeId,
    peers: Rc<PeerPool>,
    waiting: RefCell<HashMap<RequestId, Waiter>>,
    next_request: Cell<u64>,
    origin: Instant,
    rng: RefCell<Xoshiro256PlusPlus>,
    settings: ClusterSettings,
    /// When each peer was last sent this node's introduction.
    introduced: RefCell<HashMap<NodeId, Instant>>,
    /// Addresses to introduce this node to until gossip reports them: the configured seeds
    /// and the peers saved before a restart.
    introduce_to: Vec<SocketAddr>,
    /// The peer addresses last saved.
    saved_peers: RefCell<Vec<SocketAddr>>,
    /// Bytes of anti-entropy traffic (tree exchange, fetches, repair objects, read repair's
    /// included) queued for peers since start.
    ae_bytes_sent: Cell<u64>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("me", &self.me).finish()
    }
}

/// Where the driver's storage operations run and where it replies: the shard's context.
pub trait Host: 'static {
    /// The shard's engine.
    fn engine(&self) -> &Engine;
    /// The shard's driver.
    fn driver(&self) -> &Driver;
}

impl Driver {
    /// Recovers the node's state from `engine` (its saved ring, hints and the objects its
    /// Merkle trees are built from) and creates the node.
    pub async fn open(
        engine: &Engine,
        me: NodeId,
        partitions: PartitionCount,
        settings: ClusterSettings,
        client_addr: SocketAddr,
    ) -> Result<Driver, ShardError> {
        // Purged keys leave empty objects behind: compaction may drop them.
        storage::set_absent_key_gc(engine);
        let recovered = recover(engine).await?;
        let saved_peers = storage::load_peers(engine).await?;
        let mut introduce_to = settings.seeds.clone();
        introduce_to.extend(
            saved_peers
                .iter()
                .filter(|a| **a != settings.peer_listen && !settings.seeds.contains(a)),
        );
        let member = Member::new(
            me,
            settings.rack.clone(),
            settings.dc.clone(),
            settings.weight,
        );
        let alone = Ring::new(partitions, vec![member])
            .map_err(|e| ShardError::Storage(format!("cannot build this node's ring: {e}")))?;
        // Only the saved *current* ring makes this node a member: one that restarts while it
        // is still joining (named by the next ring alone) joins on, so that a change planned
        // again without it can take it back in.
        let in_saved_ring = recovered
            .ring
            .as_ref()
            .is_some_and(|r| r.current().member(me).is_some());
        let founding = settings.seeds.is_empty() && recovered.ring.is_none();
        // A node that is neither founding a cluster nor in the ring it saved joins: it claims
        // nothing until the cluster pushes it the ring.
        let (ring, status) = if founding || in_saved_ring {
            (RingState::initial(alone), Status::Up)
        } else {
            (RingState::unknown(alone), Status::Joining)
        };
        let record = MemberRecord {
            id: me,
            addr: settings.peer_listen.to_string(),
            client_addr: client_addr.to_string(),
            rack: settings.rack.clone(),
            dc: settings.dc.clone(),
            weight: settings.weight,
            status,
            // Larger after every restart: the wall clock in milliseconds.
            generation: crate::engine::now_ms(),
            heartbeat: 0,
            ring_version: 0,
        };
        let replication = settings
            .replication()
            .map_err(|e| ShardError::Storage(format!("bad replication settings: {e}")))?;
        let mut config = CoreNodeConfig::new(me, replication);
        config.quorum = QuorumOptions {
            r: settings.read_quorum,
            w: settings.write_quorum,
            ..QuorumOptions::default()
        };
        // The node's ticks are milliseconds since start (`Driver::now`).
        config.ae_interval_ticks = u64::try_from(AE_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        config.tombstone_grace_ticks = settings.tombstone_grace_secs.saturating_mul(1_000);
        config.conflict = match settings.conflict {
            ConflictSetting::Siblings => ConflictMode::Siblings,
            ConflictSetting::Lww => ConflictMode::LastWriteWins,
        };
        let origin = Instant::now();
        let node = Node::new(config, ring, record, Vec::new(), recovered, Tick(0));
        Ok(Driver {
            node: RefCell::new(node),
            me,
            peers: PeerPool::new(me),
            waiting: RefCell::new(HashMap::new()),
            // Never reused, even across restarts (see `RequestId`): this start's wall clock in
            // milliseconds, times 2^20, is above any id the previous incarnation could reach
            // short of a million requests per millisecond of its life.
            next_request: Cell::new(crate::engine::now_ms() << 20),
            origin,
            // Gossip peer choice and jitter only: seeded apart per node and per start.
            rng: RefCell::new(Xoshiro256PlusPlus::seed_from_u64(
                me.0 ^ crate::engine::now_ms(),
            )),
            settings,
            introduced: RefCell::new(HashMap::new()),
            introduce_to,
            saved_peers: RefCell::new(saved_peers),
            ae_bytes_sent: Cell::new(0),
        })
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Reads the node's state (for status and tests).
    pub fn with_node<T>(&self, f: impl FnOnce(&Node) -> T) -> T {
        f(&self.node.borrow())
    }

    /// The quorum options of one client request: see [`request_options`], with this node's
    /// default r and w.
    pub fn options(
        &self,
        durable: bool,
        consistency: Consistency,
        access: Access,
    ) -> QuorumOptions {
        request_options(
            self.settings.read_quorum,
            self.settings.write_quorum,
            durable,
            consistency,
            access,
        )
    }

    /// Asks the cluster to take this node out of the ring; its partitions stream to the
    /// nodes that take them over, and it shows `Left` once the change is committed.
    pub fn leave(&self) {
        self.node.borrow_mut().leave();
    }

    /// Asks the cluster to remove `node`, a member gone for good (see
    /// [`tessera_core::node::Node::remove`]).
    pub fn remove(&self, node: NodeId) -> Result<(), RemoveError> {
        let now = self.now();
        self.node.borrow_mut().remove(now, node)
    }

    /// The cluster as this node sees it, for `tessera status` and `tessera ring`.
    pub fn status(&self) -> ClusterStatus {
        let now = self.now();
        self.with_node(|node| {
            let rings = node.ring_state();
            let current = rings.current();
            let next = rings.next();
            let owned = |id: NodeId| {
                let now_owned = count(current.owned_partitions(id).len());
                let then = next.map_or(now_owned, |r| count(r.owned_partitions(id).len()));
                (now_owned, then)
            };
            let gossip = node.gossip();
            let mut members: Vec<ClusterMember> = gossip
                .records()
                .map(|r| {
                    let (partitions, next_partitions) = owned(r.id);
                    ClusterMember {
                        id: r.id.0,
                        addr: r.addr.clone(),
                        rack: r.rack.clone(),
                        dc: r.dc.clone(),
                        status: member_status(node, r),
                        alive: r.id == self.me || gossip.is_alive(r.id, now),
                        partitions,
                        next_partitions,
                        client_addr: r.client_addr.clone(),
                    }
                })
                .collect();
            // Ring members gossip has not reported yet (after a restart) still own data.
            for id in rings.all_members() {
                if members.iter().all(|m| m.id != id.0) {
                    let (partitions, next_partitions) = owned(id);
                    members.push(ClusterMember {
                        id: id.0,
                        status: "Unknown".into(),
                        alive: false,
                        partitions,
                        next_partitions,
                        ..ClusterMember::default()
                    });
                }
            }
            members.sort_by_key(|m| m.id);
            let transfers = node
                .transfers()
                .progress()
                .into_iter()
                .map(|p| TransferInfo {
                    partition: p.partition.0,
                    peer: p.peer.0,
                    outgoing: matches!(p.direction, Direction::Outgoing),
                    state: format!("{:?}", p.state),
                    entries: p.entries,
                    bytes: p.bytes,
                })
                .collect();
            let stats = node.stats();
            let partition_replicas = preference_lists(node, &members);
            ClusterStatus {
                node_id: self.me.0,
                status: format!("{:?}", node.status()),
                ring_epoch: rings.epoch(),
                ring_phase: format!("{:?}", rings.phase()),
                replicas: count(self.settings.n()),
                read_quorum: count(self.settings.read_quorum),
                write_quorum: count(self.settings.write_quorum),
                members,
                transfers,
                moves_pending: count(node.moves_outstanding()),
                hints_held: u64::try_from(node.hints().len()).unwrap_or(u64::MAX),
                partition_roots: current
                    .partitions()
                    .iter()
                    .map(|p| node.tree_root(p))
                    .collect(),
                ae_exchanges: stats.ae_exchanges,
                ae_keys_repaired: stats.ae_keys_repaired,
                tombstones_reaped: stats.tombstones_reaped,
                ae_bytes_sent: self.ae_bytes_sent.get(),
                read_repairs: stats.read_repairs,
                hints_delivered: stats.hints_delivered,
                requests_coordinated: stats.requests_coordinated,
                requests_coordinated_off_replica: stats.requests_coordinated_off_replica,
                partition_replicas,
            }
        })
    }

    fn now(&self) -> Tick {
        Tick(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads everything the node rebuilds its state from. The whole store passes through memory
/// once; a node holding more than its memory should rebuild its trees in pages instead.
async fn recover(engine: &Engine) -> Result<Recovered, ShardError> {
    let ring = storage::load_ring(engine).await?;
    let (entries, _) = engine
        .read_range((0, u64::MAX), None, usize::MAX, usize::MAX)
        .await?;
    let mut recovered = Recovered {
        ring,
        ..Recovered::default()
    };
    for (mem_key, object) in entries {
        let Some(key) = tessera_core::node::Key::from_entry_bytes(&mem_key) else {
            continue;
        };
        if object.is_empty() {
            continue;
        }
        if !is_internal(&key) {
            recovered.objects.push((key, object));
            continue;
        }
        if let Ok((HINTS_KEYSPACE, hint_key)) = engine_key(&key) {
            recovered.hints.extend(parse_hint(hint_key, object));
        }
    }
    Ok(recovered)
}

/// Every partition's replicas by the ring `node` reads from, n entries per partition:
/// indexes into `members` (sorted by id), [`NO_REPLICA`] where the ring names fewer.
fn preference_lists(node: &Node, members: &[ClusterMember]) -> Vec<u16> {
    let rings = node.ring_state();
    let replication = &node.config().replication;
    let n = replication.total();
    let index = |id: NodeId| {
        members
            .binary_search_by_key(&id.0, |m| m.id)
            .ok()
            .and_then(|i| u16::try_from(i).ok())
            .unwrap_or(NO_REPLICA)
    };
    let mut out = Vec::new();
    for p in rings.current().partitions().iter() {
        let list = rings.read_list(p, replication);
        out.extend((0..n).map(|i| list.get(i).map_or(NO_REPLICA, |&id| index(id))));
    }
    out
}

/// Feeds one input to the node and carries out what it asks.
pub fn step<H: Host>(host: &Rc<H>, input: Input) {
    let driver = host.driver();
    let mut actions = Vec::new();
    driver.node.borrow_mut().step(
        driver.now(),
        crate::engine::now_ms(),
        input,
        &mut *driver.rng.borrow_mut(),
        &mut actions,
    );
    for action in actions {
        act(host, action);
    }
}

fn act<H: Host>(host: &Rc<H>, action: Action) {
    let driver = host.driver();
    match action {
        Action::Send { to, message } => send(driver, to, &message),
        Action::Storage { id, op, durable } => {
            let host = host.clone();
            let me = driver.me;
            glommio::spawn_local(async move {
                let result = storage::execute(host.engine(), me, op, durable).await;
                step(&host, Input::Storage { id, result });
            })
            .detach();
        }
        Action::Reply { request, result } => {
            if let Some(waiter) = driver.waiting.borrow_mut().remove(&request) {
                // The client may have gone away; nothing to do then.
                let _ = waiter.send(result);
            }
        }
    }
}

fn send(driver: &Driver, to: NodeId, message: &PeerMessage) {
    let mut outcome = driver.peers.send(to, message);
    if matches!(outcome, Err(SendError::UnknownPeer(_))) && link_to(driver, to) {
        outcome = driver.peers.send(to, message);
    }
    match outcome {
        Ok(bytes) => {
            if matches!(
                message,
                PeerMessage::Ae(_) | PeerMessage::Fetch { .. } | PeerMessage::Repair { .. }
            ) {
                driver
                    .ae_bytes_sent
                    .set(driver.ae_bytes_sent.get() + bytes as u64);
            }
        }
        // Like a lost packet: the protocols above retry, time out or repair.
        Err(e) => tracing::debug!(error = %e, "peer message dropped"),
    }
}

/// Points the link to `peer` at the address gossip reports for it; false if none is known.
fn link_to(driver: &Driver, peer: NodeId) -> bool {
    let addr = driver.with_node(|node| {
        node.gossip()
            .record(peer)
            .and_then(|r| r.addr.parse::<SocketAddr>().ok())
    });
    let Some(addr) = addr else {
        return false;
    };
    driver.peers.set_addr(peer, addr);
    true
}

/// Runs a client operation through the node and waits for its reply.
pub async fn client<H: Host>(
    host: &Rc<H>,
    op: ClientOp,
    options: QuorumOptions,
) -> Result<Object, QuorumError> {
    let driver = host.driver();
    let request = RequestId(driver.next_request.get());
    driver.next_request.set(request.0 + 1);
    let (tx, rx) = oneshot::channel();
    driver.waiting.borrow_mut().insert(request, tx);
    step(
        host,
        Input::Client {
            request,
            op,
            options,
        },
    );
    // The node answers every request by its deadline; a dropped sender means the node is
    // shutting down.
    rx.await.unwrap_or(Err(QuorumError::Timeout {
        answered: 0,
        needed: options.w.max(options.r),
    }))
}

/// A member's status for people: as it gossips it, except "Removed" for one the operator
/// removed (it cannot say so itself: it is gone).
fn member_status(node: &Node, record: &MemberRecord) -> String {
    let rings = node.ring_state();
    let removed = node.removals().any(|n| n == record.id)
        || rings.removed().contains(&record.id)
        || (record.status == Status::Up && rings.is_known() && !rings.has_member(record.id));
    if removed {
        "Removed".into()
    } else {
        format!("{:?}", record.status)
    }
}

/// Delivers a message from a peer.
///
/// Introductions: a sender seen in a new incarnation (one this node had no record of, or a
/// restart) is answered with this node's own record once the message taught its address: a
/// seed learns a newcomer from its introduction and the newcomer learns the seed from the
/// answer, which a restarted node needs as much as a new one. An introduction is answered
/// again (at most once per [`HELLO_INTERVAL`] per peer) even from a known incarnation, because
/// the first answer can be lost: it may be written into the connection to the peer's previous
/// process before the link notices that process is gone. A stranger also becomes a seed, so
/// that gossip with it starts at once.
pub fn deliver<H: Host>(host: &Rc<H>, from: NodeId, message: PeerMessage) {
    let driver = host.driver();
    let generation = |d: &Driver| d.with_node(|n| n.gossip().record(from).map(|r| r.generation));
    let before = generation(driver);
    let introduces_itself = matches!(
        &message,
        PeerMessage::Gossip(GossipMessage::Ack2 { records })
            if records.len() == 1 && records[0].id == from
    );
    if from != driver.me && before.is_none() {
        driver.node.borrow_mut().add_seed(from);
    }
    step(host, Input::Peer { from, message });
    let after = generation(driver);
    if from == driver.me || after.is_none() {
        return;
    }
    let answered_lately = driver
        .introduced
        .borrow()
        .get(&from)
        .is_some_and(|at| at.elapsed() < HELLO_INTERVAL);
    if after != before || (introduces_itself && !answered_lately) {
        driver.introduced.borrow_mut().insert(from, Instant::now());
        send(driver, from, &introduction(driver));
    }
}

/// The node's background work until the task is cancelled: the clock, the peer links'
/// addresses and the introductions to seeds.
pub async fn run<H: Host>(host: Rc<H>) {
    let mut last_refresh = Instant::now();
    let mut last_hello: Option<Instant> = None;
    let mut last_view = String::new();
    loop {
        step(&host, Input::Tick);
        let driver = host.driver();
        if last_refresh.elapsed() >= ADDRESS_REFRESH {
            last_refresh = Instant::now();
            refresh_links(driver);
            save_peers_if_changed(&host);
            // Formatted at this pace, not every tick: a change shows within 100 ms.
            let view = view(driver);
            if view != last_view {
                tracing::info!(node = %driver.me, "{view}");
                last_view = view;
            }
        }
        if last_hello.is_none_or(|at| at.elapsed() >= HELLO_INTERVAL) {
            last_hello = Some(Instant::now());
            for seed in unknown_seeds(driver) {
                let frame = hello_frame(driver);
                glommio::spawn_local(hello(seed, frame)).detach();
            }
        }
        glommio::timer::sleep(TICK).await;
    }
}

/// One line on what the node sees: its status, the ring and the peers gossip reports.
fn view(driver: &Driver) -> String {
    let now = driver.now();
    driver.with_node(|node| {
        let rings = node.ring_state();
        let peers: Vec<String> = node
            .gossip()
            .records()
            .filter(|r| r.id != driver.me)
            .map(|r| {
                let health = if node.gossip().is_alive(r.id, now) {
                    "up"
                } else {
                    "down"
                };
                format!("{}={:?}/{health}", r.id, r.status)
            })
            .collect();
        format!(
            "status {:?}; ring epoch {} {:?} with {} members{}; peers [{}]",
            node.status(),
            rings.epoch(),
            rings.phase(),
            rings.current().members().len(),
            rings.next().map_or(String::new(), |n| format!(
                " (next: {} members)",
                n.members().len()
            )),
            peers.join(", ")
        )
    })
}

/// Points every peer link at the address gossip reports, and empties the queues of peers the
/// failure detector holds down: what waits for them is dropped as if lost (every peer
/// protocol tolerates loss, and hints and anti-entropy repair what they missed), so a dead
/// peer costs no memory and a restarted one never receives its old incarnation's traffic.
fn refresh_links(driver: &Driver) {
    let now = driver.now();
    let peers: Vec<(NodeId, bool)> = driver.with_node(|node| {
        let gossip = node.gossip();
        gossip
            .records()
            .map(|r| (r.id, gossip.is_alive(r.id, now)))
            .filter(|&(id, _)| id != driver.me)
            .collect()
    });
    for (peer, alive) in peers {
        link_to(driver, peer);
        if !alive {
            let dropped = driver.peers.drop_queued(peer);
            if dropped > 0 {
                tracing::debug!(
                    peer = peer.0,
                    dropped,
                    "dropped queued frames for a down peer"
                );
            }
        }
    }
}

/// Saves the peers' addresses when gossip reports a different set (rarely: joins, leaves,
/// address changes). A failed save is retried at the next refresh.
fn save_peers_if_changed<H: Host>(host: &Rc<H>) {
    let driver = host.driver();
    let mut peers: Vec<SocketAddr> = driver.with_node(|node| {
        node.gossip()
            .records()
            .filter(|r| r.id != driver.me)
            .filter_map(|r| r.addr.parse().ok())
            .collect()
    });
    peers.sort_unstable();
    peers.dedup();
    if peers.is_empty() || *driver.saved_peers.borrow() == peers {
        return;
    }
    *driver.saved_peers.borrow_mut() = peers.clone();
    let host = host.clone();
    glommio::spawn_local(async move {
        let driver = host.driver();
        if let Err(e) = storage::save_peers(host.engine(), driver.me, &peers).await {
            tracing::warn!(error = %e, "cannot save the peers' addresses; retrying");
            driver.saved_peers.borrow_mut().clear();
        }
    })
    .detach();
}

/// Addresses to introduce this node to that no gossip record carries yet.
fn unknown_seeds(driver: &Driver) -> Vec<SocketAddr> {
    driver.with_node(|node| {
        driver
            .introduce_to
            .iter()
            .copied()
            .filter(|seed| {
                !node
                    .gossip()
                    .records()
                    .any(|r| r.id != driver.me && r.addr.parse::<SocketAddr>().ok() == Some(*seed))
            })
            .collect()
    })
}

/// This node's own membership record as a message any node merges.
fn introduction(driver: &Driver) -> PeerMessage {
    let record = driver.with_node(|node| node.gossip().me().clone());
    PeerMessage::Gossip(GossipMessage::Ack2 {
        records: vec![record],
    })
}

fn hello_frame(driver: &Driver) -> Vec<u8> {
    let mut frame = Vec::new();
    Encoder::new().encode_peer(driver.me, &introduction(driver), &mut frame);
    frame
}

/// Introduces this node to `seed` on a connection of its own (the seed's id is not known
/// yet, so no pooled link can name it).
async fn hello(seed: SocketAddr, frame: Vec<u8>) {
    use futures_lite::AsyncWriteExt;
    let attempt = async {
        let mut stream = glommio::net::TcpStream::connect(seed).await.ok()?;
        stream.write_all(&frame).await.ok()?;
        stream.close().await.ok()
    };
    let timeout = async {
        glommio::timer::sleep(HELLO_TIMEOUT).await;
        None
    };
    if futures_lite::future::or(attempt, timeout).await.is_none() {
        tracing::debug!(%seed, "seed not reachable yet");
    }
}

/// Which quorum a request's [`Consistency::replicas`] sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read: `replicas` is r.
    Read,
    /// A write (put or delete): `replicas` is w.
    Write,
}

/// The quorum options of one client request. `replicas` 0 keeps the node's default
/// (`r_default` for a read, `w_default` for a write); any other number replaces it, and core
/// refuses more than the key's replicas (`QuorumError::TooManyAsked`, which the client sees as
/// a `BadRequest` naming n). The quorum is sloppy unless the request asks for a strict one (the
/// node's default mode is sloppy, DESIGN §2).
pub fn request_options(
    r_default: usize,
    w_default: usize,
    durable: bool,
    consistency: Consistency,
    access: Access,
) -> QuorumOptions {
    let asked = usize::from(consistency.replicas);
    let scope = match consistency.scope {
        WireScope::Any => AckScope::Any,
        WireScope::LocalDc => AckScope::LocalDc,
        WireScope::EachDc => AckScope::EachDc,
    };
    // A scoped request with no count keeps 0: a majority of each datacenter's replicas.
    let or_default = |default: usize| match (asked, scope) {
        (0, AckScope::Any) => default,
        _ => asked,
    };
    let (r, w) = match access {
        Access::Read => (or_default(r_default), w_default),
        Access::Write => (r_default, or_default(w_default)),
    };
    QuorumOptions {
        r,
        w,
        sloppy: match consistency.quorum {
            QuorumMode::Default | QuorumMode::Sloppy => true,
            QuorumMode::Strict => false,
        },
        durable,
        scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(replicas: u8, quorum: QuorumMode, access: Access) -> QuorumOptions {
        let consistency = Consistency {
            replicas,
            quorum,
            ..Consistency::default()
        };
        request_options(2, 3, true, consistency, access)
    }

    #[test]
    fn default_consistency_is_the_nodes_quorums_and_sloppy() {
        for access in [Access::Read, Access::Write] {
            let o = options(0, QuorumMode::Default, access);
            assert_eq!((o.r, o.w, o.sloppy, o.durable), (2, 3, true, true));
        }
        let relaxed = request_options(2, 2, false, Consistency::default(), Access::Write);
        assert!(!relaxed.durable);
    }

    #[test]
    fn replicas_set_r_for_reads_and_w_for_writes() {
        let read = options(1, QuorumMode::Default, Access::Read);
        assert_eq!((read.r, read.w), (1, 3));
        let write = options(1, QuorumMode::Default, Access::Write);
        assert_eq!((write.r, write.w), (2, 1));
        // More than any n is passed on for core to refuse with a typed error, not clamped.
        let over = options(16, QuorumMode::Default, Access::Write);
        assert_eq!(over.w, 16);
    }

    #[test]
    fn only_strict_turns_the_sloppy_quorum_off() {
        for access in [Access::Read, Access::Write] {
            assert!(options(0, QuorumMode::Sloppy, access).sloppy);
            assert!(!options(0, QuorumMode::Strict, access).sloppy);
            assert!(!options(3, QuorumMode::Strict, access).sloppy);
        }
    }

    #[test]
    fn a_scoped_request_without_a_count_asks_for_majorities() {
        let scoped = |c: Consistency, access| request_options(2, 3, true, c, access);
        let local = scoped(Consistency::default().local_dc(), Access::Write);
        assert_eq!((local.w, local.scope), (0, AckScope::LocalDc));
        let each = scoped(Consistency::replicas(1).each_dc(), Access::Read);
        assert_eq!((each.r, each.scope), (1, AckScope::EachDc));
        assert_eq!(
            scoped(Consistency::default(), Access::Read).scope,
            AckScope::Any
        );
    }
}
