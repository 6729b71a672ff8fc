//! Anti-entropy on a node: starting exchanges, answering a peer's, and carrying out repairs.
//!
//! Every `ae_interval_ticks` the node starts one exchange (at most
//! [`AE_EXCHANGES_IN_FLIGHT_MAX`] at once) for the next partition it replicates, in turn,
//! with a random live replica of it. Repairs exchange whole objects, one way per key where
//! possible: keys the peer lacks, or holds in a version that weighs less, go to it as
//! [`PeerMessage::Repair`]; the other differing keys are fetched with [`PeerMessage::Fetch`],
//! which the peer answers with `Repair`s. A node that merges a repair and holds more than it
//! received sends the merge back, so both sides converge.

use std::collections::BTreeMap;

use rand_core::RngCore;

use super::{Action, Key, Node, PeerMessage, Pending, StorageOp, StorageResult};
use crate::antientropy::{
    refuse, reply_with_listing, respond, AeMessage, AeTag, Exchange, ExchangeAction, ExchangeId,
    ExchangeInput, ListingRequest, RefuseReason, Respond, TicTacTree,
};
use crate::constants::AE_FETCH_KEYS_MAX;
use crate::ids::{NodeId, PartitionId, Token};
use crate::tick::Tick;

/// Most exchanges one node runs as initiator at once.
pub const AE_EXCHANGES_IN_FLIGHT_MAX: usize = 1;

/// What a node remembers of anti-entropy storage work.
#[derive(Debug)]
pub(crate) enum AePending {
    /// Objects read to push to `to` as repairs.
    Push { to: NodeId },
    /// A listing for this node's own exchange `id`.
    Listing { id: ExchangeId },
    /// A listing to answer peer `to`'s segment request.
    Answer { to: NodeId, reply_to: AeTag },
}

/// The exchanges a node has started, and its turn among its partitions.
#[derive(Debug)]
pub(crate) struct AeState {
    exchanges: BTreeMap<ExchangeId, Exchange>,
    next_id: u64,
    last_start: Tick,
    turn: usize,
}

impl AeState {
    pub(crate) fn new(now: Tick) -> AeState {
        AeState {
            exchanges: BTreeMap::new(),
            next_id: 0,
            last_start: now,
            turn: 0,
        }
    }
}

impl Node {
    /// Times exchanges out and starts the next one when due.
    pub(super) fn ae_tick(&mut self, now: Tick, rng: &mut impl RngCore, out: &mut Vec<Action>) {
        let expired: Vec<ExchangeId> = self
            .ae
            .exchanges
            .values()
            .filter(|e| e.deadline().is_some_and(|d| now >= d))
            .map(Exchange::id)
            .collect();
        for id in expired {
            self.step_exchange(now, id, ExchangeInput::Timeout, out);
        }
        let interval = self.config.ae_interval_ticks;
        if interval == 0
            || now.since(self.ae.last_start) < interval
            || self.ae.exchanges.len() >= AE_EXCHANGES_IN_FLIGHT_MAX
        {
            return;
        }
        self.ae.last_start = now;
        let mine = self
            .rings
            .read_ring()
            .replica_partitions(self.config.id, &self.config.replication);
        if mine.is_empty() {
            return;
        }
        let p = mine[self.ae.turn % mine.len()];
        self.ae.turn = self.ae.turn.wrapping_add(1);
        let peers: Vec<NodeId> = self
            .rings
            .read_list(p, &self.config.replication)
            .into_iter()
            .filter(|&n| n != self.config.id && self.gossip.is_alive(n, now))
            .collect();
        if peers.is_empty() {
            return;
        }
        let peer = peers[(rng.next_u64() % peers.len() as u64) as usize];
        self.ae.next_id += 1;
        let id = ExchangeId(self.ae.next_id);
        let tree = self.tree_mut(p);
        let (exchange, actions) = Exchange::start(id, p, peer, tree, now);
        if !exchange.is_finished() {
            self.ae.exchanges.insert(id, exchange);
        }
        self.run_exchange_actions(id, peer, actions, out);
    }

    /// An anti-entropy message from `from`: a request to answer, or a reply for one of this
    /// node's exchanges.
    pub(super) fn on_ae_message(
        &mut self,
        now: Tick,
        from: NodeId,
        message: AeMessage,
        out: &mut Vec<Action>,
    ) {
        let tag = message.tag();
        if !message.is_request() {
            let ours = self
                .ae
                .exchanges
                .get(&tag.exchange)
                .is_some_and(|e| e.peer() == from);
            if ours {
                self.step_exchange(now, tag.exchange, ExchangeInput::Message(message), out);
            }
            return;
        }
        let replica = tag.partition.0 < self.rings.current().partitions().get()
            && self
                .rings
                .read_list(tag.partition, &self.config.replication)
                .contains(&self.config.id);
        if !replica {
            if let Some(refusal) = refuse(&message, RefuseReason::NotOwned) {
                out.push(Action::Send {
                    to: from,
                    message: PeerMessage::Ae(refusal),
                });
            }
            return;
        }
        match respond(self.tree_mut(tag.partition), &message) {
            Respond::Reply(reply) => out.push(Action::Send {
                to: from,
                message: PeerMessage::Ae(reply),
            }),
            Respond::List { reply_to, request } => {
                let op = self.listing_op(request);
                self.storage(
                    op,
                    false,
                    Pending::Ae(AePending::Answer { to: from, reply_to }),
                    out,
                );
            }
            Respond::Ignore => {}
        }
    }

    /// A peer asks for its copies of `keys` (the pull half of a repair).
    pub(super) fn on_fetch(&mut self, from: NodeId, keys: Vec<Key>, out: &mut Vec<Action>) {
        if keys.is_empty() || keys.len() > AE_FETCH_KEYS_MAX {
            return; // more than any exchange asks for: ignore
        }
        self.storage(
            StorageOp::ReadMany { keys },
            false,
            Pending::Ae(AePending::Push { to: from }),
            out,
        );
    }

    /// Anti-entropy storage work finished.
    pub(super) fn on_ae_storage(
        &mut self,
        now: Tick,
        pending: AePending,
        result: StorageResult,
        out: &mut Vec<Action>,
    ) {
        match (pending, result) {
            (AePending::Push { to }, StorageResult::Objects(objects)) => {
                for (key, object) in objects {
                    if !object.is_empty() {
                        out.push(Action::Send {
                            to,
                            message: PeerMessage::Repair { key, object },
                        });
                    }
                }
            }
            (AePending::Listing { id }, StorageResult::Listed(listing)) => {
                self.step_exchange(now, id, ExchangeInput::LocalSegments(listing), out);
            }
            (AePending::Answer { to, reply_to }, StorageResult::Listed(listing)) => {
                out.push(Action::Send {
                    to,
                    message: PeerMessage::Ae(reply_with_listing(reply_to, listing)),
                });
            }
            _ => {} // storage failed: the exchange times out and a later one retries
        }
    }

    fn step_exchange(
        &mut self,
        now: Tick,
        id: ExchangeId,
        input: ExchangeInput,
        out: &mut Vec<Action>,
    ) {
        let Some(mut exchange) = self.ae.exchanges.remove(&id) else {
            return;
        };
        let mut actions = Vec::new();
        let tree = self.tree_mut(exchange.partition());
        exchange.step(now, input, tree, &mut actions);
        let peer = exchange.peer();
        if !exchange.is_finished() {
            self.ae.exchanges.insert(id, exchange);
        }
        self.run_exchange_actions(id, peer, actions, out);
    }

    fn run_exchange_actions(
        &mut self,
        id: ExchangeId,
        to: NodeId,
        actions: Vec<ExchangeAction>,
        out: &mut Vec<Action>,
    ) {
        for action in actions {
            match action {
                ExchangeAction::Send(message) => out.push(Action::Send {
                    to,
                    message: PeerMessage::Ae(message),
                }),
                ExchangeAction::ListLocalSegments(request) => {
                    let op = self.listing_op(request);
                    self.storage(op, false, Pending::Ae(AePending::Listing { id }), out);
                }
                ExchangeAction::Repair { push, pull } => {
                    self.stats.ae_keys_repaired += (push.len() + pull.len()) as u64;
                    let keys = |v: Vec<(Token, Vec<u8>)>| -> Vec<Key> {
                        v.into_iter()
                            .map(|(token, bytes)| Key { token, bytes })
                            .collect()
                    };
                    for chunk in keys(push).chunks(AE_FETCH_KEYS_MAX) {
                        self.storage(
                            StorageOp::ReadMany {
                                keys: chunk.to_vec(),
                            },
                            false,
                            Pending::Ae(AePending::Push { to }),
                            out,
                        );
                    }
                    for chunk in keys(pull).chunks(AE_FETCH_KEYS_MAX) {
                        out.push(Action::Send {
                            to,
                            message: PeerMessage::Fetch {
                                keys: chunk.to_vec(),
                            },
                        });
                    }
                }
                ExchangeAction::Done(_) => self.stats.ae_exchanges += 1,
                ExchangeAction::Failed(_) => {}
            }
        }
    }

    /// The storage op that lists `request`'s keys: the token ranges of its segments.
    fn listing_op(&mut self, request: ListingRequest) -> StorageOp {
        let ranges = request
            .token_ranges(self.tree_mut(request.partition))
            .collect();
        StorageOp::List { request, ranges }
    }

    /// Partition `p`'s tree, created empty if nothing was stored in it yet.
    pub(super) fn tree_mut(&mut self, p: PartitionId) -> &mut TicTacTree {
        let partitions = self.rings.current().partitions();
        let shape = self.config.tree_shape;
        self.trees
            .entry(p)
            .or_insert_with(|| TicTacTree::new(partitions, p, shape))
    }
}
