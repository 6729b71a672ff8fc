//! The byte formats of causal contexts and objects: writer and reader side by side.
//!
//! Both formats are stable: contexts travel to clients and come back, objects live in the commit
//! log and SSTables. Every integer is little-endian and fixed-width. The first byte is a format
//! tag from one shared namespace, so a context is never mistaken for an object; tags are never
//! renumbered, and a new layout takes a new tag.
//!
//! ```text
//! context (VersionVector):            an empty input (zero bytes) is the empty context
//!   +----------------+---------------+--------------------------------------+
//!   | tag u8 = 0x01  | entries u32   | entries x (node u64, counter u64)    |
//!   +----------------+---------------+--------------------------------------+
//!   entries <= CLOCK_ENTRIES_MAX, nodes strictly increasing, counters >= 1
//!
//! object:
//!   +----------------+---------------+--------------------------------------+
//!   | tag u8 = 0x02  | entries u32   | entries x (node u64, counter u64)    |  the clock
//!   +----------------+---------------+--------------------------------------+
//!   | siblings u32   | siblings x sibling                                   |
//!   +----------------+------------------------------------------------------+
//!
//! sibling:
//!   +----------+-------------+------------------+---------+------------------------------+
//!   | node u64 | counter u64 | timestamp_ms u64 | kind u8 | kind 1: len u32, len bytes   |
//!   +----------+-------------+------------------+---------+------------------------------+
//!   kind 0 = tombstone (nothing follows), kind 1 = value
//!   dots strictly increasing, counters >= 1, every dot covered by the clock
//! ```
//!
//! Decoding never panics and never allocates more than the input could describe: every count is
//! checked against the bytes left before anything is reserved. The object format has no sibling
//! or clock-entry limit beyond its input length, because merges may legitimately exceed the
//! write-time bounds and a stored object must always read back.

use crate::constants::CLOCK_ENTRIES_MAX;
use crate::error::CoreError;
use crate::ids::NodeId;
use crate::version::object::{check_siblings, Object, Sibling};
use crate::version::vector::{Dot, VersionVector};

/// Tag of a causal context, version 1. Never renumbered.
pub const FORMAT_CONTEXT_V1: u8 = 0x01;
/// Tag of an object, version 1. Never renumbered.
pub const FORMAT_OBJECT_V1: u8 = 0x02;

/// Sibling kind: a tombstone. Never renumbered.
const SIBLING_KIND_TOMBSTONE: u8 = 0;
/// Sibling kind: a value follows. Never renumbered.
const SIBLING_KIND_VALUE: u8 = 1;

const TAG_BYTES: usize = 1;
const COUNT_BYTES: usize = 4;
const CLOCK_ENTRY_BYTES: usize = 8 + 8;
/// A tombstone: node, counter, timestamp, kind.
const SIBLING_BYTES_MIN: usize = 8 + 8 + 8 + 1;
const VALUE_LEN_BYTES: usize = 4;

impl VersionVector {
    /// Appends the context encoding (tag, count, entries) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(FORMAT_CONTEXT_V1);
        encode_clock(self, out);
    }

    /// Bytes [`VersionVector::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        TAG_BYTES + clock_encoded_len(self)
    }

    /// The context encoding as a new buffer: the opaque context handed to clients.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Decodes a context a client sent back. An empty slice is the empty context (the client
    /// read nothing, a blind write).
    ///
    /// Errors: [`CoreError::Malformed`] for an unknown tag, truncation, more than
    /// [`CLOCK_ENTRIES_MAX`] entries, unsorted or duplicate nodes, zero counters, or trailing
    /// bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CoreError> {
        if bytes.is_empty() {
            return Ok(VersionVector::new());
        }
        let mut reader = Reader::new(bytes);
        if reader.u8("context: format tag")? != FORMAT_CONTEXT_V1 {
            return Err(malformed("context: unknown format tag"));
        }
        let vv = decode_clock(&mut reader, CLOCK_ENTRIES_MAX)?;
        reader.finish("context: trailing bytes")?;
        Ok(vv)
    }
}

impl Object {
    /// Appends the object encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(self.encoded_len());
        out.push(FORMAT_OBJECT_V1);
        encode_clock(self.clock(), out);
        put_count(self.siblings().len(), out);
        for sibling in self.siblings() {
            encode_sibling(sibling, out);
        }
        debug_assert_eq!(out.len() - start, self.encoded_len());
    }

    /// Bytes [`Object::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        TAG_BYTES
            + clock_encoded_len(self.clock())
            + COUNT_BYTES
            + self
                .siblings()
                .iter()
                .map(sibling_encoded_len)
                .sum::<usize>()
    }

    /// Decodes an object written by [`Object::encode`].
    ///
    /// Errors: [`CoreError::Malformed`] for an unknown tag or sibling kind, truncation, trailing
    /// bytes, or broken invariants (clock not canonical, sibling dots unsorted, duplicated, zero
    /// or not covered by the clock).
    pub fn decode(bytes: &[u8]) -> Result<Object, CoreError> {
        let mut reader = Reader::new(bytes);
        if reader.u8("object: format tag")? != FORMAT_OBJECT_V1 {
            return Err(malformed("object: unknown format tag"));
        }
        // Only the input length bounds a stored clock; see the module docs.
        let clock = decode_clock(&mut reader, usize::MAX)?;
        let count = reader.count("object: sibling count")?;
        if count > reader.remaining() / SIBLING_BYTES_MIN {
            return Err(malformed("object: sibling count exceeds the input"));
        }
        let mut siblings = Vec::with_capacity(count);
        for _ in 0..count {
            siblings.push(decode_sibling(&mut reader)?);
        }
        reader.finish("object: trailing bytes")?;
        check_siblings(&clock, &siblings)?;
        Ok(Object::from_checked_parts(clock, siblings))
    }
}

fn clock_encoded_len(vv: &VersionVector) -> usize {
    COUNT_BYTES + vv.len() * CLOCK_ENTRY_BYTES
}

fn encode_clock(vv: &VersionVector, out: &mut Vec<u8>) {
    put_count(vv.len(), out);
    for (node, counter) in vv.iter() {
        out.extend_from_slice(&node.0.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
    }
}

/// Reads a clock of at most `entries_max` entries and checks it is canonical.
fn decode_clock(reader: &mut Reader<'_>, entries_max: usize) -> Result<VersionVector, CoreError> {
    let count = reader.count("version vector: entry count")?;
    if count > entries_max {
        return Err(malformed("version vector: too many entries"));
    }
    if count > reader.remaining() / CLOCK_ENTRY_BYTES {
        return Err(malformed("version vector: entry count exceeds the input"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let node = NodeId(reader.u64("version vector: node")?);
        let counter = reader.u64("version vector: counter")?;
        entries.push((node, counter));
    }
    VersionVector::from_sorted_entries(entries)
}

fn sibling_encoded_len(sibling: &Sibling) -> usize {
    SIBLING_BYTES_MIN
        + sibling
            .value
            .as_ref()
            .map_or(0, |v| VALUE_LEN_BYTES + v.len())
}

fn encode_sibling(sibling: &Sibling, out: &mut Vec<u8>) {
    out.extend_from_slice(&sibling.dot.node.0.to_le_bytes());
    out.extend_from_slice(&sibling.dot.counter.to_le_bytes());
    out.extend_from_slice(&sibling.timestamp_ms.to_le_bytes());
    match &sibling.value {
        None => out.push(SIBLING_KIND_TOMBSTONE),
        Some(value) => {
            out.push(SIBLING_KIND_VALUE);
            put_count(value.len(), out);
            out.extend_from_slice(value);
        }
    }
}

fn decode_sibling(reader: &mut Reader<'_>) -> Result<Sibling, CoreError> {
    let node = NodeId(reader.u64("sibling: node")?);
    let counter = reader.u64("sibling: counter")?;
    let timestamp_ms = reader.u64("sibling: timestamp")?;
    let value = match reader.u8("sibling: kind")? {
        SIBLING_KIND_TOMBSTONE => None,
        SIBLING_KIND_VALUE => {
            let len = reader.count("sibling: value length")?;
            Some(reader.bytes(len, "sibling: value")?.to_vec())
        }
        _ => return Err(malformed("sibling: unknown kind")),
    };
    Ok(Sibling {
        dot: Dot { node, counter },
        timestamp_ms,
        value,
    })
}

/// Writes a count or length as a `u32`. Every count written here is bounded well below
/// `u32::MAX` by the type's invariants (clock entries by node count, sibling counts by memory,
/// values by `SIBLING_VALUE_BYTES_MAX`).
fn put_count(count: usize, out: &mut Vec<u8>) {
    debug_assert!(
        u32::try_from(count).is_ok(),
        "count {count} does not fit the format"
    );
    out.extend_from_slice(&(count as u32).to_le_bytes());
}

fn malformed(what: &'static str) -> CoreError {
    CoreError::Malformed { what }
}

/// A cursor over untrusted bytes: every read checks the length first and fails with
/// [`CoreError::Malformed`] naming the field.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CoreError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(malformed(what))?;
        self.rest = rest;
        Ok(*head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CoreError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CoreError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A `u32` count or length, widened to `usize`.
    fn count(&mut self, what: &'static str) -> Result<usize, CoreError> {
        let count = u32::from_le_bytes(self.array(what)?);
        usize::try_from(count).map_err(|_| malformed(what))
    }

    fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], CoreError> {
        if len > self.rest.len() {
            return Err(malformed(what));
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn finish(self, what: &'static str) -> Result<(), CoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(node: u64, counter: u64) -> Dot {
        Dot {
            node: NodeId(node),
            counter,
        }
    }

    fn sample_object() -> Object {
        let mut o = Object::new();
        let blind = VersionVector::new();
        o.update(&blind, NodeId(1), 7, Some(b"hi".to_vec()))
            .unwrap();
        o.update(&blind, NodeId(2), 9, None).unwrap();
        o
    }

    #[test]
    fn context_bytes_are_pinned() {
        let vv: VersionVector = [dot(1, 2), dot(0x0102, 3)].into_iter().collect();
        #[rustfmt::skip]
        let expected = [
            0x01,                   // tag: context v1
            2, 0, 0, 0,             // entries
            1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
            2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(vv.to_bytes(), expected);
        assert_eq!(vv.encoded_len(), expected.len());
        assert_eq!(VersionVector::decode(&expected), Ok(vv));
    }

    #[test]
    fn object_bytes_are_pinned() {
        let o = sample_object();
        #[rustfmt::skip]
        let expected = [
            0x02,                                   // tag: object v1
            2, 0, 0, 0,                             // clock entries
            1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0,                             // siblings
            1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0,
            1, 2, 0, 0, 0, b'h', b'i',              // value "hi"
            2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0,
            0,                                      // tombstone
        ];
        let mut out = Vec::new();
        o.encode(&mut out);
        assert_eq!(out, expected);
        assert_eq!(o.encoded_len(), expected.len());
        assert_eq!(Object::decode(&expected), Ok(o));
    }

    #[test]
    fn empty_context_is_empty_bytes_or_an_empty_encoding() {
        assert_eq!(VersionVector::decode(&[]), Ok(VersionVector::new()));
        let encoded = VersionVector::new().to_bytes();
        assert_eq!(encoded, [FORMAT_CONTEXT_V1, 0, 0, 0, 0]);
        assert_eq!(VersionVector::decode(&encoded), Ok(VersionVector::new()));
    }

    fn assert_malformed<T: std::fmt::Debug>(result: Result<T, CoreError>) {
        assert!(
            matches!(result, Err(CoreError::Malformed { .. })),
            "expected Malformed, got {result:?}"
        );
    }

    #[test]
    fn context_decoder_rejects_bad_input() {
        let entry = |node: u64, counter: u64| {
            let mut b = node.to_le_bytes().to_vec();
            b.extend_from_slice(&counter.to_le_bytes());
            b
        };
        let context = |count: u32, entries: &[Vec<u8>]| {
            let mut b = vec![FORMAT_CONTEXT_V1];
            b.extend_from_slice(&count.to_le_bytes());
            for e in entries {
                b.extend_from_slice(e);
            }
            b
        };
        assert_malformed(VersionVector::decode(&[FORMAT_OBJECT_V1, 0, 0, 0, 0]));
        assert_malformed(VersionVector::decode(&[0xff]));
        assert_malformed(VersionVector::decode(&context(1, &[])));
        assert_malformed(VersionVector::decode(&context(u32::MAX, &[])));
        assert_malformed(VersionVector::decode(&context(1, &[entry(1, 0)])));
        assert_malformed(VersionVector::decode(&context(
            2,
            &[entry(2, 1), entry(1, 1)],
        )));
        assert_malformed(VersionVector::decode(&context(
            2,
            &[entry(1, 1), entry(1, 2)],
        )));
        let mut trailing = context(1, &[entry(1, 1)]);
        trailing.push(0);
        assert_malformed(VersionVector::decode(&trailing));
        let too_many: Vec<_> = (1..=CLOCK_ENTRIES_MAX as u64 + 1)
            .map(|n| entry(n, 1))
            .collect();
        assert_malformed(VersionVector::decode(&context(
            too_many.len() as u32,
            &too_many,
        )));
        let at_limit = &too_many[..CLOCK_ENTRIES_MAX];
        assert!(VersionVector::decode(&context(at_limit.len() as u32, at_limit)).is_ok());
    }

    #[test]
    fn object_decoder_rejects_broken_invariants() {
        let good = {
            let mut out = Vec::new();
            sample_object().encode(&mut out);
            out
        };
        let patched = |at: usize, byte: u8| {
            let mut b = good.clone();
            b[at] = byte;
            b
        };
        assert_malformed(Object::decode(&[]));
        assert_malformed(Object::decode(&patched(0, FORMAT_CONTEXT_V1)));
        // First sibling starts after tag (1), clock (4 + 2 * 16) and sibling count (4).
        let first_sibling = 1 + 4 + 32 + 4;
        // Its node becomes 3: a dot the clock does not cover.
        assert_malformed(Object::decode(&patched(first_sibling, 3)));
        // Its node becomes 2: same dot as the second sibling.
        assert_malformed(Object::decode(&patched(first_sibling, 2)));
        // Its counter becomes 0.
        assert_malformed(Object::decode(&patched(first_sibling + 8, 0)));
        // Unknown kind.
        assert_malformed(Object::decode(&patched(first_sibling + 24, 9)));
        // Clock counter of node 1 becomes 0.
        assert_malformed(Object::decode(&patched(1 + 4 + 8, 0)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_malformed(Object::decode(&trailing));
    }

    #[test]
    fn large_merged_objects_still_round_trip() {
        // Merges may exceed the write-time sibling bound; storage must read them back.
        let blind = VersionVector::new();
        let mut a = Object::new();
        let mut b = Object::new();
        for i in 0..crate::constants::SIBLINGS_MAX {
            a.update(&blind, NodeId(1), i as u64, Some(vec![1; i]))
                .unwrap();
            b.update(&blind, NodeId(2), i as u64, None).unwrap();
        }
        a.merge(&b);
        assert!(a.siblings().len() > crate::constants::SIBLINGS_MAX);
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(Object::decode(&out), Ok(a));
    }
}
