//! Data blocks: how entries are laid out inside a block, how a block is stored (compressed or
//! not, with its trailer) and how a stored block is checked and decoded.
//!
//! Invariants: a decoded block holds at least one entry, its keys strictly increase, and every
//! entry span lies inside its bytes. A block is decoded only after its CRC32C matched, and its
//! lengths are checked even then.

use std::ops::Range;

use super::format::{
    check_crc, Compression, BLOCK_RAW_BYTES_MAX, BLOCK_TRAILER_LEN, ENTRY_HEADER_LEN,
};
use super::SstError;

/// Appends one entry: key length, value length (u32 little-endian), key, value. The caller has
/// checked both lengths fit in u32.
pub fn encode_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Appends a stored block (payload and trailer) for `raw` to `out`; returns the payload length.
/// The payload is zstd-compressed at `zstd_level` unless that does not make it smaller.
pub fn write_block(out: &mut Vec<u8>, raw: &[u8], zstd_level: i32) -> u64 {
    let compressed = zstd::bulk::compress(raw, zstd_level)
        .ok()
        .filter(|c| c.len() < raw.len());
    let (kind, payload) = match &compressed {
        Some(c) => (Compression::Zstd, &c[..]),
        None => (Compression::None, raw),
    };
    out.extend_from_slice(payload);
    out.push(kind as u8);
    let crc = crc32c::crc32c_append(crc32c::crc32c(payload), &[kind as u8]);
    out.extend_from_slice(&crc.to_le_bytes());
    payload.len() as u64
}

/// Checks and decodes one stored block: `framed` is its payload and trailer, `raw_len` the
/// decompressed length the index gives (itself bounded by `BLOCK_RAW_BYTES_MAX`).
pub fn decode_framed(framed: &[u8], raw_len: u64) -> Result<DecodedBlock, SstError> {
    let payload_len = framed
        .len()
        .checked_sub(BLOCK_TRAILER_LEN)
        .ok_or_else(|| SstError::corrupt("data block", "shorter than its trailer"))?;
    let (payload, trailer) = framed.split_at(payload_len);
    let kind_byte = trailer[0];
    let mut stored_crc = [0u8; 4];
    stored_crc.copy_from_slice(&trailer[1..]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(payload), &[kind_byte]);
    check_crc("data block", crc, u32::from_le_bytes(stored_crc))?;
    let raw = match Compression::from_byte(kind_byte) {
        Some(Compression::None) => payload.to_vec(),
        Some(Compression::Zstd) => decompress(payload, raw_len)?,
        None => {
            return Err(SstError::corrupt(
                "data block",
                format!("unknown compression {kind_byte}"),
            ))
        }
    };
    if raw.len() as u64 != raw_len {
        return Err(SstError::corrupt(
            "data block",
            format!("{} bytes, index says {raw_len}", raw.len()),
        ));
    }
    DecodedBlock::decode(raw)
}

/// `payload` decompressed, refusing more than `raw_len` (itself bounded) bytes.
fn decompress(payload: &[u8], raw_len: u64) -> Result<Vec<u8>, SstError> {
    if raw_len > BLOCK_RAW_BYTES_MAX {
        return Err(SstError::corrupt(
            "data block",
            format!("raw length {raw_len}"),
        ));
    }
    // Bounded by BLOCK_RAW_BYTES_MAX just above, so it fits in usize.
    let capacity = usize::try_from(raw_len)
        .map_err(|_| SstError::corrupt("data block", format!("raw length {raw_len}")))?;
    zstd::bulk::decompress(payload, capacity)
        .map_err(|e| SstError::corrupt("data block", format!("zstd: {e}")))
}

/// Where one entry's key and value lie in a decoded block.
#[derive(Clone, Debug)]
struct Span {
    key: Range<usize>,
    value: Range<usize>,
}

/// A block's raw bytes and the checked position of every entry in them.
#[derive(Debug)]
pub struct DecodedBlock {
    raw: Vec<u8>,
    spans: Vec<Span>,
}

impl DecodedBlock {
    /// Parses `raw`, checking every length and that keys strictly increase.
    pub fn decode(raw: Vec<u8>) -> Result<Self, SstError> {
        let mut spans: Vec<Span> = Vec::new();
        let mut at = 0;
        while at < raw.len() {
            let span = parse_entry(&raw, at)?;
            if let Some(prev) = spans.last() {
                if raw[prev.key.clone()] >= raw[span.key.clone()] {
                    return Err(SstError::corrupt("data block", "keys out of order"));
                }
            }
            at = span.value.end;
            spans.push(span);
        }
        if spans.is_empty() {
            return Err(SstError::corrupt("data block", "no entries"));
        }
        Ok(Self { raw, spans })
    }

    /// Bytes of memory the block holds, for the block cache's budget.
    pub fn memory_bytes(&self) -> usize {
        self.raw.capacity() + self.spans.capacity() * std::mem::size_of::<Span>()
    }

    /// Number of entries (at least one).
    #[allow(clippy::len_without_is_empty)] // never empty: decode refuses an empty block
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The key of entry `i < len()`.
    pub fn key(&self, i: usize) -> &[u8] {
        &self.raw[self.spans[i].key.clone()]
    }

    /// The value of entry `i < len()`.
    pub fn value(&self, i: usize) -> &[u8] {
        &self.raw[self.spans[i].value.clone()]
    }

    /// Index of the first entry whose key is `>= key` (`len()` if none).
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        self.spans
            .partition_point(|s| &self.raw[s.key.clone()] < key)
    }

    /// The value stored for exactly `key`.
    pub fn find(&self, key: &[u8]) -> Option<&[u8]> {
        let i = self.lower_bound(key);
        (i < self.len() && self.key(i) == key).then(|| self.value(i))
    }
}

/// The entry starting at `at` in `raw`, its lengths checked against the bytes present.
fn parse_entry(raw: &[u8], at: usize) -> Result<Span, SstError> {
    let truncated = || SstError::corrupt("data block", format!("entry at {at} is truncated"));
    let header = raw.get(at..at + ENTRY_HEADER_LEN).ok_or_else(truncated)?;
    let mut len = [0u8; 4];
    len.copy_from_slice(&header[..4]);
    let key_len = u32::from_le_bytes(len) as usize;
    len.copy_from_slice(&header[4..]);
    let value_len = u32::from_le_bytes(len) as usize;
    let key_start = at + ENTRY_HEADER_LEN;
    let value_start = key_start.checked_add(key_len).ok_or_else(truncated)?;
    let value_end = value_start.checked_add(value_len).ok_or_else(truncated)?;
    if value_end > raw.len() {
        return Err(truncated());
    }
    Ok(Span {
        key: key_start..value_start,
        value: value_start..value_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in entries {
            encode_entry(&mut out, k, v);
        }
        out
    }

    #[test]
    fn decodes_and_finds() {
        let block = DecodedBlock::decode(raw(&[(b"a", b"1"), (b"c", b""), (b"d", b"44")])).unwrap();
        assert_eq!(block.len(), 3);
        assert_eq!(block.find(b"c"), Some(&b""[..]));
        assert_eq!(block.find(b"d"), Some(&b"44"[..]));
        assert_eq!(block.find(b"b"), None);
        assert_eq!(block.lower_bound(b"b"), 1);
        assert_eq!(block.lower_bound(b"z"), 3);
    }

    #[test]
    fn rejects_truncation_disorder_and_emptiness() {
        let good = raw(&[(b"a", b"1"), (b"b", b"2")]);
        // Cutting at 10 leaves the first entry whole: a valid one-entry block.
        for cut in (1..good.len()).filter(|&cut| cut != 10) {
            assert!(
                DecodedBlock::decode(good[..cut].to_vec()).is_err(),
                "cut {cut}"
            );
        }
        assert!(DecodedBlock::decode(raw(&[(b"b", b"1"), (b"a", b"2")])).is_err());
        assert!(DecodedBlock::decode(raw(&[(b"a", b"1"), (b"a", b"2")])).is_err());
        assert!(DecodedBlock::decode(Vec::new()).is_err());
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(DecodedBlock::decode(huge).is_err());
    }

    #[test]
    fn stores_raw_when_compression_does_not_help() {
        let mut out = Vec::new();
        let tiny = raw(&[(b"k", b"v")]);
        let len = write_block(&mut out, &tiny, 3);
        assert_eq!(len as usize, tiny.len());
        assert_eq!(out[tiny.len()], Compression::None as u8);
        let mut out = Vec::new();
        let big = raw(&[(b"k", &[b'x'; 4096])]);
        let len = write_block(&mut out, &big, 3);
        assert!((len as usize) < big.len());
        assert_eq!(out[len as usize], Compression::Zstd as u8);
    }
}
