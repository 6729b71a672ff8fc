//! In-test driver: nodes running [`Transfers`] over a seeded network that loses, duplicates
//! and reorders messages, each with an in-memory store (`BTreeMap`) standing in for storage,
//! reads and durable merges completing after random delays. Checks, at every step, that no node
//! runs more transfers than the bound and that a `SendCompleted` finds every entry on the
//! receiver; at the end, that every receiver holds exactly its data merged with the sender's.

use std::collections::BTreeMap;
use std::ops::Bound;

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::constants::TRANSFERS_CONCURRENT_MAX;
use crate::ids::NodeId;
use crate::tick::Tick;
use crate::version::VersionVector;

type Store = BTreeMap<(PartitionId, Vec<u8>), Object>;

/// Ticks between `Tick` inputs, the most a message or a storage operation waits.
const TICK_EVERY: u64 = 5;
const NET_DELAY_MAX: u64 = 15;
const IO_DELAY_MAX: u64 = 6;

/// Small chunks so that partitions of a few dozen entries span many of them.
fn small_config(retries_max: u32) -> TransferConfig {
    TransferConfig {
        window_chunks: 3,
        chunk_entries: 4,
        chunk_bytes: 300,
        retransmit_ticks: 40,
        retries_max,
    }
}

#[derive(Debug)]
struct Node {
    transfers: Transfers,
    store: Store,
    alive: bool,
}

#[derive(Debug)]
enum Pending {
    Packet {
        to: usize,
        from: usize,
        message: TransferMessage,
    },
    Read {
        node: usize,
        id: TransferId,
        partition: PartitionId,
        after: Option<Vec<u8>>,
        max_entries: usize,
        max_bytes: usize,
    },
    Store {
        node: usize,
        from: NodeId,
        id: TransferId,
        partition: PartitionId,
        seq: u64,
        entries: Vec<Entry>,
    },
}

#[derive(Debug)]
struct Sim {
    rng: Xoshiro256PlusPlus,
    now: Tick,
    nodes: Vec<Node>,
    initial: Vec<Store>,
    pending: Vec<(Tick, Pending)>,
    loss: f64,
    dup: f64,
    /// Every action that ends a transfer, with its node and tick.
    ends: Vec<(usize, Tick, TransfersAction)>,
    wire_bytes: u64,
}

fn object(node: u64, value: &[u8]) -> Object {
    let mut o = Object::new();
    o.update(&VersionVector::new(), NodeId(node), 0, Some(value.to_vec()))
        .unwrap();
    o
}

impl Sim {
    fn new(seed: u64, nodes: usize, config: TransferConfig, loss: f64, dup: f64) -> Sim {
        let nodes = (0..nodes)
            .map(|_| Node {
                transfers: Transfers::new(config),
                store: Store::new(),
                alive: true,
            })
            .collect();
        Sim {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            now: Tick(0),
            nodes,
            initial: vec![],
            pending: vec![],
            loss,
            dup,
            ends: vec![],
            wire_bytes: 0,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    /// Fills `partition` on `node` with `count` random entries; a third of them also land on
    /// `other` with a concurrent value, so merges make siblings there.
    fn fill(&mut self, node: usize, other: usize, partition: PartitionId, count: usize) {
        for i in 0..count {
            let key = format!("k{:05}-{}", i, self.below(1000)).into_bytes();
            let value = vec![i as u8; self.below(40) as usize];
            let mut o = object(node as u64 + 1, &value);
            if self.chance(0.2) {
                o.merge(&object(7, b"sibling"));
            }
            if self.chance(0.33) {
                let theirs = object(other as u64 + 1, b"theirs");
                self.nodes[other]
                    .store
                    .insert((partition, key.clone()), theirs);
            }
            self.nodes[node].store.insert((partition, key), o);
        }
        // Entries only the receiver has, which must survive.
        self.nodes[other]
            .store
            .insert((partition, b"only-here".to_vec()), object(9, b"mine"));
    }

    fn snapshot(&mut self) {
        self.initial = self.nodes.iter().map(|n| n.store.clone()).collect();
    }

    /// `to`'s expected store for `partition` once `from` copied it over.
    fn expected(&self, from: usize, to: usize, partition: PartitionId) -> Store {
        let mut want: Store = self.initial[to]
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in self.nodes[from]
            .store
            .iter()
            .filter(|((p, _), _)| *p == partition)
        {
            want.entry(k.clone()).or_default().merge(v);
        }
        want
    }

    fn partition_of(&self, node: usize, partition: PartitionId) -> Store {
        self.nodes[node]
            .store
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn start(&mut self, from: usize, to: usize, partition: PartitionId) -> TransferId {
        let mut out = vec![];
        let to = NodeId(to as u64);
        let id = self.nodes[from]
            .transfers
            .start(self.now, partition, to, &mut self.rng, &mut out)
            .unwrap();
        self.handle(from, out);
        id
    }

    fn handle(&mut self, node: usize, actions: Vec<TransfersAction>) {
        let running = &self.nodes[node].transfers;
        assert!(running.outgoing_running() <= TRANSFERS_CONCURRENT_MAX);
        assert!(running.incoming_running() <= TRANSFERS_CONCURRENT_MAX);
        for action in actions {
            match action {
                TransfersAction::ReadRange {
                    id,
                    partition,
                    after,
                    max_entries,
                    max_bytes,
                } => {
                    let at = self.now + self.below(IO_DELAY_MAX);
                    self.pending.push((
                        at,
                        Pending::Read {
                            node,
                            id,
                            partition,
                            after,
                            max_entries,
                            max_bytes,
                        },
                    ));
                }
                TransfersAction::Store {
                    from,
                    id,
                    partition,
                    seq,
                    entries,
                } => {
                    let at = self.now + self.below(IO_DELAY_MAX);
                    self.pending.push((
                        at,
                        Pending::Store {
                            node,
                            from,
                            id,
                            partition,
                            seq,
                            entries,
                        },
                    ));
                }
                TransfersAction::Send { to, message } => {
                    self.wire_bytes += message.wire_bytes() as u64;
                    if self.chance(self.loss) {
                        continue;
                    }
                    let copies = if self.chance(self.dup) { 2 } else { 1 };
                    for _ in 0..copies {
                        let at = self.now + 1 + self.below(NET_DELAY_MAX);
                        let packet = Pending::Packet {
                            to: to.0 as usize,
                            from: node,
                            message: message.clone(),
                        };
                        self.pending.push((at, packet));
                    }
                }
                TransfersAction::SendCompleted { partition, to, .. } => {
                    // Completed means durable on the receiver: every entry is there right now.
                    let to = to.0 as usize;
                    assert_eq!(
                        self.partition_of(to, partition),
                        self.expected(node, to, partition),
                        "{partition} incomplete on n{to} at {}",
                        self.now
                    );
                    self.ends.push((node, self.now, action));
                }
                other => self.ends.push((node, self.now, other)),
            }
        }
    }

    fn input(&mut self, node: usize, input: TransfersInput) {
        if !self.nodes[node].alive {
            return;
        }
        let mut out = vec![];
        self.nodes[node].transfers.step(self.now, input, &mut out);
        self.handle(node, out);
    }

    fn run_one(&mut self, item: Pending) {
        match item {
            Pending::Packet { to, from, message } => {
                if self.nodes[from].alive {
                    self.input(
                        to,
                        TransfersInput::Message {
                            from: NodeId(from as u64),
                            message,
                        },
                    );
                }
            }
            Pending::Read {
                node,
                id,
                partition,
                after,
                max_entries,
                max_bytes,
            } => {
                let start = match after {
                    Some(key) => Bound::Excluded((partition, key)),
                    None => Bound::Included((partition, vec![])),
                };
                let mut range = self.nodes[node]
                    .store
                    .range((start, Bound::Unbounded))
                    .filter(|((p, _), _)| *p == partition)
                    .peekable();
                let (mut entries, mut bytes) = (vec![], 0);
                while entries.len() < max_entries && bytes < max_bytes {
                    let Some(((_, k), v)) = range.next() else {
                        break;
                    };
                    let entry = (k.clone(), v.clone());
                    bytes += entry_wire_bytes(&entry);
                    entries.push(entry);
                }
                let end = range.peek().is_none();
                self.input(node, TransfersInput::Read { id, entries, end });
            }
            Pending::Store {
                node,
                from,
                id,
                partition,
                seq,
                entries,
            } => {
                if !self.nodes[node].alive {
                    return;
                }
                for (key, object) in entries {
                    self.nodes[node]
                        .store
                        .entry((partition, key))
                        .or_default()
                        .merge(&object);
                }
                self.input(node, TransfersInput::Stored { from, id, seq });
            }
        }
    }

    /// Advances one tick: everything due, then a `Tick` every `TICK_EVERY`.
    fn tick(&mut self) {
        self.now = self.now + 1;
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.pending = later;
        for (_, item) in due {
            self.run_one(item);
        }
        if self.now.0.is_multiple_of(TICK_EVERY) {
            for node in 0..self.nodes.len() {
                self.input(node, TransfersInput::Tick);
            }
        }
    }

    fn idle(&self) -> bool {
        self.nodes.iter().filter(|n| n.alive).all(|n| {
            n.transfers.outgoing_running()
                + n.transfers.outgoing_queued()
                + n.transfers.incoming_running()
                == 0
        })
    }

    fn send_outcomes(&self) -> Vec<(Tick, &TransfersAction)> {
        self.ends
            .iter()
            .filter(|(_, _, a)| {
                matches!(
                    a,
                    TransfersAction::SendCompleted { .. } | TransfersAction::SendFailed { .. }
                )
            })
            .map(|(_, t, a)| (*t, a))
            .collect()
    }
}

mod scenarios;
