//! The per-table bloom filter: which keys it holds, how a key is hashed, and how the filter is
//! stored.
//!
//! A key's source hash is SipHash-1-3 keyed with the table's `bloom_seed` (as 16 big-endian
//! bytes) over the key's bytes alone, with no length prefix; fastbloom 0.17 derives the probe
//! bits from it. The seed is stored in the meta section rather than drawn at random, so a table
//! written by one process is probed the same way by another.
//!
//! Invariant: every key added to a table is in its filter (no false negatives); a loaded filter
//! came from checksum-checked bytes whose parameters were bounds-checked.

use std::hash::{BuildHasher, Hash, Hasher};

use fastbloom::{BloomFilter, DefaultHasher};

use super::format::BLOOM_HASHES_MAX;
use super::SstError;

/// fastbloom 0.17 bit layout with the SipHash-1-3 source hash above. Stored in the meta
/// section; a fastbloom upgrade that changes the layout must take a new number.
pub const BLOOM_KIND_FASTBLOOM_SIP13: u8 = 1;

/// The seed every table is written with unless the options say otherwise.
pub const DEFAULT_BLOOM_SEED: u128 = 0x7465_7373_6572_615f_626c_6f6f_6d5f_7631;

/// Hashes exactly the key bytes: `<[u8] as Hash>` would also hash a platform-sized length.
struct KeyBytes<'a>(&'a [u8]);

impl Hash for KeyBytes<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

/// The source hash of `key` under `seed`.
pub fn key_hash(seed: u128, key: &[u8]) -> u64 {
    DefaultHasher::seeded(&seed.to_be_bytes()).hash_one(KeyBytes(key))
}

/// A filter as stored: its words and hash count.
#[derive(Debug)]
pub struct BuiltBloom {
    /// The filter's 64-bit words, each little-endian.
    pub bytes: Vec<u8>,
    pub hashes: u32,
    pub words: u64,
}

/// A filter over `key_hashes` sized for `false_pos_rate`.
pub fn build(seed: u128, false_pos_rate: f64, key_hashes: &[u64]) -> BuiltBloom {
    let items = key_hashes.len().max(1);
    let bits = fastbloom::optimal_size(items, false_pos_rate);
    // A tiny filter rounded up to whole blocks would want dozens of hashes; cap them at what a
    // reader accepts (the false-positive rate is far below the target there anyway).
    let hashes = fastbloom::optimal_hashes(bits, items).clamp(1, BLOOM_HASHES_MAX);
    let mut filter = BloomFilter::with_num_bits(bits).seed(&seed).hashes(hashes);
    for &hash in key_hashes {
        filter.insert_hash(hash);
    }
    let words = filter.as_slice();
    BuiltBloom {
        bytes: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        hashes: filter.num_hashes(),
        words: words.len() as u64,
    }
}

/// A filter loaded from a table.
#[derive(Debug)]
pub struct Bloom {
    filter: BloomFilter,
    seed: u128,
}

impl Bloom {
    /// The filter stored in `bytes` (already checksum-checked) with the meta's parameters.
    pub fn load(
        bytes: &[u8],
        kind: u8,
        seed: u128,
        hashes: u32,
        words: u64,
    ) -> Result<Self, SstError> {
        if kind != BLOOM_KIND_FASTBLOOM_SIP13 {
            return Err(SstError::corrupt(
                "bloom",
                format!("unknown bloom kind {kind}"),
            ));
        }
        if hashes == 0 || hashes > BLOOM_HASHES_MAX {
            return Err(SstError::corrupt(
                "bloom",
                format!("{hashes} hash functions"),
            ));
        }
        // fastbloom needs at least one word; the builder always writes one.
        if words == 0 || words.checked_mul(8) != Some(bytes.len() as u64) {
            return Err(SstError::corrupt(
                "bloom",
                format!("{words} words in {} bytes", bytes.len()),
            ));
        }
        let vec = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        let filter = BloomFilter::from_vec(vec).seed(&seed).hashes(hashes);
        Ok(Self { filter, seed })
    }

    /// Bytes of memory the filter holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(self.filter.as_slice())
    }

    /// False if `key` is certainly not in the table.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.filter.contains_hash(key_hash(self.seed, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u32) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("key-{i}").into_bytes()).collect()
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let seed = DEFAULT_BLOOM_SEED;
        let hashes: Vec<u64> = keys(2000).iter().map(|k| key_hash(seed, k)).collect();
        let built = build(seed, 0.01, &hashes);
        let bloom = Bloom::load(
            &built.bytes,
            BLOOM_KIND_FASTBLOOM_SIP13,
            seed,
            built.hashes,
            built.words,
        )
        .unwrap();
        assert!(keys(2000).iter().all(|k| bloom.may_contain(k)));
        let false_pos = (0..10_000)
            .filter(|i| bloom.may_contain(format!("absent-{i}").as_bytes()))
            .count();
        assert!(false_pos < 300, "{false_pos} false positives in 10000");
    }

    #[test]
    fn hash_is_fixed_by_seed() {
        assert_eq!(key_hash(1, b"k"), key_hash(1, b"k"));
        assert_ne!(key_hash(1, b"k"), key_hash(2, b"k"));
        // Pinned: a change here (fastbloom or siphasher upgrade) breaks every stored filter.
        assert_eq!(
            key_hash(DEFAULT_BLOOM_SEED, b"tessera"),
            12_452_958_497_598_943_347
        );
    }

    #[test]
    fn load_rejects_bad_parameters() {
        let built = build(7, 0.01, &[1, 2, 3]);
        let load = |kind, hashes, words| Bloom::load(&built.bytes, kind, 7, hashes, words);
        assert!(load(9, built.hashes, built.words).is_err());
        assert!(load(BLOOM_KIND_FASTBLOOM_SIP13, 0, built.words).is_err());
        assert!(load(BLOOM_KIND_FASTBLOOM_SIP13, 1000, built.words).is_err());
        assert!(load(BLOOM_KIND_FASTBLOOM_SIP13, built.hashes, built.words + 1).is_err());
        assert!(Bloom::load(&[], BLOOM_KIND_FASTBLOOM_SIP13, 7, 3, 0).is_err());
    }
}
