//! The partition ring and the partition-to-shard map of one node.
//!
//! The token space `0..=u64::MAX` is cut into `Q` equal partitions, `Q` a power of two (Dynamo's
//! strategy 3, as in Riak). Partition `p` is the set of tokens whose top `log2(Q)` bits equal
//! `p`, so every partition is one contiguous token range and partitions are numbered in token
//! order. That keeps a partition a contiguous range of an SSTable sorted by token.
//!
//! Invariants:
//! - [`PartitionCount`] always holds a power of two in `1..=PARTITION_COUNT_MAX`.
//! - A [`ShardMap`]'s table has exactly one entry per partition and every entry is
//!   `< shard_count`, with `1 <= shard_count <= min(SHARD_COUNT_MAX, Q)`.
//!
//! Routing is a pure function of (keyspace, key) and the published map, so a client computes
//! the owning shard itself.

use crate::constants::{PARTITION_COUNT_DEFAULT, PARTITION_COUNT_MAX, SHARD_COUNT_MAX};
use crate::error::CoreError;
use crate::ids::{PartitionId, ShardId, Token};
use crate::token::token_of;

/// The number of ring partitions `Q`: a power of two in `1..=PARTITION_COUNT_MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartitionCount(u32);

impl PartitionCount {
    /// [`PARTITION_COUNT_DEFAULT`] partitions.
    pub const DEFAULT: PartitionCount = PartitionCount(PARTITION_COUNT_DEFAULT);

    /// Validates `q`: a power of two in `1..=PARTITION_COUNT_MAX`.
    pub fn new(q: u32) -> Result<Self, CoreError> {
        if q.is_power_of_two() && q <= PARTITION_COUNT_MAX {
            Ok(PartitionCount(q))
        } else {
            Err(CoreError::InvalidPartitionCount(q))
        }
    }

    /// The number of partitions.
    pub fn get(self) -> u32 {
        self.0
    }

    /// `log2(Q)`: how many top bits of a token name its partition.
    pub fn bits(self) -> u32 {
        self.0.trailing_zeros()
    }

    /// The partition owning token `t`: the top `log2(Q)` bits of the token (0 when `Q` is 1).
    pub fn partition_of(self, t: Token) -> PartitionId {
        let bits = self.bits();
        if bits == 0 {
            // A shift by 64 is not defined; one partition owns the whole ring.
            return PartitionId(0);
        }
        let p = t.0 >> (u64::BITS - bits);
        debug_assert!(p < u64::from(self.0));
        PartitionId(p as u32)
    }

    /// The first and last token of partition `p`, both inclusive.
    ///
    /// Contract: `p < Q`. A larger id is a caller bug (asserted in debug builds); release builds
    /// reduce it modulo `Q` rather than answer outside the ring.
    pub fn token_range(self, p: PartitionId) -> (u64, u64) {
        debug_assert!(
            p.0 < self.0,
            "{p} is outside a ring of {} partitions",
            self.0
        );
        let bits = self.bits();
        if bits == 0 {
            return (0, u64::MAX);
        }
        let shift = u64::BITS - bits;
        let first = u64::from(p.0 & (self.0 - 1)) << shift;
        let last = first | (u64::MAX >> bits);
        (first, last)
    }

    /// Every partition id, in token order.
    pub fn iter(self) -> impl ExactSizeIterator<Item = PartitionId> + DoubleEndedIterator {
        (0..self.0).map(PartitionId)
    }
}

impl Default for PartitionCount {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which shard of a node owns each partition. Every node of a cluster uses the same partition
/// count; the table is published with the ring so clients route straight to the shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    partitions: PartitionCount,
    shard_count: u16,
    /// `table[p]` is the shard owning partition `p`; `table.len() == partitions.get()`.
    table: Vec<ShardId>,
}

impl ShardMap {
    /// Partition `p` goes to shard `p % shard_count`. Because partitions are numbered in token
    /// order, neighbouring token ranges land on different shards, and shard loads differ by at
    /// most one partition.
    ///
    /// Errors: [`CoreError::InvalidShardCount`] unless `1 <= shard_count <= SHARD_COUNT_MAX`
    /// and `shard_count <= Q` (a shard without partitions would idle).
    pub fn round_robin(partitions: PartitionCount, shard_count: u16) -> Result<Self, CoreError> {
        validate_shard_count(partitions, shard_count)?;
        let table = partitions
            .iter()
            .map(|p| ShardId((p.0 % u32::from(shard_count)) as u16))
            .collect();
        let map = ShardMap {
            partitions,
            shard_count,
            table,
        };
        debug_assert!(map.is_valid());
        Ok(map)
    }

    /// Rebuilds a map from its table, as a client does when it decodes a published topology.
    ///
    /// Errors: [`CoreError::InvalidShardCount`] as for [`ShardMap::round_robin`];
    /// [`CoreError::InvalidShardTable`] unless `table.len() == Q` and every entry is
    /// `< shard_count`.
    pub fn from_table(
        partitions: PartitionCount,
        shard_count: u16,
        table: Vec<ShardId>,
    ) -> Result<Self, CoreError> {
        validate_shard_count(partitions, shard_count)?;
        if table.len() != partitions.get() as usize {
            return Err(CoreError::InvalidShardTable {
                detail: format!(
                    "it has {} entries but the ring has {} partitions",
                    table.len(),
                    partitions.get()
                ),
            });
        }
        if let Some((p, shard)) = table
            .iter()
            .enumerate()
            .find(|(_, shard)| shard.0 >= shard_count)
        {
            return Err(CoreError::InvalidShardTable {
                detail: format!(
                    "partition p{p} maps to {shard} but the node has only {shard_count} shards"
                ),
            });
        }
        Ok(ShardMap {
            partitions,
            shard_count,
            table,
        })
    }

    /// The shard owning partition `p`.
    ///
    /// Contract: `p < Q` (asserted in debug builds; release builds reduce it modulo `Q`).
    pub fn shard_of_partition(&self, p: PartitionId) -> ShardId {
        debug_assert!(p.0 < self.partitions.get(), "{p} is outside the ring");
        // Q is a power of two and the table has Q entries, so the masked index is in bounds.
        self.table[(p.0 & (self.partitions.get() - 1)) as usize]
    }

    /// The shard owning token `t`.
    pub fn shard_of_token(&self, t: Token) -> ShardId {
        self.shard_of_partition(self.partitions.partition_of(t))
    }

    /// The shard owning `key` in `keyspace`.
    pub fn shard_of_key(&self, keyspace: &str, key: &[u8]) -> ShardId {
        self.shard_of_token(token_of(keyspace, key))
    }

    /// The number of shards in the node.
    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// The ring's partition count.
    pub fn partitions(&self) -> PartitionCount {
        self.partitions
    }

    /// `table()[p]` is the shard owning partition `p`; one entry per partition.
    pub fn table(&self) -> &[ShardId] {
        &self.table
    }

    /// The partitions `shard` owns, in token order.
    pub fn partitions_of(&self, shard: ShardId) -> impl Iterator<Item = PartitionId> + '_ {
        self.table
            .iter()
            .enumerate()
            .filter(move |(_, owner)| **owner == shard)
            // The table has at most PARTITION_COUNT_MAX entries, so the index fits a u32.
            .map(|(p, _)| PartitionId(p as u32))
    }

    fn is_valid(&self) -> bool {
        self.table.len() == self.partitions.get() as usize
            && self.table.iter().all(|s| s.0 < self.shard_count)
    }
}

fn validate_shard_count(partitions: PartitionCount, shard_count: u16) -> Result<(), CoreError> {
    if shard_count == 0
        || shard_count > SHARD_COUNT_MAX
        || u32::from(shard_count) > partitions.get()
    {
        return Err(CoreError::InvalidShardCount(u32::from(shard_count)));
    }
    Ok(())
}

/// Groups item indexes by owner, owners in first-seen order and indexes ascending: how a
/// batch is split into one sub-batch per owning shard (or node) and put back together.
pub fn group_by_owner<O: PartialEq>(owners: impl IntoIterator<Item = O>) -> Vec<(O, Vec<usize>)> {
    let mut groups: Vec<(O, Vec<usize>)> = Vec::new();
    for (i, owner) in owners.into_iter().enumerate() {
        match groups.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, indexes)) => indexes.push(i),
            None => groups.push((owner, vec![i])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u32) -> PartitionCount {
        PartitionCount::new(n).unwrap()
    }

    #[test]
    fn partition_count_accepts_only_powers_of_two_in_range() {
        for good in [1, 2, 4, 1024, PARTITION_COUNT_MAX] {
            assert_eq!(q(good).get(), good);
        }
        for bad in [0, 3, 6, 1000, PARTITION_COUNT_MAX * 2, u32::MAX] {
            assert_eq!(
                PartitionCount::new(bad),
                Err(CoreError::InvalidPartitionCount(bad))
            );
        }
        assert_eq!(PartitionCount::default().get(), PARTITION_COUNT_DEFAULT);
    }

    #[test]
    fn one_partition_owns_the_whole_ring() {
        let one = q(1);
        assert_eq!(one.partition_of(Token(0)), PartitionId(0));
        assert_eq!(one.partition_of(Token(u64::MAX)), PartitionId(0));
        assert_eq!(one.token_range(PartitionId(0)), (0, u64::MAX));
    }

    #[test]
    fn partitions_are_contiguous_ranges_that_tile_the_ring() {
        for n in [1, 2, 8, 1024, PARTITION_COUNT_MAX] {
            let q = q(n);
            let mut next_first = 0u64;
            for p in q.iter() {
                let (first, last) = q.token_range(p);
                assert_eq!(
                    first, next_first,
                    "{p} of {n} does not start where its predecessor ended"
                );
                assert!(first <= last);
                assert_eq!(q.partition_of(Token(first)), p);
                assert_eq!(q.partition_of(Token(last)), p);
                assert_eq!(q.partition_of(Token(first + (last - first) / 2)), p);
                next_first = last.wrapping_add(1);
            }
            assert_eq!(
                next_first, 0,
                "the last partition of {n} must end at u64::MAX"
            );
        }
    }

    #[test]
    fn partition_of_uses_the_top_bits() {
        let q = q(1024);
        assert_eq!(q.partition_of(Token(0x0000_0000_0000_0000)), PartitionId(0));
        assert_eq!(q.partition_of(Token(0x003f_ffff_ffff_ffff)), PartitionId(0));
        assert_eq!(q.partition_of(Token(0x0040_0000_0000_0000)), PartitionId(1));
        assert_eq!(q.partition_of(Token(u64::MAX)), PartitionId(1023));
    }

    #[test]
    fn round_robin_spreads_partitions_evenly() {
        for (n, shards) in [(1, 1), (8, 3), (1024, 7), (1024, 256), (4, 4)] {
            let map = ShardMap::round_robin(q(n), shards).unwrap();
            let counts: Vec<usize> = (0..shards)
                .map(|s| map.partitions_of(ShardId(s)).count())
                .collect();
            let min = counts.iter().min().unwrap();
            let max = counts.iter().max().unwrap();
            assert!(max - min <= 1, "uneven spread {counts:?} for {n}/{shards}");
            assert_eq!(counts.iter().sum::<usize>(), n as usize);
            for p in q(n).iter() {
                assert_eq!(
                    map.shard_of_partition(p),
                    ShardId((p.0 % u32::from(shards)) as u16)
                );
            }
        }
    }

    #[test]
    fn round_robin_rejects_bad_shard_counts() {
        assert_eq!(
            ShardMap::round_robin(q(1024), 0),
            Err(CoreError::InvalidShardCount(0))
        );
        assert_eq!(
            ShardMap::round_robin(q(1024), SHARD_COUNT_MAX + 1),
            Err(CoreError::InvalidShardCount(u32::from(SHARD_COUNT_MAX) + 1))
        );
        assert_eq!(
            ShardMap::round_robin(q(4), 5),
            Err(CoreError::InvalidShardCount(5))
        );
    }

    #[test]
    fn from_table_round_trips_and_rejects_bad_tables() {
        let map = ShardMap::round_robin(q(16), 3).unwrap();
        let rebuilt = ShardMap::from_table(q(16), 3, map.table().to_vec()).unwrap();
        assert_eq!(rebuilt, map);

        let short = map.table()[..15].to_vec();
        assert!(matches!(
            ShardMap::from_table(q(16), 3, short),
            Err(CoreError::InvalidShardTable { .. })
        ));
        let mut long = map.table().to_vec();
        long.push(ShardId(0));
        assert!(matches!(
            ShardMap::from_table(q(16), 3, long),
            Err(CoreError::InvalidShardTable { .. })
        ));
        let mut out_of_range = map.table().to_vec();
        out_of_range[7] = ShardId(3);
        assert!(matches!(
            ShardMap::from_table(q(16), 3, out_of_range),
            Err(CoreError::InvalidShardTable { .. })
        ));
        assert_eq!(
            ShardMap::from_table(q(16), 0, Vec::new()),
            Err(CoreError::InvalidShardCount(0))
        );
    }

    #[test]
    fn routing_by_key_agrees_with_routing_by_token() {
        let map = ShardMap::round_robin(q(1024), 5).unwrap();
        for i in 0..200u32 {
            let key = i.to_le_bytes();
            let token = token_of("default", &key);
            let p = map.partitions().partition_of(token);
            assert_eq!(map.shard_of_key("default", &key), map.shard_of_partition(p));
            assert_eq!(map.shard_of_token(token), map.table()[p.0 as usize]);
        }
    }

    #[test]
    fn group_by_owner_keeps_first_seen_order() {
        let groups = group_by_owner([2u16, 0, 2, 1, 0]);
        assert_eq!(groups, vec![(2, vec![0, 2]), (0, vec![1, 4]), (1, vec![3])]);
        assert!(group_by_owner(Vec::<u16>::new()).is_empty());
    }
}
