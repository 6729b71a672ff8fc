//! The table reader: opens a table image in place and answers point and range reads.
//!
//! `open` checks the footer, the checksum of every section before touching its bytes, the
//! rkyv archives (validated access), and the index against the meta: after it succeeds every
//! block handle lies inside the data region and the index keys strictly increase. Data blocks
//! are checked when read.

use super::block::{read_block, DecodedBlock};
use super::bloom::Bloom;
use super::format::{
    access_archive, checked_section, ArchivedBlockHandle, ArchivedIndexSection,
    ArchivedMetaSection, Footer, BLOCK_RAW_BYTES_MAX, BLOCK_TRAILER_LEN, FOOTER_LEN,
    FORMAT_VERSION,
};
use super::SstError;

/// An open table borrowing its image.
#[derive(Debug)]
pub struct Table<'a> {
    bytes: &'a [u8],
    index: &'a ArchivedIndexSection,
    meta: &'a ArchivedMetaSection,
    bloom: Bloom,
    /// End of the data blocks; checked to be inside the table.
    data_end: usize,
}

impl<'a> Table<'a> {
    /// Checks `bytes` and opens it as a table.
    pub fn open(bytes: &'a [u8]) -> Result<Self, SstError> {
        let footer = Footer::decode(bytes)?;
        let footer_start = bytes.len() - FOOTER_LEN; // decode checked the length
        let index = checked_section(bytes, footer.index, footer_start, "index")?;
        let index = access_archive::<ArchivedIndexSection>(index, "index")?;
        let meta = checked_section(bytes, footer.meta, footer_start, "meta")?;
        let meta = access_archive::<ArchivedMetaSection>(meta, "meta")?;
        if meta.format_version.to_native() != FORMAT_VERSION {
            return Err(SstError::corrupt(
                "meta",
                "format version differs from the footer",
            ));
        }
        let bloom = checked_section(bytes, footer.bloom, footer_start, "bloom")?;
        let bloom = Bloom::load(
            bloom,
            meta.bloom_kind,
            meta.bloom_seed.to_native(),
            meta.bloom_hashes.to_native(),
            meta.bloom_words.to_native(),
        )?;
        let data_end = data_end(meta, footer_start)?;
        check_index(index, meta, data_end)?;
        Ok(Self {
            bytes,
            index,
            meta,
            bloom,
            data_end,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.meta.entry_count.to_native()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Smallest and largest key, or `None` in an empty table.
    pub fn key_range(&self) -> Option<(&'a [u8], &'a [u8])> {
        (!self.is_empty()).then(|| {
            (
                self.meta.first_key.as_slice(),
                self.meta.last_key.as_slice(),
            )
        })
    }

    /// False if `key` is certainly absent (the bloom filter says so).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.bloom.may_contain(key)
    }

    /// The value stored for `key`: bloom filter, then the index, then one block.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SstError> {
        if !self.may_contain(key) {
            return Ok(None);
        }
        let i = self.block_for(key);
        if i == self.index.blocks.len() {
            return Ok(None);
        }
        let block = self.read(i)?;
        Ok(block.find(key).map(<[u8]>::to_vec))
    }

    /// Entries with `start <= key < end` (no upper bound if `end` is `None`), in key order.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> TableRange<'_, 'a> {
        TableRange {
            table: self,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            next_block: self.block_for(start),
            block: None,
            done: false,
        }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> TableRange<'_, 'a> {
        self.range(&[], None)
    }

    /// Index of the first block whose last key is `>= key` (the only one that may hold it).
    fn block_for(&self, key: &[u8]) -> usize {
        self.index
            .blocks
            .partition_point(|b| b.last_key.as_slice() < key)
    }

    fn read(&self, i: usize) -> Result<DecodedBlock, SstError> {
        read_block(self.bytes, &self.index.blocks[i], self.data_end)
    }
}

/// Where the data blocks end, checked to precede the footer.
fn data_end(meta: &ArchivedMetaSection, footer_start: usize) -> Result<usize, SstError> {
    let data_len = meta.data_len.to_native();
    usize::try_from(data_len)
        .ok()
        .filter(|&end| end <= footer_start)
        .ok_or_else(|| SstError::corrupt("meta", format!("data length {data_len}")))
}

/// Checks the index against the meta and the data region: counts agree, handles lie inside
/// the data and have bounded sizes, keys strictly increase and end at the meta's last key.
fn check_index(
    index: &ArchivedIndexSection,
    meta: &ArchivedMetaSection,
    data_end: usize,
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

fn check_handle(handle: &ArchivedBlockHandle, data_end: usize) -> Result<(), SstError> {
    let end = handle
        .offset
        .to_native()
        .checked_add(handle.stored_len.to_native())
        .and_then(|e| e.checked_add(BLOCK_TRAILER_LEN as u64));
    if end.is_none_or(|e| e > data_end as u64) || handle.raw_len.to_native() > BLOCK_RAW_BYTES_MAX {
        return Err(SstError::corrupt("index", "block handle outside the data"));
    }
    Ok(())
}

/// Entries of a key range, in order. After an error it yields nothing more.
#[derive(Debug)]
pub struct TableRange<'t, 'a> {
    table: &'t Table<'a>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    next_block: usize,
    /// The block being read and the position of its next entry.
    block: Option<(DecodedBlock, usize)>,
    done: bool,
}

impl TableRange<'_, '_> {
    /// Loads the next block, positioned at the first entry `>= start`; false at the end.
    fn load_next(&mut self) -> Result<bool, SstError> {
        let blocks = &self.table.index.blocks;
        if self.next_block >= blocks.len() {
            return Ok(false);
        }
        // Every later block's keys exceed the previous block's last key.
        if let (Some(end), Some(prev)) = (&self.end, self.next_block.checked_sub(1)) {
            if blocks[prev].last_key.as_slice() >= end.as_slice() {
                return Ok(false);
            }
        }
        let block = self.table.read(self.next_block)?;
        let position = block.lower_bound(&self.start);
        self.block = Some((block, position));
        self.next_block += 1;
        Ok(true)
    }
}

impl Iterator for TableRange<'_, '_> {
    type Item = Result<(Vec<u8>, Vec<u8>), SstError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if let Some((block, position)) = &mut self.block {
                if *position < block.len() {
                    let key = block.key(*position);
                    if self.end.as_deref().is_some_and(|end| key >= end) {
                        break;
                    }
                    let entry = (key.to_vec(), block.value(*position).to_vec());
                    *position += 1;
                    return Some(Ok(entry));
                }
                self.block = None;
            }
            match self.load_next() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.done = true;
        None
    }
}
