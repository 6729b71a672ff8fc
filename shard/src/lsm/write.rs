//! Writing one SSTable file: entries stream through the [`TableBuilder`] and its complete
//! blocks go to the file in chunks, so a table of any size needs about one chunk of memory
//! (plus its index and filter) while it is written.
//!
//! Invariants: a table file is created with `CreateNew` under an id never used before (ids
//! come from the engine's counter, seeded from the manifest), and is synced before
//! [`TableWriter::finish`] returns; its *name* is not durable until the caller syncs the
//! directory, which it must do before a manifest refers to the table. A writer that fails or
//! is dropped leaves an orphan file, which the next open removes (its id is not in the
//! manifest).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tessera_io::fs::{Fs, FsFile, OpenMode};

use super::table::table_file_name;
use super::LsmError;
use crate::compaction::IoBudget;
use crate::manifest::TableMeta;
use crate::sstable::{TableBuilder, TableOptions};

/// Bytes of complete blocks gathered before one write to the file.
pub const WRITE_CHUNK_BYTES: usize = 256 << 10;

/// One table being written.
pub struct TableWriter<'b, F: Fs> {
    id: u64,
    path: PathBuf,
    file: F::File,
    builder: TableBuilder,
    smallest: Option<Vec<u8>>,
    largest: Vec<u8>,
    /// Paces the writes (compaction); `None` writes at once (flush).
    pace: Option<&'b RefCell<IoBudget>>,
}

impl<F: Fs> std::fmt::Debug for TableWriter<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("entries", &self.builder.len())
            .finish_non_exhaustive()
    }
}

impl<'b, F: Fs> TableWriter<'b, F> {
    /// Creates table `id` in `dir`.
    pub async fn create(
        fs: &F,
        dir: &Path,
        id: u64,
        options: TableOptions,
        pace: Option<&'b RefCell<IoBudget>>,
    ) -> Result<Self, LsmError> {
        let path = dir.join(table_file_name(id));
        let file = fs.open(&path, OpenMode::CreateNew).await?;
        Ok(Self {
            id,
            path,
            file,
            builder: TableBuilder::new(options),
            smallest: None,
            largest: Vec::new(),
            pace,
        })
    }

    /// Appends an entry; keys must strictly increase.
    pub async fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), LsmError> {
        self.builder
            .add(key, value)
            .map_err(|source| LsmError::Table {
                id: self.id,
                source,
            })?;
        if self.smallest.is_none() {
            self.smallest = Some(key.to_vec());
        }
        self.largest.clear();
        self.largest.extend_from_slice(key);
        if self.builder.ready_bytes() >= WRITE_CHUNK_BYTES {
            self.write_ready().await?;
        }
        Ok(())
    }

    /// About how many bytes the table holds so far.
    pub fn estimated_bytes(&self) -> u64 {
        self.builder.estimated_bytes()
    }

    /// Entries added so far.
    pub fn len(&self) -> u64 {
        self.builder.len()
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// Writes the rest, syncs and closes the file; returns the table's manifest entry (level
    /// 0: the caller sets the level).
    pub async fn finish(self) -> Result<TableMeta, LsmError> {
        let Self {
            id,
            file,
            builder,
            smallest,
            largest,
            pace,
            ..
        } = self;
        let offset = builder.taken_bytes();
        let entry_count = builder.len();
        let tail = builder
            .finish()
            .map_err(|source| LsmError::Table { id, source })?;
        let file_size = offset + tail.len() as u64;
        write_paced(&file, pace, offset, tail).await?;
        file.sync().await?;
        file.close().await?;
        Ok(TableMeta {
            id,
            level: 0,
            smallest: smallest.unwrap_or_default(),
            largest,
            entry_count,
            file_size,
        })
    }

    /// The file being written (to remove it after a failure).
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write_ready(&mut self) -> Result<(), LsmError> {
        let offset = self.builder.taken_bytes();
        let bytes = self.builder.take_ready();
        write_paced(&self.file, self.pace, offset, bytes).await
    }
}

/// Writes `bytes` at `offset`, first waiting for the budget if there is one.
async fn write_paced<T: FsFile>(
    file: &T,
    budget: Option<&RefCell<IoBudget>>,
    offset: u64,
    bytes: Vec<u8>,
) -> Result<(), LsmError> {
    if let Some(budget) = budget {
        pace(budget, bytes.len() as u64).await;
    }
    file.write_at(offset, bytes).await?;
    // Building blocks is CPU work on the shard's only thread: let requests run.
    glommio::yield_if_needed().await;
    Ok(())
}

/// Waits until `budget` grants `bytes`.
pub async fn pace(budget: &RefCell<IoBudget>, bytes: u64) {
    loop {
        let wait = budget.borrow_mut().take(bytes, Instant::now());
        match wait {
            None => return,
            Some(wait) => glommio::timer::sleep(wait).await,
        }
    }
}
