//! Small file-system helpers for node start-up, and the directory sync behind
//! [`RealFs`](crate::fs::RealFs).
//!
//! The `*_blocking` helpers use std I/O and run before any executor serves (node metadata,
//! the data-directory lock): blocking the thread then delays nobody. Everything a shard keeps
//! (its commit log, manifest and tables) goes through the [`fs`](crate::fs) seam instead, so
//! that crash tests can run it on the simulator.

use std::io;
use std::path::Path;

use glommio::io::Directory;

/// fsyncs a directory so that entries created, renamed or removed in it survive a crash.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    // glommio opens a directory with `openat` on no directory fd: a relative path fails.
    let d = Directory::open(std::path::absolute(dir)?).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

/// fsyncs a directory with blocking std I/O (start-up only).
pub fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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
