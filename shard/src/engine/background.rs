//! The engine's background tasks: flush of the frozen memtable, and compaction in a
//! low-priority task queue.
//!
//! Both loop until the engine closes them (cancelled by [`Engine::close`]). A failure is
//! logged, kept for operators, and retried after a pause: a full disk stops flushes until
//! space is freed, and then they resume on their own.
//!
//! [`Engine::close`]: super::Engine::close

use std::rc::Rc;
use std::time::Duration;

use glommio::{Latency, Shares};
use tessera_io::fs::Fs;

use super::Shared;

/// Pause before a failed flush or compaction is first tried again; it doubles with every
/// failure in a row, up to [`RETRY_AFTER_MAX`], so a failure that lasts (a damaged table, a
/// disk that stays full) costs little I/O and log noise.
pub const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The longest pause between retries.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);

/// The pause after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    RETRY_AFTER
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_AFTER_MAX)
}

/// CPU shares of the compaction queue; foreground tasks run in the default queue (1000
/// shares), so a busy shard gives compaction about one part in eleven.
const COMPACTION_SHARES: usize = 100;

/// Spawns the flush and compaction tasks.
pub(crate) fn spawn<F: Fs + 'static>(shared: &Rc<Shared<F>>) -> Vec<glommio::task::JoinHandle<()>> {
    let flush = glommio::spawn_local(flush_loop(shared.clone())).detach();
    let queue = glommio::executor().create_task_queue(
        Shares::Static(COMPACTION_SHARES),
        Latency::NotImportant,
        "compaction",
    );
    let compaction = match glommio::spawn_local_into(compaction_loop(shared.clone()), queue) {
        Ok(task) => task.detach(),
        Err(error) => {
            tracing::warn!(%error, "no compaction task queue; compaction shares the default one");
            glommio::spawn_local(compaction_loop(shared.clone())).detach()
        }
    };
    vec![flush, compaction]
}

async fn flush_loop<F: Fs + 'static>(s: Rc<Shared<F>>) {
    let mut failures = 0;
    loop {
        let job = s
            .frozen
            .borrow()
            .as_ref()
            .map(|f| (f.memtable.clone(), f.log_floor));
        let Some((memtable, log_floor)) = job else {
            s.flush_wanted.notified().await;
            continue;
        };
        tracing::trace!(keys = memtable.len(), log_floor, "memtable flush starts");
        match s.lsm.flush(&memtable, log_floor).await {
            Ok(()) => {
                failures = 0;
                *s.frozen.borrow_mut() = None;
                s.flush_failing.set(false);
                // Writers waiting for room may go now, before the log's segments are released.
                s.flushed.signal();
                tracing::debug!(keys = memtable.len(), log_floor, "memtable flushed");
                match s.log.release_below(log_floor).await {
                    Ok(released) => tracing::debug!(released, "commit-log segments released"),
                    // Not a loss: the segments stay until the next flush releases them.
                    Err(error) => tracing::warn!(%error, "cannot release commit-log segments"),
                }
                s.fit_cache();
                s.compaction_wanted.notify();
                s.maybe_freeze();
            }
            Err(error) => {
                tracing::warn!(%error, "memtable flush failed; retrying");
                *s.last_error.borrow_mut() = Some(error.to_string());
                s.flush_failing.set(true);
                s.flushed.signal();
                failures += 1;
                glommio::timer::sleep(backoff(failures)).await;
            }
        }
    }
}

async fn compaction_loop<F: Fs + 'static>(s: Rc<Shared<F>>) {
    let mut failures = 0;
    loop {
        match s.lsm.compact_once().await {
            Ok(true) => {
                failures = 0;
                s.compaction_failing.set(false);
                s.fit_cache();
                s.flushed.signal();
            }
            Ok(false) => {
                s.compaction_failing.set(false);
                s.compaction_wanted.notified().await;
            }
            Err(error) => {
                tracing::warn!(%error, "compaction failed; retrying");
                *s.last_error.borrow_mut() = Some(error.to_string());
                s.compaction_failing.set(true);
                s.flushed.signal();
                failures += 1;
                glommio::timer::sleep(backoff(failures)).await;
            }
        }
    }
}
