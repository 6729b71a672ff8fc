//! Tests of the k-way merge: a model check over random sources, error paths, the drop hook, and
//! a compaction of real tables.

use std::collections::BTreeMap;
use std::convert::Infallible;

use proptest::prelude::*;
use tessera_core::{NodeId, Object};

use super::*;
use crate::flush::build_table;
use crate::sstable::{Table, TableOptions};

/// A source failure for tests.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("test source failed")]
struct Broken;

type Entry<V> = Result<(Vec<u8>, V), Infallible>;

/// Sources as test iterators; each value records its source so the winner is visible.
fn sources(runs: &[BTreeMap<Vec<u8>, u32>]) -> Vec<std::vec::IntoIter<Entry<(usize, u32)>>> {
    runs.iter()
        .enumerate()
        .map(|(i, run)| {
            run.iter()
                .map(|(k, v)| Ok((k.clone(), (i, *v))))
                .collect::<Vec<_>>()
                .into_iter()
        })
        .collect()
}

/// The model: apply runs oldest first, so a newer run overrides an older one.
fn model(runs: &[BTreeMap<Vec<u8>, u32>]) -> BTreeMap<Vec<u8>, (usize, u32)> {
    let mut out = BTreeMap::new();
    for (i, run) in runs.iter().enumerate().rev() {
        for (k, v) in run {
            out.insert(k.clone(), (i, *v));
        }
    }
    out
}

fn arb_runs() -> impl Strategy<Value = Vec<BTreeMap<Vec<u8>, u32>>> {
    // A small key alphabet so keys repeat across runs; empty runs arise too.
    let key = proptest::collection::vec(0u8..3, 0..3);
    let run = proptest::collection::btree_map(key, any::<u32>(), 0..12);
    proptest::collection::vec(run, 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_matches_newest_wins_model(runs in arb_runs()) {
        let merged: Vec<_> = Merge::new(sources(&runs)).map(|e| e.unwrap()).collect();
        let expected: Vec<_> = model(&runs).into_iter().collect();
        prop_assert_eq!(merged, expected);
    }

    #[test]
    fn drop_hook_removes_winners_only(runs in arb_runs()) {
        let merged: Vec<_> = Merge::new(sources(&runs))
            .drop_if(|(_, v): &(usize, u32)| v % 3 == 0)
            .map(|e| e.unwrap())
            .collect();
        // A dropped winner does not let an older value of its key through.
        let expected: Vec<_> = model(&runs).into_iter().filter(|(_, (_, v))| v % 3 != 0).collect();
        prop_assert_eq!(merged, expected);
    }
}

fn ok(key: &[u8], value: u32) -> Result<(Vec<u8>, u32), Broken> {
    Ok((key.to_vec(), value))
}

#[test]
fn source_error_surfaces_and_ends_the_merge() {
    let newer = vec![ok(b"a", 1), ok(b"c", 1), Err(Broken), ok(b"z", 1)];
    let older = vec![ok(b"b", 2), ok(b"d", 2)];
    let mut merge = Merge::new(vec![newer.into_iter(), older.into_iter()]);
    assert_eq!(merge.next().unwrap().unwrap(), (b"a".to_vec(), 1));
    assert_eq!(merge.next().unwrap().unwrap(), (b"b".to_vec(), 2));
    // Yielding "c" refills its source, which fails.
    match merge.next() {
        Some(Err(MergeError::Source {
            source_index: 0,
            error: Broken,
        })) => {}
        other => panic!("expected the source error, got {other:?}"),
    }
    assert!(merge.next().is_none());
    assert!(merge.next().is_none());
}

#[test]
fn error_on_first_entry_surfaces() {
    let mut merge = Merge::new(vec![
        vec![ok(b"a", 1)].into_iter(),
        vec![Err(Broken)].into_iter(),
    ]);
    assert!(matches!(
        merge.next(),
        Some(Err(MergeError::Source {
            source_index: 1,
            ..
        }))
    ));
    assert!(merge.next().is_none());
}

#[test]
fn unsorted_source_is_an_error() {
    let bad = vec![ok(b"b", 1), ok(b"a", 1)];
    let mut merge = Merge::new(vec![bad.into_iter()]);
    // Yielding "b" refills its source first, which finds the disorder.
    assert!(matches!(
        merge.next(),
        Some(Err(MergeError::OutOfOrder {
            source_index: 0,
            ..
        }))
    ));
    assert!(merge.next().is_none());
}

fn written(value: Option<&[u8]>, base: &Object) -> Object {
    let mut o = base.clone();
    let context = o.clock().clone();
    o.update(&context, NodeId(1), 0, value.map(<[u8]>::to_vec))
        .unwrap();
    o
}

/// Entries as an owned, sorted run of objects.
fn run(entries: &[(&[u8], &Object)]) -> std::vec::IntoIter<Entry<Object>> {
    entries
        .iter()
        .map(|(k, o)| Ok((k.to_vec(), (*o).clone())))
        .collect::<Vec<_>>()
        .into_iter()
}

#[test]
fn tombstone_hook_drops_deleted_keys_without_resurrecting_them() {
    let live = written(Some(b"v"), &Object::new());
    let deleted = written(None, &live);
    assert!(deleted.is_deleted());
    let newer = run(&[(b"k1", &deleted), (b"k2", &live)]);
    let older = run(&[(b"k1", &live), (b"k3", &live)]);

    let kept: Vec<_> = Merge::new(vec![newer.clone(), older.clone()])
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(kept, vec![b"k1".to_vec(), b"k2".to_vec(), b"k3".to_vec()]);

    let dropped: Vec<_> = Merge::new(vec![newer, older])
        .drop_if(Object::is_deleted)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(dropped, vec![b"k2".to_vec(), b"k3".to_vec()]);
}

#[test]
fn compacting_tables_keeps_the_newest_objects() {
    let v1 = written(Some(b"v1"), &Object::new());
    let v2 = written(Some(b"v2"), &v1);
    let other = written(Some(b"x"), &Object::new());
    let options = TableOptions::default();
    let old = build_table(
        [(&b"a"[..], &v1), (&b"b"[..], &other)].into_iter(),
        &options,
    )
    .unwrap();
    let new = build_table(
        [(&b"a"[..], &v2), (&b"c"[..], &other)].into_iter(),
        &options,
    )
    .unwrap();
    let (old, new) = (Table::open(&old).unwrap(), Table::open(&new).unwrap());

    let merged: Vec<(Vec<u8>, Object)> =
        Merge::new(vec![decode_objects(new.iter()), decode_objects(old.iter())])
            .collect::<Result<_, _>>()
            .unwrap();
    let image = build_table(merged.iter().map(|(k, o)| (&k[..], o)), &options).unwrap();
    let compacted = Table::open(&image).unwrap();

    let read = |key: &[u8]| Object::decode(&compacted.get(key).unwrap().unwrap()).unwrap();
    assert_eq!(compacted.len(), 3);
    assert_eq!(read(b"a"), v2);
    assert_eq!(read(b"b"), other);
    assert_eq!(read(b"c"), other);
    assert_eq!(v2.clock().get(NodeId(1)), 2, "v2 supersedes v1");
}

#[test]
fn undecodable_value_is_a_run_error() {
    let mut builder = crate::sstable::TableBuilder::new(TableOptions::default());
    builder.add(b"k", b"not an object").unwrap();
    let bytes = builder.finish().unwrap();
    let table = Table::open(&bytes).unwrap();
    let mut merge = Merge::new(vec![decode_objects(table.iter())]);
    assert!(matches!(
        merge.next(),
        Some(Err(MergeError::Source {
            error: RunError::Object { .. },
            ..
        }))
    ));
}
