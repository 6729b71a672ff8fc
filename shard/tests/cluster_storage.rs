//! A cluster node's storage operations against a real engine (commit log on disk): updates
//! mint dots for this node, merges join sibling sets, a key whose token does not match its
//! bytes is refused, range reads page through a token range in key order without gaps or
//! repeats, hints are kept and forgotten, the ring state survives a reopen, a purge drops only
//! the copies that are exactly its tombstone, and compaction drops purged keys but not tombstones.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::rc::Rc;

use tessera_core::node::{Key, RingState, StorageOp, StorageResult};
use tessera_core::placement::{Member, Ring};
use tessera_core::ring::PartitionCount;
use tessera_core::version::dot_floor;
use tessera_core::{NodeId, Object, Token, VersionVector};
use tessera_io::fs::RealFs;
use tessera_io::log_writer::LogConfig;
use tessera_shard::cluster::storage::{cluster_key, execute, load_ring, set_absent_key_gc};
use tessera_shard::engine::{Engine, EngineLimits};
use tessera_shard::lsm::LsmOptions;

use common::{run, TestDir};

const ME: NodeId = NodeId(7);

async fn open(dir: &TestDir) -> Engine {
    let limits = EngineLimits {
        memtable_bytes_max: 64 << 20,
        memory_budget_bytes: 256 << 20,
        log: LogConfig {
            segment_bytes: 64 << 20,
            pending_bytes_max: 1 << 20,
        },
        lsm: LsmOptions::default(),
    };
    Engine::open(Rc::new(RealFs), dir.root(), ME, limits)
        .await
        .unwrap()
        .0
}

fn update(key: &Key, value: &[u8]) -> StorageOp {
    StorageOp::Update {
        key: key.clone(),
        context: VersionVector::new(),
        value: Some(value.to_vec()),
        timestamp_ms: 1,
        dot_floor: dot_floor(1),
        lww: false,
    }
}

async fn read(engine: &Engine, key: &Key) -> Object {
    match execute(engine, ME, StorageOp::Read { key: key.clone() }, false).await {
        StorageResult::Read(object) => object,
        other => panic!("read answered {other:?}"),
    }
}

#[test]
fn updates_merges_and_reads_keep_every_concurrent_version() {
    run(|| async {
        let dir = TestDir::new().await;
        let engine = open(&dir).await;
        let key = cluster_key("default", b"k");
        let StorageResult::Changed { before, after } =
            execute(&engine, ME, update(&key, b"a"), true).await
        else {
            panic!("update did not change the key")
        };
        assert!(before.is_empty());
        assert_eq!(after.siblings().len(), 1);
        assert_eq!(after.siblings()[0].dot.node, ME);
        // Above the wall clock's floor, so that a key whose clock was reaped gets new dots.
        assert!(after.siblings()[0].dot.counter > dot_floor(1));
        // A concurrent write made elsewhere arrives as an object to merge.
        let mut remote = Object::new();
        remote
            .update(&VersionVector::new(), NodeId(9), 2, Some(b"b".to_vec()))
            .unwrap();
        let merge = StorageOp::Merge {
            key: key.clone(),
            object: remote.clone(),
            lww: false,
        };
        let StorageResult::Changed { after: merged, .. } =
            execute(&engine, ME, merge.clone(), true).await
        else {
            panic!("merge did not answer Changed")
        };
        assert_eq!(merged.siblings().len(), 2);
        // Merging again changes nothing (idempotent).
        execute(&engine, ME, merge, true).await;
        assert_eq!(read(&engine, &key).await, merged);
        engine.close().await.unwrap();
    });
}

#[test]
fn a_key_whose_token_does_not_match_its_bytes_is_refused() {
    run(|| async {
        let dir = TestDir::new().await;
        let engine = open(&dir).await;
        let mut key = cluster_key("default", b"k");
        key.token = Token(key.token.0 ^ 1);
        let answer = execute(&engine, ME, update(&key, b"a"), true).await;
        assert!(matches!(answer, StorageResult::Failed(ref why) if why.contains("token")));
        assert!(read(&engine, &cluster_key("default", b"k"))
            .await
            .is_empty());
        engine.close().await.unwrap();
    });
}

#[test]
fn range_reads_page_through_a_token_range_in_key_order() {
    run(|| async {
        let dir = TestDir::new().await;
        let engine = open(&dir).await;
        let keys: Vec<Key> = (0..300u32)
            .map(|i| cluster_key("default", &i.to_le_bytes()))
            .collect();
        for key in &keys {
            execute(&engine, ME, update(key, b"v"), false).await;
        }
        engine.flush_now().await.unwrap(); // half in a table, half in the memtable
        for key in keys.iter().take(150) {
            execute(&engine, ME, update(key, b"w"), false).await;
        }
        let tokens = (u64::MAX / 4, u64::MAX / 2);
        let mut expected: Vec<Key> = keys
            .iter()
            .filter(|k| (tokens.0..=tokens.1).contains(&k.token.0))
            .cloned()
            .collect();
        expected.sort();
        assert!(expected.len() > 20, "too few keys in the range to page");
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let op = StorageOp::ReadRange {
                partition: tessera_core::PartitionId(0),
                tokens,
                after: after.clone(),
                max_entries: 7,
                max_bytes: 1 << 20,
            };
            let StorageResult::Range { entries, end } = execute(&engine, ME, op, false).await
            else {
                panic!("range read failed")
            };
            pages += 1;
            assert!(entries.len() <= 7);
            after = entries.last().map(|(k, _)| k.clone()).or(after);
            seen.extend(entries.into_iter().map(|(k, _)| k));
            if end {
                break;
            }
            assert!(pages < 1_000, "the range never ended");
        }
        assert_eq!(seen, expected);
        engine.close().await.unwrap();
    });
}

#[test]
fn hints_are_kept_and_forgotten_and_the_ring_survives_a_reopen() {
    run(|| async {
        let dir = TestDir::new().await;
        let engine = open(&dir).await;
        let key = cluster_key("default", b"hinted");
        let mut object = Object::new();
        object
            .update(&VersionVector::new(), NodeId(3), 5, Some(b"h".to_vec()))
            .unwrap();
        let put = StorageOp::PutHint {
            owner: NodeId(3),
            key: key.clone(),
            object,
        };
        assert_eq!(execute(&engine, ME, put, true).await, StorageResult::Done);
        let delete = StorageOp::DeleteHint {
            owner: NodeId(3),
            key: key.clone(),
        };
        assert_eq!(
            execute(&engine, ME, delete, true).await,
            StorageResult::Done
        );
        // Hints never show as data.
        assert!(read(&engine, &key).await.is_empty());

        assert!(load_ring(&engine).await.unwrap().is_none());
        let members = (1..=3)
            .map(|i| Member::new(NodeId(i), "r", "dc", 1))
            .collect();
        let ring = Ring::new(PartitionCount::new(64).unwrap(), members).unwrap();
        let state = RingState::initial(ring);
        let save = StorageOp::SaveRing(Box::new(state.clone()));
        assert_eq!(execute(&engine, ME, save, true).await, StorageResult::Done);
        engine.close().await.unwrap();
        let engine = open(&dir).await;
        assert_eq!(load_ring(&engine).await.unwrap(), Some(state));
        engine.close().await.unwrap();
    });
}

/// A value written at node 3, and a delete of it (a tombstone that supersedes it).
fn value_and_its_tombstone() -> (Object, Object) {
    let mut value = Object::new();
    value
        .update(&VersionVector::new(), NodeId(3), 1, Some(b"old".to_vec()))
        .unwrap();
    let mut tombstone = value.clone();
    tombstone
        .update(&value.clock().clone(), NodeId(3), 2, None)
        .unwrap();
    assert!(tombstone.is_deleted());
    (value, tombstone)
}

async fn merge(engine: &Engine, key: &Key, object: &Object) {
    let op = StorageOp::Merge {
        key: key.clone(),
        object: object.clone(),
        lww: false,
    };
    assert!(matches!(
        execute(engine, ME, op, false).await,
        StorageResult::Changed { .. }
    ));
}

/// Whether the engine holds (keyspace "default", `key`) at all, even as an empty object.
async fn held(engine: &Engine, key: &[u8]) -> bool {
    engine.read("default", key, |o| o.is_some()).await.unwrap()
}

#[test]
fn a_purge_drops_only_copies_that_are_its_tombstone() {
    run(|| async {
        let dir = TestDir::new().await;
        let engine = open(&dir).await;
        let (value, tombstone) = value_and_its_tombstone();
        // The value the delete read (older: it stays, or it could come back once the others
        // purged), and the tombstone itself (it goes).
        let (old, deleted) = (
            cluster_key("default", b"old"),
            cluster_key("default", b"del"),
        );
        merge(&engine, &old, &value).await;
        merge(&engine, &deleted, &tombstone).await;
        // A write after the delete, and one the delete never saw: both stay.
        let (newer, blind) = (
            cluster_key("default", b"new"),
            cluster_key("default", b"bl"),
        );
        let mut after_delete = tombstone.clone();
        after_delete
            .update(
                &tombstone.clock().clone(),
                NodeId(4),
                3,
                Some(b"new".to_vec()),
            )
            .unwrap();
        merge(&engine, &newer, &after_delete).await;
        let mut concurrent = Object::new();
        concurrent
            .update(&VersionVector::new(), NodeId(4), 3, Some(b"bl".to_vec()))
            .unwrap();
        merge(&engine, &blind, &concurrent).await;
        let absent = cluster_key("default", b"absent");
        engine.flush_now().await.unwrap(); // some copies in a table, one in the memtable
        let mut also_deleted = cluster_key("default", b"del2");
        merge(&engine, &also_deleted, &tombstone).await;

        let keys = [&old, &deleted, &newer, &blind, &absent, &also_deleted];
        let entries = keys
            .iter()
            .map(|k| ((*k).clone(), tombstone.clone()))
            .collect();
        let purge = StorageOp::Purge { entries };
        let StorageResult::ChangedMany(changed) = execute(&engine, ME, purge, true).await else {
            panic!("a purge answers ChangedMany")
        };
        let empty = Object::new();
        let expected = [
            (&old, &value, &value),
            (&deleted, &tombstone, &empty),
            (&newer, &after_delete, &after_delete),
            (&blind, &concurrent, &concurrent),
            (&absent, &empty, &empty),
            (&also_deleted, &tombstone, &empty),
        ];
        assert_eq!(changed.len(), expected.len(), "one answer per entry");
        for ((key, before, after), (k, b, a)) in changed.iter().zip(expected) {
            assert_eq!((key, before, after), (k, b, a), "{key:?}");
            assert_eq!(&read(&engine, key).await, a, "{key:?} reads back");
        }
        // A key that did not qualify was not written: the absent one is still not held.
        assert!(!held(&engine, b"absent").await);
        // A second purge changes nothing.
        let entries = vec![(deleted.clone(), tombstone.clone())];
        let again = execute(&engine, ME, StorageOp::Purge { entries }, false).await;
        assert_eq!(
            again,
            StorageResult::ChangedMany(vec![(deleted.clone(), empty.clone(), empty.clone())])
        );
        // A key whose token does not match its bytes refuses the whole purge.
        also_deleted.token = Token(also_deleted.token.0 ^ 1);
        let entries = vec![
            (newer.clone(), after_delete.clone()),
            (also_deleted, tombstone.clone()),
        ];
        let answer = execute(&engine, ME, StorageOp::Purge { entries }, false).await;
        assert!(matches!(answer, StorageResult::Failed(ref why) if why.contains("token")));
        assert_eq!(read(&engine, &newer).await, after_delete);
        engine.close().await.unwrap();
    });
}

#[test]
fn a_bottommost_compaction_drops_purged_keys_and_keeps_tombstones() {
    for with_hook in [false, true] {
        run(move || async move {
            let dir = TestDir::new().await;
            let engine = open(&dir).await;
            if with_hook {
                set_absent_key_gc(&engine);
            }
            let (value, tombstone) = value_and_its_tombstone();
            let (purged, deleted) = (cluster_key("default", b"p"), cluster_key("default", b"d"));
            merge(&engine, &purged, &value).await;
            merge(&engine, &purged, &tombstone).await;
            merge(&engine, &deleted, &tombstone).await;
            let entries = vec![(purged.clone(), tombstone.clone())];
            let purge = execute(&engine, ME, StorageOp::Purge { entries }, false).await;
            let StorageResult::ChangedMany(changed) = purge else {
                panic!("a purge answers ChangedMany")
            };
            assert!(changed[0].2.is_empty(), "the tombstone is purged");
            // Enough level-0 tables for the default policy to compact them into level 1,
            // the deepest level holding anything.
            let trigger = LsmOptions::default().policy.l0_trigger;
            for i in 0..trigger {
                let filler = cluster_key("default", format!("filler-{i}").as_bytes());
                execute(&engine, ME, update(&filler, b"f"), false).await;
                engine.flush_now().await.unwrap();
            }
            assert!(held(&engine, b"p").await, "flush keeps the empty object");
            assert!(engine.compact_now().await.unwrap() > 0);
            assert_eq!(engine.lsm().l0_tables(), 0);
            // Without the hook the empty object stays; it reads as absent either way.
            assert_eq!(held(&engine, b"p").await, !with_hook);
            assert!(read(&engine, &purged).await.is_empty());
            // A tombstone with a clock is kept: only a reap round may take it.
            assert_eq!(read(&engine, &deleted).await, tombstone);
            let filler = cluster_key("default", b"filler-0");
            assert_eq!(read(&engine, &filler).await.siblings().len(), 1);
            engine.close().await.unwrap();
        });
    }
}
