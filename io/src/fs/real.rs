//! The real file system behind the [`Fs`] seam, on glommio *buffered* files.
//!
//! The issue asked for glommio DMA files. Tessera opens none: the first DMA file an executor
//! opens on a device makes glommio probe that device for polled I/O, and on this kernel the
//! probe succeeds on devices that cannot poll, after which reads and writes sent to the poll
//! ring were seen never to complete (start-up stalls; linux-only.md, DESIGN §10). Buffered
//! files go through glommio's ordinary ring, need no alignment, and are as durable: a write is
//! durable once `fdatasync` returns, which is all this seam promises.
//!
//! Reads are the exception: [`FsFile::read_at`] is a `pread` on the executor thread, not an
//! io_uring read. glommio's buffered reads were seen to lose their completion under a mixed
//! load (a 1M-key fill with compaction: about one run in three hung for good with the read
//! neither in the ring nor completed, on kernel 6.18); with `pread` ten runs in a row
//! passed. A table read is a page-cache hit or one SSD read (tens of microseconds) and the
//! block cache absorbs repeats, so the executor blocks briefly and rarely; writes, syncs and
//! directory operations stay on glommio.
//!
//! Paths are made absolute before they reach glommio, which opens relative to no directory fd
//! (a relative path fails with EBADF). Listing a directory has no io_uring form and uses a
//! short blocking `read_dir`; [`Fs::create_dir`] checks which parents exist with blocking
//! `stat`s (it runs at start-up, once per directory).

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, Directory, OpenOptions};

use super::{check_same_dir, parent_dir, Fs, FsError, FsFile, FsOp, OpenMode};

/// Kernel errors converted at this boundary keep their path and operation.
fn glommio_err<T>(op: FsOp, path: &Path, err: glommio::GlommioError<T>) -> FsError {
    FsError::from_io(op, path, io::Error::from(err))
}

fn absolute(op: FsOp, path: &Path) -> Result<PathBuf, FsError> {
    std::path::absolute(path).map_err(|e| FsError::from_io(op, path, e))
}

/// The kernel's file system, used from inside a glommio executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A file opened by [`RealFs`].
#[derive(Debug)]
pub struct RealFile {
    file: BufferedFile,
    path: PathBuf,
}

impl Fs for RealFs {
    type File = RealFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> Result<RealFile, FsError> {
        let abs = absolute(FsOp::Open, path)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::Create => {
                options.create(true);
            }
            OpenMode::CreateNew => {
                options.create_new(true);
            }
        }
        let file = options
            .buffered_open(&abs)
            .await
            .map_err(|e| glommio_err(FsOp::Open, path, e))?;
        Ok(RealFile { file, path: abs })
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), FsError> {
        crate::file::sync_dir(dir)
            .await
            .map_err(|e| FsError::from_io(FsOp::SyncDir, dir, e))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError> {
        check_same_dir(from, to)?;
        let (abs_from, abs_to) = (absolute(FsOp::Rename, from)?, absolute(FsOp::Rename, to)?);
        glommio::io::rename(&abs_from, &abs_to)
            .await
            .map_err(|e| glommio_err(FsOp::Rename, from, e))
    }

    async fn remove(&self, path: &Path) -> Result<(), FsError> {
        let abs = absolute(FsOp::Remove, path)?;
        glommio::io::remove(&abs)
            .await
            .map_err(|e| glommio_err(FsOp::Remove, path, e))
    }

    async fn list(&self, dir: &Path) -> Result<Vec<String>, FsError> {
        let err = |e| FsError::from_io(FsOp::List, dir, e);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            if !entry.file_type().map_err(err)?.is_file() {
                continue;
            }
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                // Tessera names its files in ASCII; a stranger's file must not stop a shard.
                Err(name) => tracing::warn!(?name, dir = %dir.display(), "skipping non-UTF-8 name"),
            }
        }
        names.sort();
        Ok(names)
    }

    async fn create_dir(&self, path: &Path) -> Result<(), FsError> {
        let abs = absolute(FsOp::CreateDir, path)?;
        // Outermost first: each new directory's entry is made durable in its parent, which
        // must itself exist (durably) by then.
        let missing: Vec<&Path> = abs.ancestors().take_while(|d| !d.is_dir()).collect();
        for dir in missing.iter().rev() {
            let created = Directory::create(dir)
                .await
                .map_err(|e| glommio_err(FsOp::CreateDir, dir, e))?;
            created
                .close()
                .await
                .map_err(|e| glommio_err(FsOp::CreateDir, dir, e))?;
            self.sync_dir(parent_dir(dir)).await?;
        }
        if missing.is_empty() {
            // It existed, but perhaps only since a run that crashed before syncing its
            // parent (the page cache keeps the entry until a power cut): one more directory
            // sync makes "exists" mean "durable" either way.
            self.sync_dir(parent_dir(&abs)).await?;
        }
        Ok(())
    }
}

impl FsFile for RealFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
        // `pread` on the executor thread, not an io_uring read: see the module doc.
        use std::os::fd::{AsRawFd, FromRawFd};
        use std::os::unix::fs::FileExt;
        // SAFETY: the descriptor belongs to `self.file`, which outlives this borrow; the
        // `ManuallyDrop` keeps this temporary `File` from closing it.
        let file = std::mem::ManuallyDrop::new(unsafe {
            std::fs::File::from_raw_fd(self.file.as_raw_fd())
        });
        let mut out = vec![0u8; len];
        let mut filled = 0;
        // A read of a regular file returns short only at the end of the file, but a short
        // read before it is not an error in POSIX: keep reading until `len` or EOF.
        while filled < len {
            match file.read_at(&mut out[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FsError::from_io(FsOp::Read, &self.path, e)),
            }
        }
        out.truncate(filled);
        Ok(out)
    }

    async fn write_at(&self, offset: u64, bytes: Vec<u8>) -> Result<(), FsError> {
        let len = bytes.len();
        let written = self
            .file
            .write_at(bytes, offset)
            .await
            .map_err(|e| glommio_err(FsOp::Write, &self.path, e))?;
        if written < len {
            // Linux writes a regular file short only when space (or quota) ran out partway;
            // the next write would fail with ENOSPC. Retrying would need a copy of every
            // buffer kept for this rare case, so report it as the full disk it is.
            return Err(FsError::NoSpace {
                op: FsOp::Write,
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<(), FsError> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| glommio_err(FsOp::Truncate, &self.path, e))
    }

    async fn sync(&self) -> Result<(), FsError> {
        // fdatasync also writes the file's size, so a truncate is durable after it.
        self.file
            .fdatasync()
            .await
            .map_err(|e| glommio_err(FsOp::Sync, &self.path, e))
    }

    async fn len(&self) -> Result<u64, FsError> {
        self.file
            .file_size()
            .await
            .map_err(|e| glommio_err(FsOp::Len, &self.path, e))
    }

    async fn close(self) -> Result<(), FsError> {
        let path = self.path;
        self.file
            .close()
            .await
            .map_err(|e| glommio_err(FsOp::Close, &path, e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::Future;

    use super::*;

    fn run<F: Future<Output = ()> + 'static>(make: impl FnOnce() -> F + Send + 'static) {
        crate::executor::run_unbound("test", make).unwrap();
    }

    #[test]
    fn write_read_sync_rename_list_remove_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let fs = RealFs;
            let tmp_path = dir.join("MANIFEST.tmp");
            let path = dir.join("MANIFEST");
            let file = fs.open(&tmp_path, OpenMode::CreateNew).await.unwrap();
            file.write_at(0, b"hello".to_vec()).await.unwrap();
            // Past the end: the gap reads as zeros.
            file.write_at(7, b"world".to_vec()).await.unwrap();
            file.sync().await.unwrap();
            assert_eq!(file.len().await.unwrap(), 12);
            assert_eq!(file.read_at(0, 100).await.unwrap(), b"hello\0\0world");
            assert_eq!(file.read_at(7, 3).await.unwrap(), b"wor");
            file.close().await.unwrap();

            let again = fs.open(&tmp_path, OpenMode::CreateNew).await;
            assert!(matches!(again, Err(FsError::AlreadyExists { .. })));
            let missing = fs.open(&dir.join("nope"), OpenMode::Existing).await;
            assert!(matches!(missing, Err(FsError::NotFound { .. })));

            fs.rename(&tmp_path, &path).await.unwrap();
            fs.sync_dir(&dir).await.unwrap();
            assert_eq!(fs.list(&dir).await.unwrap(), ["MANIFEST"]);
            let file = fs.open(&path, OpenMode::Existing).await.unwrap();
            assert_eq!(file.read_at(0, 5).await.unwrap(), b"hello");
            file.close().await.unwrap();

            fs.remove(&path).await.unwrap();
            fs.sync_dir(&dir).await.unwrap();
            assert!(fs.list(&dir).await.unwrap().is_empty());
            let gone = fs.remove(&path).await;
            assert!(matches!(gone, Err(FsError::NotFound { .. })));
        });
    }

    #[test]
    fn truncate_cuts_and_extends_and_create_dir_makes_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let fs = RealFs;
            let nested = dir.join("a").join("b").join("log");
            fs.create_dir(&nested).await.unwrap();
            assert!(nested.is_dir());
            // Existing: not an error.
            fs.create_dir(&nested).await.unwrap();
            let path = nested.join("seg");
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            file.write_at(0, b"0123456789".to_vec()).await.unwrap();
            file.truncate(4).await.unwrap();
            file.sync().await.unwrap();
            assert_eq!(file.len().await.unwrap(), 4);
            assert_eq!(file.read_at(0, 100).await.unwrap(), b"0123");
            file.truncate(6).await.unwrap();
            assert_eq!(file.read_at(0, 100).await.unwrap(), b"0123\0\0");
            file.close().await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"0123\0\0");
            // A file in the way of a directory is an error, not a silent success.
            let blocked = fs.create_dir(&path.join("sub")).await;
            assert!(blocked.is_err(), "{blocked:?}");
        });
    }

    #[test]
    fn rename_across_directories_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            std::fs::create_dir(dir.join("sub")).unwrap();
            let fs = RealFs;
            let from = dir.join("a");
            fs.open(&from, OpenMode::Create)
                .await
                .unwrap()
                .close()
                .await
                .unwrap();
            let moved = fs.rename(&from, &dir.join("sub").join("a")).await;
            assert!(matches!(
                moved,
                Err(FsError::Io {
                    op: FsOp::Rename,
                    ..
                })
            ));
        });
    }
}
