//! The in-memory table reader: opens a whole table image in place and answers point and range
//! reads. Tables on disk are read block by block by the engine through the same
//! [`TableIndex`]; this reader serves tests, tools and small images.
//!
//! `open` checks everything [`TableIndex::open`] checks; data blocks are checked when read.

use super::block::DecodedBlock;
use super::format::{slice_within, Footer};
use super::index::{tail_start, TableIndex};
use super::SstError;

/// An open table borrowing its image.
#[derive(Debug)]
pub struct Table<'a> {
    bytes: &'a [u8],
    index: TableIndex,
}

impl<'a> Table<'a> {
    /// Checks `bytes` and opens it as a table.
    pub fn open(bytes: &'a [u8]) -> Result<Self, SstError> {
        let footer = Footer::decode(bytes)?;
        let start = tail_start(&footer);
        let tail = slice_within(
            bytes,
            start,
            (bytes.len() as u64).saturating_sub(start),
            bytes.len(),
            "footer sections",
        )?;
        let index = TableIndex::open(tail, start)?;
        Ok(Self { bytes, index })
    }

    /// The checked index.
    pub fn index(&self) -> &TableIndex {
        &self.index
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.index.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Smallest and largest key, or `None` in an empty table.
    pub fn key_range(&self) -> Option<(&[u8], &[u8])> {
        self.index.key_range()
    }

    /// False if `key` is certainly absent (the bloom filter says so).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.index.may_contain(key)
    }

    /// The value stored for `key`: bloom filter, then the index, then one block.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SstError> {
        if !self.may_contain(key) {
            return Ok(None);
        }
        let i = self.index.block_for(key);
        if i == self.index.block_count() {
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
            next_block: self.index.block_for(start),
            block: None,
            done: false,
        }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> TableRange<'_, 'a> {
        self.range(&[], None)
    }

    fn read(&self, i: usize) -> Result<DecodedBlock, SstError> {
        let loc = self.index.loc(i);
        let framed = slice_within(
            self.bytes,
            loc.offset,
            loc.framed_len(),
            self.bytes.len(),
            "data block",
        )?;
        self.index.decode_block(i, framed)
    }
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
        let index = &self.table.index;
        if self.next_block >= index.block_count() {
            return Ok(false);
        }
        // Every later block's keys exceed the previous block's last key.
        if let (Some(end), Some(prev)) = (&self.end, self.next_block.checked_sub(1)) {
            if index.last_key_of(prev) >= end.as_slice() {
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
