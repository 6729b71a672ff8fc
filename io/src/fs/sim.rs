//! A deterministic in-memory file system for crash tests, behind the [`Fs`] seam.
//!
//! It owns two views of every file and directory: what a reader sees now (*live*) and what a
//! power cut is guaranteed to keep (*durable*), plus the operations in between. [`SimFs::crash`]
//! turns that into one state a power cut could leave, chosen by a seed, so a failing seed
//! replays exactly. It needs no executor: its futures never wait, and tests drive them with
//! `futures_lite::future::block_on`.
//!
//! The crash model (what [`SimFs::crash`] may and may not do):
//! - File data: the content as of the file's last [`FsFile::sync`] always survives. Each write
//!   and each truncate since is kept or lost independently; the kept ones are applied in their
//!   original order, and the last kept one, if it is a write, may be torn (only a prefix of it,
//!   possibly empty, reaches the disk). A truncate is never torn: the file gets the new length
//!   or keeps its old one. So a write followed by a truncate that cuts it off may still leave
//!   the write's bytes, until a sync.
//! - Names: every create, rename and remove in a directory made durable by [`Fs::sync_dir`]
//!   survives. Of the ones since, a prefix (in issue order, possibly empty or all) survives, per
//!   directory: file systems journal metadata in order, so a later rename never survives an
//!   earlier create it depends on. A rename is one operation, so it is undone whole or not at
//!   all.
//! - A file whose name did not survive is gone, with its content.
//!
//! Fault injection: [`SimFs::crash_after`] lets a number of operations succeed, after which
//! every operation (on the file system or any file opened from it) returns
//! [`FsError::Crashed`]. [`SimFs::set_capacity`] bounds the bytes held by named files; a write
//! that would exceed it fails with [`FsError::NoSpace`] and changes nothing.
//!
//! Simplifications: directories are implicit (any directory exists; [`Fs::create_dir`] only
//! counts as an operation, so it is a crash point like the others), paths are compared as
//! spelled (use one spelling per file), a removed file that is still open stops counting
//! against the capacity, and a truncate never fails for lack of space (a real one that
//! extends a file leaves a hole, which takes none).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{check_same_dir, parent_dir, Fs, FsError, FsFile, FsOp, OpenMode};

/// Identifies a file's content independently of its names (an inode).
type FileId = u64;

/// A change to a file's content not yet made durable by a sync.
#[derive(Clone, Debug)]
enum PendingOp {
    Write { offset: usize, bytes: Vec<u8> },
    Truncate { len: usize },
}

impl PendingOp {
    fn apply(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Write { offset, bytes } => apply_write(buf, *offset, bytes),
            Self::Truncate { len } => buf.resize(*len, 0),
        }
    }
}

/// One file's content, live and durable.
#[derive(Clone, Debug, Default)]
struct SimInode {
    live: Vec<u8>,
    /// Invariant: `live` is `durable` with every op of `pending` applied in order.
    durable: Vec<u8>,
    pending: Vec<PendingOp>,
}

/// A change to a directory's names not yet made durable by `sync_dir`.
#[derive(Clone, Debug)]
enum DirOp {
    Link { path: PathBuf, id: FileId },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    fn apply(&self, names: &mut BTreeMap<PathBuf, FileId>) {
        match self {
            Self::Link { path, id } => {
                names.insert(path.clone(), *id);
            }
            Self::Unlink { path } => {
                names.remove(path);
            }
            Self::Rename { from, to } => {
                if let Some(id) = names.remove(from) {
                    names.insert(to.clone(), id);
                }
            }
        }
    }
}

/// Everything a [`SimFs`] and its open files share.
#[derive(Debug, Default)]
struct State {
    files: BTreeMap<FileId, SimInode>,
    next_id: FileId,
    /// Invariant: `live_names` is `durable_names` with every op of `pending_dir_ops` applied,
    /// directory by directory.
    live_names: BTreeMap<PathBuf, FileId>,
    durable_names: BTreeMap<PathBuf, FileId>,
    /// Keyed by directory; ordered maps so a seed picks the same crash state every run.
    pending_dir_ops: BTreeMap<PathBuf, Vec<DirOp>>,
    capacity_bytes: Option<u64>,
    ops_done: u64,
    /// Operations still allowed before the injected crash, if one is armed.
    ops_before_crash: Option<u64>,
    crashed: bool,
}

impl State {
    /// Counts one operation, or refuses it if the power is (or has just been) cut.
    fn begin(&mut self) -> Result<(), FsError> {
        if self.ops_before_crash == Some(0) {
            self.crashed = true;
        }
        if self.crashed {
            return Err(FsError::Crashed);
        }
        if let Some(left) = &mut self.ops_before_crash {
            *left -= 1;
        }
        self.ops_done += 1;
        Ok(())
    }

    fn file(&mut self, id: FileId) -> &mut SimInode {
        // Files are never dropped while their state lives, so an id handed out stays valid.
        self.files.entry(id).or_default()
    }

    fn push_dir_op(&mut self, dir: &Path, op: DirOp) {
        self.pending_dir_ops
            .entry(dir.to_path_buf())
            .or_default()
            .push(op);
    }

    /// Bytes held by files that have a live name.
    fn used_bytes(&self) -> u64 {
        let named: BTreeSet<FileId> = self.live_names.values().copied().collect();
        named
            .iter()
            .filter_map(|id| self.files.get(id))
            .map(|f| f.live.len() as u64)
            .sum()
    }

    fn is_named(&self, id: FileId) -> bool {
        self.live_names.values().any(|&named| named == id)
    }
}

/// Writes `bytes` at `offset` of `buf`, zero-filling any gap past the end.
fn apply_write(buf: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    let end = offset + bytes.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(bytes);
}

/// The simulated file system. Clones share one state.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Rc<RefCell<State>>,
}

/// A file opened from a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    state: Rc<RefCell<State>>,
    id: FileId,
    path: PathBuf,
}

impl SimFs {
    /// An empty file system with no capacity limit and no crash armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the bytes held by named files (`None`: unbounded).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.borrow_mut().capacity_bytes = bytes;
    }

    /// Lets the next `ops` operations succeed; every one after them returns
    /// [`FsError::Crashed`].
    pub fn crash_after(&self, ops: u64) {
        self.state.borrow_mut().ops_before_crash = Some(ops);
    }

    /// Operations performed so far, to pick crash points for [`SimFs::crash_after`].
    pub fn ops_done(&self) -> u64 {
        self.state.borrow().ops_done
    }

    /// Whether the power has been cut (by [`SimFs::crash_after`] or [`SimFs::crash`]).
    pub fn is_crashed(&self) -> bool {
        self.state.borrow().crashed
    }

    /// Cuts the power: this file system and its files take no more operations, and the
    /// returned one holds a state the cut could have left, chosen by `seed` (see
    /// [`SimFs::crash_image`]).
    pub fn crash(&self, seed: u64) -> SimFs {
        self.state.borrow_mut().crashed = true;
        self.crash_image(seed)
    }

    fn create(state: &mut State, path: &Path) -> FileId {
        let id = state.next_id;
        state.next_id += 1;
        state.files.insert(id, SimInode::default());
        state.live_names.insert(path.to_path_buf(), id);
        let op = DirOp::Link {
            path: path.to_path_buf(),
            id,
        };
        state.push_dir_op(parent_dir(path), op);
        id
    }
}

impl Fs for SimFs {
    type File = SimFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> Result<SimFile, FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        let existing = state.live_names.get(path).copied();
        let id = match (existing, mode) {
            (Some(_), OpenMode::CreateNew) => {
                let path = path.to_path_buf();
                return Err(FsError::AlreadyExists {
                    op: FsOp::Open,
                    path,
                });
            }
            (Some(id), _) => id,
            (None, OpenMode::Existing) => {
                let path = path.to_path_buf();
                return Err(FsError::NotFound {
                    op: FsOp::Open,
                    path,
                });
            }
            (None, OpenMode::Create | OpenMode::CreateNew) => Self::create(&mut state, path),
        };
        Ok(SimFile {
            state: self.state.clone(),
            id,
            path: path.to_path_buf(),
        })
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        let ops = state.pending_dir_ops.remove(dir).unwrap_or_default();
        for op in &ops {
            op.apply(&mut state.durable_names);
        }
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        check_same_dir(from, to)?;
        let Some(id) = state.live_names.remove(from) else {
            let path = from.to_path_buf();
            return Err(FsError::NotFound {
                op: FsOp::Rename,
                path,
            });
        };
        state.live_names.insert(to.to_path_buf(), id);
        let op = DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        };
        state.push_dir_op(parent_dir(from), op);
        Ok(())
    }

    async fn remove(&self, path: &Path) -> Result<(), FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        if state.live_names.remove(path).is_none() {
            let path = path.to_path_buf();
            return Err(FsError::NotFound {
                op: FsOp::Remove,
                path,
            });
        }
        let op = DirOp::Unlink {
            path: path.to_path_buf(),
        };
        state.push_dir_op(parent_dir(path), op);
        Ok(())
    }

    async fn list(&self, dir: &Path) -> Result<Vec<String>, FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        // The map is sorted by path, and paths in one directory sort by name.
        let names = state
            .live_names
            .keys()
            .filter(|path| parent_dir(path) == dir)
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    async fn create_dir(&self, _path: &Path) -> Result<(), FsError> {
        // Directories are implicit (see the module doc); this is still a crash point.
        self.state.borrow_mut().begin()
    }
}

impl SimFile {
    fn offset(&self, op: FsOp, offset: u64) -> Result<usize, FsError> {
        usize::try_from(offset).map_err(|_| FsError::Io {
            op,
            path: self.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "offset beyond memory"),
        })
    }
}

impl FsFile for SimFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        let live = &state.file(self.id).live;
        let start = usize::try_from(offset).map_or(live.len(), |o| o.min(live.len()));
        let end = start.saturating_add(len).min(live.len());
        Ok(live[start..end].to_vec())
    }

    async fn write_at(&self, offset: u64, bytes: Vec<u8>) -> Result<(), FsError> {
        let offset = self.offset(FsOp::Write, offset)?;
        let mut state = self.state.borrow_mut();
        state.begin()?;
        let old_len = state.file(self.id).live.len();
        let growth = (offset + bytes.len()).saturating_sub(old_len) as u64;
        if let Some(capacity) = state.capacity_bytes {
            // Checked before anything changes: a refused write leaves no partial bytes.
            if state.is_named(self.id) && state.used_bytes() + growth > capacity {
                let path = self.path.clone();
                return Err(FsError::NoSpace {
                    op: FsOp::Write,
                    path,
                });
            }
        }
        let file = state.file(self.id);
        let op = PendingOp::Write { offset, bytes };
        op.apply(&mut file.live);
        file.pending.push(op);
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<(), FsError> {
        let len = self.offset(FsOp::Truncate, len)?;
        let mut state = self.state.borrow_mut();
        state.begin()?;
        let file = state.file(self.id);
        let op = PendingOp::Truncate { len };
        op.apply(&mut file.live);
        file.pending.push(op);
        Ok(())
    }

    async fn sync(&self) -> Result<(), FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        let file = state.file(self.id);
        file.durable.clone_from(&file.live);
        file.pending.clear();
        Ok(())
    }

    async fn len(&self) -> Result<u64, FsError> {
        let mut state = self.state.borrow_mut();
        state.begin()?;
        Ok(state.file(self.id).live.len() as u64)
    }

    async fn close(self) -> Result<(), FsError> {
        self.state.borrow_mut().begin()
    }
}

mod crash;
#[cfg(test)]
mod tests;
