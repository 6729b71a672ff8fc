//! The replica side of a node: what it does with data messages from coordinators and peers,
//! and with the storage results they lead to.

use super::{
    Action, Key, Node, PeerMessage, Pending, StorageOp, StorageResult, UPDATES_REMEMBERED_MAX,
};
use crate::antientropy::version_hash;
use crate::error::CoreError;
use crate::ids::NodeId;
use crate::quorum::RequestId;
use crate::tick::Tick;
use crate::version::Object;

pub(super) use super::ae::{AePending, AeState};

impl Node {
    /// Handles a data message (anything but gossip and rings); `from` may be this node.
    pub(super) fn on_data_message(
        &mut self,
        now: Tick,
        from: NodeId,
        message: PeerMessage,
        out: &mut Vec<Action>,
    ) {
        match message {
            PeerMessage::Update {
                op,
                key,
                context,
                value,
                timestamp_ms,
                durable,
                ring,
            } => {
                if self.refuse_stale(now, from, ring, out) {
                    let error = CoreError::StaleRing {
                        coordinator: ring,
                        replica: self.ring_version,
                    };
                    let answer = PeerMessage::Updated {
                        op,
                        result: Err(error),
                    };
                    self.send(now, from, answer, out);
                    return;
                }
                self.on_update(
                    now,
                    from,
                    op,
                    key,
                    context,
                    value,
                    timestamp_ms,
                    durable,
                    out,
                )
            }
            PeerMessage::Updated { op, result } => self.feed_put(now, op, out, |put, actions| {
                put.on_updated(from, result, actions)
            }),
            PeerMessage::Replicate {
                op,
                key,
                object,
                hint_for,
                durable,
                ring,
            } => {
                // A stale write is not acknowledged: the coordinator counts on others.
                if !self.refuse_stale(now, from, ring, out) {
                    self.on_replicate(from, op, key, object, hint_for, durable, out);
                }
            }
            PeerMessage::ReplicateAck { op } => {
                self.feed_put(now, op, out, |put, actions| put.on_ack(from, actions))
            }
            PeerMessage::Read { op, key } => self.storage(
                StorageOp::Read { key },
                false,
                Pending::Read {
                    coordinator: from,
                    op,
                },
                out,
            ),
            PeerMessage::ReadReply { op, object } => {
                let mut actions = Vec::new();
                if let Some(get) = self.gets.get_mut(&op) {
                    get.coordinator.on_reply(from, object, &mut actions);
                }
                for action in actions {
                    self.run_get_action(now, op, action, out);
                }
                self.gets.retain(|_, g| !g.coordinator.is_finished());
            }
            PeerMessage::Repair { key, object } => {
                let lww = self.lww();
                let received = (!object.is_empty()).then(|| version_hash(&object));
                self.storage(
                    StorageOp::Merge {
                        key: key.clone(),
                        object,
                        lww,
                    },
                    false,
                    Pending::Repair {
                        key,
                        from: Some((from, received)),
                    },
                    out,
                );
            }
            PeerMessage::Fetch { keys } => self.on_fetch(from, keys, out),
            PeerMessage::ReapCheck {
                round,
                ring,
                entries,
            } => self.on_reap_check(now, from, round, ring, entries, out),
            PeerMessage::ReapVote { round, vetoed } => {
                self.on_reap_vote(now, from, round, vetoed, out)
            }
            PeerMessage::Reap { ring, entries } => self.on_reap(from, ring, entries, out),
            PeerMessage::HintDeliver {
                delivery,
                key,
                object,
            } => {
                let lww = self.lww();
                self.storage(
                    StorageOp::Merge {
                        key: key.clone(),
                        object,
                        lww,
                    },
                    true,
                    Pending::HintMerged {
                        from,
                        delivery,
                        key,
                    },
                    out,
                );
            }
            PeerMessage::HintAck { delivery } => {
                if let Some((owner, token, bytes)) = self.hints.on_delivered(delivery) {
                    self.stats.hints_delivered += 1;
                    let key = Key { token, bytes };
                    self.storage(
                        StorageOp::DeleteHint { owner, key },
                        false,
                        Pending::Quiet,
                        out,
                    );
                }
            }
            PeerMessage::Ae(message) => self.on_ae_message(now, from, message, out),
            PeerMessage::Transfer(_)
            | PeerMessage::Gossip(_)
            | PeerMessage::Ring(_)
            | PeerMessage::MovesDone { .. }
            | PeerMessage::Remove { .. } => {}
        }
    }

    /// Whether a write from `coordinator`, routed by ring version `ring`, must be refused
    /// because this node routes by a newer one: a source streaming a partition must not take
    /// writes that skip the partition's new replica. The coordinator is sent the newer ring.
    fn refuse_stale(
        &mut self,
        now: Tick,
        coordinator: NodeId,
        ring: u64,
        out: &mut Vec<Action>,
    ) -> bool {
        if ring >= self.ring_version {
            return false;
        }
        self.stats.stale_ring_refusals += 1;
        self.push_ring(now, coordinator, out);
        true
    }

    /// Feeds the coordinator of write `op` (if it still runs) and carries out its actions.
    fn feed_put(
        &mut self,
        now: Tick,
        op: RequestId,
        out: &mut Vec<Action>,
        feed: impl FnOnce(&mut crate::quorum::PutCoordinator, &mut Vec<crate::quorum::PutAction>),
    ) {
        let mut actions = Vec::new();
        if let Some(put) = self.puts.get_mut(&op) {
            feed(&mut put.coordinator, &mut actions);
        }
        for action in actions {
            self.run_put_action(now, op, action, out);
        }
        self.puts.retain(|_, p| !p.coordinator.is_finished());
    }

    #[allow(clippy::too_many_arguments)]
    fn on_update(
        &mut self,
        now: Tick,
        coordinator: NodeId,
        op: RequestId,
        key: Key,
        context: crate::version::VersionVector,
        value: Option<Vec<u8>>,
        timestamp_ms: u64,
        durable: bool,
        out: &mut Vec<Action>,
    ) {
        match self.updates.get(&(coordinator, op)) {
            Some(Some(answer)) => {
                // A duplicate of an update already applied: answer again, never apply twice.
                let answer = answer.clone();
                self.send(now, coordinator, answer, out);
                return;
            }
            Some(None) => return, // in progress; its answer is on the way
            None => {}
        }
        if self.updates_order.len() >= UPDATES_REMEMBERED_MAX {
            if let Some(oldest) = self.updates_order.pop_front() {
                self.updates.remove(&oldest);
            }
        }
        self.updates.insert((coordinator, op), None);
        self.updates_order.push_back((coordinator, op));
        let lww = self.lww();
        // Minted by this node's clock too: a slow coordinator clock must not reuse a counter
        // of a key whose clock was reaped.
        let dot_floor = crate::version::dot_floor(self.wall_ms.max(timestamp_ms));
        self.storage(
            StorageOp::Update {
                key: key.clone(),
                context,
                value,
                timestamp_ms,
                dot_floor,
                lww,
            },
            durable,
            Pending::Update {
                coordinator,
                op,
                key,
            },
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_replicate(
        &mut self,
        coordinator: NodeId,
        op: RequestId,
        key: Key,
        object: Object,
        hint_for: Option<NodeId>,
        durable: bool,
        out: &mut Vec<Action>,
    ) {
        match hint_for {
            Some(owner) if owner != self.config.id => {
                if !self.hints.can_accept(owner, &key.bytes) {
                    return; // full: do not acknowledge; the write counts on others
                }
                let merged = self.hints.add(owner, key.token, key.bytes.clone(), &object);
                self.stats.hints_stored += 1;
                self.storage(
                    StorageOp::PutHint {
                        owner,
                        key,
                        object: merged,
                    },
                    true,
                    Pending::HintStored { coordinator, op },
                    out,
                );
            }
            _ => {
                let lww = self.lww();
                self.storage(
                    StorageOp::Merge {
                        key: key.clone(),
                        object,
                        lww,
                    },
                    durable,
                    Pending::Replicate {
                        coordinator,
                        op,
                        key,
                    },
                    out,
                );
            }
        }
    }

    /// A storage operation finished.
    pub(super) fn on_storage(
        &mut self,
        now: Tick,
        id: u64,
        result: StorageResult,
        out: &mut Vec<Action>,
    ) {
        let Some(pending) = self.pending.remove(&id) else {
            return; // issued before a restart, or a duplicate
        };
        match pending {
            Pending::Update {
                coordinator,
                op,
                key,
            } => {
                let result = match result {
                    StorageResult::Changed { before, after } => {
                        self.track_change(now, &key, &before, &after);
                        Ok(after)
                    }
                    StorageResult::Refused(e) => Err(e),
                    _ => {
                        // Storage failed: forget the update so a retry may apply it, and let
                        // the coordinator time out.
                        self.updates.remove(&(coordinator, op));
                        return;
                    }
                };
                let answer = PeerMessage::Updated { op, result };
                self.updates.insert((coordinator, op), Some(answer.clone()));
                self.send(now, coordinator, answer, out);
            }
            Pending::Replicate {
                coordinator,
                op,
                key,
            } => {
                if let StorageResult::Changed { before, after } = result {
                    self.track_change(now, &key, &before, &after);
                    self.send(now, coordinator, PeerMessage::ReplicateAck { op }, out);
                }
            }
            Pending::HintStored { coordinator, op } => {
                if result == StorageResult::Done {
                    self.send(now, coordinator, PeerMessage::ReplicateAck { op }, out);
                }
            }
            Pending::Read { coordinator, op } => {
                if let StorageResult::Read(object) = result {
                    self.send(now, coordinator, PeerMessage::ReadReply { op, object }, out);
                }
            }
            Pending::Repair { key, from } => {
                if let StorageResult::Changed { before, after } = result {
                    self.track_change(now, &key, &before, &after);
                    if let Some((from, received)) = from {
                        self.push_back(now, from, received, key, after, out);
                    }
                }
            }
            Pending::HintMerged {
                from,
                delivery,
                key,
            } => {
                if let StorageResult::Changed { before, after } = result {
                    self.track_change(now, &key, &before, &after);
                    self.send(now, from, PeerMessage::HintAck { delivery }, out);
                }
            }
            Pending::Quiet => {}
            Pending::Ae(ae) => self.on_ae_storage(now, ae, result, out),
            Pending::Reap(reap) => self.on_reap_storage(now, reap, result, out),
            Pending::Transfer(t) => self.on_transfer_storage(now, t, result, out),
            Pending::RingSaved { version } => {
                if result == StorageResult::Done {
                    self.gossip.set_ring_version(version);
                }
            }
        }
    }
}

impl Node {
    /// After merging a repair from `from` (which sent a copy hashing to `received`): sends
    /// the merge back when it differs, i.e. when this node held something the sender lacks.
    /// Anti-entropy pulls only, so this is how a stale puller's extra versions reach the
    /// other side. Only to a replica of the key: a read's coordinator need not hold it. It
    /// settles at once: the sender's merge of this copy equals it.
    fn push_back(
        &mut self,
        now: Tick,
        from: NodeId,
        received: Option<u64>,
        key: Key,
        merged: Object,
        out: &mut Vec<Action>,
    ) {
        if merged.is_empty() || received == Some(version_hash(&merged)) {
            return;
        }
        let p = self.rings.current().partitions().partition_of(key.token);
        if !self
            .rings
            .read_list(p, &self.config.replication)
            .contains(&from)
        {
            return;
        }
        self.stats.ae_keys_pushed_back += 1;
        self.send(
            now,
            from,
            PeerMessage::Repair {
                key,
                object: merged,
            },
            out,
        );
    }
}
