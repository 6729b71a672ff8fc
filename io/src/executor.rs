//! Executor bootstrap: one glommio `LocalExecutor` per shard.
//!
//! Tessera opens no DMA file, so glommio never runs its polled-I/O probe and never uses its
//! IOPOLL ring. DESIGN §10's advice (warm the probe with a non-empty file) was not enough on
//! this kernel: the probe succeeds even on devices that cannot poll (`queue/io_poll` = 0), and
//! poll-ring operations, even the probe's own read on a write-only file, were seen never to
//! complete, stalling start-up about once in thirty starts. See linux-only.md.

use std::io;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::stall::Watched;

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
}

/// Starts the executor for `shard` on its own thread and runs `make_future()` on it. The
/// future is built inside the thread because glommio futures are not `Send`.
///
/// The thread is watched (see [`stall`](crate::stall)) from before its executor exists until
/// after the executor is torn down. Watching only while the root task runs is not enough: an
/// executor was seen asleep in `io_uring_enter` before it ever polled its root task (so before
/// the task could register it), and another asleep while tearing down after its task ended.
pub fn spawn_executor<G, F, T>(
    shard: u16,
    config: &ExecutorConfig,
    make_future: G,
) -> io::Result<ExecutorHandle<T>>
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
    let builder = LocalExecutorBuilder::new(placement).preempt_timer(config.preempt_timer);
    let thread = std::thread::Builder::new()
        .name(format!("{}-{shard}", config.name))
        .spawn(move || {
            let watched = Watched::current_thread()?;
            let executor = builder.make().map_err(|e| {
                io::Error::other(format!("cannot start executor for shard {shard}: {e}"))
            })?;
            // No polled-I/O probe to warm: Tessera opens no DMA file (see the module doc).
            let beat = watched.beat();
            let out = executor.run(async move {
                glommio::spawn_local(beat).detach();
                tracing::debug!(shard, "executor started");
                make_future().await
            });
            drop(executor);
            drop(watched);
            Ok(out)
        })?;
    Ok(ExecutorHandle { thread })
}

/// A running executor's thread; [`ExecutorHandle::join`] waits for its result.
#[derive(Debug)]
pub struct ExecutorHandle<T> {
    thread: std::thread::JoinHandle<io::Result<T>>,
}

impl<T> ExecutorHandle<T> {
    /// Waits for the executor to finish. The outer error is a panic on its thread; the
    /// inner one a failure to start it.
    pub fn join(self) -> Result<io::Result<T>, ExecutorPanicked> {
        self.thread.join().map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".into());
            ExecutorPanicked { message }
        })
    }
}

/// An executor's thread panicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the executor thread panicked: {message}")]
pub struct ExecutorPanicked {
    /// The panic's message.
    pub message: String,
}

/// Runs `make()` to completion on one unbound, watched executor (tests, benchmarks and
/// tools that need a single executor) and returns its output; a panic or start-up failure
/// is the error.
pub fn run_unbound<G, F, T>(name: &str, make: G) -> Result<T, String>
where
    G: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    let config = ExecutorConfig {
        name: name.to_string(),
        placement: ShardPlacement::Unbound,
        preempt_timer: Duration::from_millis(crate::constants::PREEMPT_TIMER_MS_DEFAULT),
    };
    spawn_executor(0, &config, make)
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|e| format!("executor {name}: {e}"))?
        .map_err(|e| format!("executor {name}: {e}"))
}

/// Waits for every executor to finish; the first failure, named by its shard, is returned.
pub fn join_all(handles: Vec<ExecutorHandle<()>>) -> Result<(), String> {
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
