//! The simulated cluster: nodes, their disks, the network, the clients, and one event queue
//! ordered by virtual time, all driven from one seeded generator.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand_core::RngCore;
use rand_xoshiro::Xoshiro256PlusPlus;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::disk::SimDisk;
use super::network::Network;
use super::workload::{ClientRequest, Step, Workload};
use crate::ids::NodeId;
use crate::membership::{MemberRecord, Status};
use crate::node::{Action, Input, Node, NodeConfig, PeerMessage, RingState, StorageOp};
use crate::placement::{Member, Ring};
use crate::quorum::{QuorumError, RequestId};
use crate::tick::Tick;
use crate::version::Object;

/// Ticks between two clock ticks delivered to each node.
pub const NODE_TICK_TICKS: u64 = 10;

/// Ticks a client waits for a reply before giving up (beyond the node's own deadline).
pub const CLIENT_PATIENCE_TICKS: u64 = 4_000;

/// Largest think time of a client between two operations, ticks.
pub const CLIENT_THINK_TICKS_MAX: u64 = 40;

/// Something that happens at a point of virtual time.
#[derive(Debug)]
enum Event {
    NodeTick(usize),
    /// A message reaches `to`. Messages still in flight when a node restarts reach its new
    /// process, as bytes in a socket buffer would reach whoever reconnects.
    Deliver {
        to: usize,
        from: usize,
        message: PeerMessage,
    },
    StorageDone {
        node: usize,
        incarnation: u64,
        id: u64,
        op: StorageOp,
        durable: bool,
    },
    ClientWake(usize),
    /// A request (a client's or the checker's) reaches `node`.
    ClientArrive {
        node: usize,
        request: RequestId,
        request_body: Box<ClientRequest>,
    },
    ClientReply {
        client: usize,
        request: RequestId,
        result: Result<Object, QuorumError>,
    },
    ClientGiveUp {
        client: usize,
        request: RequestId,
    },
}

/// One node's slot: the node while it runs, its disk always.
#[derive(Debug)]
pub struct Slot {
    /// The running node; `None` while crashed.
    pub node: Option<Node>,
    /// Its disk, which outlives crashes.
    pub disk: SimDisk,
    incarnation: u64,
    /// Events for the node before this tick wait until then (a paused process).
    frozen_until: Tick,
    /// Added to the virtual time to make this node's wall clock (clock jumps).
    wall_offset_ms: i64,
    /// Not a member of the first ring: starts `Joining`.
    pub joiner: bool,
    /// Asked to leave; asked again after every restart (an operator's intent, persisted).
    pub leaving: bool,
    /// Started at least once.
    pub started: bool,
}

#[derive(Debug)]
struct ClientState {
    busy: Option<(RequestId, Step, Tick)>,
    active: bool,
}

/// The whole simulated world.
#[derive(Debug)]
pub struct World {
    pub(crate) now: Tick,
    pub(crate) rng: Xoshiro256PlusPlus,
    pub(crate) slots: Vec<Slot>,
    pub(crate) network: Network,
    pub(crate) workload: Workload,
    /// The ring the checks use: the first ring, then the ring the cluster settled on.
    pub(crate) ring: Ring,
    initial: RingState,
    configs: Vec<NodeConfig>,
    clients: Vec<ClientState>,
    queue: BinaryHeap<Reverse<(Tick, u64)>>,
    events: BTreeMap<u64, Event>,
    next_seq: u64,
    next_request: u64,
    /// Checker reads in flight and their answers.
    pub(crate) checker_answers: BTreeMap<RequestId, Option<Result<Object, QuorumError>>>,
    trace: u64,
    /// Events processed.
    pub events_processed: u64,
}

impl World {
    /// A world of nodes configured by `configs`, with `clients` idle clients. The members of
    /// `ring` start at once; the others are spare nodes that join when [`World::start_node`]
    /// starts them.
    pub fn new(
        seed_rng: Xoshiro256PlusPlus,
        ring: Ring,
        configs: Vec<NodeConfig>,
        network: Network,
        workload: Workload,
        clients: usize,
    ) -> World {
        let mut world = World {
            now: Tick(0),
            rng: seed_rng,
            slots: Vec::new(),
            network,
            workload,
            initial: RingState::initial(ring.clone()),
            ring,
            configs,
            clients: (0..clients)
                .map(|_| ClientState {
                    busy: None,
                    active: false,
                })
                .collect(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_seq: 0,
            next_request: 0,
            checker_answers: BTreeMap::new(),
            trace: 0,
            events_processed: 0,
        };
        for i in 0..world.configs.len() {
            world.slots.push(Slot {
                node: None,
                disk: SimDisk::default(),
                incarnation: 0,
                frozen_until: Tick(0),
                wall_offset_ms: 0,
                joiner: world.ring.member(world.configs[i].id).is_none(),
                leaving: false,
                started: false,
            });
            if !world.slots[i].joiner {
                world.start_node(i);
            }
            let first_tick = 1 + world.rng.next_u64() % NODE_TICK_TICKS;
            world.schedule(first_tick, Event::NodeTick(i));
        }
        world
    }

    /// Asks node `i` to leave the ring (again after each of its restarts).
    pub fn leave(&mut self, i: usize) {
        self.slots[i].leaving = true;
        if let Some(node) = self.slots[i].node.as_mut() {
            node.leave();
        }
    }

    /// The ring every started node has settled on: one stable state, the same everywhere
    /// (nodes that left do not take part in ring changes any more, and are not counted).
    pub fn settled_ring(&self) -> Option<&RingState> {
        let mut states = self
            .slots
            .iter()
            .filter(|s| s.started)
            .filter(|s| s.node.as_ref().is_none_or(|n| n.status() != Status::Left))
            .map(|s| s.node.as_ref().map(Node::ring_state));
        let first = states.next()??;
        let same = states.all(|s| s.is_some_and(|s| s.version() == first.version()));
        (same && first.next().is_none()).then_some(first)
    }

    /// The trace hash so far: every event's time, kind and parties.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// Lets the clients run (or stops them issuing new requests).
    pub fn set_clients_active(&mut self, active: bool) {
        for c in 0..self.clients.len() {
            let was = self.clients[c].active;
            self.clients[c].active = active;
            if active && !was && self.clients[c].busy.is_none() {
                let delay = 1 + self.rng.next_u64() % CLIENT_THINK_TICKS_MAX;
                self.schedule(delay, Event::ClientWake(c));
            }
        }
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].node.is_some()
    }

    /// Crashes node `i`: its process and unsynced writes are gone.
    pub fn crash(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.node.take().is_some() {
            slot.incarnation += 1;
            slot.disk.crash(&mut self.rng);
        }
    }

    /// Starts node `i` from its disk (after a crash, or at the beginning).
    pub fn start_node(&mut self, i: usize) {
        if self.slots[i].node.is_some() {
            return;
        }
        let config = self.configs[i].clone();
        let (generation, recovered) = self.slots[i].disk.start();
        let (rack, dc) = super::location(i, config.replication.per_dc_counts().is_some());
        let me = MemberRecord {
            id: config.id,
            addr: format!("sim-{i}"),
            client_addr: String::new(),
            rack,
            dc,
            weight: 1,
            status: if self.slots[i].joiner {
                Status::Joining
            } else {
                Status::Up
            },
            generation,
            heartbeat: 0,
            ring_version: 0,
        };
        let seeds: Vec<NodeId> = self
            .configs
            .iter()
            .map(|c| c.id)
            .filter(|&n| n != config.id)
            .collect();
        // A joiner knows only its seeds, as a real one does: it starts with a placeholder ring
        // and learns the cluster's from a push.
        let ring = if self.slots[i].joiner {
            let me_only = Member::new(me.id, me.rack.clone(), me.dc.clone(), me.weight);
            match self.initial.current().with_members(vec![me_only]) {
                Ok(placeholder) => RingState::unknown(placeholder),
                Err(_) => self.initial.clone(),
            }
        } else {
            self.initial.clone()
        };
        let mut node = Node::new(config, ring, me, seeds, recovered, self.now);
        if self.slots[i].leaving {
            node.leave();
        }
        self.slots[i].node = Some(node);
        self.slots[i].started = true;
    }

    /// Pauses node `i` for `ticks` (a stopped process: it keeps its memory).
    pub fn pause(&mut self, i: usize, ticks: u64) {
        self.slots[i].frozen_until = self.now + ticks;
    }

    /// Ends every pause.
    pub fn unpause_all(&mut self) {
        for slot in &mut self.slots {
            slot.frozen_until = Tick(0);
        }
    }

    /// Moves node `i`'s wall clock by `delta_ms`.
    pub fn jump_clock(&mut self, i: usize, delta_ms: i64) {
        self.slots[i].wall_offset_ms = self.slots[i].wall_offset_ms.saturating_add(delta_ms);
    }

    /// Sends a checker read (r = n, strict) of `request_body` to node `node`.
    pub fn checker_request(&mut self, node: usize, request_body: ClientRequest) -> RequestId {
        self.next_request += 1;
        let request = RequestId(self.next_request);
        self.checker_answers.insert(request, None);
        self.schedule(
            1,
            Event::ClientArrive {
                node,
                request,
                request_body: Box::new(request_body),
            },
        );
        request
    }

    /// Runs events until virtual time `until`.
    pub fn run_until(&mut self, until: Tick) {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            if let Some(event) = self.events.remove(&seq) {
                self.process(event);
            }
        }
        self.now = until;
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        self.schedule_at(self.now + delay, event);
    }

    fn schedule_at(&mut self, at: Tick, event: Event) {
        self.next_seq += 1;
        self.events.insert(self.next_seq, event);
        self.queue.push(Reverse((at, self.next_seq)));
    }

    /// The node an event is for, if any.
    fn target(event: &Event) -> Option<usize> {
        match event {
            Event::NodeTick(i) => Some(*i),
            Event::Deliver { to, .. } => Some(*to),
            Event::StorageDone { node, .. } => Some(*node),
            Event::ClientArrive { node, .. } => Some(*node),
            _ => None,
        }
    }

    fn process(&mut self, event: Event) {
        if let Some(i) = Self::target(&event) {
            if self.slots[i].frozen_until > self.now {
                let at = self.slots[i].frozen_until;
                self.schedule_at(at, event);
                return;
            }
        }
        self.events_processed += 1;
        self.fold(&self.now.0.to_le_bytes());
        match event {
            Event::NodeTick(i) => {
                self.fold(&[1, i as u8]);
                self.schedule(NODE_TICK_TICKS, Event::NodeTick(i));
                self.step_node(i, Input::Tick);
            }
            Event::Deliver { to, from, message } => {
                self.fold(&[2, to as u8, from as u8]);
                self.fold(&(message.wire_bytes() as u64).to_le_bytes());
                let from = self.configs[from].id;
                self.step_node(to, Input::Peer { from, message });
            }
            Event::StorageDone {
                node,
                incarnation,
                id,
                op,
                durable,
            } => {
                if incarnation != self.slots[node].incarnation || !self.is_up(node) {
                    return; // the process that asked is gone, and so is the op
                }
                self.fold(&[3, node as u8]);
                let me = self.configs[node].id;
                let result = self.slots[node].disk.apply(me, op, durable);
                self.step_node(node, Input::Storage { id, result });
            }
            Event::ClientWake(c) => self.client_wake(c),
            Event::ClientArrive {
                node,
                request,
                request_body,
            } => {
                self.fold(&[4, node as u8]);
                self.fold(&request.0.to_le_bytes());
                let body = *request_body;
                let (op, options) = (body.op, body.options);
                self.step_node(
                    node,
                    Input::Client {
                        request,
                        op,
                        options,
                    },
                );
            }
            Event::ClientReply {
                client,
                request,
                result,
            } => {
                self.fold(&[5, client as u8, result.is_ok() as u8]);
                self.client_done(client, request, Some(result));
            }
            Event::ClientGiveUp { client, request } => {
                self.client_done(client, request, None);
            }
        }
    }

    /// Folds `bytes` into the trace hash.
    fn fold(&mut self, bytes: &[u8]) {
        self.trace = xxh3_64_with_seed(bytes, self.trace);
    }

    fn step_node(&mut self, i: usize, input: Input) {
        let wall_ms = (self.now.0 as i64)
            .saturating_add(self.slots[i].wall_offset_ms)
            .max(0) as u64;
        let now = self.now;
        let mut out = Vec::new();
        {
            let Some(node) = self.slots[i].node.as_mut() else {
                return; // crashed: the input is lost
            };
            node.step(now, wall_ms, input, &mut self.rng, &mut out);
        }
        for action in out {
            self.carry_out(i, action);
        }
    }

    fn carry_out(&mut self, i: usize, action: Action) {
        match action {
            Action::Send { to, message } => {
                let Some(to) = self.configs.iter().position(|c| c.id == to) else {
                    return;
                };
                for delay in self.network.route(i, to, &mut self.rng) {
                    let message = message.clone();
                    self.schedule(
                        delay,
                        Event::Deliver {
                            to,
                            from: i,
                            message,
                        },
                    );
                }
            }
            Action::Storage { id, op, durable } => {
                // A sync costs more than a buffered write; both complete in storage order per
                // node only up to these jitters, like a real device queue.
                let delay = if durable {
                    2 + self.rng.next_u64() % 3
                } else {
                    1 + self.rng.next_u64() % 2
                };
                let incarnation = self.slots[i].incarnation;
                self.schedule(
                    delay,
                    Event::StorageDone {
                        node: i,
                        incarnation,
                        id,
                        op,
                        durable,
                    },
                );
            }
            Action::Reply { request, result } => {
                if let Some(answer) = self.checker_answers.get_mut(&request) {
                    *answer = Some(result);
                    return;
                }
                if let Some(client) = self
                    .clients
                    .iter()
                    .position(|c| c.busy.as_ref().is_some_and(|b| b.0 == request))
                {
                    self.schedule(
                        1,
                        Event::ClientReply {
                            client,
                            request,
                            result,
                        },
                    );
                }
            }
        }
    }

    fn client_wake(&mut self, c: usize) {
        if !self.clients[c].active || self.clients[c].busy.is_some() {
            return;
        }
        let request = self.workload.next(c, &mut self.rng);
        self.client_send(c, request);
    }

    fn client_send(&mut self, c: usize, body: ClientRequest) {
        self.next_request += 1;
        let request = RequestId(self.next_request);
        self.clients[c].busy = Some((request, body.step.clone(), self.now));
        // A client library sends to any node it knows of (one that has started, though it may
        // have crashed since); pick one at random.
        let known: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].started)
            .collect();
        let node = known[(self.rng.next_u64() % known.len() as u64) as usize];
        self.schedule(
            1,
            Event::ClientArrive {
                node,
                request,
                request_body: Box::new(body),
            },
        );
        let patience = self.configs[node].request_timeout_ticks + CLIENT_PATIENCE_TICKS;
        self.schedule(patience, Event::ClientGiveUp { client: c, request });
    }

    fn client_done(
        &mut self,
        c: usize,
        request: RequestId,
        reply: Option<Result<Object, QuorumError>>,
    ) {
        let Some((busy, step, began)) = self.clients[c].busy.clone() else {
            return;
        };
        if busy != request {
            return; // a late answer to a request the client already gave up on
        }
        self.clients[c].busy = None;
        let now = self.now;
        let follow_up = self
            .workload
            .on_reply(c, step, began, now, reply, &mut self.rng);
        match follow_up {
            Some(next) => self.client_send(c, next),
            None => {
                if self.clients[c].active {
                    let think = 1 + self.rng.next_u64() % CLIENT_THINK_TICKS_MAX;
                    self.schedule(think, Event::ClientWake(c));
                }
            }
        }
    }

    /// Whether any client still waits for an answer.
    pub fn clients_busy(&self) -> bool {
        self.clients.iter().any(|c| c.busy.is_some())
    }

    /// Draws a number below `n` from the world's generator.
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    /// How many replicas each key has, and where: every node's configuration has the same.
    pub fn replication(&self) -> &crate::placement::Replication {
        &self.configs[0].replication
    }

    /// Node `i`'s storage result for a direct read (checks only).
    pub fn stored(&self, i: usize, key: &crate::node::Key) -> Object {
        self.slots[i].disk.object(key.token, &key.bytes)
    }
}
