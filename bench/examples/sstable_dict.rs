//! Issue #4 measurement: does a zstd dictionary per SSTable shrink tables of small values?
//!
//! Run (prints a Markdown table; takes about a minute in release):
//!
//! ```sh
//! cargo run --release -p tessera-bench --example sstable_dict
//! ```
//!
//! For each value kind and block size it builds one real table with [`TableBuilder`] (no
//! dictionary: today's format), then cuts the same entries into the same blocks (the builder's
//! rule: close a block before an entry would take it past the target) and compresses each block
//! at zstd level 3 with a dictionary trained on that table's entries
//! (`zstd::dict::from_samples`). The dictionary's bytes are counted in the table's size.
//!
//! Entries are shaped like Tessera's: memtable keys (`token BE ++ 7 ++ "default" ++
//! user000000012345`) in key order, values encoded `Object`s holding one sibling of a 100-byte
//! value, either
//! - `ycsb`: printable pseudo-random bytes, like `tessera-bench`'s filler (`check.rs`), or
//! - `json`: JSON-ish records with repeated field names and varying numbers and names.
//!
//! Times are per block, one reused zstd context per side (with the dictionary prepared once:
//! `EncoderDictionary`/`DecoderDictionary`, i.e. zstd's CDict/DDict), single thread;
//! on a shared machine they are indicative only. The ratios are what this measures.

use std::hint::black_box;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_core::{token_of, NodeId, Object, VersionVector};
use tessera_shard::sstable::{Table, TableBuilder, TableOptions};

const KEYSPACE: &str = "default";
const VALUE_BYTES: usize = 100;
/// Entries per table: about 4 MiB of raw entries, the smallest memtable share a shard flushes.
const ENTRIES: usize = 25_000;
const ZSTD_LEVEL: i32 = 3;
/// Per-block trailer (kind byte and CRC32C), as in FORMAT.md.
const TRAILER: usize = 5;
/// Entry header: key length and value length, u32 each.
const ENTRY_HEADER: usize = 8;
/// A dictionary section would add one more (offset, len, crc) triple to the footer.
const DICT_SECTION_OVERHEAD: usize = 20;
/// Bytes of sample entries given to the trainer (every entry of a 4 MiB table would do too;
/// 1 MiB trains in tens of milliseconds).
const TRAIN_SAMPLE_BYTES: usize = 1 << 20;
const SEED: u64 = 0x4_d1c7;

#[derive(Clone, Copy)]
enum Kind {
    Ycsb,
    Json,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ycsb => "ycsb (random printable)",
            Kind::Json => "json-ish records",
        }
    }
}

const FIRST: [&str; 12] = [
    "alice", "bruno", "chen", "dmitri", "emma", "fatima", "giulia", "hiro", "ines", "jonas",
    "kwame", "lena",
];
const LAST: [&str; 10] = [
    "silva", "müller", "wang", "ivanov", "smith", "haddad", "rossi", "tanaka", "costa", "berg",
];
const CITY: [&str; 8] = [
    "Lisbon", "Berlin", "Osaka", "Nairobi", "Austin", "Lyon", "Porto", "Quito",
];

/// The 100-byte user value of record `n`.
fn value(kind: Kind, n: u64, rng: &mut StdRng) -> Vec<u8> {
    let mut v = match kind {
        Kind::Ycsb => {
            // bench/src/check.rs: 16-byte header (n, version, nonce), then printable filler.
            let mut v = Vec::with_capacity(VALUE_BYTES);
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(&1u32.to_le_bytes());
            v.extend_from_slice(&0x5eed_u32.to_le_bytes());
            let seed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xc2b2_ae3d_27d4_eb4f;
            v.extend((0..VALUE_BYTES - 16).map(|i| {
                let x = seed.rotate_left((i % 64) as u32) ^ (i as u64).wrapping_mul(0x2545_f491);
                b'!' + (x % 94) as u8
            }));
            v
        }
        Kind::Json => {
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            format!(
                r#"{{"id":{n},"name":"{first} {last}","city":"{}","age":{},"score":{}.{:02},"active":{},"visits":{}}}"#,
                CITY[rng.gen_range(0..CITY.len())],
                rng.gen_range(18..90),
                rng.gen_range(0..1000),
                rng.gen_range(0..100),
                rng.gen_bool(0.7),
                rng.gen_range(0..100_000),
            )
            .into_bytes()
        }
    };
    // Exactly 100 bytes, like the YCSB values: pad with spaces (JSON whitespace) or cut.
    v.resize(VALUE_BYTES, b' ');
    v
}

/// A table's sorted entries: (memtable key, encoded object).
fn entries(kind: Kind) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = (0..ENTRIES as u64)
        .map(|i| {
            // Record numbers as YCSB picks them from a larger key space.
            let n = i * 40 + rng.gen_range(0..40);
            let key = format!("user{n:012}");
            let mut mem_key = token_of(KEYSPACE, key.as_bytes()).0.to_be_bytes().to_vec();
            mem_key.push(KEYSPACE.len() as u8);
            mem_key.extend_from_slice(KEYSPACE.as_bytes());
            mem_key.extend_from_slice(key.as_bytes());
            let mut object = Object::new();
            let node = NodeId(rng.gen_range(1..4));
            object
                .update(
                    &VersionVector::new(),
                    node,
                    1_795_000_000_000 + rng.gen_range(0..86_400_000),
                    Some(value(kind, n, &mut rng)),
                )
                .expect("a 100-byte value fits an object");
            let mut encoded = Vec::with_capacity(object.encoded_len());
            object.encode(&mut encoded);
            (mem_key, encoded)
        })
        .collect();
    out.sort();
    out
}

fn encode_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// The raw data blocks the builder makes of `entries` at `target` bytes.
fn raw_blocks(entries: &[(Vec<u8>, Vec<u8>)], target: usize) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    for (k, v) in entries {
        let len = ENTRY_HEADER + k.len() + v.len();
        if !block.is_empty() && block.len() + len > target {
            blocks.push(std::mem::take(&mut block));
        }
        encode_entry(&mut block, k, v);
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

/// Stored payload size per block (zstd, or raw if not smaller), and the compressed frames.
fn compress_all(c: &mut zstd::bulk::Compressor<'_>, blocks: &[Vec<u8>]) -> (usize, Vec<Vec<u8>>) {
    let mut stored = 0;
    let mut frames = Vec::with_capacity(blocks.len());
    for b in blocks {
        let f = c.compress(b).expect("compress");
        stored += f.len().min(b.len()) + TRAILER;
        frames.push(f);
    }
    (stored, frames)
}

/// Mean µs per block to compress and to decompress every block, repeated for ~0.3 s each.
fn time_per_block(
    c: &mut zstd::bulk::Compressor<'_>,
    d: &mut zstd::bulk::Decompressor<'_>,
    blocks: &[Vec<u8>],
    frames: &[Vec<u8>],
) -> (f64, f64) {
    let mut buf = vec![0u8; blocks.iter().map(Vec::len).max().unwrap_or(0)];
    let timed = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        let mut rounds = 0u32;
        while rounds == 0 || start.elapsed().as_secs_f64() < 0.3 {
            f();
            rounds += 1;
        }
        start.elapsed().as_secs_f64() * 1e6 / (f64::from(rounds) * blocks.len() as f64)
    };
    let comp = timed(&mut || {
        for b in blocks {
            black_box(c.compress(b).expect("compress"));
        }
    });
    let decomp = timed(&mut || {
        for (f, b) in frames.iter().zip(blocks) {
            let n = d
                .decompress_to_buffer(f, &mut buf[..b.len()])
                .expect("decompress");
            assert_eq!(n, b.len());
        }
    });
    (comp, decomp)
}

fn main() {
    println!(
        "{ENTRIES} entries per table, zstd level {ZSTD_LEVEL}; bytes/entry counts the whole table"
    );
    println!("(blocks, trailers, index, meta, bloom, footer, and the dictionary if any).\n");
    println!("| values | block | variant | table bytes/entry | data ratio raw/stored | vs no dict | compress µs/block | decompress µs/block | train ms |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for kind in [Kind::Ycsb, Kind::Json] {
        let entries = entries(kind);
        for target in [16 * 1024usize, 4 * 1024] {
            // Today's format, through the real builder.
            let mut builder = TableBuilder::new(TableOptions {
                block_bytes_target: target,
                ..TableOptions::default()
            });
            for (k, v) in &entries {
                builder.add(k, v).expect("sorted, small entries");
            }
            let table = builder.finish().expect("finish");
            let opened = Table::open(&table).expect("open");
            assert_eq!(opened.len(), ENTRIES as u64);

            let blocks = raw_blocks(&entries, target);
            let raw: usize = blocks.iter().map(Vec::len).sum();
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("ctx");
            let (base_stored, base_frames) = compress_all(&mut c, &blocks);
            // Everything in the table that is not data blocks (index, meta, bloom, footer).
            let overhead = table
                .len()
                .checked_sub(base_stored)
                .expect("replicated blocks match the builder's");
            let mut d = zstd::bulk::Decompressor::new().expect("ctx");
            let (bc, bd) = time_per_block(&mut c, &mut d, &blocks, &base_frames);
            println!(
                "| {} | {} KiB | none (today) | {:.1} | {:.2} | — | {bc:.1} | {bd:.1} | — |",
                kind.name(),
                target / 1024,
                table.len() as f64 / ENTRIES as f64,
                raw as f64 / base_stored as f64,
            );

            // Training samples: whole entries, evenly spread over the table.
            let step = (raw / TRAIN_SAMPLE_BYTES).max(1);
            let samples: Vec<Vec<u8>> = entries
                .iter()
                .step_by(step)
                .map(|(k, v)| {
                    let mut e = Vec::new();
                    encode_entry(&mut e, k, v);
                    e
                })
                .collect();
            for dict_bytes in [4 * 1024usize, 16 * 1024] {
                let t = Instant::now();
                let dict = zstd::dict::from_samples(&samples, dict_bytes).expect("train");
                let train_ms = t.elapsed().as_secs_f64() * 1e3;
                // Prepared (digested once) dictionaries, as a reader and writer would keep them.
                let enc = zstd::dict::EncoderDictionary::copy(&dict, ZSTD_LEVEL);
                let dec = zstd::dict::DecoderDictionary::copy(&dict);
                let mut c = zstd::bulk::Compressor::with_prepared_dictionary(&enc).expect("ctx");
                let (stored, frames) = compress_all(&mut c, &blocks);
                let mut d = zstd::bulk::Decompressor::with_prepared_dictionary(&dec).expect("ctx");
                // Round trip once, for honesty.
                for (f, b) in frames.iter().zip(&blocks) {
                    assert_eq!(&d.decompress(f, b.len()).expect("decompress"), b);
                }
                let (dc, dd) = time_per_block(&mut c, &mut d, &blocks, &frames);
                let data_with_dict = stored + dict.len() + DICT_SECTION_OVERHEAD;
                let table_len = overhead + data_with_dict;
                println!(
                    "| {} | {} KiB | dict {} KiB | {:.1} | {:.2} | {:+.1}% | {dc:.1} | {dd:.1} | {train_ms:.0} |",
                    kind.name(),
                    target / 1024,
                    dict.len() / 1024,
                    table_len as f64 / ENTRIES as f64,
                    raw as f64 / data_with_dict as f64,
                    (table_len as f64 / table.len() as f64 - 1.0) * 100.0,
                );
            }
        }
    }
}
