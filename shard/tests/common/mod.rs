//! Helpers for the commit-log tests: an executor per test, temporary directories on a real
//! (O_DIRECT-capable) file system, deterministic records and recovery into owned values.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tessera_core::{NodeId, Object, VersionVector};
use tessera_io::fs::{Fs, RealFs};
use tessera_shard::log::format::{
    encode_object_record, encode_segment_header, parse_segment_name, seal_batch_header,
    BATCH_ALIGNMENT, BATCH_HEADER_BYTES,
};
use tessera_shard::log::{recover, CommitLog, RecoveryError, RecoveryReport, RecoveryStart};

/// The commit log as the tests use it: on the kernel's file system.
pub type RealLog = CommitLog<RealFs>;

/// Starts a log on the real file system in `dir` from `recovered`.
pub fn start_log(
    dir: PathBuf,
    recovered: &RecoveryReport,
    config: tessera_io::LogConfig,
) -> RealLog {
    CommitLog::start(Rc::new(RealFs), dir, recovered, config)
}

/// Runs `make()` to completion on a fresh unbound glommio executor; a panic inside fails the
/// test.
pub fn run<G, F>(make: G)
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    tessera_io::executor::run_unbound("test", make).expect("test executor panicked or failed");
}

/// A temporary directory under /tmp (ext4 here, so O_DIRECT works; tmpfs would not).
#[derive(Debug)]
pub struct TestDir {
    tmp: tempfile::TempDir,
}

impl TestDir {
    /// Creates the directory and its `log/` subdirectory and warms glommio's polled-I/O probe
    /// on the device (DESIGN §10). Call inside the executor, before any DMA file use.
    pub async fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("tessera-commit-log-")
            .tempdir_in("/tmp")
            .expect("create temp dir");
        std::fs::create_dir(tmp.path().join("log")).expect("create log dir");
        Self { tmp }
    }

    /// The directory root (an engine's data directory).
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// The commit log's directory.
    pub fn log_dir(&self) -> PathBuf {
        self.tmp.path().join("log")
    }
}

/// One record as recovery hands it out, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    /// Sequence number.
    pub seq: u64,
    /// Keyspace.
    pub keyspace: String,
    /// Key.
    pub key: Vec<u8>,
    /// The decoded object.
    pub object: Object,
}

/// The keyspace, key and object of test record `i`: deterministic, values of `value_len` to
/// `value_len + 30` bytes, some objects with two concurrent siblings, some deleted.
pub fn record(i: u64, value_len: usize) -> (String, Vec<u8>, Object) {
    let keyspace = ["users", "events", "k"][(i % 3) as usize].to_string();
    let key = format!("key-{i:06}").into_bytes();
    let value_len = value_len + (i as usize % 11) * 3;
    let value: Vec<u8> = (0..value_len)
        .map(|j| (i as usize * 31 + j * 7) as u8)
        .collect();
    let mut object = Object::new();
    object
        .update(&VersionVector::new(), NodeId(7), 1_000 + i, Some(value))
        .expect("first update");
    if i % 5 == 1 {
        // A blind write: concurrent with the first, so the object keeps two siblings.
        object
            .update(
                &VersionVector::new(),
                NodeId(9),
                2_000 + i,
                Some(vec![0xAB; 3]),
            )
            .expect("sibling update");
    }
    if i % 7 == 3 {
        // A delete that saw everything: one tombstone.
        let clock = object.clock().clone();
        object
            .update(&clock, NodeId(7), 3_000 + i, None)
            .expect("delete");
    }
    (keyspace, key, object)
}

/// Test record `i` as recovery should return it at sequence number `seq`.
pub fn expected(seq: u64, i: u64, value_len: usize) -> Rec {
    let (keyspace, key, object) = record(i, value_len);
    Rec {
        seq,
        keyspace,
        key,
        object,
    }
}

/// Appends test record `i` without waiting.
pub fn append<F: Fs>(log: &CommitLog<F>, i: u64, value_len: usize) -> tessera_io::Ticket {
    let (keyspace, key, object) = record(i, value_len);
    log.append_object(&keyspace, &key, &object)
        .expect("append accepted")
}

/// Writes test records `first..first + count * per_batch` as `count` batches of `per_batch`
/// records: each batch is appended with no `.await` in between and made durable before the
/// next starts, so each is exactly one group-commit write. Returns what recovery should give,
/// numbered from `first_seq`.
pub async fn write_batches<F: Fs>(
    log: &CommitLog<F>,
    first: u64,
    first_seq: u64,
    count: u64,
    per_batch: u64,
    value_len: usize,
) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in 0..count {
        let before = log.batches_written();
        let mut last = None;
        for r in 0..per_batch {
            let n = b * per_batch + r;
            let ticket = append(log, first + n, value_len);
            assert_eq!(ticket.record(), first_seq + n, "ticket numbering");
            out.push(expected(first_seq + n, first + n, value_len));
            last = Some(ticket);
        }
        log.wait_durable(last.expect("per_batch > 0"))
            .await
            .expect("batch durable");
        assert_eq!(log.batches_written(), before + 1, "one batch per group");
    }
    out
}

/// Recovers the log in `dir`, returning every record handed out (even when recovery then
/// fails) and the outcome.
pub async fn recover_collect(dir: &Path) -> (Vec<Rec>, Result<RecoveryReport, RecoveryError>) {
    recover_collect_on(&RealFs, dir, RecoveryStart::default()).await
}

/// [`recover_collect`] on any file system, from `start`.
pub async fn recover_collect_on<F: Fs>(
    fs: &F,
    dir: &Path,
    start: RecoveryStart,
) -> (Vec<Rec>, Result<RecoveryReport, RecoveryError>) {
    let mut recs = Vec::new();
    let result = recover(fs, dir, start, |seq, r| {
        let object = Object::decode(r.object).map_err(|e| e.to_string())?;
        recs.push(Rec {
            seq,
            keyspace: r.keyspace.to_string(),
            key: r.key.to_vec(),
            object,
        });
        Ok(())
    })
    .await;
    (recs, result)
}

/// Recovers the log in `dir`, which must succeed.
pub async fn recover_ok(dir: &Path) -> (Vec<Rec>, RecoveryReport) {
    let (recs, result) = recover_collect(dir).await;
    match result {
        Ok(report) => (recs, report),
        Err(e) => panic!("recovery failed: {e}"),
    }
}

/// Segment files in `dir`, in number order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("read log dir")
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| Some((parse_segment_name(&p)?, p)))
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// A record as raw parts for hand-built segments.
pub type RawRecord = (String, Vec<u8>, Vec<u8>);

/// Appends one batch of `records` (numbered from `first_record`) to `out`, which must end at
/// a batch boundary. Returns the batch's start offset.
pub fn push_batch(out: &mut Vec<u8>, records: &[RawRecord], first_record: u64) -> usize {
    let start = out.len();
    assert_eq!(start % BATCH_ALIGNMENT, 0, "batch boundary");
    out.resize(start + BATCH_HEADER_BYTES, 0);
    for (keyspace, key, object) in records {
        encode_object_record(out, keyspace, key, |o| o.extend_from_slice(object));
    }
    let (header, payload) = out[start..].split_at_mut(BATCH_HEADER_BYTES);
    seal_batch_header(header, payload, first_record);
    let padded = out.len().div_ceil(BATCH_ALIGNMENT) * BATCH_ALIGNMENT;
    out.resize(padded, 0);
    start
}

/// A segment holding `batches`, its records numbered from `first_record`. Returns the bytes
/// and each batch's start offset.
pub fn build_segment(
    segment: u64,
    first_record: u64,
    batches: &[Vec<RawRecord>],
) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = encode_segment_header(segment, first_record);
    let mut starts = Vec::new();
    let mut seq = first_record;
    for batch in batches {
        starts.push(push_batch(&mut bytes, batch, seq));
        seq += batch.len() as u64;
    }
    (bytes, starts)
}

/// A small deterministic PRNG (xorshift64*), so failures replay.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator; the seed must not be zero.
    pub fn new(seed: u64) -> Self {
        assert_ne!(seed, 0);
        Self(seed)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A non-zero byte different from `not`.
    pub fn byte_other_than(&mut self, not: u8) -> u8 {
        loop {
            let b = (self.next_u64() >> 56) as u8;
            if b != 0 && b != not {
                return b;
            }
        }
    }
}
