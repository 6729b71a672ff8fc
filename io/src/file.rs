//! Small file-system helpers used at start-up and by the log writer.
//!
//! The `*_blocking` helpers use std I/O and are for start-up only (recovery, before a shard
//! serves): blocking the shard's thread then delays nobody, and it keeps start-up off glommio
//! DMA reads, one of which was seen never to complete. Directory listing has no io_uring form.
//! The one async helper, [`sync_dir`], is used by the log writer at segment roll.

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::Directory;

/// Reads a whole file with blocking std I/O. For start-up recovery only, before the shard
/// serves anything: blocking its thread then delays nobody. glommio DMA reads issued during
/// start-up were seen to never complete (about one start in four on a loaded 2-core machine,
/// the executor asleep in `io_cqring_wait` with the file open), so recovery does not use them.
pub fn read_file_blocking(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    // glommio opens a directory with `openat` on no directory fd: a relative path fails.
    let d = Directory::open(std::path::absolute(dir)?).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

/// Cuts a file to `len` bytes and makes the new length durable (blocking; start-up only).
pub fn truncate_file_blocking(path: &Path, len: u64) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Writes `bytes` over the start of an existing file and makes them durable (blocking;
/// start-up only). Used on data that recovery just read and will build on: after a crash
/// that did not reboot, those bytes may exist only in the page cache (written, never synced),
/// and after a failed writeback the kernel may even hold them as clean pages that never
/// reached the disk, which a plain fsync would not write again. Rewriting dirties them, so
/// the sync that follows puts them on disk or fails.
pub fn rewrite_prefix_durable_blocking(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()
}

/// Removes a file and makes the removal durable (blocking; start-up only).
pub fn remove_file_blocking(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    sync_dir_blocking(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory with blocking std I/O (start-up only).
pub fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Names of the regular files in `dir`, sorted.
pub fn list_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.path());
        }
    }
    names.sort();
    Ok(names)
}

/// Creates `dir` and its parents, then fsyncs the parent so the new entry is durable
/// (blocking; start-up only).
pub fn create_dir_durable_blocking(dir: &Path) -> io::Result<()> {
    // Every directory created needs its entry fsynced in its parent, not only the last one.
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
    std::fs::create_dir_all(dir)?;
    for created in missing {
        sync_dir_blocking(created.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably with blocking std I/O (write a temporary
/// file, fsync it, rename it over `path`, fsync the directory). For start-up metadata only,
/// before any executor runs.
pub fn write_atomic_blocking(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir_blocking(path.parent().unwrap_or(Path::new(".")))
}

/// An exclusive lock on a data directory, held for the life of the value. A second process
/// that opens the same directory fails instead of corrupting it.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes the lock file `LOCK` in `dir` without waiting.
pub fn lock_dir(dir: &Path) -> io::Result<DirLock> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another tessera process", dir.display()),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
