//! Dots and version vectors.
//!
//! A [`Dot`] `(node, counter)` names one write: the `counter`-th write coordinated by `node` on
//! this key. A [`VersionVector`] maps nodes to counters and stands for the set of dots
//! `{(n, c) | 1 <= c <= vv[n]}`; it is the causal context a client reads and sends back.
//!
//! Invariants of [`VersionVector`]: entries sorted by node, one entry per node, no zero counter
//! (a zero entry and a missing one mean the same thing, and one representation per value keeps
//! `==`, `Hash` and the encoding canonical).

#[cfg(doc)]
use crate::constants::CLOCK_ENTRIES_MAX;
use crate::error::CoreError;
use crate::ids::NodeId;

/// One write: the `counter`-th write (`counter >= 1`) coordinated by `node` on one key.
///
/// Ordered by node, then counter; sibling sets are kept in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// The coordinator that assigned the dot.
    pub node: NodeId,
    /// Its per-key write counter, starting at 1.
    pub counter: u64,
}

impl std::fmt::Display for Dot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.counter)
    }
}

/// A version vector: for each node, the highest counter seen. Represents a downward-closed set
/// of dots. Used as the key's clock and as the opaque causal context handed to clients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector {
    /// Sorted by node, unique nodes, counters `>= 1`.
    entries: Vec<(NodeId, u64)>,
}

impl VersionVector {
    /// The empty vector: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from entries that must already be canonical (sorted by node, unique, no
    /// zero counter), as a codec does when it converts a decoded message. No size bound is
    /// applied: the entries already exist, and a stored clock may exceed [`CLOCK_ENTRIES_MAX`]
    /// through merges. Client contexts are bounded by [`VersionVector::decode`].
    ///
    /// Errors: [`CoreError::Malformed`] if the entries are not canonical.
    pub fn from_sorted_entries(entries: Vec<(NodeId, u64)>) -> Result<Self, CoreError> {
        let vv = VersionVector { entries };
        if vv.is_canonical() {
            Ok(vv)
        } else {
            Err(CoreError::Malformed {
                what: "version vector: nodes unsorted or duplicated, or a zero counter",
            })
        }
    }

    /// The counter for `node`, 0 if absent.
    pub fn get(&self, node: NodeId) -> u64 {
        match self.position(node) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Whether the vector includes `dot` (`dot.counter <= self[dot.node]`).
    pub fn covers(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.node)
    }

    /// Pointwise maximum: afterwards `self` covers every dot either side covered.
    pub fn join(&mut self, other: &VersionVector) {
        if other.entries.is_empty() {
            return;
        }
        let mut joined = Vec::with_capacity(self.join_len(other));
        let mut theirs = other.entries.iter().peekable();
        for &(node, counter) in &self.entries {
            while let Some(&&(their_node, their_counter)) = theirs.peek() {
                if their_node >= node {
                    break;
                }
                joined.push((their_node, their_counter));
                theirs.next();
            }
            match theirs.peek() {
                Some(&&(their_node, their_counter)) if their_node == node => {
                    joined.push((node, counter.max(their_counter)));
                    theirs.next();
                }
                _ => joined.push((node, counter)),
            }
        }
        joined.extend(theirs);
        self.entries = joined;
        debug_assert!(self.is_canonical());
    }

    /// Records `dot`: `self[dot.node] = max(self[dot.node], dot.counter)`. A zero counter is not
    /// a dot and changes nothing.
    pub fn add(&mut self, dot: Dot) {
        if dot.counter == 0 {
            return;
        }
        match self.position(dot.node) {
            Ok(i) => {
                let entry = &mut self.entries[i].1;
                *entry = (*entry).max(dot.counter);
            }
            Err(i) => self.entries.insert(i, (dot.node, dot.counter)),
        }
        debug_assert!(self.is_canonical());
    }

    /// Whether `self` has seen everything `other` has (`self >= other` pointwise). Every vector
    /// descends itself and the empty vector.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .entries
            .iter()
            .all(|&(node, counter)| counter <= self.get(node))
    }

    /// Whether neither vector descends the other: the histories they stand for diverged.
    pub fn concurrent_with(&self, other: &VersionVector) -> bool {
        !self.descends(other) && !other.descends(self)
    }

    /// Whether the vector has seen nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `(node, counter)` pairs in node order, every counter `>= 1`.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// The number of entries `self.join(other)` would have, without building it.
    pub(crate) fn join_len(&self, other: &VersionVector) -> usize {
        let shared = other
            .entries
            .iter()
            .filter(|(node, _)| self.position(*node).is_ok())
            .count();
        self.entries.len() + other.entries.len() - shared
    }

    fn position(&self, node: NodeId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&node, |&(n, _)| n)
    }

    /// Sorted strictly by node and no zero counter.
    pub(crate) fn is_canonical(&self) -> bool {
        self.entries.windows(2).all(|w| w[0].0 < w[1].0)
            && self.entries.iter().all(|&(_, counter)| counter > 0)
    }
}

impl FromIterator<Dot> for VersionVector {
    /// The smallest vector covering every dot.
    fn from_iter<I: IntoIterator<Item = Dot>>(dots: I) -> Self {
        let mut vv = VersionVector::new();
        for dot in dots {
            vv.add(dot);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(node: u64, counter: u64) -> Dot {
        Dot {
            node: NodeId(node),
            counter,
        }
    }

    fn vv(entries: &[(u64, u64)]) -> VersionVector {
        entries.iter().map(|&(n, c)| dot(n, c)).collect()
    }

    #[test]
    fn empty_vector_covers_nothing() {
        let empty = VersionVector::new();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.get(NodeId(1)), 0);
        assert!(!empty.covers(dot(1, 1)));
    }

    #[test]
    fn add_keeps_the_maximum_and_sorted_order() {
        let mut v = VersionVector::new();
        v.add(dot(3, 2));
        v.add(dot(1, 5));
        v.add(dot(3, 1));
        v.add(dot(2, 0));
        assert_eq!(
            v.iter().collect::<Vec<_>>(),
            vec![(NodeId(1), 5), (NodeId(3), 2)]
        );
        assert!(v.covers(dot(1, 5)) && v.covers(dot(1, 1)) && !v.covers(dot(1, 6)));
        assert!(!v.covers(dot(2, 1)));
    }

    #[test]
    fn join_is_pointwise_max() {
        let mut a = vv(&[(1, 3), (3, 1), (5, 2)]);
        let b = vv(&[(0, 1), (1, 2), (4, 4), (5, 7), (9, 1)]);
        assert_eq!(a.join_len(&b), 6);
        a.join(&b);
        assert_eq!(a, vv(&[(0, 1), (1, 3), (3, 1), (4, 4), (5, 7), (9, 1)]));
        assert!(a.descends(&b));
    }

    #[test]
    fn descends_and_concurrency() {
        let a = vv(&[(1, 2)]);
        let b = vv(&[(1, 1)]);
        let c = vv(&[(2, 1)]);
        assert!(a.descends(&b) && !b.descends(&a));
        assert!(a.descends(&a) && a.descends(&VersionVector::new()));
        assert!(a.concurrent_with(&c) && !a.concurrent_with(&b));
    }

    #[test]
    fn from_sorted_entries_checks_canonical_form() {
        let ok = VersionVector::from_sorted_entries(vec![(NodeId(1), 1), (NodeId(2), 9)]);
        assert_eq!(ok, Ok(vv(&[(1, 1), (2, 9)])));
        for bad in [
            vec![(NodeId(2), 1), (NodeId(1), 1)],
            vec![(NodeId(1), 1), (NodeId(1), 2)],
            vec![(NodeId(1), 0)],
        ] {
            assert!(matches!(
                VersionVector::from_sorted_entries(bad),
                Err(CoreError::Malformed { .. })
            ));
        }
    }
}
