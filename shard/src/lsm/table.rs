//! One SSTable on disk: its checked index kept in memory, its data blocks read on demand
//! through the file-system seam and the shard's block cache.
//!
//! Invariants: an open [`SsTable`] passed every check of [`TableIndex::open`] and agrees with
//! its manifest entry (size, key range, entry count), so a table swapped, truncated or damaged
//! outside its data blocks never opens. Data blocks are checked on every read from the file
//! (never trusted because they were once cached).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tessera_io::fs::{Fs, FsFile, OpenMode};

use super::LsmError;
use crate::cache::{BlockCache, BlockKey};
use crate::manifest::TableMeta;
use crate::sstable::{tail_start, DecodedBlock, Footer, SstError, TableIndex, FOOTER_LEN};

/// Largest tail (index, meta, bloom and footer) a table may have: a 64 MiB table of tiny
/// entries has a few MiB of index and filter, so this only stops a damaged footer from
/// asking for an absurd allocation.
pub const TABLE_TAIL_BYTES_MAX: u64 = 1 << 30;

/// The shard's block cache: decoded blocks.
pub type Cache = RefCell<BlockCache<DecodedBlock>>;

/// An open table.
pub struct SsTable<F: Fs> {
    meta: TableMeta,
    path: PathBuf,
    file: F::File,
    index: TableIndex,
}

/// The file name of table `id`.
pub fn table_file_name(id: u64) -> String {
    format!("{id:020}.sst")
}

/// The id a table file name carries, if it is one.
pub fn parse_table_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".sst")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl<F: Fs> std::fmt::Debug for SsTable<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsTable")
            .field("meta", &self.meta)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<F: Fs> SsTable<F> {
    /// Opens the table `meta` names in `dir` and checks it against `meta`.
    pub async fn open(fs: &F, dir: &Path, meta: TableMeta) -> Result<Self, LsmError> {
        let path = dir.join(table_file_name(meta.id));
        let file = fs.open(&path, OpenMode::Existing).await?;
        let corrupt = |source: SstError| LsmError::Table {
            id: meta.id,
            source,
        };
        let len = file.len().await?;
        if len != meta.file_size {
            return Err(corrupt(SstError::Corrupt {
                what: "file",
                detail: format!("{len} bytes, the manifest says {}", meta.file_size),
            }));
        }
        let footer_at = len.checked_sub(FOOTER_LEN as u64).ok_or_else(|| {
            corrupt(SstError::TooShort {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                min: FOOTER_LEN,
            })
        })?;
        let footer = read_exact(&file, footer_at, FOOTER_LEN).await?;
        let start = tail_start(&Footer::decode(&footer).map_err(corrupt)?);
        let tail_len = len
            .checked_sub(start)
            .filter(|&l| l <= TABLE_TAIL_BYTES_MAX)
            .ok_or_else(|| {
                corrupt(SstError::Corrupt {
                    what: "footer",
                    detail: format!("sections start at {start} in a {len}-byte table"),
                })
            })?;
        // Bounded by TABLE_TAIL_BYTES_MAX just above.
        let tail = read_exact(&file, start, tail_len as usize).await?;
        let index = TableIndex::open(&tail, start).map_err(corrupt)?;
        let expected = (!index.is_empty()).then(|| (&meta.smallest[..], &meta.largest[..]));
        if index.key_range() != expected || index.len() != meta.entry_count {
            return Err(corrupt(SstError::Corrupt {
                what: "meta",
                detail: "key range or entry count differs from the manifest".into(),
            }));
        }
        Ok(Self {
            meta,
            path,
            file,
            index,
        })
    }

    /// The manifest's entry for this table.
    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// The table's id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// The checked index.
    pub fn index(&self) -> &TableIndex {
        &self.index
    }

    /// Whether `key` lies within the table's key range and passes its bloom filter.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        key >= &self.meta.smallest[..]
            && key <= &self.meta.largest[..]
            && self.index.may_contain(key)
    }

    /// The encoded object stored for `key`, if any.
    pub async fn get(&self, key: &[u8], cache: &Cache) -> Result<Option<Vec<u8>>, LsmError> {
        if !self.may_contain(key) {
            return Ok(None);
        }
        let i = self.index.block_for(key);
        if i == self.index.block_count() {
            return Ok(None);
        }
        let block = self.block(i, cache, true).await?;
        Ok(block.find(key).map(<[u8]>::to_vec))
    }

    /// Like [`SsTable::get`] without I/O: `None` if the answer needs a block that is not
    /// cached.
    pub fn get_cached(
        &self,
        key: &[u8],
        cache: &Cache,
    ) -> Option<Result<Option<Vec<u8>>, LsmError>> {
        if !self.may_contain(key) {
            return Some(Ok(None));
        }
        let i = self.index.block_for(key);
        if i == self.index.block_count() {
            return Some(Ok(None));
        }
        let block_no = u32::try_from(i).ok()?;
        let block = cache
            .borrow_mut()
            .peek(&BlockKey::new(self.meta.id, block_no))?;
        Some(Ok(block.find(key).map(<[u8]>::to_vec)))
    }

    /// Data block `i`, from the cache or the file. `cacheable: false` (scans, compaction)
    /// reads through without inserting, so one pass over a table does not push out the
    /// working set.
    pub async fn block(
        &self,
        i: usize,
        cache: &Cache,
        cacheable: bool,
    ) -> Result<Rc<DecodedBlock>, LsmError> {
        let block_no = u32::try_from(i).map_err(|_| LsmError::Table {
            id: self.meta.id,
            source: SstError::Corrupt {
                what: "index",
                detail: format!("block number {i}"),
            },
        })?;
        let key = BlockKey::new(self.meta.id, block_no);
        if let Some(block) = cache.borrow_mut().get(&key) {
            return Ok(block);
        }
        // No cache borrow is held across this read (see cache.rs).
        let loc = self.index.loc(i);
        let framed_len = usize::try_from(loc.framed_len()).map_err(|_| LsmError::Table {
            id: self.meta.id,
            source: SstError::Corrupt {
                what: "index",
                detail: format!("block of {} bytes", loc.framed_len()),
            },
        })?;
        let framed = read_exact(&self.file, loc.offset, framed_len).await?;
        let block =
            Rc::new(
                self.index
                    .decode_block(i, &framed)
                    .map_err(|source| LsmError::Table {
                        id: self.meta.id,
                        source,
                    })?,
            );
        if cacheable {
            cache.borrow_mut().insert(key, block.clone());
        }
        Ok(block)
    }

    /// The table's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads exactly `len` bytes at `offset`; fewer (the file is shorter than its index says) is
/// an [`LsmError::ShortRead`].
async fn read_exact<T: FsFile>(file: &T, offset: u64, len: usize) -> Result<Vec<u8>, LsmError> {
    let bytes = file.read_at(offset, len).await?;
    if bytes.len() != len {
        return Err(LsmError::ShortRead {
            offset,
            wanted: len,
            got: bytes.len(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_file_names_round_trip_and_others_are_not_tables() {
        assert_eq!(parse_table_file_name(&table_file_name(42)), Some(42));
        assert_eq!(
            parse_table_file_name(&table_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for other in [
            "42.sst",
            "MANIFEST-1",
            "000000000000000000042.sst",
            "0000000000000000004x.sst",
        ] {
            assert_eq!(parse_table_file_name(other), None, "{other}");
        }
    }
}
