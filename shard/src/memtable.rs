//! The memtable: every key's current object, ordered by (token, keyspace, key).
//!
//! Ordering by token first keeps a partition's keys contiguous, which the SSTable flush and
//! partition streaming rely on. Entries are keyed by one byte string
//! `token (8 bytes, big-endian) ++ keyspace length (1) ++ keyspace ++ key`, whose byte order is
//! that order, so a lookup borrows a reusable scratch buffer and allocates nothing.
//!
//! Invariant: `bytes` is the sum of [`entry_bytes`] over all entries.

use std::cell::RefCell;
use std::collections::BTreeMap;

use tessera_core::{token_of, Object};

/// Fixed per-entry overhead counted against the memory budget (tree node share, headers).
const ENTRY_OVERHEAD_BYTES: usize = 64;

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

fn encode_mem_key(out: &mut Vec<u8>, keyspace: &str, key: &[u8]) {
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

    /// Replaces the object of (keyspace, key), returning the memory it now accounts for.
    pub fn insert(&mut self, keyspace: &str, key: &[u8], object: Object) {
        let mut mem_key = Vec::with_capacity(9 + keyspace.len() + key.len());
        encode_mem_key(&mut mem_key, keyspace, key);
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
}
