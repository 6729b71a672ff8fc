//! The stored state of one key on one replica: a causal clock plus dotted siblings.
//!
//! This is the dotted-version-vector set of Almeida et al. (2014), the representation behind
//! Riak's DVVSet, in its "causal context + dotted values" form (as in the optimized OR-set of
//! Bieniusa et al.): each sibling carries the dot of the write that made it, and one clock
//! summarises every dot the replica has seen, kept or superseded.
//!
//! Invariants of [`Object`] (checked by `debug_assert!` after every mutation, and by
//! [`Object::from_parts`] and `Object::decode` on foreign input):
//! - siblings are sorted by dot, with no two siblings sharing a dot;
//! - every sibling's dot has counter `>= 1` and is covered by the clock;
//! - every value fits the stored format ([`SIBLING_VALUE_BYTES_MAX`]).
//!
//! A dot absent from the siblings but covered by the clock was superseded: some write's context
//! covered it. That is what lets [`Object::merge`] tell "superseded here" from "not seen here".
//!
//! Assumption shared with every DVV design: one dot always names one value. It holds because
//! only `node` assigns dots `(node, _)`, from its own replica's clock, which covers every dot it
//! ever assigned — until a reaped tombstone takes the key's clock away (`node::reap`). Writes
//! coordinated by a cluster node therefore use [`Object::update_above`] with [`dot_floor`] of
//! their wall clock: a counter minted after a reap exceeds every counter minted before it, as
//! long as the node's clock has not gone back by more than the tombstone grace period.

use std::cmp::Ordering;

use crate::constants::{CLOCK_ENTRIES_MAX, SIBLINGS_MAX, SIBLING_VALUE_BYTES_MAX};
use crate::error::CoreError;
use crate::ids::NodeId;
use crate::version::vector::{Dot, VersionVector};

/// Dot counters a node may mint per millisecond of its wall clock before [`dot_floor`] stops
/// growing faster than its counters.
pub const DOT_COUNTERS_PER_MS: u64 = 1 << 10;

/// The least counter a node mints at wall clock `timestamp_ms` (see the module docs): a key
/// whose clock was reaped gets counters above any minted a grace period earlier.
pub fn dot_floor(timestamp_ms: u64) -> u64 {
    timestamp_ms.saturating_mul(DOT_COUNTERS_PER_MS)
}

/// One concurrent version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The write that produced this version.
    pub dot: Dot,
    /// Wall-clock milliseconds supplied by the coordinator (for last-write-wins keyspaces and
    /// TTL); core never reads a clock and never orders by this field.
    pub timestamp_ms: u64,
    /// The value, or `None` for a tombstone left by a delete.
    pub value: Option<Vec<u8>>,
}

impl Sibling {
    /// Whether this sibling records a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// The state of one key on one replica. See the module docs for the invariants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object {
    /// Every dot this replica has seen, kept or superseded.
    clock: VersionVector,
    /// Sorted by dot, unique dots, each covered by `clock`.
    siblings: Vec<Sibling>,
}

impl Object {
    /// The object of a key nobody has written.
    pub fn new() -> Self {
        Self::default()
    }

    /// Assembles an object from parts a codec decoded (a peer message, say).
    ///
    /// Errors: [`CoreError::Malformed`] unless the siblings are sorted by dot with unique dots,
    /// every counter is `>= 1`, every dot is covered by `clock` and every value fits the
    /// stored format.
    pub fn from_parts(clock: VersionVector, siblings: Vec<Sibling>) -> Result<Self, CoreError> {
        check_siblings(&clock, &siblings)?;
        Ok(Object { clock, siblings })
    }

    /// Takes the object apart: `(clock, siblings)`, siblings in dot order.
    pub fn into_parts(self) -> (VersionVector, Vec<Sibling>) {
        (self.clock, self.siblings)
    }

    /// The causal context to hand a client that reads this object: every dot seen here.
    pub fn clock(&self) -> &VersionVector {
        &self.clock
    }

    /// All siblings, tombstones included, in dot order.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The values of the non-tombstone siblings, in dot order.
    pub fn live_values(&self) -> impl Iterator<Item = &[u8]> {
        self.siblings.iter().filter_map(|s| s.value.as_deref())
    }

    /// Whether a read finds nothing: no live sibling. True for a never-written object and for
    /// one holding only tombstones; the clock is still kept so later writes order after them.
    pub fn is_deleted(&self) -> bool {
        self.siblings.iter().all(Sibling::is_tombstone)
    }

    /// Whether this replica has seen no write at all (empty clock, hence no siblings).
    pub fn is_empty(&self) -> bool {
        self.clock.is_empty()
    }

    /// Whether `self` already holds everything `other` does: merging `other` in would change
    /// nothing. A reaped tombstone may take with it only copies it supersedes.
    pub fn supersedes(&self, other: &Object) -> bool {
        let mut merged = self.clone();
        merged.merge(other);
        merged == *self
    }

    /// Applies a write coordinated by `node` on this replica and returns the write's new dot.
    ///
    /// `context` is what the writer read (empty for a blind write). The write supersedes exactly
    /// the siblings whose dots `context` covers; every other sibling stays as a concurrent
    /// version. The new dot is `(node, c + 1)` where `c` is `node`'s counter in the joined clock
    /// of `self` and `context`, so it is fresh. `value` of `None` writes a tombstone (delete).
    ///
    /// Errors, all leaving `self` unchanged:
    /// - [`CoreError::TooManySiblings`] if the write would grow the sibling set past
    ///   [`SIBLINGS_MAX`] (a write that does not grow it is always accepted, so a key that a
    ///   merge pushed over the bound can still be resolved);
    /// - [`CoreError::TooManyClockEntries`] likewise for [`CLOCK_ENTRIES_MAX`];
    /// - [`CoreError::CounterExhausted`] if the counter is already `u64::MAX`;
    /// - [`CoreError::ValueTooLarge`] if the value does not fit the stored format.
    pub fn update(
        &mut self,
        context: &VersionVector,
        node: NodeId,
        timestamp_ms: u64,
        value: Option<Vec<u8>>,
    ) -> Result<Dot, CoreError> {
        self.update_above(context, node, 0, timestamp_ms, value)
    }

    /// [`Object::update`] with a dot counter above `floor` as well (see the module docs and
    /// [`dot_floor`]).
    pub fn update_above(
        &mut self,
        context: &VersionVector,
        node: NodeId,
        floor: u64,
        timestamp_ms: u64,
        value: Option<Vec<u8>>,
    ) -> Result<Dot, CoreError> {
        check_value_size(value.as_deref())?;
        self.check_write_bounds(context, node)?;
        let counter = self
            .clock
            .get(node)
            .max(context.get(node))
            .max(floor)
            .checked_add(1)
            .ok_or(CoreError::CounterExhausted { node })?;
        let dot = Dot { node, counter };

        // Nothing below can fail: the checks above leave `self` untouched on error.
        self.siblings.retain(|s| !context.covers(s.dot));
        self.clock.join(context);
        self.clock.add(dot);
        let at = self.siblings.partition_point(|s| s.dot < dot);
        debug_assert!(
            self.siblings.get(at).is_none_or(|s| s.dot != dot),
            "dot {dot} assigned twice"
        );
        self.siblings.insert(
            at,
            Sibling {
                dot,
                timestamp_ms,
                value,
            },
        );
        debug_assert!(self.invariants_hold());
        Ok(dot)
    }

    /// Joins `other` (another replica's state of the same key) into `self`: the operation behind
    /// replication, read repair, hinted handoff and anti-entropy.
    ///
    /// A sibling of either side survives if the other side also holds its dot, or the other
    /// side's clock does not cover it (the other side never saw it). A sibling the other side
    /// saw and no longer holds was superseded there, so it goes. The clock becomes the join of
    /// both clocks.
    ///
    /// Merge is **commutative, associative and idempotent** (a join-semilattice), given that one
    /// dot always names one value, so replicas converge whatever order, grouping or repetition
    /// merges arrive in. Should two sides ever disagree on a dot's content (corruption, a bug),
    /// the greater `(timestamp_ms, value)` wins, which keeps the three laws. Merge never refuses:
    /// the result may exceed [`SIBLINGS_MAX`], because dropping a sibling here would drop an
    /// acknowledged write.
    pub fn merge(&mut self, other: &Object) {
        let mine = std::mem::take(&mut self.siblings);
        let mut merged = Vec::with_capacity(mine.len() + other.siblings.len());
        let mut mine = mine.into_iter().peekable();
        let mut theirs = other.siblings.iter().peekable();
        loop {
            let order = match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(m), Some(t)) => m.dot.cmp(&t.dot),
            };
            match order {
                Ordering::Less => {
                    if let Some(m) = mine.next().filter(|m| !other.clock.covers(m.dot)) {
                        merged.push(m);
                    }
                }
                Ordering::Greater => {
                    if let Some(t) = theirs.next().filter(|t| !self.clock.covers(t.dot)) {
                        merged.push(t.clone());
                    }
                }
                Ordering::Equal => {
                    if let (Some(m), Some(t)) = (mine.next(), theirs.next()) {
                        merged.push(pick_same_dot(m, t));
                    }
                }
            }
        }
        self.siblings = merged;
        self.clock.join(&other.clock);
        debug_assert!(self.invariants_hold());
    }

    /// Refuses a write that would grow the sibling set or the clock past its bound.
    fn check_write_bounds(&self, context: &VersionVector, node: NodeId) -> Result<(), CoreError> {
        let kept = self
            .siblings
            .iter()
            .filter(|s| !context.covers(s.dot))
            .count();
        let sibling_count = kept + 1;
        if sibling_count > SIBLINGS_MAX && sibling_count > self.siblings.len() {
            return Err(CoreError::TooManySiblings {
                count: sibling_count,
                max: SIBLINGS_MAX,
            });
        }
        let node_is_new = self.clock.get(node) == 0 && context.get(node) == 0;
        let clock_len = self.clock.join_len(context) + usize::from(node_is_new);
        if clock_len > CLOCK_ENTRIES_MAX && clock_len > self.clock.len() {
            return Err(CoreError::TooManyClockEntries {
                count: clock_len,
                max: CLOCK_ENTRIES_MAX,
            });
        }
        Ok(())
    }

    /// The invariants from the module docs.
    pub(crate) fn invariants_hold(&self) -> bool {
        self.clock.is_canonical() && check_siblings(&self.clock, &self.siblings).is_ok()
    }

    /// Builds an object without checks, for the decoder, which checks as it reads.
    pub(crate) fn from_checked_parts(clock: VersionVector, siblings: Vec<Sibling>) -> Self {
        let object = Object { clock, siblings };
        debug_assert!(object.invariants_hold());
        object
    }
}

/// Of two siblings with the same dot (normally equal), the one with the greater
/// `(timestamp_ms, value)`: a deterministic choice, so merge stays commutative even if the
/// one-dot-one-value assumption was broken by corruption.
fn pick_same_dot(mine: Sibling, theirs: &Sibling) -> Sibling {
    fn key(s: &Sibling) -> (u64, Option<&[u8]>) {
        (s.timestamp_ms, s.value.as_deref())
    }
    if key(theirs) > key(&mine) {
        theirs.clone()
    } else {
        mine
    }
}

fn check_value_size(value: Option<&[u8]>) -> Result<(), CoreError> {
    match value {
        Some(v) if v.len() > SIBLING_VALUE_BYTES_MAX => Err(CoreError::ValueTooLarge {
            size_bytes: v.len(),
            max: SIBLING_VALUE_BYTES_MAX,
        }),
        _ => Ok(()),
    }
}

/// Sorted unique dots, counters `>= 1`, covered by `clock`, values encodable.
pub(crate) fn check_siblings(clock: &VersionVector, siblings: &[Sibling]) -> Result<(), CoreError> {
    if !siblings.windows(2).all(|w| w[0].dot < w[1].dot) {
        return Err(CoreError::Malformed {
            what: "object: siblings unsorted or sharing a dot",
        });
    }
    for sibling in siblings {
        if sibling.dot.counter == 0 {
            return Err(CoreError::Malformed {
                what: "object: sibling dot with counter 0",
            });
        }
        if !clock.covers(sibling.dot) {
            return Err(CoreError::Malformed {
                what: "object: sibling dot not covered by the clock",
            });
        }
        check_value_size(sibling.value.as_deref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    fn put(o: &mut Object, ctx: &VersionVector, node: NodeId, v: &[u8]) -> Dot {
        o.update(ctx, node, 0, Some(v.to_vec())).unwrap()
    }

    fn values(o: &Object) -> Vec<&[u8]> {
        o.live_values().collect()
    }

    #[test]
    fn empty_object_reads_as_not_found() {
        let o = Object::new();
        assert!(o.is_deleted() && o.is_empty());
        assert!(o.clock().is_empty() && o.siblings().is_empty());
    }

    #[test]
    fn put_with_read_context_supersedes_what_was_read() {
        let mut o = Object::new();
        let d1 = put(&mut o, &VersionVector::new(), A, b"v1");
        assert_eq!(
            d1,
            Dot {
                node: A,
                counter: 1
            }
        );
        let read = o.clock().clone();
        let d2 = put(&mut o, &read, A, b"v2");
        assert_eq!(
            d2,
            Dot {
                node: A,
                counter: 2
            }
        );
        assert_eq!(values(&o), vec![b"v2".as_slice()]);
        assert!(o.clock().covers(d1) && o.clock().covers(d2));
    }

    #[test]
    fn blind_and_concurrent_writes_become_siblings() {
        let mut o = Object::new();
        let base = VersionVector::new();
        put(&mut o, &base, A, b"x");
        let read = o.clock().clone();
        // Two writers read the same state and write concurrently through different nodes.
        put(&mut o, &read, A, b"y");
        put(&mut o, &read, B, b"z");
        assert_eq!(values(&o), vec![b"y".as_slice(), b"z".as_slice()]);
        // A blind write keeps everything.
        put(&mut o, &base, B, b"w");
        assert_eq!(o.siblings().len(), 3);
        // A write with the full clock resolves all of them.
        let all = o.clock().clone();
        put(&mut o, &all, A, b"resolved");
        assert_eq!(values(&o), vec![b"resolved".as_slice()]);
    }

    #[test]
    fn delete_leaves_a_tombstone_and_the_clock() {
        let mut o = Object::new();
        put(&mut o, &VersionVector::new(), A, b"v");
        let read = o.clock().clone();
        let tomb = o.update(&read, A, 5, None).unwrap();
        assert!(o.is_deleted() && !o.is_empty());
        assert_eq!(o.siblings().len(), 1);
        assert!(o.siblings()[0].is_tombstone());
        // A later put with the tombstone's context replaces it and orders after it.
        let read = o.clock().clone();
        let d = put(&mut o, &read, B, b"again");
        assert!(!o.is_deleted());
        assert_eq!(o.siblings().len(), 1);
        assert!(o.clock().covers(tomb) && o.clock().covers(d));
    }

    #[test]
    fn merge_drops_what_the_other_side_superseded() {
        let mut a = Object::new();
        put(&mut a, &VersionVector::new(), A, b"old");
        let mut b = a.clone();
        let read = b.clock().clone();
        put(&mut b, &read, B, b"new");
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(values(&merged), vec![b"new".as_slice()]);
        let mut other_way = b.clone();
        other_way.merge(&a);
        assert_eq!(merged, other_way);
    }

    #[test]
    fn merge_with_disagreeing_dot_content_is_deterministic() {
        let clock: VersionVector = [Dot {
            node: A,
            counter: 1,
        }]
        .into_iter()
        .collect();
        let sib = |ts, v: &[u8]| Sibling {
            dot: Dot {
                node: A,
                counter: 1,
            },
            timestamp_ms: ts,
            value: Some(v.to_vec()),
        };
        let x = Object::from_parts(clock.clone(), vec![sib(1, b"x")]).unwrap();
        let y = Object::from_parts(clock, vec![sib(2, b"y")]).unwrap();
        let (mut xy, mut yx) = (x.clone(), y.clone());
        xy.merge(&y);
        yx.merge(&x);
        assert_eq!(xy, yx);
        assert_eq!(values(&xy), vec![b"y".as_slice()]);
    }

    #[test]
    fn sibling_bound_refuses_growth_but_not_resolution() {
        let mut o = Object::new();
        let blind = VersionVector::new();
        for i in 0..SIBLINGS_MAX {
            put(&mut o, &blind, NodeId(i as u64 % 3), b"v");
        }
        let before = o.clone();
        assert_eq!(
            o.update(&blind, A, 0, Some(b"one too many".to_vec())),
            Err(CoreError::TooManySiblings {
                count: SIBLINGS_MAX + 1,
                max: SIBLINGS_MAX
            })
        );
        assert_eq!(o, before, "a refused write must leave the object unchanged");

        // Merging two full replicas exceeds the bound rather than drop acknowledged writes.
        let mut other = Object::new();
        for _ in 0..SIBLINGS_MAX {
            put(&mut other, &blind, NodeId(7), b"w");
        }
        o.merge(&other);
        assert_eq!(o.siblings().len(), 2 * SIBLINGS_MAX);
        // A write covering one sibling does not grow the set, so it is accepted...
        let one: VersionVector = [o.siblings()[0].dot].into_iter().collect();
        put(&mut o, &one, A, b"partial");
        assert_eq!(o.siblings().len(), 2 * SIBLINGS_MAX);
        // ...and a read-modify-write resolves everything.
        let all = o.clock().clone();
        put(&mut o, &all, A, b"resolved");
        assert_eq!(o.siblings().len(), 1);
    }

    #[test]
    fn clock_bound_refuses_contexts_naming_too_many_nodes() {
        let mut o = Object::new();
        let huge: VersionVector = (0..CLOCK_ENTRIES_MAX as u64)
            .map(|n| Dot {
                node: NodeId(n + 100),
                counter: 1,
            })
            .collect();
        let before = o.clone();
        assert_eq!(
            o.update(&huge, A, 0, Some(b"v".to_vec())),
            Err(CoreError::TooManyClockEntries {
                count: CLOCK_ENTRIES_MAX + 1,
                max: CLOCK_ENTRIES_MAX
            })
        );
        assert_eq!(o, before);
        // The same context through a node it already names fits exactly.
        o.update(&huge, NodeId(100), 0, Some(b"v".to_vec()))
            .unwrap();
        assert_eq!(o.clock().len(), CLOCK_ENTRIES_MAX);
    }

    #[test]
    fn exhausted_counter_is_an_error_not_an_overflow() {
        let mut o = Object::new();
        let forged: VersionVector = [Dot {
            node: A,
            counter: u64::MAX,
        }]
        .into_iter()
        .collect();
        assert_eq!(
            o.update(&forged, A, 0, None),
            Err(CoreError::CounterExhausted { node: A })
        );
        assert_eq!(o, Object::new());
    }

    #[test]
    fn from_parts_checks_the_invariants() {
        let d = |n, c| Dot {
            node: NodeId(n),
            counter: c,
        };
        let sib = |dot| Sibling {
            dot,
            timestamp_ms: 0,
            value: None,
        };
        let clock: VersionVector = [d(1, 2), d(2, 1)].into_iter().collect();
        assert!(Object::from_parts(clock.clone(), vec![sib(d(1, 2)), sib(d(2, 1))]).is_ok());
        for bad in [
            vec![sib(d(2, 1)), sib(d(1, 2))],
            vec![sib(d(1, 2)), sib(d(1, 2))],
            vec![sib(d(1, 3))],
            vec![sib(d(3, 1))],
            vec![sib(d(1, 0))],
        ] {
            assert!(matches!(
                Object::from_parts(clock.clone(), bad),
                Err(CoreError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn a_write_after_a_reap_gets_a_counter_the_old_clock_does_not_cover() {
        // A tombstone written at 1 s, kept by a replica that refused the reap.
        let mut kept = Object::new();
        let blind = VersionVector::new();
        kept.update_above(&blind, A, dot_floor(1_000), 1_000, None)
            .unwrap();
        // The reaping replica forgot the key; a blind write there an hour later survives a
        // merge with the kept copy instead of being taken for a dot it already saw.
        let hour_later = 3_601_000;
        let mut reaped = Object::new();
        let v = Some(b"v".to_vec());
        let dot = reaped
            .update_above(&blind, A, dot_floor(hour_later), hour_later, v.clone())
            .unwrap();
        assert!(!kept.clock().covers(dot));
        let mut merged = kept.clone();
        merged.merge(&reaped);
        assert_eq!(values(&merged), vec![b"v".as_slice()]);
        // Without the floor the new dot repeats the old one, and the merge drops the write.
        let mut unfloored = Object::new();
        let dot = unfloored.update(&blind, A, hour_later, v).unwrap();
        assert!(kept.clock().covers(dot));
        kept.merge(&unfloored);
        assert!(values(&kept).is_empty());
    }

    #[test]
    fn a_tombstone_supersedes_only_copies_its_clock_covers() {
        let mut old = Object::new();
        put(&mut old, &VersionVector::new(), A, b"old");
        let mut tomb = old.clone();
        tomb.update(&old.clock().clone(), B, 0, None).unwrap();
        assert!(tomb.is_deleted());
        assert!(tomb.supersedes(&old), "the value the delete read");
        assert!(tomb.supersedes(&Object::new()), "an absent copy");
        assert!(tomb.supersedes(&tomb.clone()), "the tombstone itself");
        let mut newer = tomb.clone();
        put(&mut newer, &tomb.clock().clone(), A, b"new");
        assert!(!tomb.supersedes(&newer), "a write after the delete");
        let mut concurrent = Object::new();
        put(&mut concurrent, &VersionVector::new(), B, b"blind");
        assert!(
            !tomb.supersedes(&concurrent),
            "a write the delete never saw"
        );
    }
}
