//! A cluster node's storage operations against a real engine (commit log on disk): updates
//! mint dots for this node, merges join sibling sets, a key whose token does not match its
//! bytes is refused, range reads page through a token range in key order without gaps or
//! repeats, hints are kept and forgotten, and the ring state survives a reopen.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::rc::Rc;

use tessera_core::node::{Key, RingState, StorageOp, StorageResult};
use tessera_core::placement::{Member, Ring};
use tessera_core::ring::PartitionCount;
use tessera_core::{NodeId, Object, Token, VersionVector};
use tessera_io::fs::RealFs;
use tessera_io::log_writer::LogConfig;
use tessera_shard::cluster::storage::{cluster_key, execute, load_ring};
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
