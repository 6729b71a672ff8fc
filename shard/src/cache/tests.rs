//! Block cache tests: the budget holds under any operation sequence, CLOCK evicts in the
//! expected order, and tables, oversized entries and budget changes behave.

use std::collections::HashMap;
use std::rc::Rc;

use proptest::prelude::*;

use super::*;

fn block(len: usize, fill: u8) -> Rc<[u8]> {
    vec![fill; len].into()
}

/// Checks the invariants the module documents, from the inside.
fn check_invariants(cache: &BlockCache) {
    assert!(cache.used_bytes() <= cache.budget_bytes());
    let occupied: Vec<&Slot<[u8]>> = cache.slots.iter().flatten().collect();
    let charged: u64 = occupied.iter().map(|s| charge(s.value.len())).sum();
    assert_eq!(cache.used_bytes(), charged);
    assert_eq!(occupied.len(), cache.len());
    assert_eq!(cache.free.len() + occupied.len(), cache.slots.len());
    let per_table: usize = cache.tables.values().map(HashSet::len).sum();
    assert_eq!(per_table, cache.len());
    for (key, &i) in &cache.index {
        assert_eq!(cache.slots[i].as_ref().map(|s| s.key), Some(*key));
        assert!(cache.tables[&key.table_id].contains(&key.block));
    }
}

#[test]
fn a_block_is_found_after_insert_and_counted() {
    let mut cache = BlockCache::new(1 << 20);
    let key = BlockKey::new(7, 3);
    assert_eq!(cache.get(&key), None);
    assert!(cache.insert(key, block(100, 1)));
    assert_eq!(cache.get(&key).as_deref(), Some(&[1u8; 100][..]));
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.used_bytes(), 100 + ENTRY_OVERHEAD_BYTES);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.evictions), (1, 1, 0));
    // Replacing charges the new size only.
    assert!(cache.insert(key, block(10, 2)));
    assert_eq!(cache.used_bytes(), 10 + ENTRY_OVERHEAD_BYTES);
    assert_eq!(cache.get(&key).as_deref(), Some(&[2u8; 10][..]));
    check_invariants(&cache);
}

#[test]
fn clock_gives_a_hit_entry_a_second_chance() {
    let entry = charge(100);
    let mut cache = BlockCache::new(3 * entry);
    let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|i| BlockKey::new(1, i));
    for key in [a, b, c] {
        assert!(cache.insert(key, block(100, 0)));
    }
    assert!(cache.get(&a).is_some());
    // The hand passes `a` (clearing its bit) and takes `b`, never read since insertion.
    cache.insert(d, block(100, 0));
    assert!(cache.get(&b).is_none());
    assert!(cache.get(&a).is_some() && cache.get(&d).is_some());
    // Next the hand reaches `c`, still unreferenced.
    cache.insert(e, block(100, 0));
    assert!(cache.get(&c).is_none());
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.stats().evictions, 2);
    check_invariants(&cache);
}

#[test]
fn scans_that_are_not_cacheable_leave_the_working_set_alone() {
    let mut cache = BlockCache::new(2 * charge(100));
    let hot = BlockKey::new(1, 0);
    cache.insert(hot, block(100, 9));
    for i in 0..100 {
        let read =
            cache.get_or_insert_with(BlockKey::new(2, i), || Ok::<_, ()>(block(100, 0)), false);
        assert!(read.is_ok());
    }
    assert_eq!(cache.len(), 1);
    assert!(cache.get(&hot).is_some());
    let filled = cache.get_or_insert_with(BlockKey::new(3, 0), || Ok::<_, ()>(block(100, 5)), true);
    assert_eq!(filled.map(|b| b[0]), Ok(5));
    assert_eq!(cache.len(), 2);
    let failed = cache.get_or_insert_with(BlockKey::new(4, 0), || Err("io"), true);
    assert_eq!(failed, Err("io"));
    check_invariants(&cache);
}

#[test]
fn remove_table_drops_only_that_table() {
    let mut cache = BlockCache::new(1 << 20);
    for table in 1..=3 {
        for i in 0..5 {
            cache.insert(BlockKey::new(table, i), block(10, 0));
        }
    }
    cache.remove_table(2);
    cache.remove_table(99);
    assert_eq!(cache.len(), 10);
    assert!((0..5).all(|i| cache.get(&BlockKey::new(2, i)).is_none()));
    assert!((0..5).all(|i| cache.get(&BlockKey::new(3, i)).is_some()));
    assert_eq!(cache.stats().evictions, 0, "removals are not evictions");
    check_invariants(&cache);
    // Freed slots are reused.
    cache.insert(BlockKey::new(4, 0), block(10, 0));
    assert_eq!(cache.slots.len(), 15);
    check_invariants(&cache);
}

#[test]
fn an_entry_larger_than_the_budget_is_not_cached() {
    let mut cache = BlockCache::new(1000);
    let key = BlockKey::new(1, 0);
    assert!(cache.insert(key, block(500, 0)));
    let too_big = usize::try_from(1000 - ENTRY_OVERHEAD_BYTES + 1).unwrap();
    assert!(!cache.insert(key, block(too_big, 0)));
    assert!(cache.get(&key).is_none(), "the stale value is gone too");
    assert_eq!(cache.used_bytes(), 0);
    assert_eq!(cache.stats().rejections, 1);
    let fits = usize::try_from(1000 - ENTRY_OVERHEAD_BYTES).unwrap();
    assert!(cache.insert(key, block(fits, 0)), "exactly the budget fits");
    assert_eq!(cache.used_bytes(), 1000);
    check_invariants(&cache);
}

#[test]
fn a_smaller_budget_evicts_until_it_fits() {
    let mut cache = BlockCache::new(10 * charge(100));
    for i in 0..10 {
        cache.insert(BlockKey::new(1, i), block(100, 0));
    }
    assert_eq!(cache.len(), 10);
    cache.set_budget(4 * charge(100) + 1);
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.stats().evictions, 6);
    check_invariants(&cache);
    cache.set_budget(0);
    assert!(cache.is_empty());
    assert_eq!(cache.used_bytes(), 0);
    check_invariants(&cache);
    cache.set_budget(1 << 20);
    assert!(cache.insert(BlockKey::new(1, 0), block(100, 0)));
}

#[derive(Clone, Debug)]
enum Op {
    Insert { table: u64, block: u32, len: usize },
    Get { table: u64, block: u32 },
    RemoveTable(u64),
    SetBudget(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..4u64, 0..8u32, 0..1200usize)
            .prop_map(|(table, block, len)| Op::Insert { table, block, len }),
        4 => (0..4u64, 0..8u32).prop_map(|(table, block)| Op::Get { table, block }),
        1 => (0..4u64).prop_map(Op::RemoveTable),
        1 => (0..6000u64).prop_map(Op::SetBudget),
    ]
}

proptest! {
    #[test]
    fn the_budget_holds_and_hits_return_the_last_insert(
        budget in 0..6000u64,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut cache = BlockCache::new(budget);
        // What each key was last set to; a hit must return exactly that.
        let mut model: HashMap<BlockKey, Rc<[u8]>> = HashMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert { table, block: b, len } => {
                    let key = BlockKey::new(table, b);
                    let value = block(len, n as u8);
                    let cached = cache.insert(key, value.clone());
                    prop_assert_eq!(cached, charge(len) <= cache.budget_bytes());
                    model.insert(key, value);
                }
                Op::Get { table, block: b } => {
                    let key = BlockKey::new(table, b);
                    if let Some(got) = cache.get(&key) {
                        prop_assert_eq!(Some(&got), model.get(&key));
                    }
                }
                Op::RemoveTable(table) => {
                    cache.remove_table(table);
                    model.retain(|k, _| k.table_id != table);
                    prop_assert!((0..8).all(|b| !cache.index.contains_key(&BlockKey::new(table, b))));
                }
                Op::SetBudget(bytes) => cache.set_budget(bytes),
            }
            check_invariants(&cache);
        }
    }
}
