//! Coordinating one read, with read repair.
//!
//! Every target is asked for its copy. Copies are merged as they arrive (`Object::merge`, a
//! join, so order does not matter); the client gets the merge once `r` targets answered (or
//! `r` in the right datacenters: [`Tally`]). The coordinator then keeps listening until every
//! target answered or the deadline passed, and sends the final merge to each owner whose copy
//! differed from it (read repair). Fallbacks are never repaired: their main store is not a
//! replica of the key.

use crate::ids::NodeId;
use crate::quorum::{QuorumError, Tally, Target};
use crate::tick::Tick;
use crate::version::Object;

/// What the get coordinator asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetAction {
    /// Ask `at` (possibly this node) for its copy of the key ([`GetCoordinator::on_reply`]).
    Read {
        /// The replica asked.
        at: NodeId,
    },
    /// Answer the client with the merged object. Emitted exactly once.
    Reply(Result<Object, QuorumError>),
    /// Send `object` (the merge of every answer) to a replica whose copy lacked part of it.
    Repair {
        /// The stale replica.
        to: NodeId,
        /// What it should merge.
        object: Object,
    },
}

/// The state of one read on its coordinator.
#[derive(Debug)]
pub struct GetCoordinator {
    targets: Vec<Target>,
    /// What the read needs answered, and from where.
    tally: Tally,
    answers: Vec<(NodeId, Object)>,
    merged: Object,
    deadline: Tick,
    replied: bool,
    read_repair: bool,
    finished: bool,
}

impl GetCoordinator {
    /// Starts a read of `targets` whose answers count against `tally` ([`Tally::any`], or per
    /// datacenter). With `read_repair` off the coordinator never repairs (the simulator's
    /// canary uses this).
    pub fn start(
        now: Tick,
        targets: Vec<Target>,
        tally: Tally,
        timeout_ticks: u64,
        read_repair: bool,
        out: &mut Vec<GetAction>,
    ) -> GetCoordinator {
        let mut get = GetCoordinator::new(now, targets, tally, timeout_ticks, read_repair);
        if get.tally.reachable() {
            out.extend(get.targets.iter().map(|t| GetAction::Read { at: t.node }));
        } else {
            let (reachable, needed) = (get.tally.usable(), get.tally.needed());
            get.fail(Err(QuorumError::Unavailable { reachable, needed }), out);
        }
        get
    }

    fn new(
        now: Tick,
        targets: Vec<Target>,
        tally: Tally,
        timeout_ticks: u64,
        read_repair: bool,
    ) -> GetCoordinator {
        GetCoordinator {
            targets,
            tally,
            answers: Vec::new(),
            merged: Object::new(),
            deadline: now + timeout_ticks,
            replied: false,
            read_repair,
            finished: false,
        }
    }

    /// Fails the read before anything was asked.
    fn fail(&mut self, result: Result<Object, QuorumError>, out: &mut Vec<GetAction>) {
        self.reply(result, out);
        self.finished = true;
    }

    /// A target's copy of the key (an empty object if it has none).
    pub fn on_reply(&mut self, from: NodeId, object: Object, out: &mut Vec<GetAction>) {
        let is_target = self.targets.iter().any(|t| t.node == from);
        if self.finished || !is_target || self.answers.iter().any(|(n, _)| *n == from) {
            return;
        }
        self.merged.merge(&object);
        self.answers.push((from, object));
        if self.tally.count(from) && !self.replied {
            self.reply(Ok(self.merged.clone()), out);
        }
        if self.answers.len() == self.targets.len() {
            self.finish(out);
        }
    }

    /// Clock tick: at the deadline, fails the read if it has not replied, and repairs from the
    /// answers it has.
    pub fn on_tick(&mut self, now: Tick, out: &mut Vec<GetAction>) {
        if self.finished || now < self.deadline {
            return;
        }
        if !self.replied {
            let (answered, needed) = (self.tally.answered(), self.tally.needed());
            self.reply(Err(QuorumError::Timeout { answered, needed }), out);
        }
        self.finish(out);
    }

    /// Whether the read is over: replied, and no more answers are awaited.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn finish(&mut self, out: &mut Vec<GetAction>) {
        self.finished = true;
        if !self.read_repair || !self.replied {
            return;
        }
        for (node, copy) in &self.answers {
            let owner = self
                .targets
                .iter()
                .any(|t| t.node == *node && t.hint_for.is_none());
            if owner && *copy != self.merged {
                out.push(GetAction::Repair {
                    to: *node,
                    object: self.merged.clone(),
                });
            }
        }
    }

    fn reply(&mut self, result: Result<Object, QuorumError>, out: &mut Vec<GetAction>) {
        debug_assert!(!self.replied, "a get replied twice");
        self.replied = true;
        out.push(GetAction::Reply(result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::VersionVector;

    fn written(by: u64, v: &[u8]) -> Object {
        let mut o = Object::new();
        o.update(&VersionVector::new(), NodeId(by), 0, Some(v.to_vec()))
            .expect("update");
        o
    }

    fn start(targets: Vec<Target>, r: usize, repair: bool) -> (GetCoordinator, Vec<GetAction>) {
        let mut out = Vec::new();
        let tally = Tally::any(&targets, r, 3).expect("r within n");
        let get = GetCoordinator::start(Tick(0), targets, tally, 50, repair, &mut out);
        (get, out)
    }

    fn owners(ids: &[u64]) -> Vec<Target> {
        ids.iter().map(|&i| Target::owner(NodeId(i))).collect()
    }

    #[test]
    fn replies_with_the_merge_of_r_answers_then_repairs_the_stale_replicas() {
        let (mut get, out) = start(owners(&[1, 2, 3]), 2, true);
        assert_eq!(out.len(), 3);
        let a = written(1, b"a");
        let b = written(2, b"b");
        let mut both = a.clone();
        both.merge(&b);
        let mut out = Vec::new();
        get.on_reply(NodeId(1), a.clone(), &mut out);
        get.on_reply(NodeId(1), a, &mut out); // duplicate: ignored
        assert!(out.is_empty());
        get.on_reply(NodeId(2), b, &mut out);
        assert_eq!(out, vec![GetAction::Reply(Ok(both.clone()))]);
        out.clear();
        get.on_reply(NodeId(3), both.clone(), &mut out);
        assert!(get.is_finished());
        assert_eq!(
            out,
            vec![
                GetAction::Repair {
                    to: NodeId(1),
                    object: both.clone()
                },
                GetAction::Repair {
                    to: NodeId(2),
                    object: both
                },
            ]
        );
    }

    #[test]
    fn repairs_at_the_deadline_from_the_answers_it_has_but_never_a_fallback() {
        let targets = vec![
            Target::owner(NodeId(1)),
            Target {
                node: NodeId(4),
                hint_for: Some(NodeId(2)),
            },
            Target::owner(NodeId(3)),
        ];
        let (mut get, _) = start(targets, 2, true);
        let a = written(1, b"a");
        let mut out = Vec::new();
        get.on_reply(NodeId(4), Object::new(), &mut out);
        get.on_reply(NodeId(3), a.clone(), &mut out);
        assert_eq!(out, vec![GetAction::Reply(Ok(a.clone()))]);
        out.clear();
        get.on_tick(Tick(49), &mut out);
        assert!(out.is_empty());
        get.on_tick(Tick(50), &mut out);
        assert!(
            out.is_empty(),
            "node 3 is current and 4 is a fallback: {out:?}"
        );
        assert!(get.is_finished());
    }

    #[test]
    fn read_repair_off_sends_no_repairs() {
        let (mut get, _) = start(owners(&[1, 2]), 1, false);
        let mut out = Vec::new();
        get.on_reply(NodeId(1), written(1, b"a"), &mut out);
        get.on_reply(NodeId(2), Object::new(), &mut out);
        assert_eq!(out.len(), 1, "only the reply: {out:?}");
    }

    #[test]
    fn times_out_with_the_count_that_answered() {
        let (mut get, _) = start(owners(&[1, 2, 3]), 3, true);
        let mut out = Vec::new();
        get.on_reply(NodeId(2), Object::new(), &mut out);
        get.on_tick(Tick(50), &mut out);
        assert_eq!(
            out,
            vec![GetAction::Reply(Err(QuorumError::Timeout {
                answered: 1,
                needed: 3
            }))]
        );
        let (_, out) = start(owners(&[1]), 2, true);
        assert_eq!(
            out,
            vec![GetAction::Reply(Err(QuorumError::Unavailable {
                reachable: 1,
                needed: 2
            }))]
        );
    }
}
