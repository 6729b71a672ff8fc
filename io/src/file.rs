//! Small file-system helpers used at start-up and by the log writer: whole-file reads through
//! DMA, directory fsync, truncation and listing.
//!
//! Directory operations (list, create) have no io_uring form in glommio, so they use std; they
//! run at start-up or at segment roll, never per request.

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{Directory, DmaFile};

use crate::constants::{DMA_ALIGNMENT_BYTES, READ_CHUNK_BYTES_MAX};

/// Reads a whole file through DMA in aligned chunks. The length comes from `stat`, so a file
/// that grows meanwhile is read up to the size seen at the start.
pub async fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let file = DmaFile::open(path).await?;
    let size = usize::try_from(file.file_size().await?)
        .map_err(|_| io::Error::other(format!("{} is too large to read", path.display())))?;
    let mut out = Vec::with_capacity(size);
    let mut pos = 0usize;
    while pos < size {
        let want = (size - pos).min(READ_CHUNK_BYTES_MAX);
        let want_aligned = align_up(want as u64) as usize;
        let chunk = file.read_at_aligned(pos as u64, want_aligned).await?;
        if chunk.is_empty() {
            break;
        }
        let take = chunk.len().min(size - pos);
        out.extend_from_slice(&chunk[..take]);
        pos += take;
    }
    file.close().await?;
    Ok(out)
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = Directory::open(dir).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

/// Cuts a file to `len` bytes and makes the new length durable.
pub async fn truncate_file(path: &Path, len: u64) -> io::Result<()> {
    let file = glommio::io::OpenOptions::new()
        .write(true)
        .dma_open(path)
        .await?;
    file.truncate(len).await?;
    file.fdatasync().await?;
    file.close().await?;
    Ok(())
}

/// Removes a file and makes the removal durable.
pub async fn remove_file(path: &Path) -> io::Result<()> {
    glommio::io::remove(path).await?;
    if let Some(parent) = path.parent() {
        sync_dir(parent).await?;
    }
    Ok(())
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

/// Creates `dir` and its parents, then fsyncs the parent so the new entry is durable.
pub async fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent).await?;
    }
    Ok(())
}

/// Rounds `v` up to the DMA alignment.
pub fn align_up(v: u64) -> u64 {
    v.div_ceil(DMA_ALIGNMENT_BYTES) * DMA_ALIGNMENT_BYTES
}

/// Rounds `v` down to the DMA alignment.
pub fn align_down(v: u64) -> u64 {
    v / DMA_ALIGNMENT_BYTES * DMA_ALIGNMENT_BYTES
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
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
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
