//! A table's index, meta and bloom filter, checked once and kept in memory in a compact owned
//! form, so that a table on disk can be read one data block at a time.
//!
//! [`TableIndex::open`] takes the table's *tail*: every byte from the first section to the end
//! of the footer (see [`tail_start`]). It checks the footer, each section's bounds and CRC32C
//! before touching its bytes, the rkyv archives (validated access), the meta's version and
//! the index against the meta, then copies what reads need out of the archives: the blocks'
//! last keys (one buffer), their locations, the key range and the filter. Afterwards every
//! [`BlockLoc`] lies inside the data region and the last keys strictly increase.
//!
//! Data blocks are checked when decoded ([`TableIndex::decode_block`]): their CRC32C, their
//! compression kind, their decompressed length, their entries, and that their last key is the
//! one the index names, so a block swapped for another block of the table is caught too.

use super::block::{decode_framed, DecodedBlock};
use super::bloom::Bloom;
use super::format::{
    access_archive, check_crc, slice_within, ArchivedBlockHandle, ArchivedIndexSection,
    ArchivedMetaSection, Footer, Section, BLOCK_RAW_BYTES_MAX, BLOCK_TRAILER_LEN, FOOTER_LEN,
    FORMAT_VERSION,
};
use super::SstError;

/// Where one data block lies in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLoc {
    /// Offset of the stored payload from the start of the table.
    pub offset: u64,
    /// Bytes of stored payload (the trailer follows).
    pub stored_len: u64,
    /// Bytes once decompressed; at most `BLOCK_RAW_BYTES_MAX`.
    pub raw_len: u64,
}

impl BlockLoc {
    /// Payload and trailer: the bytes to read for this block.
    pub fn framed_len(&self) -> u64 {
        self.stored_len + BLOCK_TRAILER_LEN as u64
    }
}

/// Offset where a table's tail (sections and footer) starts, from its decoded footer: the
/// lowest section offset. The footer's CRC matched, but the offsets are still checked against
/// the table's length by the caller before reading.
pub fn tail_start(footer: &Footer) -> u64 {
    footer
        .index
        .offset
        .min(footer.meta.offset)
        .min(footer.bloom.offset)
}

/// The checked, in-memory index of one table.
#[derive(Debug)]
pub struct TableIndex {
    /// Every block's last key, concatenated in block order.
    last_keys: Vec<u8>,
    /// `last_keys[key_ends[i - 1]..key_ends[i]]` is block i's last key.
    key_ends: Vec<usize>,
    blocks: Vec<BlockLoc>,
    entry_count: u64,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    bloom: Bloom,
}

impl TableIndex {
    /// Checks and loads a table's tail: `tail` holds the table's bytes from `tail_start` to
    /// its end, footer included (so `tail_start + tail.len()` is the table's length).
    pub fn open(tail: &[u8], tail_start: u64) -> Result<Self, SstError> {
        let footer = Footer::decode(tail)?;
        let footer_start = tail.len() - FOOTER_LEN; // decode checked the length
        let section = |s: Section, what: &'static str| -> Result<&[u8], SstError> {
            let offset = s.offset.checked_sub(tail_start).ok_or_else(|| {
                SstError::corrupt(what, format!("offset {} before the tail", s.offset))
            })?;
            let bytes = slice_within(tail, offset, s.len, footer_start, what)?;
            check_crc(what, crc32c::crc32c(bytes), s.crc)?;
            Ok(bytes)
        };
        let index =
            access_archive::<ArchivedIndexSection>(section(footer.index, "index")?, "index")?;
        let meta = access_archive::<ArchivedMetaSection>(section(footer.meta, "meta")?, "meta")?;
        if meta.format_version.to_native() != FORMAT_VERSION {
            return Err(SstError::corrupt(
                "meta",
                "format version differs from the footer",
            ));
        }
        let bloom = Bloom::load(
            section(footer.bloom, "bloom")?,
            meta.bloom_kind,
            meta.bloom_seed.to_native(),
            meta.bloom_hashes.to_native(),
            meta.bloom_words.to_native(),
        )?;
        let data_end = data_end(meta, tail_start)?;
        check_index(index, meta, data_end)?;
        let mut last_keys = Vec::new();
        let mut key_ends = Vec::with_capacity(index.blocks.len());
        let mut blocks = Vec::with_capacity(index.blocks.len());
        for handle in index.blocks.iter() {
            last_keys.extend_from_slice(handle.last_key.as_slice());
            key_ends.push(last_keys.len());
            blocks.push(BlockLoc {
                offset: handle.offset.to_native(),
                stored_len: handle.stored_len.to_native(),
                raw_len: handle.raw_len.to_native(),
            });
        }
        Ok(Self {
            last_keys,
            key_ends,
            blocks,
            entry_count: meta.entry_count.to_native(),
            first_key: meta.first_key.as_slice().to_vec(),
            last_key: meta.last_key.as_slice().to_vec(),
            bloom,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.entry_count
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Smallest and largest key, or `None` in an empty table.
    pub fn key_range(&self) -> Option<(&[u8], &[u8])> {
        (!self.is_empty()).then_some((self.first_key.as_slice(), self.last_key.as_slice()))
    }

    /// False if `key` is certainly absent (the bloom filter says so).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.bloom.may_contain(key)
    }

    /// Number of data blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Index of the first block whose last key is `>= key` (the only one that may hold it);
    /// `block_count()` if every key is smaller.
    pub fn block_for(&self, key: &[u8]) -> usize {
        let mut lo = 0;
        let mut hi = self.blocks.len();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.last_key_of(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The last key of block `i < block_count()`.
    pub fn last_key_of(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |p| self.key_ends[p]);
        &self.last_keys[start..self.key_ends[i]]
    }

    /// Where block `i < block_count()` lies.
    pub fn loc(&self, i: usize) -> BlockLoc {
        self.blocks[i]
    }

    /// Checks and decodes block `i` from its framed bytes (payload and trailer, as read at
    /// `loc(i)`).
    pub fn decode_block(&self, i: usize, framed: &[u8]) -> Result<DecodedBlock, SstError> {
        let loc = self.blocks[i];
        if framed.len() as u64 != loc.framed_len() {
            return Err(SstError::corrupt(
                "data block",
                format!(
                    "{} bytes read, index says {}",
                    framed.len(),
                    loc.framed_len()
                ),
            ));
        }
        let block = decode_framed(framed, loc.raw_len)?;
        if block.key(block.len() - 1) != self.last_key_of(i) {
            return Err(SstError::corrupt(
                "data block",
                "last key differs from the index",
            ));
        }
        Ok(block)
    }

    /// Bytes of memory this index holds (keys, locations, filter), for the memory budget.
    pub fn memory_bytes(&self) -> usize {
        self.last_keys.capacity()
            + self.key_ends.capacity() * std::mem::size_of::<usize>()
            + self.blocks.capacity() * std::mem::size_of::<BlockLoc>()
            + self.first_key.capacity()
            + self.last_key.capacity()
            + self.bloom.memory_bytes()
    }
}

/// Where the data blocks end, checked to precede the tail.
fn data_end(meta: &ArchivedMetaSection, tail_start: u64) -> Result<u64, SstError> {
    let data_len = meta.data_len.to_native();
    if data_len > tail_start {
        return Err(SstError::corrupt("meta", format!("data length {data_len}")));
    }
    Ok(data_len)
}

/// Checks the index against the meta and the data region: counts agree, handles lie inside
/// the data and have bounded sizes, keys strictly increase and end at the meta's last key.
fn check_index(
    index: &ArchivedIndexSection,
    meta: &ArchivedMetaSection,
    data_end: u64,
) -> Result<(), SstError> {
    let blocks = &index.blocks;
    let entries = meta.entry_count.to_native();
    if blocks.len() as u64 != meta.block_count.to_native() || (entries == 0) != blocks.is_empty() {
        return Err(SstError::corrupt(
            "index",
            "block count differs from the meta",
        ));
    }
    let mut previous: Option<&ArchivedBlockHandle> = None;
    for handle in blocks.iter() {
        check_handle(handle, data_end)?;
        if previous.is_some_and(|p| p.last_key.as_slice() >= handle.last_key.as_slice()) {
            return Err(SstError::corrupt("index", "keys out of order"));
        }
        previous = Some(handle);
    }
    if let Some(last) = previous {
        if last.last_key.as_slice() != meta.last_key.as_slice()
            || meta.first_key.as_slice() > meta.last_key.as_slice()
        {
            return Err(SstError::corrupt(
                "meta",
                "key range differs from the index",
            ));
        }
    }
    Ok(())
}

fn check_handle(handle: &ArchivedBlockHandle, data_end: u64) -> Result<(), SstError> {
    let end = handle
        .offset
        .to_native()
        .checked_add(handle.stored_len.to_native())
        .and_then(|e| e.checked_add(BLOCK_TRAILER_LEN as u64));
    if end.is_none_or(|e| e > data_end) || handle.raw_len.to_native() > BLOCK_RAW_BYTES_MAX {
        return Err(SstError::corrupt("index", "block handle outside the data"));
    }
    Ok(())
}
