//! The service's write semantics against a real engine (commit log on disk):
//! - a blind write (empty context) becomes a sibling of what is stored;
//! - an `overwrite` write supersedes every stored version, whatever its context says, and
//!   concurrent overwrites of one key never leave siblings (the engine reads the stored clock
//!   in the same synchronous section that applies the write);
//! - batch puts and deletes honour `overwrite` the same way;
//! - writes of one key apply in the order they were issued even while they wait for room in
//!   a full commit log (a later write never takes room freed for an earlier one).

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::rc::Rc;

use futures::future::join_all;
use futures_lite::future::yield_now;
use tessera_core::{NodeId, Object, VersionVector};
use tessera_io::fs::RealFs;
use tessera_io::log_writer::LogConfig;
use tessera_schema::{
    BatchPutRequest, Consistency, DeleteRequest, Durability, GetRequest, PutItem, PutRequest,
    DEFAULT_KEYSPACE,
};
use tessera_shard::engine::{Engine, EngineLimits};
use tessera_shard::lsm::LsmOptions;
use tessera_shard::service::{RequestLimits, Service};

use common::{run, TestDir};

fn limits(pending_bytes_max: usize) -> EngineLimits {
    EngineLimits {
        memtable_bytes_max: 64 << 20,
        memory_budget_bytes: 256 << 20,
        log: LogConfig {
            segment_bytes: 64 << 20,
            pending_bytes_max,
        },
        lsm: LsmOptions::default(),
    }
}

async fn open_service(dir: &TestDir) -> Service {
    open_service_with(dir, limits(1 << 20)).await
}

async fn open_service_with(dir: &TestDir, limits: EngineLimits) -> Service {
    let (engine, _) = Engine::open(Rc::new(RealFs), dir.root(), NodeId(7), limits)
        .await
        .unwrap();
    Service::new(
        engine,
        RequestLimits {
            key_bytes_max: 1024,
            value_bytes_max: 1 << 20,
            durable_by_default: true,
        },
    )
}

fn put(key: &[u8], value: &[u8], overwrite: bool) -> PutRequest {
    PutRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        key: key.to_vec(),
        value: value.to_vec(),
        context: Vec::new(),
        durability: Durability::Default,
        overwrite,
        consistency: Consistency::default(),
    }
}

async fn values(service: &Service, key: &[u8]) -> Vec<Vec<u8>> {
    let get = GetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        key: key.to_vec(),
        consistency: Consistency::default(),
    };
    service.get(&get).await.unwrap().values
}

async fn object(service: &Service, key: &[u8]) -> Object {
    service
        .engine()
        .read(DEFAULT_KEYSPACE, key, |o| o.cloned())
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn overwrites_replace_and_blind_writes_make_siblings() {
    run(|| async {
        let dir = TestDir::new().await;
        let service = open_service(&dir).await;

        service.put(put(b"k", b"one", true)).await.unwrap();
        service.put(put(b"k", b"two", true)).await.unwrap();
        assert_eq!(values(&service, b"k").await, [b"two"]);
        assert_eq!(object(&service, b"k").await.siblings().len(), 1);

        // A blind write next to it is a sibling, as before.
        service.put(put(b"k", b"blind", false)).await.unwrap();
        assert_eq!(
            values(&service, b"k").await,
            [b"two".to_vec(), b"blind".to_vec()]
        );

        // An overwrite resolves the siblings; a garbage context is ignored, not refused.
        let mut resolve = put(b"k", b"three", true);
        resolve.context = vec![0xff; 5];
        service.put(resolve).await.unwrap();
        assert_eq!(values(&service, b"k").await, [b"three"]);
        assert_eq!(object(&service, b"k").await.siblings().len(), 1);
        service.engine().close().await.unwrap();
    });
}

#[test]
fn concurrent_overwrites_never_leave_siblings() {
    run(|| async {
        let dir = TestDir::new().await;
        let service = open_service(&dir).await;
        // All start before any is durable: each waits for the group commit after applying.
        let writes = (0..16u8).map(|i| service.put(put(b"hot", &[i], true)));
        for outcome in join_all(writes).await {
            outcome.unwrap();
        }
        let stored = object(&service, b"hot").await;
        assert_eq!(stored.siblings().len(), 1, "{stored:?}");
        assert_eq!(values(&service, b"hot").await, [[15u8]]);

        // The same many blind writes do make siblings.
        let writes = (0..4u8).map(|i| service.put(put(b"cold", &[i], false)));
        for outcome in join_all(writes).await {
            outcome.unwrap();
        }
        assert_eq!(object(&service, b"cold").await.siblings().len(), 4);
        service.engine().close().await.unwrap();
    });
}

#[test]
fn batch_put_and_delete_honour_overwrite() {
    run(|| async {
        let dir = TestDir::new().await;
        let service = open_service(&dir).await;
        for value in [b"a", b"b"] {
            service.put(put(b"x", value, false)).await.unwrap();
        }
        assert_eq!(values(&service, b"x").await.len(), 2);

        let batch = |overwrite| BatchPutRequest {
            keyspace: DEFAULT_KEYSPACE.into(),
            items: [b"x".as_slice(), b"y"]
                .iter()
                .map(|key| PutItem {
                    key: key.to_vec(),
                    value: b"batch".to_vec(),
                    context: Vec::new(),
                })
                .collect(),
            durability: Durability::Default,
            overwrite,
            consistency: Consistency::default(),
        };
        for item in service.batch_put(batch(true)).await.unwrap() {
            item.unwrap();
        }
        assert_eq!(values(&service, b"x").await, [b"batch"]);
        assert_eq!(values(&service, b"y").await, [b"batch"]);
        for item in service.batch_put(batch(false)).await.unwrap() {
            item.unwrap();
        }
        assert_eq!(
            values(&service, b"x").await.len(),
            2,
            "blind batch items are siblings"
        );

        let delete = DeleteRequest {
            keyspace: DEFAULT_KEYSPACE.into(),
            key: b"x".to_vec(),
            context: Vec::new(),
            durability: Durability::Default,
            overwrite: true,
            consistency: Consistency::default(),
        };
        service.delete(delete).await.unwrap();
        assert!(values(&service, b"x").await.is_empty());
        let stored = object(&service, b"x").await;
        assert!(
            stored.is_deleted() && stored.siblings().len() == 1,
            "{stored:?}"
        );
        service.engine().close().await.unwrap();
    });
}

/// A log that holds about two of [`ORDERED_VALUE_BYTES`] values: almost every write waits
/// for a group commit to free room.
fn small_log() -> EngineLimits {
    limits(16 << 10)
}
const ORDERED_VALUE_BYTES: usize = 6 << 10;
const ORDERED_BURSTS: u64 = 24;
const ORDERED_PER_BURST: u64 = 4;

/// Value number `i`: its number, then padding so that two or three fill [`small_log`].
fn ordered_value(i: u64) -> Vec<u8> {
    let mut value = i.to_be_bytes().to_vec();
    value.resize(ORDERED_VALUE_BYTES, 0x5a);
    value
}

/// The regression for a write overtaking an earlier one of the same key while both waited
/// for log room: the later one, arriving just as room freed up, applied first, so a
/// pipelined `SET k 1`, `SET k 2` could end with 1.
///
/// Writes are issued as a connection issues pipelined commands: each in a task of its own
/// (glommio polls it at once, so it reaches the log in issue order), a few per turn of the
/// issuing task, with the group commit freeing room in between.
#[test]
fn writes_of_one_key_apply_in_issue_order_while_waiting_for_log_room() {
    run(|| async {
        let dir = TestDir::new().await;
        let service = Rc::new(open_service_with(&dir, small_log()).await);
        let mut tasks = Vec::new();
        for burst in 0..ORDERED_BURSTS {
            for i in burst * ORDERED_PER_BURST..(burst + 1) * ORDERED_PER_BURST {
                let service = service.clone();
                tasks.push(glommio::spawn_local(async move {
                    let written = service.put(put(b"hot", &ordered_value(i), true)).await;
                    let context = VersionVector::decode(&written.unwrap().context).unwrap();
                    // Every write of the key takes the next counter of this node's dot: the
                    // counter is the write's place in apply order.
                    context.get(NodeId(7))
                }));
            }
            // As a connection's reader between two reads of its socket.
            yield_now().await;
        }
        let mut applied = Vec::new();
        for task in tasks {
            applied.push(task.await);
        }
        let issued = ORDERED_BURSTS * ORDERED_PER_BURST;
        assert_eq!(
            applied,
            (1..=issued).collect::<Vec<_>>(),
            "apply position of each write, in issue order"
        );
        let last = ordered_value(issued - 1);
        assert_eq!(values(&service, b"hot").await, std::slice::from_ref(&last));
        assert_eq!(object(&service, b"hot").await.siblings().len(), 1);
        service.engine().close().await.unwrap();
        drop(service);

        // The log holds the writes in the same order: replay ends with the last one too.
        let service = open_service_with(&dir, small_log()).await;
        assert_eq!(values(&service, b"hot").await, [last]);
        service.engine().close().await.unwrap();
    });
}
