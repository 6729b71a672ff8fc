//! Model-based test of the shard engine (commit log, memtables, SSTables, flush, compaction):
//! random operations run against an [`Engine`] on the simulated file system and against a
//! model, a `BTreeMap<(keyspace, key), Object>`, and after every operation every key must read
//! the same from both. The memtable is a few hundred bytes and the compaction policy tiny, so
//! the engine also flushes and compacts on its own between the explicit operations below.
//!
//! Operations, over 4 keys in each of 2 keyspaces (the same key bytes in both, so a keyspace
//! mix-up shows), with values of 0 to 7 bytes:
//! - `Put` with one of three contexts: overwrite ([`Supersedes::Everything`]), the context of
//!   the last `Get` of that key (stale if writes came since; empty if never read), or a blind
//!   write (empty context, a new sibling). Blind writes are rarer, and a put is turned into an
//!   overwrite once the key holds [`SIBLINGS_CAP`] siblings, so sibling sets stay small.
//! - `Delete`: an overwrite with a tombstone.
//! - `Get`: remembers the key's clock as the context for later context puts.
//! - `Restart`: close the engine and open it again on the same directory, then carry on.
//! - `Flush`: freeze the memtable and wait until it is in a table.
//! - `Compact`: run compactions until the policy asks for none.
//! - `ReadPartition`: read the partition of one key through the engine; it must hold exactly
//!   the model's keys of that partition with their objects.
//!
//! The model applies each write with the same core [`Object::update`] the engine uses, with
//! the same node id and, for an overwrite, the stored clock as context (as the engine does).
//! Every write is durable, so a restart must lose nothing.
//!
//! The comparison is exact except for wall-clock timestamps: per key, engine and model must
//! agree on presence (`None` for a key never written), on the whole clock, and on every
//! sibling's dot and value (tombstones included), in dot order. Only `timestamp_ms` is left
//! out, because the engine stamps it from the wall clock and nothing in this engine reads it.
//! Dots are deterministic (one node, counter = clock + 1), so this is stronger than comparing
//! live values: a lost, duplicated or reordered record, a wrong context or a clock not
//! restored on recovery all show. Each write's returned clock must also equal the model's,
//! and a reopen never finds a torn log tail (every write was durable).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use tessera_core::{Dot, NodeId, Object, VersionVector};
use tessera_io::fs::SimFs;
use tessera_io::log_writer::LogConfig;
use tessera_shard::compaction::Policy;
use tessera_shard::engine::{Engine, EngineLimits, Supersedes};
use tessera_shard::lsm::LsmOptions;
use tessera_shard::memtable::{mem_key, token_of_mem_key};
use tessera_shard::sstable::TableOptions;

/// Cases per run (the issue asks for at least 1,000).
const CASES: u32 = 1000;

/// Operations per case, at most.
const OPS_MAX: usize = 40;

/// A put of a key holding this many siblings becomes an overwrite (far below core's
/// `SIBLINGS_MAX`, so no write is refused).
const SIBLINGS_CAP: usize = 4;

const NODE: NodeId = NodeId(7);

const KEYSPACES: [&str; 2] = ["users", "events"];
const KEYS: [&[u8]; 4] = [b"a", b"b", b"c", b"key-d"];

/// A memtable of a few entries, tables of a few blocks and a policy that compacts after two
/// flushes: the engine flushes and compacts on its own within a case.
fn limits() -> EngineLimits {
    EngineLimits {
        memtable_bytes_max: 400,
        memory_budget_bytes: 1 << 20,
        log: LogConfig {
            segment_bytes: 2 << 10,
            pending_bytes_max: 1 << 10,
        },
        lsm: LsmOptions {
            table: TableOptions {
                block_bytes_target: 128,
                ..TableOptions::default()
            },
            policy: Policy {
                l0_trigger: 2,
                level_base_bytes: 1 << 10,
                size_ratio: 2,
                max_levels: 4,
                target_file_bytes: 512,
            },
            compaction_bytes_per_sec: 1 << 30,
            cache_bytes: 16 << 10,
            l0_stall_tables: 6,
        },
    }
}

/// One of the 8 (keyspace, key) pairs, by index.
type Slot = usize;

fn slot(s: Slot) -> (&'static str, &'static [u8]) {
    (KEYSPACES[s / KEYS.len()], KEYS[s % KEYS.len()])
}

fn slots() -> std::ops::Range<Slot> {
    0..KEYSPACES.len() * KEYS.len()
}

#[derive(Clone, Copy, Debug)]
enum Context {
    /// Supersede every stored version.
    Overwrite,
    /// The clock of the last `Get` of the key (empty if none).
    LastRead,
    /// The empty context: a new sibling.
    Blind,
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        slot: Slot,
        value: Vec<u8>,
        context: Context,
    },
    Delete {
        slot: Slot,
    },
    Get {
        slot: Slot,
    },
    Restart,
    Flush,
    Compact,
    ReadPartition {
        slot: Slot,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..KEYSPACES.len() * KEYS.len();
    let context = prop_oneof![
        4 => Just(Context::Overwrite),
        4 => Just(Context::LastRead),
        1 => Just(Context::Blind),
    ];
    prop_oneof![
        8 => (slot.clone(), prop::collection::vec(any::<u8>(), 0..8), context)
            .prop_map(|(slot, value, context)| Op::Put { slot, value, context }),
        2 => slot.clone().prop_map(|slot| Op::Delete { slot }),
        4 => slot.clone().prop_map(|slot| Op::Get { slot }),
        1 => Just(Op::Restart),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => slot.prop_map(|slot| Op::ReadPartition { slot }),
    ]
}

/// What the comparison sees of an object: clock and (dot, value) per sibling, in dot order;
/// timestamps left out (see the module doc).
type View = Option<(VersionVector, Vec<(Dot, Option<Vec<u8>>)>)>;

fn view(object: Option<&Object>) -> View {
    object.map(|o| {
        let siblings = o
            .siblings()
            .iter()
            .map(|s| (s.dot, s.value.clone()))
            .collect();
        (o.clock().clone(), siblings)
    })
}

#[derive(Default)]
struct Model {
    objects: BTreeMap<Slot, Object>,
    /// The context a `LastRead` put sends: the clock the last `Get` of the key returned.
    last_read: BTreeMap<Slot, VersionVector>,
}

impl Model {
    /// Applies a write as the engine does: `None` is an overwrite (the stored clock as context).
    fn write(&mut self, s: Slot, context: Option<&VersionVector>, value: Option<Vec<u8>>) {
        let object = self.objects.entry(s).or_default();
        let context = context.cloned().unwrap_or_else(|| object.clock().clone());
        object.update(&context, NODE, 0, value).unwrap();
    }

    fn view(&self, s: Slot) -> View {
        view(self.objects.get(&s))
    }
}

type SimEngine = Engine<SimFs>;

async fn engine_view(engine: &SimEngine, s: Slot) -> Result<View, String> {
    let (keyspace, key) = slot(s);
    engine
        .read(keyspace, key, view)
        .await
        .map_err(|e| format!("read {:?}: {e}", slot(s)))
}

/// Every key of the engine against the model.
async fn check_all(engine: &SimEngine, model: &Model, step: usize, op: &Op) -> Result<(), String> {
    for s in slots() {
        let got = engine_view(engine, s).await?;
        let want = model.view(s);
        if got != want {
            return Err(format!(
                "after step {step} ({op:?}), {:?}: engine {got:?}, model {want:?}",
                slot(s)
            ));
        }
    }
    Ok(())
}

async fn open(fs: &Rc<SimFs>) -> Result<SimEngine, String> {
    let (engine, report) = Engine::open(fs.clone(), std::path::Path::new("/shard"), NODE, limits())
        .await
        .map_err(|e| format!("open: {e}"))?;
    if report.torn_tail.is_some() {
        return Err(format!("reopen found a torn tail: {:?}", report.torn_tail));
    }
    Ok(engine)
}

/// The partition of slot `s`'s key, read through the engine, against the model's keys of
/// that partition.
async fn check_partition(engine: &SimEngine, model: &Model, s: Slot) -> Result<(), String> {
    let (keyspace, key) = slot(s);
    let token = token_of_mem_key(&mem_key(keyspace, key)).ok_or("no token")?;
    let got: Vec<(Vec<u8>, View)> = engine
        .read_partition(token)
        .await
        .map_err(|e| format!("partition read: {e}"))?
        .into_iter()
        .map(|(k, o)| (k, view(Some(&o))))
        .collect();
    let mut want: Vec<(Vec<u8>, View)> = model
        .objects
        .iter()
        .map(|(m, o)| {
            let (ks, k) = slot(*m);
            (mem_key(ks, k), view(Some(o)))
        })
        .filter(|(k, _)| token_of_mem_key(k) == Some(token))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    if got != want {
        return Err(format!(
            "partition of {:?}: engine {got:?}, model {want:?}",
            slot(s)
        ));
    }
    Ok(())
}

/// Adds an engine's flushes and compactions to the run's counts.
fn count_work(engine: &SimEngine) {
    let stats = engine.stats().lsm;
    FLUSHES.fetch_add(stats.flushes, Ordering::Relaxed);
    COMPACTIONS.fetch_add(stats.compactions, Ordering::Relaxed);
}

async fn run_case(ops: Vec<Op>) -> Result<(), String> {
    let fs = Rc::new(SimFs::new());
    let mut model = Model::default();
    let mut engine = open(&fs).await?;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put {
                slot: s,
                value,
                context,
            } => {
                let (keyspace, key) = slot(*s);
                let siblings = model.objects.get(s).map_or(0, |o| o.siblings().len());
                let context = if siblings >= SIBLINGS_CAP {
                    Context::Overwrite
                } else {
                    *context
                };
                let empty = VersionVector::new();
                let context = match context {
                    Context::Overwrite => None,
                    Context::LastRead => Some(model.last_read.get(s).unwrap_or(&empty).clone()),
                    Context::Blind => Some(empty),
                };
                let supersedes = match &context {
                    None => Supersedes::Everything,
                    Some(c) => Supersedes::Context(c),
                };
                let clock = engine
                    .write(keyspace, key, supersedes, Some(value.clone()), true)
                    .await
                    .map_err(|e| format!("step {step} ({op:?}): write failed: {e}"))?;
                model.write(*s, context.as_ref(), Some(value.clone()));
                if &clock != model.objects[s].clock() {
                    return Err(format!(
                        "step {step} ({op:?}): write returned clock {clock:?}"
                    ));
                }
            }
            Op::Delete { slot: s } => {
                let (keyspace, key) = slot(*s);
                engine
                    .write(keyspace, key, Supersedes::Everything, None, true)
                    .await
                    .map_err(|e| format!("step {step} ({op:?}): delete failed: {e}"))?;
                model.write(*s, None, None);
            }
            Op::Get { slot: s } => {
                // Compared with the model below, with every other key.
                let clock = model.objects.get(s).map(|o| o.clock().clone());
                model.last_read.insert(*s, clock.unwrap_or_default());
            }
            Op::Restart => {
                count_work(&engine);
                engine.close().await.map_err(|e| format!("close: {e}"))?;
                drop(engine);
                engine = open(&fs).await?;
            }
            Op::Flush => engine
                .flush_now()
                .await
                .map_err(|e| format!("step {step}: flush: {e}"))?,
            Op::Compact => {
                engine
                    .compact_now()
                    .await
                    .map_err(|e| format!("step {step}: compact: {e}"))?;
            }
            Op::ReadPartition { slot: s } => check_partition(&engine, &model, *s).await?,
        }
        check_all(&engine, &model, step, op).await?;
    }
    count_work(&engine);
    engine.close().await.map_err(|e| format!("close: {e}"))?;
    drop(engine);
    // A final restart: everything written is still there.
    let engine = open(&fs).await?;
    check_all(&engine, &model, ops.len(), &Op::Restart).await?;

    engine.close().await.map_err(|e| format!("close: {e}"))
}

/// Runs one case on a fresh unbound glommio executor.
fn run(ops: Vec<Op>) -> Result<(), String> {
    tessera_io::executor::run_unbound("test", move || run_case(ops))
        .expect("test executor panicked or failed")
}

/// Flushes and compactions seen over all cases, so the test can show it exercised them.
static FLUSHES: AtomicU64 = AtomicU64::new(0);
static COMPACTIONS: AtomicU64 = AtomicU64::new(0);

/// After every operation (restarts included) every key reads from the engine exactly as the
/// model says (see the module doc for what "exactly" compares); and over the run the engine
/// flushed and compacted many times, on its own and when asked.
#[test]
fn engine_matches_btreemap_model() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(CASES));
    let strategy = prop::collection::vec(op(), 1..=OPS_MAX);
    let outcome = runner.run(&strategy, |ops| run(ops).map_err(TestCaseError::fail));
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let (flushes, compactions) = (
        FLUSHES.load(Ordering::Relaxed),
        COMPACTIONS.load(Ordering::Relaxed),
    );
    eprintln!("{flushes} flushes, {compactions} compactions over {CASES} cases");
    assert!(flushes >= u64::from(CASES), "only {flushes} flushes");
    assert!(
        compactions >= u64::from(CASES) / 4,
        "only {compactions} compactions"
    );
}
