//! Executor bootstrap: one glommio `LocalExecutor` per shard.
//!
//! Every executor warms glommio's polled-I/O probe before it runs the shard's future: glommio
//! probes a device for io_uring polled I/O by reading the first DMA file opened on it, and an
//! empty first file makes the probe wrongly succeed (later reads then fail with EOPNOTSUPP).
//! We therefore open a non-empty file in the data directory first (DESIGN §10).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};

use crate::constants::{PROBE_FILE_BYTES, PROBE_FILE_NAME};

/// Where an executor's thread may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardPlacement {
    /// Pinned to one CPU (shard i on CPU i modulo the CPU count): production.
    Pinned,
    /// Free to run on any CPU: tests and shared machines.
    Unbound,
}

/// How to build one shard's executor.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Thread name prefix; the shard number is appended.
    pub name: String,
    /// Pinned or unbound.
    pub placement: ShardPlacement,
    /// How often glommio checks whether another task queue should run.
    pub preempt_timer: Duration,
    /// A directory on the device that holds the shard's files; the probe file lives here.
    pub probe_dir: PathBuf,
}

/// Starts the executor for `shard` on its own thread and runs `make_future()` on it, after
/// warming the polled-I/O probe. The future is built inside the thread because glommio
/// futures are not `Send`.
pub fn spawn_executor<G, F, T>(
    shard: u16,
    config: &ExecutorConfig,
    make_future: G,
) -> io::Result<glommio::ExecutorJoinHandle<io::Result<T>>>
where
    G: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match config.placement {
        ShardPlacement::Unbound => Placement::Unbound,
        ShardPlacement::Pinned => {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            Placement::Fixed(usize::from(shard) % cpus)
        }
    };
    let probe_dir = config.probe_dir.clone();
    LocalExecutorBuilder::new(placement)
        .name(&format!("{}-{shard}", config.name))
        .preempt_timer(config.preempt_timer)
        .spawn(move || async move {
            // One probe file per shard, so shards starting together never race on one file.
            warm_probe_file(&probe_dir.join(format!("{PROBE_FILE_NAME}-{shard}"))).await?;
            tracing::debug!(shard, "polled-I/O probe warmed");
            Ok(make_future().await)
        })
        .map_err(|e| io::Error::other(format!("cannot start executor for shard {shard}: {e}")))
}

/// Waits for every executor to finish; the first failure, named by its shard, is returned.
pub fn join_all(handles: Vec<glommio::ExecutorJoinHandle<io::Result<()>>>) -> Result<(), String> {
    let mut first_error = None;
    for (shard, handle) in handles.into_iter().enumerate() {
        let outcome = match handle.join() {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("shard {shard}: {e}"),
            Err(e) => format!("shard {shard} executor: {e}"),
        };
        first_error.get_or_insert(outcome);
    }
    first_error.map_or(Ok(()), Err)
}

/// Opens and reads a non-empty file in `dir` so that glommio's per-device polled-I/O probe
/// sees real data. Call it in every executor before any other DMA file is opened on that device.
pub async fn warm_polled_io_probe(dir: &Path) -> io::Result<()> {
    warm_probe_file(&dir.join(PROBE_FILE_NAME)).await
}

/// Warms the probe with the file at `path`, creating it on first use.
///
/// glommio decides per device and per executor whether to use io_uring polled I/O (the
/// IOPOLL ring) by reading the first DMA file opened on the device; it disables the poll ring
/// if that read fails. On this kernel the read succeeds even on devices whose block queue
/// cannot poll (`queue/io_poll` = 0), and DMA reads and writes sent to the poll ring of such a
/// device were then seen never to complete (a start-up hang in about one start in fifteen
/// under load). So we ask the kernel ourselves: if the device can poll, glommio probes a
/// non-empty file for real; if it cannot, we open the file write-only, glommio's probe read
/// fails (EBADF), and glommio sends this device's I/O through its ordinary ring.
async fn warm_probe_file(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    let is_ready = std::fs::metadata(&path).is_ok_and(|m| m.len() == PROBE_FILE_BYTES as u64);
    if !is_ready {
        // Written with std I/O on purpose: DMA on this device must not happen before the probe.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, vec![0xA5u8; PROBE_FILE_BYTES])?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    let polling = device_can_poll(&path);
    tracing::debug!(path = %path.display(), polling, "warming glommio's polled-I/O probe");
    let file = if polling {
        DmaFile::open(&path).await?
    } else {
        OpenOptions::new().write(true).dma_open(&path).await?
    };
    file.close().await?;
    Ok(())
}

/// Whether the block device holding `path` can complete polled I/O, as the kernel says in
/// `/sys/dev/block/MAJOR:MINOR/queue/io_poll` (a partition's queue is its disk's). Anything
/// unreadable counts as "no": the ordinary ring is always correct, only slower.
pub fn device_can_poll(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let Ok(dir) = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")) else {
        return false;
    };
    [dir.join("queue/io_poll"), dir.join("../queue/io_poll")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|v| v.trim() == "1")
}
