//! Commit-log append benchmarks: what one write costs the shard's log, with and without waiting
//! for durability.
//!
//! - `append/no_fsync`: `ready` + `append_object` with nobody waiting on the ticket — the CPU
//!   cost of encoding, framing (CRC32C) and copying a record into the pending batch.
//! - `append/fsync_each`: one appender that awaits `wait_durable` after every record, so every
//!   record costs one write and one `fdatasync`: the latency floor of a durable write on
//!   this disk.
//! - `append/group_commit_64`: 64 appenders that each await durability in a closed loop; the
//!   flusher covers every record that arrived during one sync with the next sync, so this is
//!   durable-write throughput with group commit.
//!
//! Every record is a 16-byte key in keyspace `default` with an object holding one 100-byte value,
//! built with `Object::update` as the engine builds it. The log uses the shard's default segment
//! and pending-batch sizes, in a temporary directory under `/tmp` (which must be a real disk
//! file system such as ext4, not tmpfs: O_DIRECT and fdatasync are the point).
//!
//! How it is timed: the glommio `LocalExecutor` is built with `make()` on criterion's own
//! thread, and every `iter_custom` call runs its iterations with `LocalExecutor::run`, taking
//! `Instant`s inside that future. So the clock is read on the thread that does the work, no
//! cross-thread hand-off is timed, and one log (with its flusher task, which stays queued in the
//! executor between `run` calls) serves every sample, as it would in a shard. Before a `run`
//! returns, everything appended in it is durable, so no I/O is in flight while the executor is
//! not being driven.
//!
//! `append/no_fsync` caveat: in a thread-per-core shard the flusher only runs when the appender
//! yields, and `ready` yields only when the pending batch is full. To time appends alone, each
//! sample appends in chunks that fit in one pending batch and syncs between chunks outside the
//! timed span (and deletes closed segments so the run does not fill the disk). The figure is
//! therefore an upper bound on append rate; the sustained rate is also bounded by the disk's
//! write bandwidth.

use std::cell::Cell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tempfile::TempDir;
use tessera_core::{NodeId, Object, VersionVector};
use tessera_io::fs::RealFs;
use tessera_io::LogConfig;
use tessera_shard::constants::{LOG_PENDING_BYTES_MAX_DEFAULT, LOG_SEGMENT_BYTES_DEFAULT};
use tessera_shard::log::format::{encode_object_record, SEGMENT_SUFFIX};
use tessera_shard::log::{CommitLog, RecoveryReport};

const KEYSPACE: &str = "default";
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
/// Distinct keys the appenders cycle through (a power of two, so the index is a mask).
const KEY_COUNT: usize = 4096;
/// Concurrent appenders in `append/group_commit_64`.
const GROUP_APPENDERS: u64 = 64;
const SEED: u64 = 0x7e55_e7a0;

/// A commit log on its own executor, driven from the bench thread.
struct LogBench {
    executor: LocalExecutor,
    log: Rc<CommitLog<RealFs>>,
    keys: Rc<Vec<[u8; KEY_BYTES]>>,
    object: Rc<Object>,
    /// Next key to use, carried across samples.
    next_key: Cell<usize>,
    log_dir: PathBuf,
    /// Removed (with the log) on drop; kept last so the log is closed first.
    _dir: TempDir,
}

impl LogBench {
    fn open() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tessera-bench-log-")
            .tempdir_in("/tmp")
            .expect("create a temporary directory under /tmp");
        let log_dir = dir.path().to_path_buf();
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .name("log-bench")
            .make()
            .expect("build a glommio executor");
        let start_dir = log_dir.clone();
        let log = executor.run(async move {
            CommitLog::start(
                Rc::new(RealFs),
                start_dir,
                &RecoveryReport::default(),
                LogConfig {
                    segment_bytes: LOG_SEGMENT_BYTES_DEFAULT,
                    pending_bytes_max: LOG_PENDING_BYTES_MAX_DEFAULT,
                },
            )
        });
        let mut rng = StdRng::seed_from_u64(SEED);
        let keys = (0..KEY_COUNT)
            .map(|_| {
                let mut key = [0u8; KEY_BYTES];
                rng.fill_bytes(&mut key);
                key
            })
            .collect();
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
        Self {
            executor,
            log: Rc::new(log),
            keys: Rc::new(keys),
            object: Rc::new(object),
            next_key: Cell::new(0),
            log_dir,
            _dir: dir,
        }
    }

    /// Bytes one record takes in the pending batch.
    fn record_bytes(&self) -> usize {
        let mut out = Vec::new();
        encode_object_record(&mut out, KEYSPACE, &self.keys[0], |o| self.object.encode(o));
        out.len()
    }

    fn take_key_index(&self) -> usize {
        let i = self.next_key.get();
        self.next_key.set((i + 1) & (KEY_COUNT - 1));
        i
    }

    fn close(self) {
        let log = self.log.clone();
        self.executor
            .run(async move { log.close().await })
            .expect("close the commit log");
    }
}

/// Deletes every segment but the newest: the writer has closed them and never reads them back.
fn remove_closed_segments(dir: &Path) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|entry| entry.expect("read a log directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(SEGMENT_SUFFIX))
        .collect();
    segments.sort();
    segments.pop();
    for path in segments {
        std::fs::remove_file(&path).expect("remove a closed segment");
    }
}

fn bench_append(c: &mut Criterion) {
    let bench = LogBench::open();
    let record_bytes = bench.record_bytes();
    let chunk_records = (LOG_PENDING_BYTES_MAX_DEFAULT / record_bytes) as u64;
    eprintln!(
        "log_append: {record_bytes}-byte records, {chunk_records} per pending batch, dir {}",
        bench.log_dir.display()
    );

    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));

    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    group.bench_function("no_fsync", |b| {
        b.iter_custom(|iters| {
            bench.executor.run(async {
                let log = &bench.log;
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(chunk_records);
                    let start = Instant::now();
                    for _ in 0..chunk {
                        let key = &bench.keys[bench.take_key_index()];
                        log.ready().await;
                        let ticket = log
                            .append_object(KEYSPACE, key, &bench.object)
                            .expect("append a record");
                        black_box(ticket);
                    }
                    elapsed += start.elapsed();
                    log.sync().await.expect("sync the log between chunks");
                    left -= chunk;
                }
                remove_closed_segments(&bench.log_dir);
                elapsed
            })
        })
    });

    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    let fsync_batches = Cell::new(0u64);
    let fsync_records = Cell::new(0u64);
    group.bench_function("fsync_each", |b| {
        b.iter_custom(|iters| {
            bench.executor.run(async {
                let log = &bench.log;
                let batches_before = log.batches_written();
                let start = Instant::now();
                for _ in 0..iters {
                    let key = &bench.keys[bench.take_key_index()];
                    log.ready().await;
                    let ticket = log
                        .append_object(KEYSPACE, key, &bench.object)
                        .expect("append a record");
                    log.wait_durable(ticket).await.expect("record is durable");
                }
                let elapsed = start.elapsed();
                fsync_batches.set(fsync_batches.get() + log.batches_written() - batches_before);
                fsync_records.set(fsync_records.get() + iters);
                elapsed
            })
        })
    });

    let group_batches = Cell::new(0u64);
    let group_records = Cell::new(0u64);
    group.bench_function("group_commit_64", |b| {
        b.iter_custom(|iters| {
            bench.executor.run(async {
                let batches_before = bench.log.batches_written();
                let start = Instant::now();
                let appenders: Vec<_> = (0..GROUP_APPENDERS)
                    .map(|appender| {
                        // Split `iters` records as evenly as possible over the appenders.
                        let records =
                            iters / GROUP_APPENDERS + u64::from(appender < iters % GROUP_APPENDERS);
                        let log = bench.log.clone();
                        let keys = bench.keys.clone();
                        let object = bench.object.clone();
                        // Each appender walks its own slice of the key set.
                        let first_key = appender as usize * (KEY_COUNT / GROUP_APPENDERS as usize);
                        glommio::spawn_local(async move {
                            for i in 0..records {
                                let key = &keys[(first_key + i as usize) & (KEY_COUNT - 1)];
                                log.ready().await;
                                let ticket = log
                                    .append_object(KEYSPACE, key, &object)
                                    .expect("append a record");
                                log.wait_durable(ticket).await.expect("record is durable");
                            }
                        })
                    })
                    .collect();
                for appender in appenders {
                    appender.await;
                }
                let elapsed = start.elapsed();
                group_batches
                    .set(group_batches.get() + bench.log.batches_written() - batches_before);
                group_records.set(group_records.get() + iters);
                elapsed
            })
        })
    });
    group.finish();

    for (name, records, batches) in [
        ("fsync_each", fsync_records.get(), fsync_batches.get()),
        ("group_commit_64", group_records.get(), group_batches.get()),
    ] {
        if batches > 0 {
            eprintln!(
                "append/{name}: {records} durable records in {batches} batches \
                 ({:.1} records per fdatasync)",
                records as f64 / batches as f64
            );
        }
    }
    bench.close();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
