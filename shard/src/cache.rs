//! The block cache: decoded SSTable data blocks kept in memory under a byte budget.
//!
//! Ownership: one `BlockCache` per shard, owned by that shard's executor thread (no locks; a
//! shard keeps it in a `RefCell` and must not hold the borrow across an `.await` — take the
//! `Rc` out with [`BlockCache::get`], drop the borrow, read the block, then borrow again to
//! [`BlockCache::insert`]). Values are `Rc<V>` (decoded blocks): a reader keeps its block alive after an
//! eviction, and the cache stops charging for it then.
//!
//! Policy: CLOCK (second chance). Every entry has a referenced bit, set by a hit; the hand
//! sweeps the slots, clearing set bits and evicting the first entry whose bit is clear. A new
//! entry starts with its bit clear, so a block read once (a scan) is the first to go, while a
//! block hit since the hand last passed survives another revolution. Every operation is O(1)
//! amortised (each bit the hand clears was set by one hit); callers that know a read is a scan
//! should not insert at all (`cacheable: false` in [`BlockCache::get_or_insert_with`]).
//!
//! Invariants, after every public call:
//! - `used_bytes() <= budget_bytes()`;
//! - `used_bytes()` is the sum of [`charge`] over the entries;
//! - `index`, `tables` and the occupied `slots` describe the same set of entries.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Bytes charged per entry on top of the block itself: the slot (key 16, `Rc` pointer 16,
/// bit and padding 8), the index entry (key 16 + slot 8, plus hash-table control bytes and
/// load-factor slack, about 32), the per-table set entry (about 8), the `Rc` allocation's two
/// counters (16), and allocator rounding. That is about 100 bytes; 128 keeps small blocks from
/// being under-counted when the allocator rounds up.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

/// A block: its table's id and its index within the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    /// The SSTable.
    pub table_id: u64,
    /// The data block within it.
    pub block: u32,
}

impl BlockKey {
    /// Block `block` of table `table_id`.
    pub fn new(table_id: u64, block: u32) -> Self {
        Self { table_id, block }
    }
}

/// What the cache has done since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found their block.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries pushed out to make room (by an insert or a smaller budget).
    pub evictions: u64,
    /// Entries refused because one alone would exceed the budget.
    pub rejections: u64,
}

/// What the cache can hold: anything that knows the memory it takes.
pub trait Cached {
    /// Bytes of memory the value holds (its charge, before [`ENTRY_OVERHEAD_BYTES`]); must not
    /// change while it is cached.
    fn cached_bytes(&self) -> usize;
}

impl Cached for [u8] {
    fn cached_bytes(&self) -> usize {
        self.len()
    }
}

impl Cached for crate::sstable::DecodedBlock {
    fn cached_bytes(&self) -> usize {
        self.memory_bytes()
    }
}

/// The bytes an entry with a `len`-byte block counts against the budget.
pub fn charge(len: usize) -> u64 {
    u64::try_from(len)
        .unwrap_or(u64::MAX)
        .saturating_add(ENTRY_OVERHEAD_BYTES)
}

#[derive(Debug)]
struct Slot<V: ?Sized> {
    key: BlockKey,
    value: Rc<V>,
    referenced: bool,
}

/// A per-shard block cache with a byte budget (see the module docs).
#[derive(Debug)]
pub struct BlockCache<V: ?Sized + Cached = [u8]> {
    budget_bytes: u64,
    used_bytes: u64,
    /// CLOCK ring; `None` is a free slot (listed in `free`). Its length is the high-water mark
    /// of entries.
    slots: Vec<Option<Slot<V>>>,
    free: Vec<usize>,
    hand: usize,
    index: HashMap<BlockKey, usize>,
    /// Blocks cached per table, so `remove_table` costs O(entries of that table).
    tables: HashMap<u64, HashSet<u32>>,
    stats: CacheStats,
}

impl<V: ?Sized + Cached> BlockCache<V> {
    /// An empty cache that will hold at most `budget_bytes` (entries and their overhead).
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            budget_bytes,
            used_bytes: 0,
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
            index: HashMap::new(),
            tables: HashMap::new(),
            stats: CacheStats::default(),
        }
    }

    /// The block, if cached; a hit marks it recently used.
    pub fn get(&mut self, key: &BlockKey) -> Option<Rc<V>> {
        let found = self.index.get(key).and_then(|&i| self.slots[i].as_mut());
        match found {
            Some(slot) => {
                slot.referenced = true;
                self.stats.hits += 1;
                Some(slot.value.clone())
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// The block if cached, counting a hit but not a miss: for a caller that will look again
    /// (counting the miss then) if this one finds nothing.
    pub fn peek(&mut self, key: &BlockKey) -> Option<Rc<V>> {
        let slot = self.index.get(key).and_then(|&i| self.slots[i].as_mut())?;
        slot.referenced = true;
        self.stats.hits += 1;
        Some(slot.value.clone())
    }

    /// The cached block, or `fill()`'s, which is cached only if `cacheable` (pass `false` for
    /// scans, so that one pass over a table does not push out the working set).
    pub fn get_or_insert_with<E>(
        &mut self,
        key: BlockKey,
        fill: impl FnOnce() -> Result<Rc<V>, E>,
        cacheable: bool,
    ) -> Result<Rc<V>, E> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let value = fill()?;
        if cacheable {
            self.insert(key, value.clone());
        }
        Ok(value)
    }

    /// Caches `value` under `key` (replacing any entry for it), evicting as needed. Returns
    /// whether it was cached: an entry whose charge alone exceeds the budget is not.
    pub fn insert(&mut self, key: BlockKey, value: Rc<V>) -> bool {
        self.remove(&key);
        let cost = charge(value.cached_bytes());
        if cost > self.budget_bytes {
            self.stats.rejections += 1;
            return false;
        }
        self.evict_until(self.budget_bytes - cost);
        let slot = Some(Slot {
            key,
            value,
            referenced: false,
        });
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.index.insert(key, i);
        self.tables
            .entry(key.table_id)
            .or_default()
            .insert(key.block);
        self.used_bytes += cost;
        true
    }

    /// Drops every block of `table_id` (its file is gone). Not counted as evictions.
    pub fn remove_table(&mut self, table_id: u64) {
        let Some(blocks) = self.tables.remove(&table_id) else {
            return;
        };
        for block in blocks {
            if let Some(i) = self.index.remove(&BlockKey::new(table_id, block)) {
                self.free_slot(i);
            }
        }
    }

    /// Changes the budget; a smaller one evicts until the cache fits.
    pub fn set_budget(&mut self, budget_bytes: u64) {
        self.budget_bytes = budget_bytes;
        self.evict_until(budget_bytes);
    }

    /// The budget, in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Bytes charged for the cached entries (always at most the budget).
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no block is cached.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Hits, misses, evictions and rejections so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Removes `key`'s entry, if any.
    fn remove(&mut self, key: &BlockKey) {
        let Some(i) = self.index.remove(key) else {
            return;
        };
        if let Some(blocks) = self.tables.get_mut(&key.table_id) {
            blocks.remove(&key.block);
            if blocks.is_empty() {
                self.tables.remove(&key.table_id);
            }
        }
        self.free_slot(i);
    }

    /// Empties slot `i` and releases its charge; the caller has updated `index` and `tables`.
    fn free_slot(&mut self, i: usize) {
        if let Some(slot) = self.slots[i].take() {
            self.used_bytes -= charge(slot.value.cached_bytes());
            self.free.push(i);
        }
    }

    /// Evicts by CLOCK until at most `target_bytes` are used.
    fn evict_until(&mut self, target_bytes: u64) {
        while self.used_bytes > target_bytes {
            let Some(key) = self.next_victim() else {
                // Unreachable while the charge invariant holds: no entries means 0 bytes.
                debug_assert!(false, "{} bytes used by no entries", self.used_bytes);
                return;
            };
            self.remove(&key);
            self.stats.evictions += 1;
        }
    }

    /// Advances the hand to the first entry not referenced since the hand last passed it,
    /// clearing bits on the way. Ends within two revolutions when any entry exists.
    fn next_victim(&mut self) -> Option<BlockKey> {
        if self.index.is_empty() {
            return None;
        }
        loop {
            let i = self.hand % self.slots.len();
            self.hand = (i + 1) % self.slots.len();
            match &mut self.slots[i] {
                None => {}
                Some(slot) if slot.referenced => slot.referenced = false,
                Some(slot) => return Some(slot.key),
            }
        }
    }
}

#[cfg(test)]
mod tests;
