//! The file-system seam under the storage engine: the few operations an LSM tree with a
//! manifest and a commit log needs, behind a trait with a real and a simulated implementation.
//!
//! - [`real::RealFs`] runs on glommio buffered files (see its module doc for why not DMA).
//! - [`sim::SimFs`] is a deterministic in-memory file system that remembers what is durable and
//!   what is not, so crash tests can ask "what could a power cut leave here?" for a seed.
//!
//! Contract every implementation keeps (and the engine may rely on nothing more):
//! - Data written with [`FsFile::write_at`], and a length set with [`FsFile::truncate`], is
//!   durable only after [`FsFile::sync`] on that file.
//! - A create, rename or remove is durable only after [`Fs::sync_dir`] on the directory that
//!   holds the name. Until then a crash may undo it; a rename is undone whole or not at all.
//! - [`Fs::rename`] atomically replaces the target. Both names must be in the same directory,
//!   which is all a manifest swap needs and keeps "which directory to sync" unambiguous.
//! - [`Fs::create_dir`] is durable when it returns: the directory and every parent it created
//!   survive a crash.
//! - A failed operation is reported as an error and never as a partial success: a write that
//!   returns `Ok` wrote every byte.
//!
//! The traits are local (not `Send`): a glommio executor is single-threaded and every file
//! belongs to one shard.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub mod real;
pub mod sim;

pub use real::{RealFile, RealFs};
pub use sim::{SimFile, SimFs};

/// How [`Fs::open`] treats a missing or existing file. Every file is opened for reading and
/// writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist ([`FsError::NotFound`] otherwise).
    Existing,
    /// Open the file, creating it empty if it is missing.
    Create,
    /// Create the file; [`FsError::AlreadyExists`] if it exists. For files whose name is never
    /// reused (segments, tables): an existing one means a bug or a second writer.
    CreateNew,
}

/// The operation that failed, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsOp {
    /// [`Fs::open`].
    Open,
    /// [`FsFile::read_at`].
    Read,
    /// [`FsFile::write_at`].
    Write,
    /// [`FsFile::sync`].
    Sync,
    /// [`Fs::sync_dir`].
    SyncDir,
    /// [`Fs::rename`].
    Rename,
    /// [`Fs::remove`].
    Remove,
    /// [`Fs::list`].
    List,
    /// [`FsFile::len`].
    Len,
    /// [`FsFile::close`].
    Close,
    /// [`FsFile::truncate`].
    Truncate,
    /// [`Fs::create_dir`].
    CreateDir,
}

impl fmt::Display for FsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Open => "open",
            Self::Read => "read",
            Self::Write => "write",
            Self::Sync => "sync",
            Self::SyncDir => "sync directory",
            Self::Rename => "rename",
            Self::Remove => "remove",
            Self::List => "list",
            Self::Len => "stat",
            Self::Close => "close",
            Self::Truncate => "truncate",
            Self::CreateDir => "create directory",
        };
        f.write_str(name)
    }
}

/// Why a file-system operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The file or directory does not exist.
    #[error("{op} {}: no such file or directory", path.display())]
    NotFound {
        /// What was being done.
        op: FsOp,
        /// The missing path.
        path: PathBuf,
    },
    /// A file opened with [`OpenMode::CreateNew`] already exists: a reused name is a bug or a
    /// second writer in the same directory.
    #[error("{op} {}: file already exists", path.display())]
    AlreadyExists {
        /// What was being done.
        op: FsOp,
        /// The existing path.
        path: PathBuf,
    },
    /// The disk (or the simulator's capacity) is full. Nothing was reported written; free
    /// space or grow the volume, then restart the shard.
    #[error("{op} {}: no space left on device", path.display())]
    NoSpace {
        /// What was being done.
        op: FsOp,
        /// The file being written.
        path: PathBuf,
    },
    /// Any other I/O error. A failed sync must not be retried and trusted (DESIGN §6).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: FsOp,
        /// The path involved.
        path: PathBuf,
        /// The kernel's error.
        source: io::Error,
    },
    /// The simulator cut the power: every operation after the injected crash point fails.
    #[error("simulated crash: the file system takes no more operations")]
    Crashed,
}

impl FsError {
    /// Classifies a kernel error: the kinds callers act on get their own variant.
    pub fn from_io(op: FsOp, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound => Self::NotFound { op, path },
            io::ErrorKind::AlreadyExists => Self::AlreadyExists { op, path },
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::NoSpace { op, path },
            _ => Self::Io { op, path, source },
        }
    }

    /// The error for a rename whose names are in different directories (see the module doc).
    fn cross_directory(from: &Path, to: &Path) -> Self {
        Self::Io {
            op: FsOp::Rename,
            path: from.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("target {} is in another directory", to.display()),
            ),
        }
    }
}

/// The directory that holds `path`'s name: the one to pass to [`Fs::sync_dir`].
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Checks the same-directory rule of [`Fs::rename`].
fn check_same_dir(from: &Path, to: &Path) -> Result<(), FsError> {
    if parent_dir(from) == parent_dir(to) {
        Ok(())
    } else {
        Err(FsError::cross_directory(from, to))
    }
}

/// A file system: names in directories.
#[allow(async_fn_in_trait)]
pub trait Fs {
    /// An open file of this file system.
    type File: FsFile;

    /// Opens `path` for reading and writing, creating it as `mode` says. A created file's
    /// name is durable only after [`Fs::sync_dir`] on its directory.
    async fn open(&self, path: &Path, mode: OpenMode) -> Result<Self::File, FsError>;

    /// Makes every create, rename and remove of a name in `dir` so far durable.
    async fn sync_dir(&self, dir: &Path) -> Result<(), FsError>;

    /// Atomically gives `from`'s file the name `to`, replacing any file there. Both must be
    /// in the same directory. Durable after [`Fs::sync_dir`].
    async fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError>;

    /// Removes the name `path`. Durable after [`Fs::sync_dir`].
    async fn remove(&self, path: &Path) -> Result<(), FsError>;

    /// Names (not paths) of the regular files in `dir`, sorted.
    async fn list(&self, dir: &Path) -> Result<Vec<String>, FsError>;

    /// Creates the directory `path` and every missing parent, durably: when this returns, a
    /// crash keeps them. An existing directory is not an error.
    async fn create_dir(&self, path: &Path) -> Result<(), FsError>;
}

/// An open file.
// No `is_empty`: it would be one more operation (and one more crash point in the simulator)
// for what `len() == 0` already says.
#[allow(async_fn_in_trait, clippy::len_without_is_empty)]
pub trait FsFile {
    /// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FsError>;

    /// Writes all of `bytes` at `offset`, extending the file (with zeros before `offset` if it
    /// lies past the end). Durable after [`FsFile::sync`].
    async fn write_at(&self, offset: u64, bytes: Vec<u8>) -> Result<(), FsError>;

    /// Sets the file's length to `len`: bytes past it are dropped, and a longer length reads
    /// as zeros. Durable after [`FsFile::sync`], like a write.
    async fn truncate(&self, len: u64) -> Result<(), FsError>;

    /// Makes every write and truncate of this file so far durable (`fdatasync`).
    async fn sync(&self) -> Result<(), FsError>;

    /// The file's current length in bytes.
    async fn len(&self) -> Result<u64, FsError>;

    /// Closes the file, reporting any error the close finds.
    async fn close(self) -> Result<(), FsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's errno values for the errors callers act on (Linux numbering).
    const ENOENT: i32 = 2;
    const EEXIST: i32 = 17;
    const ENOSPC: i32 = 28;
    const EIO: i32 = 5;

    fn classify(errno: i32) -> FsError {
        let err = io::Error::from_raw_os_error(errno);
        FsError::from_io(FsOp::Write, Path::new("x"), err)
    }

    #[test]
    fn kernel_errors_map_to_the_variants_callers_act_on() {
        assert!(matches!(classify(ENOENT), FsError::NotFound { .. }));
        assert!(matches!(classify(EEXIST), FsError::AlreadyExists { .. }));
        assert!(matches!(classify(ENOSPC), FsError::NoSpace { .. }));
        assert!(matches!(
            classify(EIO),
            FsError::Io {
                op: FsOp::Write,
                ..
            }
        ));
    }

    #[test]
    fn names_in_the_current_directory_belong_to_dot() {
        assert_eq!(parent_dir(Path::new("CURRENT")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/CURRENT")), Path::new("d"));
    }
}
