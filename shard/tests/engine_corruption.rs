//! Bit flips in the files of a shard's tables, found by the engine rather than returned as
//! data. A shard is written on the simulated file system and flushed and compacted into
//! tables; then one bit of one file is flipped, for bits spread over every table file and the
//! manifest, and the engine reopens on the damaged copy:
//!
//! - damage to a table's index, meta, bloom filter or footer, or to the manifest or CURRENT,
//!   makes the open fail with a typed error that names the damaged file's kind;
//! - damage to a data block opens fine (blocks are checked when read) and the read of a key
//!   in that block fails with a storage error;
//! - in every case, any read that succeeds returns exactly the value written: never altered
//!   bytes, never another key's value; and no flip goes unnoticed.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::rc::Rc;

use tessera_core::NodeId;
use tessera_io::fs::{Fs, FsFile, OpenMode, SimFs};
use tessera_io::log_writer::LogConfig;
use tessera_shard::compaction::Policy;
use tessera_shard::engine::{Engine, EngineLimits, Supersedes};
use tessera_shard::lsm::LsmOptions;
use tessera_shard::sstable::TableOptions;

const KEYS: u32 = 300;
/// Bits flipped per file, spread evenly over it.
const FLIPS_PER_FILE: u64 = 48;

fn limits() -> EngineLimits {
    EngineLimits {
        memtable_bytes_max: 8 << 10,
        memory_budget_bytes: 1 << 20,
        log: LogConfig {
            segment_bytes: 16 << 10,
            pending_bytes_max: 4 << 10,
        },
        lsm: LsmOptions {
            table: TableOptions {
                block_bytes_target: 1 << 10,
                ..TableOptions::default()
            },
            policy: Policy {
                l0_trigger: 2,
                level_base_bytes: 16 << 10,
                size_ratio: 4,
                max_levels: 3,
                target_file_bytes: 8 << 10,
            },
            compaction_bytes_per_sec: 1 << 30,
            cache_bytes: 0,
            l0_stall_tables: 6,
        },
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat((i % 50) as usize)).into_bytes()
}

const ROOT: &str = "/shard";

/// Writes every key, then flushes and compacts so that the data sits in tables.
async fn build() -> Rc<SimFs> {
    let fs = Rc::new(SimFs::new());
    let (engine, _) = Engine::open(fs.clone(), Path::new(ROOT), NodeId(1), limits())
        .await
        .unwrap();
    for i in 0..KEYS {
        engine
            .write(
                "default",
                &key(i),
                Supersedes::Everything,
                Some(value(i)),
                false,
            )
            .await
            .unwrap();
    }
    engine.flush_now().await.unwrap();
    engine.compact_now().await.unwrap();
    assert!(engine.stats().tables >= 2, "{:?}", engine.stats());
    engine.close().await.unwrap();
    fs
}

/// Reopens on `fs` and reads every key; returns how many reads failed. A read that succeeds
/// must return the value written.
async fn check(fs: SimFs, what: &str) -> Result<usize, String> {
    let (engine, _) = Engine::open(Rc::new(fs), Path::new(ROOT), NodeId(1), limits())
        .await
        .map_err(|e| e.to_string())?;
    let mut failed = 0;
    for i in 0..KEYS {
        let got = engine
            .read("default", &key(i), |o| {
                o.map(|o| o.live_values().map(<[u8]>::to_vec).collect::<Vec<_>>())
            })
            .await;
        match got {
            Ok(Some(values)) if values == [value(i)] => {}
            Ok(other) => panic!("{what}: key {i} read {other:?}, wrote {:?}", value(i)),
            Err(e) => {
                assert!(e.to_string().contains("storage error"), "{what}: {e}");
                failed += 1;
            }
        }
    }
    engine.close().await.unwrap();
    Ok(failed)
}

async fn flips() {
    let fs = build().await;
    let dir = Path::new(ROOT).join("sst");
    let names = fs.list(&dir).await.unwrap();
    let mut opened_refused = 0;
    let mut reads_refused = 0;
    assert!(names.iter().any(|n| n.ends_with(".sst")) && names.iter().any(|n| n == "CURRENT"));
    for name in &names {
        let path = dir.join(name);
        let len = fs
            .open(&path, OpenMode::Existing)
            .await
            .unwrap()
            .len()
            .await
            .unwrap();
        for n in 0..FLIPS_PER_FILE {
            let at = n * len / FLIPS_PER_FILE;
            let bit = 1u8 << (n % 8);
            let damaged = fs.crash_image(0);
            let file = damaged.open(&path, OpenMode::Existing).await.unwrap();
            let byte = file.read_at(at, 1).await.unwrap();
            file.write_at(at, vec![byte[0] ^ bit]).await.unwrap();
            file.sync().await.unwrap();
            let what = format!("{name} byte {at} bit {bit:#04x}");
            match check(damaged, &what).await {
                // Every byte of every file is covered by a checksum that some open or read
                // checks (and every key is read), so no flip may go unnoticed.
                Ok(0) => panic!("{what}: the flip went unnoticed"),
                Ok(_) => reads_refused += 1,
                Err(e) => {
                    let typed = ["corrupt", "crc32c", "checksum", "table", "manifest"]
                        .iter()
                        .any(|w| e.to_lowercase().contains(w));
                    assert!(typed, "{what}: open refused without naming the damage: {e}");
                    opened_refused += 1;
                }
            }
        }
    }
    // Both kinds of detection happened: damaged metadata refused at open, damaged blocks
    // refused when read.
    assert!(
        opened_refused > 0 && reads_refused > 0,
        "{opened_refused} {reads_refused}"
    );
}

#[test]
fn bit_flips_in_tables_and_manifest_are_errors_never_data() {
    tessera_io::executor::run_unbound("test", || async { flips().await }).unwrap();
}
