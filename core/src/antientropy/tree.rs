//! The tictac Merkle tree of one partition.
//!
//! The partition's token range is cut into `2^segment_bits` **segments**: segment `s` is the
//! set of tokens whose bits just below the partition bits equal `s`, so a segment is one
//! contiguous token sub-range and listing its keys is one token-range read in storage.
//!
//! A segment's hash is the XOR of [`leaf_hash`]`(key, version_hash)` over the keys it holds.
//! Every branch above is the XOR of its children, up to the root. XOR makes the tree
//! order-independent and incremental: a write XORs the old leaf out and the new leaf in along
//! one path, `levels + 1` words, without reading any other key. (Riak's tictac AAE makes the
//! same choice; two differences cancelling needs a 64-bit collision.)
//!
//! Invariants:
//! - `levels[0]` is the root alone; `levels[d]` holds `width^d` hashes; the last level is the
//!   segments.
//! - Every branch hash equals the XOR of its children; hence the tree's content depends only on
//!   the set of (key, version) pairs, not on the order of updates. An empty tree is all zeros.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::constants::{
    AE_TREE_LEVELS_DEFAULT, AE_TREE_LEVEL_BITS_DEFAULT, AE_TREE_LEVEL_BITS_MAX,
    AE_TREE_SEGMENT_BITS_MAX,
};
use crate::error::CoreError;
use crate::ids::{PartitionId, Token};
use crate::ring::PartitionCount;

/// The shape of a tictac tree: `levels` levels below the root, each `2^level_bits` wide per
/// parent; the last level is the segments. Both replicas of an exchange must use one shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TreeShape {
    level_bits: u8,
    levels: u8,
}

impl TreeShape {
    /// [`AE_TREE_LEVELS_DEFAULT`] levels of [`AE_TREE_LEVEL_BITS_DEFAULT`] bits: 4096 segments.
    pub const DEFAULT: TreeShape = TreeShape {
        level_bits: AE_TREE_LEVEL_BITS_DEFAULT,
        levels: AE_TREE_LEVELS_DEFAULT,
    };

    /// Validates a shape: `1..=AE_TREE_LEVEL_BITS_MAX` bits per level, at least one level, and
    /// `level_bits * levels <= AE_TREE_SEGMENT_BITS_MAX`.
    ///
    /// Errors: [`CoreError::InvalidTreeShape`].
    pub fn new(level_bits: u8, levels: u8) -> Result<TreeShape, CoreError> {
        let segment_bits = u32::from(level_bits) * u32::from(levels);
        if (1..=AE_TREE_LEVEL_BITS_MAX).contains(&level_bits)
            && levels >= 1
            && segment_bits <= u32::from(AE_TREE_SEGMENT_BITS_MAX)
        {
            Ok(TreeShape { level_bits, levels })
        } else {
            Err(CoreError::InvalidTreeShape { level_bits, levels })
        }
    }

    /// Bits per level.
    pub fn level_bits(self) -> u8 {
        self.level_bits
    }

    /// Levels below the root; level `levels()` is the segments.
    pub fn levels(self) -> u8 {
        self.levels
    }

    /// Children per branch.
    pub fn width(self) -> u32 {
        1 << self.level_bits
    }

    /// Token bits, below the partition bits, that name a segment.
    pub fn segment_bits(self) -> u32 {
        u32::from(self.level_bits) * u32::from(self.levels)
    }

    /// Segments per partition.
    pub fn segment_count(self) -> u32 {
        1 << self.segment_bits()
    }

    /// Hashes at `level` (`width^level`; 1 for the root).
    pub fn level_len(self, level: u8) -> u32 {
        1 << (u32::from(self.level_bits) * u32::from(level.min(self.levels)))
    }
}

impl Default for TreeShape {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The leaf hash of one key at one version: what its segment XORs in.
pub fn leaf_hash(key: &[u8], version: u64) -> u64 {
    // Seeding with the version hash binds the two without copying the key into a buffer.
    xxh3_64_with_seed(key, version)
}

/// One partition's tictac tree. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicTacTree {
    partitions: PartitionCount,
    partition: PartitionId,
    shape: TreeShape,
    /// `levels[d]` holds `width^d` hashes; `levels[0] == [root]`.
    levels: Vec<Vec<u64>>,
}

impl TicTacTree {
    /// The empty tree of partition `p` (all hashes zero).
    ///
    /// Contract: `p < partitions` (asserted in debug builds).
    pub fn new(partitions: PartitionCount, p: PartitionId, shape: TreeShape) -> TicTacTree {
        debug_assert!(p.0 < partitions.get(), "{p} is outside the ring");
        let levels = (0..=shape.levels())
            .map(|d| vec![0u64; shape.level_len(d) as usize])
            .collect();
        TicTacTree {
            partitions,
            partition: p,
            shape,
            levels,
        }
    }

    /// Records that `key` (at `token`) went from version `old` to `new`, `None` meaning absent.
    /// `old` must be what the tree last recorded for the key, or the tree drifts from storage
    /// (anti-entropy then repairs the key again, harmlessly, until a rebuild).
    ///
    /// Contract: `token` lies in this tree's partition (asserted in debug builds).
    pub fn update(&mut self, token: Token, key: &[u8], old: Option<u64>, new: Option<u64>) {
        debug_assert_eq!(
            self.partitions.partition_of(token),
            self.partition,
            "token {token} is not in {}",
            self.partition
        );
        if old == new {
            return;
        }
        let delta = old.map_or(0, |v| leaf_hash(key, v)) ^ new.map_or(0, |v| leaf_hash(key, v));
        let segment = self.segment_of(token);
        let bits = u32::from(self.shape.level_bits());
        for (depth, level) in self.levels.iter_mut().enumerate() {
            let below = u32::from(self.shape.levels()) - depth as u32;
            level[(segment >> (bits * below)) as usize] ^= delta;
        }
    }

    /// The root hash: equal roots mean (up to a 64-bit collision) equal (key, version) sets.
    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The segment holding `token`: the `segment_bits` token bits just below the partition bits.
    pub fn segment_of(&self, token: Token) -> u32 {
        // partition bits <= 16 and segment bits in 1..=16, so both shifts are in 0..64.
        let below_partition = token.0 << self.partitions.bits();
        (below_partition >> (u64::BITS - self.shape.segment_bits())) as u32
    }

    /// First and last token (both inclusive) of `segment`.
    ///
    /// Contract: `segment < segment_count` (asserted in debug builds; release builds reduce it).
    pub fn segment_token_range(&self, segment: u32) -> (u64, u64) {
        debug_assert!(segment < self.shape.segment_count());
        let (first, _) = self.partitions.token_range(self.partition);
        let low_bits = u64::BITS - self.partitions.bits() - self.shape.segment_bits();
        let segment = u64::from(segment & (self.shape.segment_count() - 1));
        let first = first | (segment << low_bits);
        (first, first | ((1u64 << low_bits) - 1))
    }

    /// The partition this tree covers.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The ring's partition count.
    pub fn partitions(&self) -> PartitionCount {
        self.partitions
    }

    /// The tree's shape.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }

    /// All hashes of `level` (0 is the root, `shape().levels()` the segments), or an empty
    /// slice past the last level.
    pub fn level(&self, level: u8) -> &[u64] {
        self.levels
            .get(usize::from(level))
            .map_or(&[], Vec::as_slice)
    }

    /// The `width` hashes at `level` whose parent is `parent` at `level - 1`, or `None` if
    /// `level` is not in `1..=levels` or `parent` is not on level `level - 1`. Peers send these
    /// indexes, so out-of-range values are an answer, not a panic.
    pub fn children(&self, level: u8, parent: u32) -> Option<&[u64]> {
        if level == 0 || level > self.shape.levels() {
            return None;
        }
        let width = self.shape.width() as usize;
        let start = (parent as usize).checked_mul(width)?;
        self.levels[usize::from(level)].get(start..start + width)
    }

    /// The segment hashes (the last level).
    pub fn segments(&self) -> &[u64] {
        self.level(self.shape.levels())
    }

    /// Forgets every key, as before a rebuild from storage.
    pub fn clear(&mut self) {
        self.levels.iter_mut().for_each(|level| level.fill(0));
    }

    /// Whether every branch equals the XOR of its children (the module's invariant).
    #[cfg(test)]
    pub(crate) fn is_consistent(&self) -> bool {
        let width = self.shape.width() as usize;
        self.levels.windows(2).all(|pair| {
            pair[0]
                .iter()
                .zip(pair[1].chunks(width))
                .all(|(parent, children)| *parent == children.iter().fold(0, |a, c| a ^ c))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(q: u32, p: u32, shape: TreeShape) -> TicTacTree {
        TicTacTree::new(PartitionCount::new(q).unwrap(), PartitionId(p), shape)
    }

    fn token_in(t: &TicTacTree, x: u64) -> Token {
        let (first, last) = t.partitions().token_range(t.partition());
        let span = (last - first).wrapping_add(1);
        Token(first + if span == 0 { x } else { x % span })
    }

    #[test]
    fn shapes_are_validated() {
        assert_eq!(TreeShape::DEFAULT.segment_count(), 4096);
        assert_eq!(TreeShape::DEFAULT.width(), 64);
        assert!(TreeShape::new(0, 2).is_err());
        assert!(TreeShape::new(6, 0).is_err());
        assert!(TreeShape::new(AE_TREE_LEVEL_BITS_MAX + 1, 1).is_err());
        assert!(TreeShape::new(8, 3).is_err());
        assert_eq!(TreeShape::new(8, 2).unwrap().segment_count(), 65536);
        assert_eq!(TreeShape::new(4, 1).unwrap().level_len(1), 16);
    }

    #[test]
    fn segments_tile_the_partition_in_token_order() {
        for (q, p, shape) in [
            (1, 0, TreeShape::new(4, 1).unwrap()),
            (1024, 17, TreeShape::DEFAULT),
            (65536, 65535, TreeShape::new(8, 2).unwrap()),
        ] {
            let t = tree(q, p, shape);
            let (first, last) = t.partitions().token_range(t.partition());
            let mut next = first;
            for s in 0..shape.segment_count() {
                let (a, b) = t.segment_token_range(s);
                assert_eq!(
                    a, next,
                    "segment {s} of q={q} does not follow its predecessor"
                );
                assert!(a <= b);
                assert_eq!(t.segment_of(Token(a)), s);
                assert_eq!(t.segment_of(Token(b)), s);
                next = b.wrapping_add(1);
            }
            assert_eq!(next, last.wrapping_add(1));
        }
    }

    #[test]
    fn insert_then_remove_restores_the_empty_tree() {
        let mut t = tree(1024, 3, TreeShape::DEFAULT);
        let empty = t.clone();
        let tok = token_in(&t, 12345);
        t.update(tok, b"k", None, Some(7));
        assert_ne!(t.root(), 0);
        t.update(tok, b"k", Some(7), Some(8));
        assert!(t.is_consistent());
        t.update(tok, b"k", Some(8), None);
        assert_eq!(t, empty);
    }

    #[test]
    fn children_rejects_out_of_range_requests() {
        let t = tree(16, 1, TreeShape::DEFAULT);
        assert_eq!(t.children(1, 0).map(<[u64]>::len), Some(64));
        assert_eq!(t.children(2, 63).map(<[u64]>::len), Some(64));
        assert!(t.children(0, 0).is_none());
        assert!(t.children(3, 0).is_none());
        assert!(t.children(1, 1).is_none());
        assert!(t.children(2, 64).is_none());
        assert!(t.children(2, u32::MAX).is_none());
    }

    proptest! {
        #[test]
        fn root_is_independent_of_update_order(
            entries in proptest::collection::btree_map(any::<u64>(), any::<u64>(), 0..200),
            seed in any::<u64>(),
        ) {
            let shape = TreeShape::new(3, 2).unwrap();
            let mut a = tree(8, 5, shape);
            let mut b = tree(8, 5, shape);
            let items: Vec<(Token, Vec<u8>, u64)> = entries
                .iter()
                .map(|(k, v)| (token_in(&a, *k), k.to_le_bytes().to_vec(), *v))
                .collect();
            for (tok, key, v) in &items {
                a.update(*tok, key, None, Some(*v));
            }
            // Another order: a seeded rotation and reversal.
            let mut shuffled = items.clone();
            let n = shuffled.len().max(1);
            shuffled.rotate_left((seed as usize) % n);
            shuffled.reverse();
            for (tok, key, v) in &shuffled {
                b.update(*tok, key, None, Some(*v));
            }
            prop_assert_eq!(&a, &b);
            prop_assert!(a.is_consistent());
            prop_assert_eq!(a.root() == 0, items.is_empty());
            for (tok, key, v) in &items {
                a.update(*tok, key, Some(*v), None);
            }
            prop_assert_eq!(a, tree(8, 5, shape));
        }

        #[test]
        fn a_different_version_changes_the_root(key in any::<u64>(), v in any::<u64>(), w in any::<u64>()) {
            prop_assume!(v != w);
            let mut a = tree(4, 2, TreeShape::DEFAULT);
            let mut b = a.clone();
            let tok = token_in(&a, key);
            a.update(tok, &key.to_le_bytes(), None, Some(v));
            b.update(tok, &key.to_le_bytes(), None, Some(w));
            prop_assert_ne!(a.root(), b.root());
            prop_assert_ne!(a.segments()[a.segment_of(tok) as usize], b.segments()[b.segment_of(tok) as usize]);
        }
    }
}
