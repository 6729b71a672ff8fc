//! Flush: turning a sorted run of `(memtable key, Object)` entries into an SSTable image.
//!
//! Pure code: [`build_table`] takes entries (a [`Memtable::iter`] or a [`crate::merge`] output)
//! and returns the whole table image in memory, for tests and tools. The engine streams its
//! flushes to disk block by block instead (`lsm/write.rs`), with the same builder and the same
//! value encoding.
//!
//! Invariants:
//! - Every entry given is written, tombstone-only objects included. A tombstone is what stops an
//!   older run's value for the key from resurfacing on read, so it may only go when the cluster
//!   says every replica has it (DESIGN.md §6); that decision is the merge's hook, not flush's.
//! - Values are [`Object::encode`] bytes, so `Object::decode` of a stored value gives back the
//!   object given here.
//!
//! [`Memtable::iter`]: crate::memtable::Memtable::iter

use tessera_core::Object;

use crate::sstable::{SstError, TableBuilder, TableOptions};

/// What can go wrong building a table from entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The table builder refused an entry (keys not strictly increasing: a caller bug) or could
    /// not encode a section; see the inner error for what to do.
    #[error("cannot build table: {0}")]
    Table(#[from] SstError),
}

/// Writes `entries` (strictly increasing keys) into a table image, values encoded as objects.
///
/// Errors: [`FlushError::Table`] if a key does not follow the previous one, an entry is too
/// large for a block, or a section cannot be encoded.
pub fn build_table<'e>(
    entries: impl Iterator<Item = (&'e [u8], &'e Object)>,
    options: &TableOptions,
) -> Result<Vec<u8>, FlushError> {
    let mut builder = TableBuilder::new(options.clone());
    // One buffer reused for every value: a flush encodes many small objects.
    let mut value = Vec::new();
    for (key, object) in entries {
        value.clear();
        object.encode(&mut value);
        builder.add(key, &value)?;
    }
    Ok(builder.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::{partition_bounds, token_of_mem_key, Memtable};
    use crate::sstable::Table;
    use proptest::prelude::*;
    use tessera_core::{NodeId, VersionVector};

    /// An object built by a few writes, some of them deletes, from a few nodes; blind writes
    /// leave concurrent siblings, so objects of several siblings arise too.
    fn object_from(writes: &[(u8, Option<Vec<u8>>)]) -> Object {
        let mut o = Object::new();
        for (i, (node, value)) in writes.iter().enumerate() {
            let context = if i % 2 == 0 {
                o.clock().clone()
            } else {
                VersionVector::new()
            };
            o.update(&context, NodeId(u64::from(*node)), i as u64, value.clone())
                .unwrap();
        }
        o
    }

    fn arb_writes() -> impl Strategy<Value = Vec<(u8, Option<Vec<u8>>)>> {
        let value = proptest::option::weighted(0.7, proptest::collection::vec(any::<u8>(), 0..40));
        proptest::collection::vec((1u8..4, value), 1..5)
    }

    fn arb_memtable() -> impl Strategy<Value = Memtable> {
        let entry = (
            prop_oneof![Just("a"), Just("default"), Just("k")],
            proptest::collection::vec(any::<u8>(), 0..12),
            arb_writes(),
        );
        proptest::collection::vec(entry, 0..120).prop_map(|entries| {
            let mut m = Memtable::new();
            for (keyspace, key, writes) in entries {
                m.insert(keyspace, &key, object_from(&writes));
            }
            m
        })
    }

    fn small_blocks() -> TableOptions {
        // Small blocks so a table has many blocks and ranges cross block edges.
        TableOptions {
            block_bytes_target: 256,
            ..TableOptions::default()
        }
    }

    fn decoded(entry: Result<(Vec<u8>, Vec<u8>), SstError>) -> (Vec<u8>, Object) {
        let (key, value) = entry.unwrap();
        (key, Object::decode(&value).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn table_holds_the_memtable(m in arb_memtable(), probe in any::<u64>()) {
            let image = build_table(m.iter(), &small_blocks()).unwrap();
            let table = Table::open(&image).unwrap();
            prop_assert_eq!(table.len(), m.len() as u64);
            for (key, object) in m.iter() {
                let stored = table.get(key).unwrap().expect("key flushed");
                prop_assert_eq!(&Object::decode(&stored).unwrap(), object);
            }
            let all: Vec<_> = table.iter().map(decoded).collect();
            let expected: Vec<_> = m.iter().map(|(k, o)| (k.to_vec(), o.clone())).collect();
            prop_assert_eq!(all, expected);

            // Partitions present in the table, and one most likely absent.
            let mut tokens: Vec<_> = m.iter().filter_map(|(k, _)| token_of_mem_key(k)).collect();
            tokens.push(tessera_core::Token(probe));
            for token in tokens {
                let (start, end) = partition_bounds(token);
                let from_table: Vec<_> =
                    table.range(&start, end.as_deref()).map(decoded).collect();
                let from_memtable: Vec<_> = m
                    .range(&start, end.as_deref())
                    .map(|(k, o)| (k.to_vec(), o.clone()))
                    .collect();
                prop_assert_eq!(from_table, from_memtable);
            }
        }
    }

    #[test]
    fn tombstones_are_flushed() {
        let mut m = Memtable::new();
        let mut deleted = object_from(&[(1, Some(b"v".to_vec()))]);
        let context = deleted.clock().clone();
        deleted.update(&context, NodeId(2), 9, None).unwrap();
        assert!(deleted.is_deleted());
        m.insert("default", b"gone", deleted.clone());
        let image = build_table(m.iter(), &TableOptions::default()).unwrap();
        let table = Table::open(&image).unwrap();
        let (key, _) = m.iter().next().unwrap();
        let stored = table.get(key).unwrap().expect("tombstone kept");
        assert_eq!(Object::decode(&stored).unwrap(), deleted);
    }

    #[test]
    fn out_of_order_entries_are_refused() {
        let o = Object::new();
        let entries = [(&b"b"[..], &o), (&b"a"[..], &o)];
        let err = build_table(entries.into_iter(), &TableOptions::default()).unwrap_err();
        assert!(matches!(
            err,
            FlushError::Table(SstError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn empty_input_gives_an_empty_table() {
        let image = build_table(std::iter::empty(), &TableOptions::default()).unwrap();
        assert!(Table::open(&image).unwrap().is_empty());
    }
}
