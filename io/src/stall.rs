//! Rescue for executors that sleep through their own wake-ups.
//!
//! On this kernel (6.18) an executor thread blocked in `io_uring_enter` can miss a
//! completion: the request's task work is queued (its ring's `/proc/PID/fdinfo` shows
//! `task_works=1`), but the sleeping thread is never woken to run it. glommio then sleeps
//! with a timer long expired, an accept or a read pending, until something else wakes the
//! thread, which may be never. Under CPU contention this hit about one run in eight of a
//! four-executor timer loop, and showed up as servers that never finished starting, never
//! answered after a restart, or never stopped. A signal wakes the thread, and running the
//! queued task work is part of returning from it.
//!
//! So every executor beats (a glommio timer every [`BEAT`]) and one process-wide watchdog
//! thread looks every [`CHECK`]: an executor whose beat has not moved gets `SIGURG`. A busy
//! executor nudged needlessly loses nothing: the handler only sets a flag, it is installed
//! with `SA_RESTART`, and glommio treats an interrupted `io_uring_enter` as a spurious wake.
//!
//! Invariant: a thread is signalled only while it is registered, the registry's lock is held
//! while signalling, and a thread deregisters (dropping [`Watched`]) before it exits, so no
//! signal ever targets a thread that is gone.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
use nix::sys::signal::Signal;

/// How often an executor beats.
pub const BEAT: Duration = Duration::from_millis(10);
/// How often the watchdog looks; an executor that has not beaten since is nudged. The
/// longest a lost wake-up can stall an executor is about this.
pub const CHECK: Duration = Duration::from_millis(40);

/// One watched executor thread.
#[derive(Debug)]
struct Entry {
    id: u64,
    thread: Pthread,
    beats: Arc<AtomicU64>,
    seen: u64,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    entries: Vec<Entry>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 0,
    entries: Vec::new(),
});
static NUDGES: AtomicU64 = AtomicU64::new(0);
static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// Nudges sent since the process started (each one a stalled or merely busy executor).
pub fn nudges() -> u64 {
    NUDGES.load(Ordering::Relaxed)
}

/// The calling executor thread's registration; dropping it stops the nudges.
#[derive(Debug)]
pub struct Watched {
    id: u64,
    beats: Arc<AtomicU64>,
}

impl Watched {
    /// Registers the calling thread (an executor's) with the watchdog, starting the watchdog
    /// and installing the signal handler on first use. Run [`Watched::beat`] on the executor.
    pub fn current_thread() -> io::Result<Watched> {
        STARTED
            .get_or_init(start_watchdog)
            .clone()
            .map_err(io::Error::other)?;
        let beats = Arc::new(AtomicU64::new(0));
        let mut registry = lock_registry();
        let id = registry.next_id;
        registry.next_id += 1;
        registry.entries.push(Entry {
            id,
            thread: pthread_self(),
            beats: beats.clone(),
            seen: 0,
        });
        Ok(Watched { id, beats })
    }

    /// The beat, to run as a task on the registered executor for as long as it lives.
    pub fn beat(&self) -> impl std::future::Future<Output = ()> + 'static {
        let beats = self.beats.clone();
        async move {
            loop {
                glommio::timer::sleep(BEAT).await;
                beats.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        lock_registry().entries.retain(|e| e.id != self.id);
    }
}

fn lock_registry() -> std::sync::MutexGuard<'static, Registry> {
    // The registry holds plain data: a panic while it was held leaves it usable.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn start_watchdog() -> Result<(), String> {
    // The flag is never read: the handler exists so that the signal is delivered (an ignored
    // signal would not wake the thread) and does nothing else.
    signal_hook::flag::register(
        signal_hook::consts::SIGURG,
        Arc::new(AtomicBool::new(false)),
    )
    .map_err(|e| format!("cannot install the SIGURG handler for the stall watchdog: {e}"))?;
    std::thread::Builder::new()
        .name("tessera-stall-watchdog".into())
        .spawn(|| loop {
            std::thread::sleep(CHECK);
            nudge_stalled();
        })
        .map_err(|e| format!("cannot start the stall watchdog thread: {e}"))?;
    Ok(())
}

fn nudge_stalled() {
    let mut registry = lock_registry();
    for entry in &mut registry.entries {
        let beats = entry.beats.load(Ordering::Relaxed);
        if beats == entry.seen {
            NUDGES.fetch_add(1, Ordering::Relaxed);
            // The thread is registered, so it is alive (module invariant). Failure (ESRCH)
            // cannot happen then; there is nothing to do about it anyway.
            let _ = pthread_kill(entry.thread, Signal::SIGURG);
        }
        entry.seen = beats;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{spawn_executor, ExecutorConfig, ShardPlacement};

    /// An executor that never gives its beat a turn (a CPU-bound task) is nudged, and one
    /// that has stopped is no longer watched.
    #[test]
    fn a_stuck_executor_is_nudged_and_a_stopped_one_forgotten() {
        let config = ExecutorConfig {
            name: "stall-test".into(),
            placement: ShardPlacement::Unbound,
            preempt_timer: Duration::from_millis(2),
        };
        let before = nudges();
        let handle = spawn_executor(0, &config, || async {
            // Spin without yielding for several watchdog periods.
            let until = std::time::Instant::now() + CHECK * 4;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            let me = pthread_self();
            let watched = lock_registry().entries.iter().any(|e| e.thread == me);
            (me, watched)
        })
        .unwrap();
        let (thread, watched_while_running) = handle.join().unwrap().unwrap();
        assert!(watched_while_running, "a running executor is not watched");
        assert!(nudges() > before, "a stuck executor was never nudged");
        assert!(
            !lock_registry().entries.iter().any(|e| e.thread == thread),
            "a stopped executor is still watched"
        );
    }
}
