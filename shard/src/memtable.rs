//! The memtable: every key's current object, ordered by (token, keyspace, key).
//!
//! Ordering by token first keeps a partition's keys contiguous, which the SSTable flush and
//! partition streaming rely on. Entries are keyed by one byte string
//! `token (8 bytes, big-endian) ++ keyspace length (1) ++ keyspace ++ key`, whose byte order is
//! that order, so a lookup borrows a reusable scratch buffer and allocates nothing.
//!
//! Scans ([`Memtable::iter`], [`Memtable::range`]) yield entries in that key order, which is
//! what a flush writes to an SSTable; [`partition_bounds`] gives the key interval of one token,
//! in the `(start, end)` shape `Table::range` also takes, so a partition reads the same way from
//! either.
//!
//! Invariant: `bytes` is the sum of [`entry_bytes`] over all entries.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use tessera_core::{token_of, Object, Token};

/// Per-entry memory beyond the key's bytes and the object's encoded length, counted against
/// the memory budget: the tree's share of a node (key box and object inline, ~64 bytes, in
/// nodes about two-thirds full), the object's three heap allocations (clock, siblings,
/// value) and the key's, with their allocator headers and rounding. Measured: 126,585
/// entries of 16-byte keys and 100-byte values took 490 bytes each of resident memory
/// (`tessera-bench storage`, glibc malloc), against 32 + ~150 counted by length alone.
const ENTRY_OVERHEAD_BYTES: usize = 320;

/// A shard's in-memory table.
#[derive(Debug, Default)]
pub struct Memtable {
    entries: BTreeMap<Box<[u8]>, Object>,
    bytes: usize,
    scratch: RefCell<Vec<u8>>,
}

/// Approximate memory held by one entry.
pub fn entry_bytes(mem_key: &[u8], object: &Object) -> usize {
    mem_key.len() + object.encoded_len() + ENTRY_OVERHEAD_BYTES
}

/// Bytes of the token prefix of every memtable key.
pub const TOKEN_PREFIX_BYTES: usize = 8;

/// The key interval `[start, end)` holding every key of `token` (`end` is `None`, unbounded,
/// for the last token).
///
/// Why this is exact: every key starts with the token's 8 big-endian bytes, so the keys of
/// `token` are precisely those `>= token` and `< token + 1` byte-wise. No finite byte string
/// bounds the keys of `u64::MAX` from above, hence the `Option`.
pub fn partition_bounds(token: Token) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = token.0.to_be_bytes().to_vec();
    let end = token
        .0
        .checked_add(1)
        .map(|next| next.to_be_bytes().to_vec());
    (start, end)
}

/// The token a memtable key starts with, or `None` if `mem_key` is shorter than a token (not a
/// memtable key).
pub fn token_of_mem_key(mem_key: &[u8]) -> Option<Token> {
    let prefix = mem_key.get(..TOKEN_PREFIX_BYTES)?;
    let bytes: [u8; TOKEN_PREFIX_BYTES] = prefix.try_into().ok()?;
    Some(Token(u64::from_be_bytes(bytes)))
}

/// The memtable (and SSTable) key of (keyspace, key).
pub fn mem_key(keyspace: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TOKEN_PREFIX_BYTES + 1 + keyspace.len() + key.len());
    encode_mem_key(&mut out, keyspace, key);
    out
}

/// Writes the memtable key of (keyspace, key) into `out`, replacing its content.
pub fn encode_mem_key(out: &mut Vec<u8>, keyspace: &str, key: &[u8]) {
    out.clear();
    out.extend_from_slice(&token_of(keyspace, key).0.to_be_bytes());
    // Keyspace names are validated to at most 255 bytes before they reach the engine.
    out.push(u8::try_from(keyspace.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(keyspace.as_bytes());
    out.extend_from_slice(key);
}

impl Memtable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The object stored for (keyspace, key).
    pub fn get(&self, keyspace: &str, key: &[u8]) -> Option<&Object> {
        let mut scratch = self.scratch.borrow_mut();
        encode_mem_key(&mut scratch, keyspace, key);
        self.entries.get(&scratch[..])
    }

    /// The object stored under a memtable key.
    pub fn get_mem(&self, mem_key: &[u8]) -> Option<&Object> {
        self.entries.get(mem_key)
    }

    /// Replaces the object of (keyspace, key).
    pub fn insert(&mut self, keyspace: &str, key: &[u8], object: Object) {
        let mem_key = mem_key(keyspace, key);
        let added = entry_bytes(&mem_key, &object);
        if let Some(old) = self.entries.get_mut(&mem_key[..]) {
            self.bytes -= entry_bytes(&mem_key, old);
            *old = object;
        } else {
            self.entries.insert(mem_key.into_boxed_slice(), object);
        }
        self.bytes += added;
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of keys (tombstoned keys included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry as `(memtable key, object)`, in key order, tombstones included.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Object)> + '_ {
        self.entries.iter().map(|(k, o)| (&k[..], o))
    }

    /// Entries with `start <= key < end` (no upper bound if `end` is `None`), in key order; the
    /// same contract as `Table::range`. An `end` below `start` gives an empty range.
    pub fn range<'m>(
        &'m self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'m [u8], &'m Object)> + 'm {
        // `BTreeMap::range` panics on an inverted interval; clamp it to an empty one instead.
        let upper = match end {
            Some(end) => Bound::Excluded(end.max(start)),
            None => Bound::Unbounded,
        };
        self.entries
            .range::<[u8], _>((Bound::Included(start), upper))
            .map(|(k, o)| (&k[..], o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{NodeId, VersionVector};

    fn object(value: &[u8]) -> Object {
        let mut o = Object::new();
        o.update(&VersionVector::new(), NodeId(1), 0, Some(value.to_vec()))
            .unwrap();
        o
    }

    #[test]
    fn insert_get_replace_and_account() {
        let mut m = Memtable::new();
        assert!(m.get("default", b"k").is_none());
        m.insert("default", b"k", object(b"v1"));
        let first = m.bytes();
        assert!(first > 0);
        m.insert("default", b"k", object(b"a longer value"));
        assert_eq!(m.len(), 1);
        assert_eq!(m.bytes(), first + b"a longer value".len() - 2);
        assert_eq!(
            m.get("default", b"k").unwrap().live_values().next(),
            Some(&b"a longer value"[..])
        );
        assert!(m.get("other", b"k").is_none(), "keyspaces are separate");
    }

    #[test]
    fn iter_is_in_key_order_and_range_is_half_open() {
        let mut m = Memtable::new();
        for i in 0..50u32 {
            m.insert("default", &i.to_be_bytes(), object(b"v"));
        }
        let keys: Vec<&[u8]> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 50);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));

        let (start, end) = (keys[10].to_vec(), keys[20].to_vec());
        let got: Vec<&[u8]> = m.range(&start, Some(&end)).map(|(k, _)| k).collect();
        assert_eq!(got, keys[10..20].to_vec());
        assert_eq!(m.range(&start, None).count(), 40);
        assert_eq!(m.range(&end, Some(&start)).count(), 0, "inverted is empty");
    }

    #[test]
    fn partition_bounds_cover_exactly_one_token() {
        let mut m = Memtable::new();
        for i in 0..200u32 {
            m.insert("ks", &i.to_le_bytes(), object(b"v"));
        }
        for (key, _) in m.iter() {
            let token = token_of_mem_key(key).unwrap();
            let (start, end) = partition_bounds(token);
            assert!(key >= &start[..] && key < &end.unwrap()[..]);
            let in_partition: Vec<&[u8]> = m
                .range(&start, partition_bounds(token).1.as_deref())
                .map(|(k, _)| k)
                .collect();
            let expected: Vec<&[u8]> = m
                .iter()
                .map(|(k, _)| k)
                .filter(|k| token_of_mem_key(k) == Some(token))
                .collect();
            assert_eq!(in_partition, expected);
        }
    }

    #[test]
    fn last_token_is_unbounded_above() {
        let (start, end) = partition_bounds(Token(u64::MAX));
        assert_eq!(start, vec![0xFF; TOKEN_PREFIX_BYTES]);
        assert_eq!(end, None);
        let (_, end) = partition_bounds(Token(0x0100));
        assert_eq!(end, Some(0x0101u64.to_be_bytes().to_vec()));
        assert_eq!(token_of_mem_key(b"short"), None);
    }
}
