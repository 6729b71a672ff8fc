//! The table writer: takes entries in strictly increasing key order and produces a table image.
//!
//! Invariants: `block` holds the raw entries not yet written, all with keys greater than every
//! key in `index`; `out` holds only complete stored blocks until `finish` appends the sections
//! and footer. `written` bytes of the table were handed out by [`TableBuilder::take_ready`]
//! before `out`'s first byte, so every offset is `written + position in out`: a caller can
//! stream a large table to its file block by block and hold only one block in memory.

use super::block::{encode_entry, write_block};
use super::bloom::{self, BLOOM_KIND_FASTBLOOM_SIP13, DEFAULT_BLOOM_SEED};
use super::format::{
    to_archive, BlockHandle, Footer, IndexSection, MetaSection, Section, BLOCK_RAW_BYTES_MAX,
    ENTRY_HEADER_LEN, FORMAT_VERSION,
};
use super::SstError;

/// How a table is written.
#[derive(Clone, Debug, PartialEq)]
pub struct TableOptions {
    /// A block is closed before an entry would take it past this many raw bytes (a larger
    /// single entry gets a block of its own).
    pub block_bytes_target: usize,
    /// zstd level for data blocks.
    pub zstd_level: i32,
    /// Bloom filter false-positive rate the filter is sized for.
    pub bloom_false_pos_rate: f64,
    /// Seed of the bloom key hash, stored in the table.
    pub bloom_seed: u128,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self {
            block_bytes_target: 16 * 1024,
            zstd_level: 3,
            bloom_false_pos_rate: 0.01,
            bloom_seed: DEFAULT_BLOOM_SEED,
        }
    }
}

/// Builds one table in memory.
#[derive(Debug)]
pub struct TableBuilder {
    options: TableOptions,
    written: u64,
    out: Vec<u8>,
    block: Vec<u8>,
    index: Vec<BlockHandle>,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    key_hashes: Vec<u64>,
    entry_count: u64,
}

impl TableBuilder {
    /// An empty builder.
    pub fn new(options: TableOptions) -> Self {
        Self {
            options,
            written: 0,
            out: Vec::new(),
            block: Vec::new(),
            index: Vec::new(),
            first_key: Vec::new(),
            last_key: Vec::new(),
            key_hashes: Vec::new(),
            entry_count: 0,
        }
    }

    /// Appends an entry; `key` must be greater than every key added before.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), SstError> {
        if self.entry_count > 0 && key <= &self.last_key[..] {
            return Err(SstError::OutOfOrder {
                previous: self.last_key.clone(),
                key: key.to_vec(),
            });
        }
        let entry_len = entry_len(key, value)?;
        if !self.block.is_empty() && self.block.len() + entry_len > self.options.block_bytes_target
        {
            self.close_block();
        }
        encode_entry(&mut self.block, key, value);
        if self.entry_count == 0 {
            self.first_key = key.to_vec();
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.key_hashes
            .push(bloom::key_hash(self.options.bloom_seed, key));
        self.entry_count += 1;
        Ok(())
    }

    /// Entries added so far.
    pub fn len(&self) -> u64 {
        self.entry_count
    }

    /// Whether no entry has been added.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Takes the complete stored blocks not taken yet: the table's bytes from where the last
    /// call's ended. Write them at [`TableBuilder::taken_bytes`] (before the call).
    pub fn take_ready(&mut self) -> Vec<u8> {
        let ready = std::mem::take(&mut self.out);
        self.written += ready.len() as u64;
        ready
    }

    /// Bytes handed out by [`TableBuilder::take_ready`] so far.
    pub fn taken_bytes(&self) -> u64 {
        self.written
    }

    /// Bytes of complete stored blocks waiting to be taken.
    pub fn ready_bytes(&self) -> usize {
        self.out.len()
    }

    /// About how large the table is so far (stored blocks plus the open block's raw bytes),
    /// for splitting outputs by size.
    pub fn estimated_bytes(&self) -> u64 {
        self.written + (self.out.len() + self.block.len()) as u64
    }

    /// Writes the open block, the index, meta and bloom sections and the footer; returns the
    /// table's bytes not taken yet (the whole image if [`TableBuilder::take_ready`] was never
    /// called).
    pub fn finish(mut self) -> Result<Vec<u8>, SstError> {
        if !self.block.is_empty() {
            self.close_block();
        }
        let data_len = self.written + self.out.len() as u64;
        let block_count = self.index.len() as u64;
        let index = to_archive(
            &IndexSection {
                blocks: std::mem::take(&mut self.index),
            },
            "index",
        )?;
        let index = self.append_section(&index);
        let built = bloom::build(
            self.options.bloom_seed,
            self.options.bloom_false_pos_rate,
            &self.key_hashes,
        );
        let meta = MetaSection {
            format_version: FORMAT_VERSION,
            entry_count: self.entry_count,
            block_count,
            data_len,
            first_key: std::mem::take(&mut self.first_key),
            last_key: std::mem::take(&mut self.last_key),
            bloom_kind: BLOOM_KIND_FASTBLOOM_SIP13,
            bloom_seed: self.options.bloom_seed,
            bloom_hashes: built.hashes,
            bloom_words: built.words,
        };
        let meta = self.append_section(&to_archive(&meta, "meta")?);
        let bloom = self.append_section(&built.bytes);
        let footer = Footer { index, meta, bloom };
        self.out.extend_from_slice(&footer.encode());
        Ok(self.out)
    }

    /// Stores the open block and indexes it under the last key added.
    fn close_block(&mut self) {
        let offset = self.written + self.out.len() as u64;
        let stored_len = write_block(&mut self.out, &self.block, self.options.zstd_level);
        self.index.push(BlockHandle {
            last_key: self.last_key.clone(),
            offset,
            stored_len,
            raw_len: self.block.len() as u64,
        });
        self.block.clear();
    }

    fn append_section(&mut self, bytes: &[u8]) -> Section {
        let offset = self.written + self.out.len() as u64;
        self.out.extend_from_slice(bytes);
        Section {
            offset,
            len: bytes.len() as u64,
            crc: crc32c::crc32c(bytes),
        }
    }
}

/// Raw bytes of an entry, if it fits in a block.
fn entry_len(key: &[u8], value: &[u8]) -> Result<usize, SstError> {
    let len = ENTRY_HEADER_LEN + key.len() + value.len();
    if len as u64 > BLOCK_RAW_BYTES_MAX {
        return Err(SstError::EntryTooLarge {
            key_len: key.len(),
            value_len: value.len(),
            max: BLOCK_RAW_BYTES_MAX,
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_out_of_order_and_duplicate_keys() {
        let mut b = TableBuilder::new(TableOptions::default());
        b.add(b"b", b"1").unwrap();
        assert!(matches!(
            b.add(b"b", b"2"),
            Err(SstError::OutOfOrder { .. })
        ));
        assert!(matches!(
            b.add(b"a", b"2"),
            Err(SstError::OutOfOrder { .. })
        ));
        b.add(b"c", b"3").unwrap();
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn empty_key_is_allowed_first_only() {
        let mut b = TableBuilder::new(TableOptions::default());
        b.add(b"", b"v").unwrap();
        assert!(b.add(b"", b"v").is_err());
    }

    #[test]
    fn closes_blocks_at_the_target() {
        let options = TableOptions {
            block_bytes_target: 64,
            ..TableOptions::default()
        };
        let mut b = TableBuilder::new(options);
        for i in 0u32..20 {
            b.add(&i.to_be_bytes(), &[7u8; 20]).unwrap();
        }
        assert_eq!(b.index.len(), 9, "two 32-byte entries per 64-byte block");
        assert!(b.finish().is_ok());
    }

    #[test]
    fn refuses_entries_larger_than_a_block_may_be() {
        let mut b = TableBuilder::new(TableOptions::default());
        let value = vec![0u8; BLOCK_RAW_BYTES_MAX as usize];
        assert!(matches!(
            b.add(b"k", &value),
            Err(SstError::EntryTooLarge { .. })
        ));
        assert!(b.is_empty());
    }
}
