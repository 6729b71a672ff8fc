//! `tessera-bench storage`: one shard's storage engine alone, in process, measured the way
//! RocksDB's `db_bench` measures RocksDB, so the two can be run side by side on one machine
//! with the same key and value sizes, key counts and threads (one).
//!
//! Benchmarks, named as in db_bench:
//! - `fillrandom`: `--num` writes of keys drawn uniformly from `[0, num)` (with repeats, as
//!   db_bench does, so about 63% of the key space ends up present);
//! - `readrandom`: `--reads` reads of keys drawn from `[0, num)`; reports how many were found;
//! - `readmissing`: reads of keys that were never written (the bloom filters' job);
//! - `overwrite`: `--reads` writes of keys drawn from `[0, num)`.
//!
//! Keys are `key_size` bytes (the number in decimal, zero-padded), values `value_size` bytes,
//! half random and half repeated (db_bench's default `--compression_ratio 0.5`). Writes are
//! overwrites (the Redis `SET` path), durable with `--sync` (one fdatasync per write, as
//! db_bench `--sync=1`), otherwise acknowledged once in the memtable and the log buffer.
//!
//! Reported per benchmark: ops/s, p50/p99/p99.9 latency, bytes written to the device
//! (`/proc/self/io`, so the commit log, flushes and compactions all count) over the user's
//! bytes (write amplification), and at the end the data directory's size over the live
//! user data (space amplification), and the process's peak resident memory next to the
//! configured budget.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tessera_core::NodeId;
use tessera_io::fs::RealFs;
use tessera_io::log_writer::LogConfig;
use tessera_shard::config::size::parse_size;
use tessera_shard::engine::{Engine, EngineLimits, Supersedes};
use tessera_shard::lsm::LsmOptions;

use crate::error::BenchError;

/// `storage` arguments.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory for the shard's files; it must not exist yet (it is created).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Comma-separated benchmarks: fillrandom, readrandom, readmissing, overwrite.
    #[arg(long, default_value = "fillrandom,readrandom,readmissing,overwrite")]
    pub benchmarks: String,
    /// Keys in the key space (and writes of fillrandom).
    #[arg(long, default_value_t = 1_000_000)]
    pub num: u64,
    /// Operations of readrandom, readmissing and overwrite [default: --num].
    #[arg(long)]
    pub reads: Option<u64>,
    /// Bytes per key.
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Make every write durable (fdatasync) before the next starts, like db_bench --sync=1.
    #[arg(long)]
    pub sync: bool,
    /// Memory budget of the shard: memtables, block cache, table indexes and filters.
    #[arg(long, default_value = "64MiB", value_parser = parse_budget)]
    pub memory_budget: u64,
    /// Target size of level 1 (each deeper level is ten times the one above)
    /// [default: the engine's].
    #[arg(long, value_parser = parse_budget)]
    pub level_base: Option<u64>,
    /// Seed of the key and value generator.
    #[arg(long, default_value_t = 301)]
    pub seed: u64,
}

/// Bytes for people: `1.5 GiB`, `312.0 MiB`, `12 B`.
fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn parse_budget(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// One benchmark's figures.
#[derive(Debug)]
struct Figures {
    name: String,
    ops: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    found: Option<u64>,
    device_write_bytes: u64,
    user_bytes: u64,
}

impl Figures {
    fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let us = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        let mut line = format!(
            "{:<12} {:>10.0} ops/s  p50 {:>8.1} us  p99 {:>8.1} us  p99.9 {:>8.1} us",
            self.name,
            self.ops as f64 / secs,
            us(0.5),
            us(0.99),
            us(0.999),
        );
        if let Some(found) = self.found {
            line += &format!("  ({found} of {} found)", self.ops);
        }
        if self.user_bytes > 0 {
            line += &format!(
                "  write-amp {:.2} ({} to the device for {} of user data)",
                self.device_write_bytes as f64 / self.user_bytes as f64,
                format_size(self.device_write_bytes),
                format_size(self.user_bytes)
            );
        }
        line
    }
}

/// Runs the benchmarks; prints a line per benchmark and a summary.
pub fn run_storage(args: &StorageArgs) -> Result<(), BenchError> {
    if args.dir.exists() {
        return Err(BenchError::InvalidArgs(format!(
            "{} exists; give a directory that does not exist yet",
            args.dir.display()
        )));
    }
    if args.key_size < 8 {
        return Err(BenchError::InvalidArgs(
            "--key-size must be at least 8".into(),
        ));
    }
    let names: Vec<String> = args
        .benchmarks
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    for name in &names {
        if !["fillrandom", "readrandom", "readmissing", "overwrite"].contains(&name.as_str()) {
            return Err(BenchError::InvalidArgs(format!("unknown benchmark {name}")));
        }
    }
    let dir = std::path::absolute(&args.dir).map_err(BenchError::io("bad --dir"))?;
    let settings = Settings {
        dir: dir.clone(),
        names,
        num: args.num,
        reads: args.reads.unwrap_or(args.num),
        key_size: args.key_size,
        value_size: args.value_size,
        sync: args.sync,
        budget: args.memory_budget,
        level_base: args.level_base,
        seed: args.seed,
    };
    println!(
        "tessera storage engine: {} keys of {} B, values of {} B, sync {}, budget {}, dir {}",
        settings.num,
        settings.key_size,
        settings.value_size,
        settings.sync,
        format_size(settings.budget),
        dir.display()
    );
    let outcome =
        tessera_io::executor::run_unbound("bench", move || async move { run_all(&settings).await })
            .map_err(|e| BenchError::InvalidArgs(format!("executor failed: {e}")))?;
    let summary = outcome.map_err(BenchError::InvalidArgs)?;
    println!("{summary}");
    Ok(())
}

#[derive(Clone, Debug)]
struct Settings {
    dir: PathBuf,
    names: Vec<String>,
    num: u64,
    reads: u64,
    key_size: usize,
    value_size: usize,
    sync: bool,
    budget: u64,
    level_base: Option<u64>,
    seed: u64,
}

async fn run_all(s: &Settings) -> Result<String, String> {
    let limits = EngineLimits {
        // As the server splits a shard's budget: a quarter for memtables, half of that each
        // for the active and the flushing one; the rest for the cache, indexes and filters.
        memtable_bytes_max: usize::try_from(s.budget / 8).unwrap_or(usize::MAX),
        memory_budget_bytes: s.budget,
        log: LogConfig {
            segment_bytes: 64 << 20,
            pending_bytes_max: 4 << 20,
        },
        lsm: LsmOptions {
            cache_bytes: s.budget / 2,
            ..LsmOptions::default()
        },
    };
    let mut limits = limits;
    if let Some(bytes) = s.level_base {
        limits.lsm.policy.level_base_bytes = bytes;
    }
    let (engine, _) = Engine::open(Rc::new(RealFs), &s.dir, NodeId(1), limits)
        .await
        .map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut present = vec![false; usize::try_from(s.num).map_err(|e| e.to_string())?];
    for name in &s.names {
        let figures = match name.as_str() {
            "fillrandom" => write_phase(&engine, s, name, s.num, &mut rng, &mut present).await?,
            "overwrite" => write_phase(&engine, s, name, s.reads, &mut rng, &mut present).await?,
            "readrandom" => read_phase(&engine, s, name, false, &mut rng).await?,
            _ => read_phase(&engine, s, name, true, &mut rng).await?,
        };
        println!("{}", figures.line());
    }
    engine.sync().await.map_err(|e| e.to_string())?;
    let stats = engine.stats();
    let live = present.iter().filter(|p| **p).count() as u64;
    let live_bytes = live * (s.key_size + s.value_size) as u64;
    let on_disk = dir_bytes(&s.dir);
    engine.close().await.map_err(|e| e.to_string())?;
    let peak = peak_rss_bytes();
    Ok(format!(
        "data: {live} live keys, {} of user data; {} on disk (space-amp {:.2}: tables {}, \
         log and manifest the rest); {} tables, {} flushes, {} compactions ({} written)\n\
         memory: peak resident {} against a budget of {} (cache {}, indexes and filters {})",
        format_size(live_bytes),
        format_size(on_disk),
        on_disk as f64 / live_bytes.max(1) as f64,
        format_size(stats.disk_bytes),
        stats.tables,
        stats.lsm.flushes,
        stats.lsm.compactions,
        format_size(stats.lsm.compacted_bytes),
        format_size(peak),
        format_size(s.budget),
        format_size(stats.cache_bytes),
        format_size(stats.index_bytes as u64),
    ))
}

async fn write_phase(
    engine: &Engine,
    s: &Settings,
    name: &str,
    ops: u64,
    rng: &mut StdRng,
    present: &mut [bool],
) -> Result<Figures, String> {
    let mut latency = new_histogram();
    let mut value = vec![0u8; s.value_size];
    let io_before = device_write_bytes();
    let bar = progress(name, ops);
    let start = Instant::now();
    for op in 0..ops {
        if op % PROGRESS_EVERY == 0 {
            bar.set_position(op);
        }
        let k = rng.gen_range(0..s.num);
        fill_value(rng, &mut value);
        let op_start = Instant::now();
        engine
            .write(
                "default",
                &key(k, s.key_size),
                Supersedes::Everything,
                Some(value.clone()),
                s.sync,
            )
            .await
            .map_err(|e| format!("{name}: write failed: {e}"))?;
        record(&mut latency, op_start);
        present[k as usize] = true;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    // Count what the writes caused, including the flush of what they left in memory.
    engine.sync().await.map_err(|e| e.to_string())?;
    Ok(Figures {
        name: name.into(),
        ops,
        elapsed,
        latency,
        found: None,
        device_write_bytes: device_write_bytes().saturating_sub(io_before),
        user_bytes: ops * (s.key_size + s.value_size) as u64,
    })
}

async fn read_phase(
    engine: &Engine,
    s: &Settings,
    name: &str,
    missing: bool,
    rng: &mut StdRng,
) -> Result<Figures, String> {
    let mut latency = new_histogram();
    let mut found = 0;
    let bar = progress(name, s.reads);
    let start = Instant::now();
    for op in 0..s.reads {
        if op % PROGRESS_EVERY == 0 {
            bar.set_position(op);
        }
        // Missing keys lie past the key space: same length, never written.
        let k = if missing {
            s.num + rng.gen_range(0..s.num)
        } else {
            rng.gen_range(0..s.num)
        };
        let op_start = Instant::now();
        let hit = engine
            .read("default", &key(k, s.key_size), |o| {
                o.is_some_and(|o| o.live_values().next().is_some())
            })
            .await
            .map_err(|e| format!("{name}: read failed: {e}"))?;
        record(&mut latency, op_start);
        found += u64::from(hit);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok(Figures {
        name: name.into(),
        ops: s.reads,
        elapsed,
        latency,
        found: Some(found),
        device_write_bytes: 0,
        user_bytes: 0,
    })
}

fn key(k: u64, size: usize) -> Vec<u8> {
    let digits = format!("{k:0size$}");
    digits.into_bytes()
}

/// Half random bytes, half a repeat of them: compresses to about half, like db_bench's
/// default values.
fn fill_value(rng: &mut StdRng, value: &mut [u8]) {
    let half = value.len() / 2;
    rng.fill_bytes(&mut value[..half]);
    for i in half..value.len() {
        value[i] = value[i - half];
    }
}

/// A progress bar for one benchmark (stderr; hidden when it is not a terminal).
fn progress(name: &str, ops: u64) -> ProgressBar {
    let bar = ProgressBar::new(ops);
    let template =
        format!("{name:<12} [{{bar:30}}] {{pos}}/{{len}} ops ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Operations between progress bar updates.
const PROGRESS_EVERY: u64 = 4096;

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits.
    Histogram::new(3).expect("3 is a valid hdrhistogram precision")
}

fn record(h: &mut Histogram<u64>, since: Instant) {
    let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    // Auto-resizing: recording fails only past u64 range, which elapsed time cannot reach.
    let _ = h.record(nanos.max(1));
}

/// Bytes this process caused to be written to the storage device (`/proc/self/io`).
fn device_write_bytes() -> u64 {
    proc_field("/proc/self/io", "write_bytes:").unwrap_or(0)
}

/// Peak resident memory of this process (`VmHWM`).
fn peak_rss_bytes() -> u64 {
    proc_field("/proc/self/status", "VmHWM:").map_or(0, |kib| kib * 1024)
}

fn proc_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
