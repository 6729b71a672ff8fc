//! The runner's event loop: a few threads, each driving many sessions over non-blocking
//! sockets with epoll (through mio), the way redis-benchmark and memtier do, so the runner
//! costs little CPU per operation and is not what limits the server.
//!
//! A phase connects every session, then all threads start together. Closed loop: a session
//! keeps `pipeline` operations in flight, starting the next as soon as one finishes (or, with
//! `batch`, sends `pipeline` at once and the next batch when all are answered). Open
//! loop (`rate`): each session has a schedule, and an operation's latency counts from its
//! scheduled time, so a stalled server shows up as the queueing it causes (coordinated
//! omission corrected); at most `pipeline` are in flight, and late operations wait for a slot.
//! Below 2 ms to the next scheduled operation the loop polls without sleeping, because epoll
//! sleeps in whole milliseconds: open loop keeps its threads' cores busy.
//!
//! Measured window: operations due in `[start + warmup, start + warmup + duration)` (or the
//! first `ops` due after the warm-up) count when answered inside it; operations in flight at
//! the end are waited for (up to the operation timeout) and not counted.

mod driver;
pub mod session;
pub mod shared;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::check::VerifyTally;
use crate::error::BenchError;
use crate::report::{Report, Tally};
use driver::thread_main;
use session::Job;
use shared::{Protocol, Shared};

/// When a phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseStop {
    /// After this much measured time.
    After(Duration),
    /// Once this many operations were started in the measured window.
    Ops(u64),
    /// When every session's job has nothing more to do (load, verify).
    Exhausted,
}

/// How to drive one phase.
#[derive(Clone, Debug)]
pub struct PhaseConfig {
    /// What runs, for the report.
    pub title: String,
    /// The protocol and its options.
    pub protocol: Protocol,
    /// Sessions (logical connections).
    pub connections: usize,
    /// Operations each session keeps in flight at most.
    pub pipeline: usize,
    /// Pipelined requests go out in whole batches of `pipeline`, the next batch once every
    /// answer of the last one is in (as redis-benchmark does), instead of keeping the window
    /// full.
    pub batch: bool,
    /// Driver threads; sessions are dealt out round robin.
    pub threads: usize,
    /// Unrecorded time first.
    pub warmup: Duration,
    /// End of the measured window.
    pub stop: PhaseStop,
    /// Open loop at this many operations per second (all sessions), or closed loop.
    pub rate: Option<f64>,
    /// Longest wait for one answer before its session is given up.
    pub timeout: Duration,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// The phase's time line, fixed when every session is connected.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// When the threads started.
    pub start: Instant,
    /// Start of the measured window.
    pub from: Instant,
    /// End of the measured window, if timed.
    pub until: Option<Instant>,
}

impl Clock {
    fn measures(&self, due: Instant) -> bool {
        due >= self.from && self.until.is_none_or(|u| due < u)
    }
}

/// What the threads and the coordinating thread share while a phase runs.
#[derive(Debug)]
struct Control {
    gate: StartGate,
    interrupted: Arc<AtomicBool>,
    /// Measured operations that may still start (`PhaseStop::Ops`).
    ops_left: Option<AtomicU64>,
    completed: AtomicU64,
    setup_errors: Mutex<Vec<String>>,
}

impl Control {
    fn stopping(&self, now: Instant, clock: &Clock) -> bool {
        self.interrupted.load(Ordering::Relaxed)
            || clock.until.is_some_and(|u| now >= u)
            || self
                .ops_left
                .as_ref()
                .is_some_and(|n| n.load(Ordering::Relaxed) == 0)
    }

    /// Takes one measured operation from the budget; false when it is spent.
    fn claim(&self) -> bool {
        self.ops_left.as_ref().is_none_or(|n| {
            n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| x.checked_sub(1))
                .is_ok()
        })
    }
}

/// Where driver threads wait, once connected, for the phase to start (or be called off).
#[derive(Debug, Default)]
struct StartGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    arrived: usize,
    /// `Some(Some(clock))`: go; `Some(None)`: called off; `None`: not yet decided.
    decision: Option<Option<Clock>>,
}

impl StartGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A thread is connected; waits for the decision: the clock, or `None` if called off.
    fn arrive_and_wait(&self) -> Option<Clock> {
        let mut state = self.lock();
        state.arrived += 1;
        self.changed.notify_all();
        loop {
            if let Some(decision) = state.decision {
                return decision;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until `n` threads arrived.
    fn wait_arrivals(&self, n: usize) {
        let mut state = self.lock();
        while state.arrived < n {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Starts the phase with `clock`, or calls it off with `None`.
    fn open(&self, clock: Option<Clock>) {
        self.lock().decision = Some(clock);
        self.changed.notify_all();
    }
}

/// What a phase measured.
#[derive(Debug)]
pub struct PhaseResult {
    /// Latencies, errors and throughput.
    pub report: Report,
    /// Verdicts of a verify phase (empty otherwise).
    pub verify: VerifyTally,
}

/// Runs one phase: `job_of(i)` is session `i`'s job.
pub fn run_phase(
    cfg: &PhaseConfig,
    shared: &Arc<Shared>,
    interrupted: &Arc<AtomicBool>,
    mut job_of: impl FnMut(usize) -> Job,
) -> Result<PhaseResult, BenchError> {
    let threads = cfg.threads.clamp(1, cfg.connections.max(1));
    let control = Arc::new(Control {
        gate: StartGate::default(),
        interrupted: interrupted.clone(),
        ops_left: match cfg.stop {
            PhaseStop::Ops(n) => Some(AtomicU64::new(n)),
            _ => None,
        },
        completed: AtomicU64::new(0),
        setup_errors: Mutex::new(Vec::new()),
    });
    let (done_tx, done_rx) = mpsc::channel();
    let mut jobs: Vec<Vec<(usize, Job)>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..cfg.connections {
        jobs[i % threads].push((i, job_of(i)));
    }
    let mut handles = Vec::new();
    let mut spawn_error = None;
    for (t, jobs) in jobs.into_iter().enumerate() {
        let (cfg, shared, control, done) = (
            cfg.clone(),
            shared.clone(),
            control.clone(),
            done_tx.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                let out = thread_main(&cfg, &shared, &control, jobs);
                let _ = done.send(());
                out
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The threads already started are called off below, then joined.
                spawn_error = Some(e);
                break;
            }
        }
    }
    drop(done_tx);
    control.gate.wait_arrivals(handles.len()); // every session connected (or failed to)
    let setup_errors = std::mem::take(
        &mut *control
            .setup_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let start = Instant::now();
    let from = start + cfg.warmup;
    let until = match cfg.stop {
        PhaseStop::After(d) => Some(from + d),
        _ => None,
    };
    let clock = Clock { start, from, until };
    let go = setup_errors.is_empty() && spawn_error.is_none();
    control.gate.open(go.then_some(clock));
    if let Some(e) = spawn_error {
        for h in handles {
            let _ = h.join();
        }
        return Err(BenchError::io("starting a driver thread")(e));
    }
    show_progress(cfg, &control, &done_rx, &clock, handles.len());
    let mut tally = Tally::new();
    let mut verify = VerifyTally::default();
    let mut last = from;
    for h in handles {
        let (t, v, end) = h.join().map_err(|_| BenchError::Setup {
            index: 0,
            why: "a driver thread panicked".into(),
        })?;
        tally.merge(&t);
        verify.merge(&v);
        last = last.max(end);
    }
    if let Some(first) = setup_errors.into_iter().next() {
        return Err(BenchError::Setup {
            index: 0,
            why: first,
        });
    }
    let elapsed = match cfg.stop {
        // Ctrl-C ends the window early: rates are over the time actually measured.
        PhaseStop::After(d) if interrupted.load(Ordering::Relaxed) => {
            d.min(Instant::now().saturating_duration_since(from))
        }
        PhaseStop::After(d) => d,
        _ => last.saturating_duration_since(from),
    };
    Ok(PhaseResult {
        report: Report {
            title: cfg.title.clone(),
            connections: cfg.connections,
            pipeline: cfg.pipeline,
            rate: cfg.rate,
            elapsed,
            tally,
        },
        verify,
    })
}

/// Draws a progress bar until every thread is done.
fn show_progress(
    cfg: &PhaseConfig,
    control: &Control,
    done: &mpsc::Receiver<()>,
    clock: &Clock,
    threads: usize,
) {
    let bar = if cfg.progress {
        let (len, unit) = match cfg.stop {
            PhaseStop::After(d) => ((cfg.warmup + d).as_secs().max(1), "s"),
            PhaseStop::Ops(n) => (n, "ops"),
            PhaseStop::Exhausted => (0, "ops"),
        };
        let bar = if len == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(len)
        };
        let template = format!(
            "{{spinner}} {} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}",
            cfg.title
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let mut finished = 0;
    while finished < threads {
        match done.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => finished += 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(bar) = &bar {
            let ops = control.completed.load(Ordering::Relaxed);
            match cfg.stop {
                PhaseStop::After(_) => bar.set_position(clock.start.elapsed().as_secs()),
                _ => bar.set_position(ops),
            }
            let secs = clock.from.elapsed().as_secs_f64();
            if secs > 0.0 && Instant::now() > clock.from {
                bar.set_message(format!("{:.0} ops/s", ops as f64 / secs));
            } else {
                bar.set_message("warming up");
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
