//! Memtable benchmarks: the in-memory half of every write and the whole of every read (until
//! SSTables exist, the memtable holds the data set).
//!
//! - `memtable/insert/N`: inserts N distinct random 16-byte keys, each with an object holding
//!   one 100-byte value, into an empty table. The objects are built (and cloned) outside the
//!   timed span and the filled table is dropped outside it, so the figure is the insert path
//!   alone: token hash, memtable-key encoding, allocation of the boxed key, B-tree insert.
//! - `memtable/get_hit/K` and `memtable/get_miss/K`: one lookup per iteration on a table of K
//!   such keys, the probe keys taken in a fixed random order so successive lookups walk
//!   different parts of the tree, as requests for random keys would. Misses are random keys
//!   that are not in the table. K = 100k is the case of interest; K = 1k (a table that stays
//!   in cache) is there to show how much of the 100k figure is cache misses: every key is a
//!   separate heap allocation, so each comparison in the B-tree walk is a pointer chase.
//!
//! All keys come from a seeded PRNG, so every run measures the same keys.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use tessera_core::{NodeId, Object, VersionVector};
use tessera_shard::memtable::Memtable;

const KEYSPACE: &str = "default";
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
/// Sizes of the tables that `get_*` probe: one that fits in L2 and the 100k-key one.
const TABLE_KEYS: [usize; 2] = [1_000, 100_000];
/// Probe keys per lookup benchmark (a power of two, so the index is a mask).
const PROBE_KEYS: usize = 1 << 16;
const SEED: u64 = 0x3e3_7ab1e;

type Key = [u8; KEY_BYTES];

fn random_keys(rng: &mut StdRng, count: usize) -> Vec<Key> {
    (0..count)
        .map(|_| {
            let mut key = [0u8; KEY_BYTES];
            rng.fill_bytes(&mut key);
            key
        })
        .collect()
}

fn object(rng: &mut StdRng) -> Object {
    let mut value = vec![0u8; VALUE_BYTES];
    rng.fill_bytes(&mut value);
    let mut object = Object::new();
    object
        .update(
            &VersionVector::new(),
            NodeId(1),
            1_700_000_000_000,
            Some(value),
        )
        .expect("a 100-byte value fits an object");
    object
}

fn bench_insert(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let object = object(&mut rng);
    let mut group = c.benchmark_group("memtable/insert");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    // One iteration fills a whole table (milliseconds), so every sample runs the same few
    // iterations instead of criterion's default 1, 2, 3, ... ramp.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for count in [10_000usize, 100_000] {
        let keys = random_keys(&mut rng, count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &keys, |b, keys| {
            b.iter_batched(
                || {
                    keys.iter()
                        .map(|key| (*key, object.clone()))
                        .collect::<Vec<_>>()
                },
                |entries| {
                    let mut table = Memtable::new();
                    for (key, object) in entries {
                        table.insert(KEYSPACE, &key, object);
                    }
                    table
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn bench_get(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let object = object(&mut rng);
    let mut group = c.benchmark_group("memtable");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_millis(1500));
    group.sample_size(30);
    for table_keys in TABLE_KEYS {
        let mut stored = random_keys(&mut rng, table_keys);
        let mut table = Memtable::new();
        for key in &stored {
            table.insert(KEYSPACE, key, object.clone());
        }
        assert_eq!(table.len(), table_keys, "random keys are distinct");

        stored.shuffle(&mut rng);
        let hits: Vec<Key> = stored.iter().cycle().take(PROBE_KEYS).copied().collect();
        let misses = random_keys(&mut rng, PROBE_KEYS);
        assert!(
            misses.iter().all(|key| table.get(KEYSPACE, key).is_none()),
            "miss keys are absent"
        );

        for (name, probes) in [("get_hit", &hits), ("get_miss", &misses)] {
            group.bench_function(BenchmarkId::new(name, table_keys), |b| {
                let mut next = 0usize;
                b.iter(|| {
                    let key = &probes[next];
                    next = (next + 1) & (PROBE_KEYS - 1);
                    black_box(table.get(KEYSPACE, black_box(key)).is_some())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_insert, bench_get);
criterion_main!(benches);
