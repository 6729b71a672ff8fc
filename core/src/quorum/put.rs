//! Coordinating one write (put or delete).
//!
//! 1. One owner among the targets, this node if it is one, is the *updater*: it applies the
//!    write to its own copy with `Object::update`, which assigns the new dot from that copy's
//!    clock. Only an owner may update: a fallback's copy is a hint, not a replica, and dots
//!    `(node, _)` must always come from `node`'s own replica (the DVV invariant).
//! 2. The updated object goes to every other target, which merges it (or keeps it as a hint).
//! 3. The client gets the object (its new causal context) once `w` targets acknowledged,
//!    counting the updater (or `w` in the right datacenters: [`Tally`]); or a typed error at
//!    the deadline.

use crate::error::CoreError;
use crate::ids::NodeId;
use crate::quorum::{QuorumError, Tally, Target};
use crate::tick::Tick;
use crate::version::Object;

/// What the put coordinator asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutAction {
    /// Ask `at` (an owner; possibly this node) to apply the write to its own copy and answer
    /// with the resulting object ([`PutCoordinator::on_updated`]).
    Update {
        /// The updater.
        at: NodeId,
    },
    /// Send the updated object to `target`; it answers with an acknowledgement
    /// ([`PutCoordinator::on_ack`]).
    Replicate {
        /// Where, and for whom if it is a fallback.
        target: Target,
        /// The object the updater produced.
        object: Object,
    },
    /// Answer the client. Emitted exactly once.
    Reply(Result<Object, QuorumError>),
}

/// The state of one write on its coordinator.
#[derive(Debug)]
pub struct PutCoordinator {
    targets: Vec<Target>,
    /// What the write needs acknowledged, and from where.
    tally: Tally,
    updater: Option<NodeId>,
    /// The updater's result, once it answered.
    object: Option<Object>,
    /// Targets that acknowledged, the updater included; never a node twice.
    acked: Vec<NodeId>,
    deadline: Tick,
    replied: bool,
}

impl PutCoordinator {
    /// Starts a write to `targets` (see [`crate::quorum::choose_targets`]) whose
    /// acknowledgements count against `tally` ([`Tally::any`], or per datacenter).
    pub fn start(
        now: Tick,
        me: NodeId,
        targets: Vec<Target>,
        tally: Tally,
        timeout_ticks: u64,
        out: &mut Vec<PutAction>,
    ) -> PutCoordinator {
        let owners = || {
            targets
                .iter()
                .filter(|t| t.hint_for.is_none())
                .map(|t| t.node)
        };
        let updater = owners()
            .find(|&node| node == me)
            .or_else(|| owners().next());
        let mut put = PutCoordinator::new(now, updater, targets, tally, timeout_ticks);
        match updater {
            Some(at) if put.tally.reachable() => out.push(PutAction::Update { at }),
            _ => {
                let (reachable, needed) = (put.tally.usable(), put.tally.needed());
                put.reply(Err(QuorumError::Unavailable { reachable, needed }), out);
            }
        }
        put
    }

    fn new(
        now: Tick,
        updater: Option<NodeId>,
        targets: Vec<Target>,
        tally: Tally,
        timeout_ticks: u64,
    ) -> PutCoordinator {
        PutCoordinator {
            targets,
            tally,
            updater,
            object: None,
            acked: Vec::new(),
            deadline: now + timeout_ticks,
            replied: false,
        }
    }

    /// The updater's answer: the object after the update, or why it refused.
    pub fn on_updated(
        &mut self,
        from: NodeId,
        result: Result<Object, CoreError>,
        out: &mut Vec<PutAction>,
    ) {
        if self.updater != Some(from) || self.object.is_some() || self.replied {
            return; // a duplicate, or an answer after the deadline
        }
        match result {
            Err(e) => self.reply(Err(QuorumError::Rejected(e)), out),
            Ok(object) => {
                for target in self.targets.iter().filter(|t| t.node != from) {
                    out.push(PutAction::Replicate {
                        target: *target,
                        object: object.clone(),
                    });
                }
                self.object = Some(object);
                self.record_ack(from, out);
            }
        }
    }

    /// A target's acknowledgement of the replicated object.
    pub fn on_ack(&mut self, from: NodeId, out: &mut Vec<PutAction>) {
        if self.object.is_none() || !self.targets.iter().any(|t| t.node == from) {
            return; // not a target, or an ack of something this write never sent
        }
        self.record_ack(from, out);
    }

    /// Clock tick: times the write out at its deadline.
    pub fn on_tick(&mut self, now: Tick, out: &mut Vec<PutAction>) {
        if !self.replied && now >= self.deadline {
            let (answered, needed) = (self.tally.answered(), self.tally.needed());
            self.reply(Err(QuorumError::Timeout { answered, needed }), out);
        }
    }

    /// Whether the client has its answer; the driver may then forget the coordinator (late
    /// acknowledgements change nothing).
    pub fn is_finished(&self) -> bool {
        self.replied
    }

    /// Targets that acknowledged so far.
    pub fn acked(&self) -> &[NodeId] {
        &self.acked
    }

    fn record_ack(&mut self, from: NodeId, out: &mut Vec<PutAction>) {
        if self.acked.contains(&from) {
            return;
        }
        self.acked.push(from);
        if self.tally.count(from) && !self.replied {
            if let Some(object) = self.object.clone() {
                self.reply(Ok(object), out);
            }
        }
    }

    fn reply(&mut self, result: Result<Object, QuorumError>, out: &mut Vec<PutAction>) {
        debug_assert!(!self.replied, "a put replied twice");
        self.replied = true;
        out.push(PutAction::Reply(result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::VersionVector;

    fn obj(v: &[u8]) -> Object {
        let mut o = Object::new();
        o.update(&VersionVector::new(), NodeId(1), 0, Some(v.to_vec()))
            .expect("update");
        o
    }

    fn owners(ids: &[u64]) -> Vec<Target> {
        ids.iter().map(|&i| Target::owner(NodeId(i))).collect()
    }

    fn start(me: u64, targets: Vec<Target>, w: usize) -> (PutCoordinator, Vec<PutAction>) {
        let mut out = Vec::new();
        let tally = Tally::any(&targets, w, 3).expect("w within n");
        let put = PutCoordinator::start(Tick(0), NodeId(me), targets, tally, 100, &mut out);
        (put, out)
    }

    fn replies(out: &[PutAction]) -> Vec<&Result<Object, QuorumError>> {
        out.iter()
            .filter_map(|a| match a {
                PutAction::Reply(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_coordinator_updates_locally_when_it_is_an_owner() {
        let (_, out) = start(2, owners(&[1, 2, 3]), 2);
        assert_eq!(out, vec![PutAction::Update { at: NodeId(2) }]);
        let (_, out) = start(9, owners(&[1, 2, 3]), 2);
        assert_eq!(out, vec![PutAction::Update { at: NodeId(1) }]);
    }

    #[test]
    fn a_fallback_is_never_the_updater() {
        let targets = vec![
            Target {
                node: NodeId(4),
                hint_for: Some(NodeId(1)),
            },
            Target::owner(NodeId(2)),
        ];
        let (_, out) = start(4, targets, 2);
        assert_eq!(out, vec![PutAction::Update { at: NodeId(2) }]);
    }

    #[test]
    fn replies_once_w_acknowledged_and_counts_each_node_once() {
        let (mut put, _) = start(1, owners(&[1, 2, 3]), 2);
        let mut out = Vec::new();
        let o = obj(b"v");
        put.on_updated(NodeId(1), Ok(o.clone()), &mut out);
        assert_eq!(out.len(), 2, "replicate to the two others: {out:?}");
        assert!(replies(&out).is_empty());
        out.clear();
        put.on_ack(NodeId(1), &mut out); // the updater again: not a second ack
        put.on_ack(NodeId(7), &mut out); // not a target
        assert!(replies(&out).is_empty());
        put.on_ack(NodeId(3), &mut out);
        assert_eq!(replies(&out), vec![&Ok(o)]);
        out.clear();
        put.on_ack(NodeId(2), &mut out);
        put.on_tick(Tick(1000), &mut out);
        assert!(out.is_empty(), "nothing after the reply: {out:?}");
        assert!(put.is_finished());
    }

    #[test]
    fn times_out_with_the_count_that_answered() {
        let (mut put, _) = start(1, owners(&[1, 2, 3]), 3);
        let mut out = Vec::new();
        put.on_updated(NodeId(1), Ok(obj(b"v")), &mut out);
        put.on_ack(NodeId(2), &mut out);
        out.clear();
        put.on_tick(Tick(99), &mut out);
        assert!(out.is_empty());
        put.on_tick(Tick(100), &mut out);
        assert_eq!(
            replies(&out),
            vec![&Err(QuorumError::Timeout {
                answered: 2,
                needed: 3
            })]
        );
    }

    #[test]
    fn too_few_targets_fail_at_once_and_a_refused_update_is_rejected() {
        let (_, out) = start(1, owners(&[1]), 2);
        assert_eq!(
            replies(&out),
            vec![&Err(QuorumError::Unavailable {
                reachable: 1,
                needed: 2
            })]
        );
        assert_eq!(
            Tally::any(&owners(&[1, 2, 3]), 4, 3),
            Err(QuorumError::TooManyAsked { asked: 4, n: 3 })
        );
        let (mut put, _) = start(1, owners(&[1, 2, 3]), 2);
        let mut out = Vec::new();
        put.on_updated(NodeId(2), Ok(obj(b"x")), &mut out); // not the updater
        assert!(out.is_empty());
        let refusal = CoreError::CounterExhausted { node: NodeId(1) };
        put.on_updated(NodeId(1), Err(refusal.clone()), &mut out);
        assert_eq!(replies(&out), vec![&Err(QuorumError::Rejected(refusal))]);
    }
}
