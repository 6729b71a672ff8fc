//! The manifest: per shard directory, the set of live SSTables and the commit-log floor.
//!
//! A [`Manifest`] value is owned by its shard's engine; it is the in-memory copy of the file
//! that CURRENT names. Bytes are drawn in `codec.rs`.
//!
//! Update protocol ([`Manifest::commit`]), all through the [`Fs`] seam:
//! 1. write `MANIFEST-<seq>` (a new name, `CreateNew`), sync it, sync the directory;
//! 2. write `CURRENT.tmp` naming it, sync it, rename it over `CURRENT`, sync the directory;
//! 3. only then replace the in-memory manifest, and remove the superseded file.
//!
//! Invariants:
//! - Whenever `CURRENT` exists it is complete and names a complete, synced manifest (step 1
//!   is durable before step 2 starts, and `CURRENT.tmp` is synced before the rename), so a
//!   crash at any point leaves either the previous or the new manifest, never a mix.
//! - `seq` only grows, so `CURRENT` only ever moves to a higher-numbered file: a manifest file
//!   numbered above the one CURRENT names was never durably referenced (a commit cut before
//!   its rename), and one numbered below is superseded. Recovery removes both (the newer ones
//!   must go, or the next commit's `CreateNew` of the same name would fail forever).
//! - seq 0 is the empty manifest and has no file. The first commit first makes `CURRENT`
//!   name seq 0, so that "no CURRENT" only ever means "never committed": a directory with
//!   manifest files but no CURRENT is then damage, not a crash outcome, and is refused.
//! - Every table id is below `next_table_id`, ids are unique, and `log_floor` never
//!   decreases. A manifest that breaks a bound of the codec is never written.
//!
//! Table ids: the engine allocates ids from its own counter, seeded from `next_table_id` at
//! recovery, and writes the table before committing it; a commit raises `next_table_id`
//! past every added id. Table files at or above the recovered `next_table_id` are orphans of
//! a flush or compaction cut short; removing them is the engine's job, not this module's.

use std::path::{Path, PathBuf};

use tessera_io::fs::{Fs, FsError, FsFile, OpenMode};

mod codec;
#[cfg(test)]
mod tests;

pub use codec::{
    decode_current, encode_current, manifest_name, parse_manifest_name, Corruption, FORMAT_VERSION,
    MAGIC,
};

/// Most live tables one manifest may list.
pub const MANIFEST_TABLES_MAX: usize = 1 << 16;
/// Longest smallest or largest key a table entry may carry (memtable keys are far shorter).
pub const MANIFEST_KEY_BYTES_MAX: usize = 64 << 10;
/// Levels are `0..MANIFEST_LEVELS_MAX`.
pub const MANIFEST_LEVELS_MAX: u8 = 8;
/// Largest manifest file accepted, checked before its bytes are read.
pub const MANIFEST_BYTES_MAX: u64 = 64 << 20;
/// The name of the file that names the live manifest.
pub const CURRENT: &str = "CURRENT";
/// The name CURRENT's replacement is written under before the rename.
pub const CURRENT_TMP: &str = "CURRENT.tmp";

/// One live SSTable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    /// The table's id, which names its file; never reused.
    pub id: u64,
    /// LSM level, `< MANIFEST_LEVELS_MAX`.
    pub level: u8,
    /// Smallest key (memtable key order); `<= largest`.
    pub smallest: Vec<u8>,
    /// Largest key.
    pub largest: Vec<u8>,
    /// Entries in the table.
    pub entry_count: u64,
    /// Bytes of the table file.
    pub file_size: u64,
}

/// The durable state of one shard directory's tables. `Default` is the empty manifest
/// (seq 0), which is what [`Manifest::recover`] returns for a fresh directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Sequence number of this manifest; each commit adds one.
    pub seq: u64,
    /// Greater than every table id ever committed.
    pub next_table_id: u64,
    /// The live tables, in commit order.
    pub tables: Vec<TableMeta>,
    /// The first commit-log *record* (sequence number) not in a table: recovery replays from
    /// it, and segments holding only records below it may be released.
    pub log_floor: u64,
}

/// One atomic change to a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestEdit {
    /// Tables to add; their ids must not be live.
    pub add: Vec<TableMeta>,
    /// Ids of live tables to remove.
    pub remove: Vec<u64>,
    /// A new log floor, not below the current one.
    pub log_floor: Option<u64>,
}

/// What can go wrong recovering or committing a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file system failed. After a failed commit the directory may hold the old or the
    /// new manifest: drop this value and [`Manifest::recover`] (restart the shard).
    #[error("manifest: {0}")]
    Fs(#[from] FsError),
    /// A manifest file or CURRENT holds bad bytes; the shard cannot guess its tables.
    /// Restore the directory from a replica or backup.
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: Corruption },
    /// Manifest files but no CURRENT: a directory that a crash cannot produce (see the module
    /// doc), so it was damaged or hand-edited. Restore CURRENT or move the directory aside.
    #[error("{}: manifest files {manifests:?} but no CURRENT", dir.display())]
    NoCurrent {
        dir: PathBuf,
        manifests: Vec<String>,
    },
    /// CURRENT names a manifest file that does not exist: damage outside the protocol.
    #[error("CURRENT names {}, which does not exist", path.display())]
    Dangling { path: PathBuf },
    /// The edit breaks an invariant (a bug in the caller); nothing was written.
    #[error("invalid manifest edit: {0}")]
    InvalidEdit(String),
}

impl Manifest {
    /// Checks the invariants the codec and the module doc promise.
    fn validate(&self) -> Result<(), Corruption> {
        if self.tables.len() > MANIFEST_TABLES_MAX {
            let (value, max) = (self.tables.len() as u64, MANIFEST_TABLES_MAX as u64);
            return Err(Corruption::OverLimit {
                field: "table_count",
                value,
                max,
            });
        }
        let mut ids: Vec<u64> = self.tables.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Corruption::Invalid("a table id is listed twice"));
        }
        for t in &self.tables {
            if t.id >= self.next_table_id {
                return Err(Corruption::Invalid("a table id is not below next_table_id"));
            }
            if t.level >= MANIFEST_LEVELS_MAX {
                return Err(Corruption::Invalid("a table level is over the maximum"));
            }
            if t.smallest.len().max(t.largest.len()) > MANIFEST_KEY_BYTES_MAX {
                let value = t.smallest.len().max(t.largest.len()) as u64;
                let max = MANIFEST_KEY_BYTES_MAX as u64;
                return Err(Corruption::OverLimit {
                    field: "table key",
                    value,
                    max,
                });
            }
            if t.smallest > t.largest {
                return Err(Corruption::Invalid(
                    "a table's smallest key is above its largest",
                ));
            }
        }
        Ok(())
    }

    /// Checks the invariants and that the image fits `MANIFEST_BYTES_MAX`: what the reader
    /// would refuse is never written.
    fn check_writable(&self) -> Result<(), ManifestError> {
        self.validate()
            .map_err(|e| ManifestError::InvalidEdit(e.to_string()))?;
        let len = codec::encoded_len(self) as u64;
        if len > MANIFEST_BYTES_MAX {
            let reason = format!("manifest of {len} bytes over {MANIFEST_BYTES_MAX}");
            return Err(ManifestError::InvalidEdit(reason));
        }
        Ok(())
    }

    /// The file image of this manifest, refused if it breaks an invariant or a bound.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        self.check_writable()?;
        Ok(codec::encode(self))
    }

    /// Parses a manifest file image; every check failure is a [`Corruption`].
    pub fn decode(bytes: &[u8]) -> Result<Manifest, Corruption> {
        codec::decode(bytes)
    }

    /// The manifest `edit` makes of this one, with the next seq. Pure: `self` is unchanged.
    pub fn apply(&self, edit: &ManifestEdit) -> Result<Manifest, ManifestError> {
        let invalid = |reason: String| Err(ManifestError::InvalidEdit(reason));
        let Some(seq) = self.seq.checked_add(1) else {
            return invalid("manifest seq overflows".into());
        };
        let mut next = Manifest {
            seq,
            ..self.clone()
        };
        for id in &edit.remove {
            let Some(at) = next.tables.iter().position(|t| t.id == *id) else {
                return invalid(format!("removes table {id}, which is not live"));
            };
            next.tables.remove(at);
        }
        for table in &edit.add {
            if next.tables.iter().any(|t| t.id == table.id) || edit.remove.contains(&table.id) {
                return invalid(format!("adds table {}, which is live or removed", table.id));
            }
            let Some(after) = table.id.checked_add(1) else {
                return invalid("table id overflows".into());
            };
            next.next_table_id = next.next_table_id.max(after);
            next.tables.push(table.clone());
        }
        if let Some(floor) = edit.log_floor {
            if floor < self.log_floor {
                let old = self.log_floor;
                return invalid(format!("log floor {floor} below the current {old}"));
            }
            next.log_floor = floor;
        }
        next.check_writable()?;
        Ok(next)
    }

    /// Applies `edit` durably (see the module doc for the protocol). On `Ok` the new
    /// manifest is durable and `self` is it; on `Err` `self` is unchanged, but the directory
    /// may hold either manifest, so drop this value and recover rather than commit again (a
    /// second try would find its `MANIFEST-<seq>` name taken and fail, never overwrite).
    ///
    /// `self` must come from [`Manifest::recover`] on `dir`.
    pub async fn commit<F: Fs>(
        &mut self,
        fs: &F,
        dir: &Path,
        edit: ManifestEdit,
    ) -> Result<(), ManifestError> {
        let next = self.apply(&edit)?;
        let bytes = next.encode()?;
        if self.seq == 0 {
            // Make CURRENT exist (naming the empty manifest) before any manifest file does:
            // then a crash can never leave manifest files without CURRENT.
            install_current(fs, dir, 0).await?;
        }
        write_synced(fs, &dir.join(manifest_name(next.seq)), bytes).await?;
        // The new name must be durable before CURRENT refers to it (DESIGN §6).
        fs.sync_dir(dir).await?;
        install_current(fs, dir, next.seq).await?;
        let old = std::mem::replace(self, next);
        if old.seq != 0 {
            let path = dir.join(manifest_name(old.seq));
            // Best effort: the commit is durable already, and recovery removes superseded
            // files, so a failure here costs disk space, not correctness.
            if let Err(error) = fs.remove(&path).await {
                tracing::warn!(path = %path.display(), %error, "cannot remove old manifest");
            }
        }
        Ok(())
    }

    /// Reads the manifest CURRENT names in `dir`, and removes leftovers of cut-short commits.
    ///
    /// A torn or invalid CURRENT is an error, not a cue to pick the newest valid manifest
    /// file: the protocol never leaves CURRENT torn, so a bad one means damage, and the newest
    /// file may be a commit that never finished while an older one may list tables already
    /// deleted. Either guess could serve wrong data; DESIGN §6 says recovery never guesses.
    pub async fn recover<F: Fs>(fs: &F, dir: &Path) -> Result<Manifest, ManifestError> {
        let names = fs.list(dir).await?;
        let manifests: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(codec::MANIFEST_PREFIX))
            .collect();
        let mut stale: Vec<String> = Vec::new();
        if names.iter().any(|n| n == CURRENT_TMP) {
            // A swap cut before its rename; nothing refers to it.
            stale.push(CURRENT_TMP.to_owned());
        }
        let manifest = if names.iter().any(|n| n == CURRENT) {
            let current_path = dir.join(CURRENT);
            let bytes = read_whole(fs, &current_path, codec::CURRENT_BYTES as u64).await?;
            let seq = decode_current(&bytes).map_err(|reason| ManifestError::Corrupt {
                path: current_path,
                reason,
            })?;
            let manifest = read_manifest(fs, dir, seq).await?;
            // Unknown names (not exactly `MANIFEST-<20 digits>`) are left alone.
            let others = manifests
                .iter()
                .filter(|n| parse_manifest_name(n).is_some_and(|s| s != seq));
            stale.extend(others.map(|n| n.to_string()));
            manifest
        } else if manifests.is_empty() {
            Manifest::default()
        } else {
            let dir = dir.to_path_buf();
            let manifests = manifests.into_iter().cloned().collect();
            return Err(ManifestError::NoCurrent { dir, manifests });
        };
        for name in &stale {
            fs.remove(&dir.join(name)).await?;
        }
        if !stale.is_empty() {
            fs.sync_dir(dir).await?;
        }
        Ok(manifest)
    }
}

/// Reads and checks manifest `seq` in `dir`; seq 0 is the empty manifest, with no file.
async fn read_manifest<F: Fs>(fs: &F, dir: &Path, seq: u64) -> Result<Manifest, ManifestError> {
    if seq == 0 {
        return Ok(Manifest::default());
    }
    let path = dir.join(manifest_name(seq));
    let bytes = match read_whole(fs, &path, MANIFEST_BYTES_MAX).await {
        Err(ManifestError::Fs(FsError::NotFound { .. })) => {
            return Err(ManifestError::Dangling { path })
        }
        other => other?,
    };
    let corrupt = |reason| ManifestError::Corrupt {
        path: path.clone(),
        reason,
    };
    let manifest = Manifest::decode(&bytes).map_err(corrupt)?;
    if manifest.seq != seq {
        return Err(corrupt(Corruption::SeqMismatch {
            named: seq,
            found: manifest.seq,
        }));
    }
    Ok(manifest)
}

/// The whole content of `path`, refused unread if its length is over `max`.
async fn read_whole<F: Fs>(fs: &F, path: &Path, max: u64) -> Result<Vec<u8>, ManifestError> {
    let file = fs.open(path, OpenMode::Existing).await?;
    let len = file.len().await?;
    let corrupt = |reason| ManifestError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let Some(len) = usize::try_from(len).ok().filter(|&l| l as u64 <= max) else {
        file.close().await?;
        return Err(corrupt(Corruption::TooLarge { len, max }));
    };
    let bytes = file.read_at(0, len).await?;
    file.close().await?;
    if bytes.len() != len {
        return Err(corrupt(Corruption::Truncated {
            field: "file (shrank while read)",
        }));
    }
    Ok(bytes)
}

/// Creates `path` (a name never used before), writes `bytes` and syncs it.
async fn write_synced<F: Fs>(fs: &F, path: &Path, bytes: Vec<u8>) -> Result<(), FsError> {
    let file = fs.open(path, OpenMode::CreateNew).await?;
    file.write_at(0, bytes).await?;
    file.sync().await?;
    file.close().await
}

/// Makes CURRENT name manifest `seq`, durably: write and sync a temporary, rename, sync dir.
async fn install_current<F: Fs>(fs: &F, dir: &Path, seq: u64) -> Result<(), FsError> {
    let tmp = dir.join(CURRENT_TMP);
    write_synced(fs, &tmp, encode_current(seq)).await?;
    fs.rename(&tmp, &dir.join(CURRENT)).await?;
    fs.sync_dir(dir).await
}
