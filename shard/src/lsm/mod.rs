//! The on-disk half of a shard's engine: the live SSTables, the manifest that names them, the
//! block cache, flush of a frozen memtable and compaction. The engine (`engine/`) owns the
//! memtables and the commit log and calls in here.
//!
//! Layout: every file lives in one directory (`<shard>/sst`): tables `<id>.sst` (20 digits),
//! `MANIFEST-<seq>` and `CURRENT` (see `manifest/`). Everything goes through the [`Fs`] seam,
//! so crash tests run this code on the simulator.
//!
//! Invariants:
//! - A table is written, synced and its name made durable (directory sync) before a manifest
//!   refers to it; a manifest edit is the only way a table becomes live or stops being live,
//!   and edits are committed one at a time (`commits`).
//! - Readers work on a [`Version`], an immutable snapshot of the live tables taken without an
//!   `.await`; a table removed by compaction stays readable by the snapshots that hold it
//!   (its file handle is open; only its name is gone).
//! - Reads search level 0 newest first (highest id), then levels 1, 2, ... and stop at the
//!   first table holding the key: the newest version (why that holds is in `compaction/`).
//! - Files in the directory that the manifest does not name (a flush or compaction cut short)
//!   are removed at open, before anything new is written.
//! - Tombstones are written and kept by flush and compaction; only the hook set with
//!   [`Lsm::set_tombstone_gc`] may drop them, and only in a compaction that writes the deepest
//!   level holding the keys it merges.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tessera_core::{CoreError, Object};
use tessera_io::fs::{Fs, FsError};
use tessera_io::turns::Turns;

use crate::cache::{BlockCache, CacheStats};
use crate::compaction::{CompactionError, IoBudget, Policy};
use crate::manifest::{Manifest, ManifestEdit, ManifestError, TableMeta};
use crate::memtable::Memtable;
use crate::sstable::{SstError, TableOptions};

mod compact;
mod scan;
pub mod table;
pub mod write;

use table::{parse_table_file_name, table_file_name};
pub use table::{Cache, SsTable};
use write::TableWriter;

/// Why an operation on the tables failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LsmError {
    /// The file system refused or failed an operation.
    #[error("{0}")]
    Fs(#[from] FsError),
    /// A table is damaged (or not the table the manifest names): the shard refuses to return
    /// data from it. Restore the shard from a replica.
    #[error("table {id}: {source}")]
    Table {
        /// The table.
        id: u64,
        /// What is wrong.
        source: SstError,
    },
    /// A table file is shorter than its index says.
    #[error("table read at {offset}: wanted {wanted} bytes, the file had {got}")]
    ShortRead {
        /// Where.
        offset: u64,
        /// Bytes asked for.
        wanted: usize,
        /// Bytes read.
        got: usize,
    },
    /// The manifest cannot be read or written.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// A stored value is not an object: the table is damaged.
    #[error("stored object of key {key:?} does not decode: {source}")]
    Object {
        /// The memtable key.
        key: Vec<u8>,
        /// Why.
        source: CoreError,
    },
    /// The live tables break a level invariant, or a compaction could not be installed.
    #[error("{0}")]
    Compaction(#[from] CompactionError),
    /// Keys out of order across a merge's input: a damaged table.
    #[error("merge: {0}")]
    Merge(String),
    /// A merge input ran dry before its end: a bug in the compaction driver, caught before
    /// anything was installed.
    #[error("compaction input {0} was not refilled before the merge read it")]
    Starved(usize),
}

/// How the tables are written, cached and compacted.
#[derive(Clone, Debug)]
pub struct LsmOptions {
    /// Table format options (block size, zstd level, bloom false-positive rate).
    pub table: TableOptions,
    /// When and what to compact.
    pub policy: Policy,
    /// Bytes per second compaction may read and write.
    pub compaction_bytes_per_sec: u64,
    /// Block cache budget.
    pub cache_bytes: u64,
    /// Writes wait while level 0 holds this many tables (compaction is behind): without a
    /// bound, a sustained write load would pile up level-0 tables, each one more probe for
    /// every read.
    pub l0_stall_tables: usize,
}

impl Default for LsmOptions {
    fn default() -> Self {
        Self {
            table: TableOptions::default(),
            policy: Policy::default(),
            compaction_bytes_per_sec: 256 << 20,
            cache_bytes: 32 << 20,
            l0_stall_tables: 20,
        }
    }
}

/// A snapshot of the live tables, in search order.
pub struct Version<F: Fs> {
    /// Level 0, newest (highest id) first.
    l0: Vec<Rc<SsTable<F>>>,
    /// Levels 1.., each sorted by smallest key (disjoint ranges).
    levels: Vec<Vec<Rc<SsTable<F>>>>,
}

impl<F: Fs> std::fmt::Debug for Version<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("l0", &self.l0.len())
            .field(
                "levels",
                &self.levels.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<F: Fs> Version<F> {
    fn build(manifest: &Manifest, open: &HashMap<u64, Rc<SsTable<F>>>) -> Self {
        let mut l0 = Vec::new();
        let mut levels: Vec<Vec<Rc<SsTable<F>>>> = Vec::new();
        for meta in &manifest.tables {
            let Some(table) = open.get(&meta.id) else {
                debug_assert!(false, "table {} is live but not open", meta.id);
                continue;
            };
            if meta.level == 0 {
                l0.push(table.clone());
            } else {
                let at = usize::from(meta.level) - 1;
                if levels.len() <= at {
                    levels.resize_with(at + 1, Vec::new);
                }
                levels[at].push(table.clone());
            }
        }
        l0.sort_by_key(|t| std::cmp::Reverse(t.id()));
        for level in &mut levels {
            level.sort_by(|a, b| a.meta().smallest.cmp(&b.meta().smallest));
        }
        Self { l0, levels }
    }

    /// Tables that may hold `key`, newest first.
    fn candidates<'v>(&'v self, key: &'v [u8]) -> impl Iterator<Item = &'v Rc<SsTable<F>>> + 'v {
        let deeper = self.levels.iter().filter_map(move |level| {
            let i = level.partition_point(|t| &t.meta().largest[..] < key);
            level.get(i).filter(|t| &t.meta().smallest[..] <= key)
        });
        self.l0.iter().chain(deeper)
    }

    /// Every table, newest first (for scans).
    fn newest_first(&self) -> impl Iterator<Item = &Rc<SsTable<F>>> {
        self.l0.iter().chain(self.levels.iter().flatten())
    }
}

/// Counters for write and space amplification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LsmStats {
    /// Bytes written by flushes.
    pub flushed_bytes: u64,
    /// Bytes written by compactions.
    pub compacted_bytes: u64,
    /// Flushes done.
    pub flushes: u64,
    /// Compactions done.
    pub compactions: u64,
}

/// Decides whether a compaction may drop a key whose winning object is a tombstone. Called
/// only where no older run can hold the key.
pub type TombstoneGc = Rc<dyn Fn(&Object) -> bool>;

/// A shard's tables. Single-executor.
pub struct Lsm<F: Fs> {
    fs: Rc<F>,
    dir: PathBuf,
    options: LsmOptions,
    manifest: RefCell<Manifest>,
    open: RefCell<HashMap<u64, Rc<SsTable<F>>>>,
    version: RefCell<Rc<Version<F>>>,
    cache: Cache,
    next_id: Cell<u64>,
    /// One manifest commit at a time.
    commits: Turns,
    /// One compaction at a time (the policy does not know about a job in flight).
    compactions: Turns,
    /// A commit failed and the manifest could not be read back yet: do it before the next.
    resync_needed: Cell<bool>,
    budget: RefCell<IoBudget>,
    stats: Cell<LsmStats>,
    tombstone_gc: RefCell<Option<TombstoneGc>>,
}

impl<F: Fs> std::fmt::Debug for Lsm<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lsm")
            .field("dir", &self.dir)
            .field("tables", &self.open.borrow().len())
            .field("stats", &self.stats.get())
            .finish_non_exhaustive()
    }
}

impl<F: Fs> Lsm<F> {
    /// Opens the tables of `dir`: recovers the manifest, removes orphans, opens and checks
    /// every live table.
    pub async fn open(fs: Rc<F>, dir: &Path, options: LsmOptions) -> Result<Self, LsmError> {
        fs.create_dir(dir).await?;
        let manifest = Manifest::recover(&*fs, dir).await?;
        crate::compaction::check_levels(&manifest)?;
        remove_orphans(&*fs, dir, &manifest).await?;
        let mut open = HashMap::new();
        for meta in &manifest.tables {
            let table = SsTable::open(&*fs, dir, meta.clone()).await?;
            open.insert(meta.id, Rc::new(table));
        }
        let version = Version::build(&manifest, &open);
        let budget = IoBudget::new(
            options.compaction_bytes_per_sec,
            (write::WRITE_CHUNK_BYTES as u64).max(options.compaction_bytes_per_sec / 10),
            std::time::Instant::now(),
        )?;
        Ok(Self {
            next_id: Cell::new(manifest.next_table_id),
            cache: RefCell::new(BlockCache::new(options.cache_bytes)),
            fs,
            dir: dir.to_path_buf(),
            options,
            manifest: RefCell::new(manifest),
            open: RefCell::new(open),
            version: RefCell::new(Rc::new(version)),
            commits: Turns::default(),
            compactions: Turns::default(),
            resync_needed: Cell::new(false),
            budget: RefCell::new(budget),
            stats: Cell::new(LsmStats::default()),
            tombstone_gc: RefCell::new(None),
        })
    }

    /// The commit-log floor: records below it are in tables.
    pub fn log_floor(&self) -> u64 {
        self.manifest.borrow().log_floor
    }

    /// The newest stored object of a memtable key, if any table holds one.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Object>, LsmError> {
        let version = self.version.borrow().clone();
        for table in version.candidates(key) {
            if let Some(bytes) = table.get(key, &self.cache).await? {
                return decode(key, &bytes).map(Some);
            }
        }
        Ok(None)
    }

    /// Like [`Lsm::get`] without I/O: `None` if the answer needs a block that is not cached.
    pub fn get_cached(&self, key: &[u8]) -> Option<Result<Option<Object>, LsmError>> {
        let version = self.version.borrow().clone();
        for table in version.candidates(key) {
            match table.get_cached(key, &self.cache)? {
                Ok(Some(bytes)) => return Some(decode(key, &bytes).map(Some)),
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
        }
        Some(Ok(None))
    }

    /// Every stored entry with `start <= key < end`, newest version of each, in key order
    /// (tombstones included). Blocks are read without filling the cache.
    pub async fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Object)>, LsmError> {
        let version = self.version.borrow().clone();
        let mut runs = Vec::new();
        for table in version.newest_first() {
            runs.push(scan::read_range(table, start, end, &self.cache).await?);
        }
        scan::merge_runs(runs)
    }

    /// Writes `memtable` as a level-0 table and commits it with the log floor `log_floor`
    /// (every record below it is in `memtable` or an older table).
    pub async fn flush(&self, memtable: &Memtable, log_floor: u64) -> Result<(), LsmError> {
        let mut add = Vec::new();
        if !memtable.is_empty() {
            let id = self.allocate_id();
            let mut writer =
                TableWriter::create(&*self.fs, &self.dir, id, self.options.table.clone(), None)
                    .await?;
            let path = writer.path().to_path_buf();
            let written = async {
                let mut value = Vec::new();
                for (key, object) in memtable.iter() {
                    value.clear();
                    object.encode(&mut value);
                    writer.add(key, &value).await?;
                }
                writer.finish().await
            }
            .await;
            let meta = match written {
                Ok(meta) => meta,
                Err(error) => {
                    // Best effort (a full disk): an orphan left here is removed at the next open.
                    let _ = self.fs.remove(&path).await;
                    return Err(error);
                }
            };
            let mut stats = self.stats.get();
            stats.flushed_bytes += meta.file_size;
            stats.flushes += 1;
            self.stats.set(stats);
            add.push(meta);
            // The table's name must be durable before the manifest refers to it.
            if let Err(error) = self.fs.sync_dir(&self.dir).await {
                let _ = self.fs.remove(&path).await;
                return Err(error.into());
            }
        }
        let edit = ManifestEdit {
            add,
            remove: Vec::new(),
            log_floor: Some(log_floor),
        };
        self.install(|_| Ok(edit)).await
    }

    /// Runs one compaction if the policy asks for one; returns whether it did. Callers
    /// queue: one job runs at a time.
    pub async fn compact_once(&self) -> Result<bool, LsmError> {
        let _turn = self.compactions.take().await;
        compact::run_once(self).await
    }

    /// Tables in level 0.
    pub fn l0_tables(&self) -> usize {
        self.version.borrow().l0.len()
    }

    /// Whether writes should wait for compaction (see [`LsmOptions::l0_stall_tables`]).
    pub fn stalled(&self) -> bool {
        self.l0_tables() >= self.options.l0_stall_tables.max(1)
    }

    /// Sets the hook that decides whether a tombstone may be dropped (see the module doc).
    pub fn set_tombstone_gc(&self, gc: Option<TombstoneGc>) {
        *self.tombstone_gc.borrow_mut() = gc;
    }

    /// Memory held by the tables' indexes and filters.
    pub fn index_bytes(&self) -> usize {
        self.open
            .borrow()
            .values()
            .map(|t| t.index().memory_bytes())
            .sum()
    }

    /// Changes the block cache's budget (evicting if it shrank).
    pub fn set_cache_budget(&self, bytes: u64) {
        self.cache.borrow_mut().set_budget(bytes);
    }

    /// Bytes the block cache holds.
    pub fn cache_bytes(&self) -> u64 {
        self.cache.borrow().used_bytes()
    }

    /// Cache hits, misses and evictions.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.borrow().stats()
    }

    /// Flush and compaction counters.
    pub fn stats(&self) -> LsmStats {
        self.stats.get()
    }

    /// The live tables' manifest entries.
    pub fn tables(&self) -> Vec<TableMeta> {
        self.manifest.borrow().tables.clone()
    }

    /// Bytes of live tables on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.manifest
            .borrow()
            .tables
            .iter()
            .map(|t| t.file_size)
            .sum()
    }

    fn allocate_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Commits the edit `make_edit` computes from the manifest of the moment (one commit at a
    /// time, so the edit is checked against exactly the manifest it applies to), opens the
    /// tables it adds and installs the new version. The tables it removes are the caller's
    /// to delete.
    ///
    /// A failed commit may or may not have reached the disk, and leaves files (a numbered
    /// manifest, `CURRENT.tmp`) that would make the next commit fail: so the manifest is
    /// recovered from disk at once and adopted. If the edit landed after all, this returns
    /// `Ok`; if not, the tables it would have added are removed and the error returned, and
    /// the caller may retry. Should that recovery fail too, it is tried again before the next
    /// commit.
    async fn install(
        &self,
        make_edit: impl FnOnce(&Manifest) -> Result<ManifestEdit, LsmError>,
    ) -> Result<(), LsmError> {
        let _turn = self.commits.take().await;
        if self.resync_needed.get() {
            self.resync(Vec::new()).await?;
        }
        let edit = make_edit(&self.manifest.borrow())?;
        let mut added = Vec::new();
        for meta in &edit.add {
            match SsTable::open(&*self.fs, &self.dir, meta.clone()).await {
                Ok(table) => added.push(Rc::new(table)),
                Err(error) => {
                    for table in &edit.add {
                        let _ = self
                            .fs
                            .remove(&self.dir.join(table_file_name(table.id)))
                            .await;
                    }
                    return Err(error);
                }
            }
        }
        let mut manifest = self.manifest.borrow().clone();
        if let Err(error) = manifest.commit(&*self.fs, &self.dir, edit.clone()).await {
            tracing::warn!(%error, "manifest commit failed; recovering the manifest from disk");
            self.resync(added).await?;
            let landed = {
                let now = self.manifest.borrow();
                edit.add
                    .iter()
                    .all(|t| now.tables.iter().any(|n| n.id == t.id))
                    && edit
                        .remove
                        .iter()
                        .all(|id| now.tables.iter().all(|n| n.id != *id))
            };
            if landed {
                return Ok(());
            }
            for table in &edit.add {
                // Best effort: an orphan left here is removed at the next open.
                let _ = self
                    .fs
                    .remove(&self.dir.join(table_file_name(table.id)))
                    .await;
            }
            return Err(error.into());
        }
        let mut open = self.open.borrow_mut();
        for table in added {
            open.insert(table.id(), table);
        }
        for id in &edit.remove {
            open.remove(id);
        }
        *self.version.borrow_mut() = Rc::new(Version::build(&manifest, &open));
        *self.manifest.borrow_mut() = manifest;
        Ok(())
    }

    /// Reads the manifest back from disk (removing what a failed commit left) and makes it
    /// the live one, opening any table it names that is not open (`fresh` holds tables just
    /// opened for the failed edit). The caller holds the commit turn.
    async fn resync(&self, fresh: Vec<Rc<SsTable<F>>>) -> Result<(), LsmError> {
        self.resync_needed.set(true);
        let manifest = Manifest::recover(&*self.fs, &self.dir).await?;
        let mut tables = HashMap::new();
        for meta in &manifest.tables {
            let known = self
                .open
                .borrow()
                .get(&meta.id)
                .cloned()
                .or_else(|| fresh.iter().find(|t| t.id() == meta.id).cloned());
            let table = match known {
                Some(table) => table,
                None => Rc::new(SsTable::open(&*self.fs, &self.dir, meta.clone()).await?),
            };
            tables.insert(meta.id, table);
        }
        *self.version.borrow_mut() = Rc::new(Version::build(&manifest, &tables));
        *self.open.borrow_mut() = tables;
        self.next_id
            .set(self.next_id.get().max(manifest.next_table_id));
        *self.manifest.borrow_mut() = manifest;
        self.resync_needed.set(false);
        Ok(())
    }
}

/// Decodes a stored object.
fn decode(key: &[u8], bytes: &[u8]) -> Result<Object, LsmError> {
    Object::decode(bytes).map_err(|source| LsmError::Object {
        key: key.to_vec(),
        source,
    })
}

/// Removes table files the manifest does not name: outputs of a flush or compaction that
/// never committed, and inputs of one that committed but crashed before removing them.
async fn remove_orphans<F: Fs>(fs: &F, dir: &Path, manifest: &Manifest) -> Result<(), LsmError> {
    let mut removed = 0;
    for name in fs.list(dir).await? {
        let Some(id) = parse_table_file_name(&name) else {
            continue;
        };
        if !manifest.tables.iter().any(|t| t.id == id) {
            tracing::info!(
                table = id,
                "removing a table file the manifest does not name"
            );
            fs.remove(&dir.join(name)).await?;
            removed += 1;
        }
    }
    if removed > 0 {
        fs.sync_dir(dir).await?;
    }
    Ok(())
}
