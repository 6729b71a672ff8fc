//! The closed-loop driver shared by every workload: threads, timing, histograms, report.
//!
//! Each connection is one OS thread that owns one [`Op`] (its connection and workload state)
//! and keeps `pipeline` operations in flight: it starts operations until the window is full,
//! waits for the oldest, records its latency and starts the next. Pipeline 1 is strict
//! request/response. Being closed-loop, latencies are service times under the offered
//! concurrency; there is no coordinated-omission correction.
//!
//! Phases: every thread sets up its connection, then all start together; for `warmup` nothing
//! is recorded; then the measured phase lasts `duration`, or until `ops` operations were
//! started. An operation counts when it was started in the measured phase and, with a
//! duration, finished before its end; operations still in flight at the end are waited for and
//! dropped. Errors are counted whenever they happen.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::constants::{
    CONNECTIONS_MAX, CONSECUTIVE_ERRORS_MAX, DRIVER_THREAD_STACK_BYTES, OPS_MAX, PIPELINE_MAX,
};
use crate::error::{BenchError, OpError};
use crate::report::{OpKind, Report, Tally};

/// One connection's workload: it starts operations and finishes them oldest first.
///
/// Contract: `finish` is called exactly once for every successful `start`, in start order;
/// at most `pipeline` operations are started and not yet finished.
pub trait Op {
    /// What the driver holds for an operation in flight.
    type InFlight;

    /// Sends the next operation without waiting for its answer.
    fn start(&mut self) -> Result<(OpKind, Self::InFlight), OpError>;

    /// Waits for the answer of an operation started earlier (the oldest in flight).
    fn finish(&mut self, op: Self::InFlight) -> Result<(), OpError>;
}

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this much measured time.
    After(Duration),
    /// Once this many operations were started in the measured phase (over all connections).
    Ops(u64),
}

/// How to drive a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Connections, one thread each.
    pub connections: usize,
    /// Operations each connection keeps in flight.
    pub pipeline: usize,
    /// Unrecorded time before the measured phase.
    pub warmup: Duration,
    /// End of the measured phase.
    pub stop: Stop,
}

impl DriverConfig {
    /// Checks every bound; the error names the flag to change.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::InvalidArgs(m));
        if !(1..=CONNECTIONS_MAX).contains(&self.connections) {
            return bad(format!(
                "--connections must be between 1 and {CONNECTIONS_MAX}, not {}",
                self.connections
            ));
        }
        if !(1..=PIPELINE_MAX).contains(&self.pipeline) {
            return bad(format!(
                "--pipeline must be between 1 and {PIPELINE_MAX}, not {}",
                self.pipeline
            ));
        }
        match self.stop {
            Stop::After(d) if d.is_zero() => bad("--duration must be above 0".into()),
            Stop::Ops(n) if !(1..=OPS_MAX).contains(&n) => {
                bad(format!("--ops must be between 1 and {OPS_MAX}, not {n}"))
            }
            _ => Ok(()),
        }
    }
}

/// The start signal all threads wait on: `None` until decided, then the common start instant
/// or `Err` when some connection failed to set up.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<Option<Result<Instant, ()>>>,
    opened: Condvar,
}

impl Gate {
    fn decide(&self, outcome: Result<Instant, ()>) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.opened.notify_all();
    }

    fn wait(&self) -> Result<Instant, ()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = *state {
                return outcome;
            }
            state = self
                .opened
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What every worker shares.
#[derive(Debug)]
struct Shared<'a> {
    config: &'a DriverConfig,
    gate: Gate,
    /// Operations started in the measured phase (for [`Stop::Ops`]).
    measured_started: AtomicU64,
}

/// One worker's result: its tally and when it finished its last operation.
#[derive(Debug)]
struct WorkerOutcome {
    tally: Tally,
    last_done: Instant,
}

/// Runs `open(i)` for every connection `i` (each on its own thread), then drives the
/// resulting workloads together and reports what they measured.
pub fn drive<O, F>(title: &str, config: &DriverConfig, open: F) -> Result<Report, BenchError>
where
    O: Op,
    F: Fn(usize) -> Result<O, OpError> + Sync,
{
    config.validate()?;
    let shared = Shared {
        config,
        gate: Gate::default(),
        measured_started: AtomicU64::new(0),
    };
    let (setup_tx, setup_rx) = mpsc::channel::<Result<(), (usize, OpError)>>();
    let (start, outcomes) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(config.connections);
        let mut spawn_error = None;
        for index in 0..config.connections {
            let (shared, open, setup_tx) = (&shared, &open, setup_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("bench-conn-{index}"))
                .stack_size(DRIVER_THREAD_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    let op = open(index);
                    let ok = op.as_ref().map(|_| ()).map_err(|e| (index, e.clone()));
                    let _ = setup_tx.send(ok);
                    // Dropped now so that a thread panicking in `open` ends the setup wait.
                    drop(setup_tx);
                    let start = shared.gate.wait().ok()?;
                    let mut op = op.ok()?;
                    Some(run_worker(&mut op, shared, start))
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(BenchError::io("cannot start a driver thread")(e));
                    break;
                }
            }
        }
        drop(setup_tx);
        let mut setup_error = spawn_error;
        for _ in 0..handles.len() {
            match setup_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err((index, why))) => {
                    setup_error.get_or_insert(BenchError::Setup { index, why: why.0 });
                }
                Err(_) => {
                    setup_error.get_or_insert(BenchError::Setup {
                        index: usize::MAX,
                        why: "a driver thread died during setup".into(),
                    });
                    break;
                }
            }
        }
        let start = Instant::now();
        shared.gate.decide(if setup_error.is_some() {
            Err(())
        } else {
            Ok(start)
        });
        let outcomes: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect();
        match setup_error {
            Some(e) => Err(e),
            None => Ok((start, outcomes)),
        }
    })?;
    let measure_from = start + config.warmup;
    let mut tally = Tally::new();
    let mut last_done = measure_from;
    for outcome in outcomes {
        match outcome {
            Some(o) => {
                tally.merge(&o.tally);
                last_done = last_done.max(o.last_done);
            }
            None => {
                tally.record_error(Duration::MAX, "a driver thread panicked");
                tally.record_give_up();
            }
        }
    }
    let elapsed = match config.stop {
        Stop::After(d) => d,
        Stop::Ops(_) => last_done.saturating_duration_since(measure_from),
    };
    Ok(Report {
        title: title.to_owned(),
        connections: config.connections,
        pipeline: config.pipeline,
        elapsed,
        tally,
    })
}

/// The closed loop of one connection.
fn run_worker<O: Op>(op: &mut O, shared: &Shared<'_>, start: Instant) -> WorkerOutcome {
    let config = shared.config;
    let measure_from = start + config.warmup;
    let deadline = match config.stop {
        Stop::After(d) => Some(measure_from + d),
        Stop::Ops(_) => None,
    };
    let mut tally = Tally::new();
    let mut inflight: VecDeque<(OpKind, Instant, O::InFlight)> =
        VecDeque::with_capacity(config.pipeline);
    let mut consecutive_errors = 0u32;
    let mut starting = true;
    let mut now = Instant::now();
    let mut last_done = now;
    loop {
        while starting && inflight.len() < config.pipeline {
            if !may_start(shared, now, measure_from, deadline) {
                starting = false;
                break;
            }
            match op.start() {
                Ok((kind, handle)) => inflight.push_back((kind, now, handle)),
                Err(e) => {
                    tally.record_error(now - start, &e.0);
                    consecutive_errors += 1;
                    if consecutive_errors >= CONSECUTIVE_ERRORS_MAX {
                        tally.record_give_up();
                        starting = false;
                    }
                }
            }
            now = Instant::now();
        }
        let Some((kind, started, handle)) = inflight.pop_front() else {
            break;
        };
        let result = op.finish(handle);
        now = Instant::now();
        last_done = now;
        match result {
            Ok(()) => {
                consecutive_errors = 0;
                let measured = started >= measure_from && deadline.is_none_or(|d| now <= d);
                if measured {
                    tally.record(kind, now - started);
                }
            }
            Err(e) => {
                tally.record_error(now - start, &e.0);
                consecutive_errors += 1;
                if starting && consecutive_errors >= CONSECUTIVE_ERRORS_MAX {
                    tally.record_give_up();
                    starting = false;
                }
            }
        }
    }
    WorkerOutcome { tally, last_done }
}

/// Whether another operation may start at `now`.
fn may_start(
    shared: &Shared<'_>,
    now: Instant,
    measure_from: Instant,
    deadline: Option<Instant>,
) -> bool {
    if now < measure_from {
        return true; // warm-up
    }
    match (shared.config.stop, deadline) {
        (_, Some(deadline)) => now < deadline,
        (Stop::Ops(n), None) => shared.measured_started.fetch_add(1, Ordering::Relaxed) < n,
        (Stop::After(_), None) => unreachable!("a duration always sets a deadline"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workload that answers instantly, failing every `fail_every`-th operation.
    struct Fake {
        started: u64,
        fail_every: u64,
    }

    impl Op for Fake {
        type InFlight = u64;
        fn start(&mut self) -> Result<(OpKind, u64), OpError> {
            self.started += 1;
            Ok((OpKind::Echo, self.started))
        }
        fn finish(&mut self, n: u64) -> Result<(), OpError> {
            if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
                Err(OpError(format!("op {n} failed")))
            } else {
                Ok(())
            }
        }
    }

    fn config(stop: Stop) -> DriverConfig {
        DriverConfig {
            connections: 3,
            pipeline: 4,
            warmup: Duration::ZERO,
            stop,
        }
    }

    #[test]
    fn validate_names_the_flag_out_of_range() {
        let ok = config(Stop::Ops(10));
        assert!(ok.validate().is_ok());
        for (c, flag) in [
            (
                DriverConfig {
                    connections: 0,
                    ..ok.clone()
                },
                "--connections",
            ),
            (
                DriverConfig {
                    connections: CONNECTIONS_MAX + 1,
                    ..ok.clone()
                },
                "--connections",
            ),
            (
                DriverConfig {
                    pipeline: 0,
                    ..ok.clone()
                },
                "--pipeline",
            ),
            (
                DriverConfig {
                    pipeline: PIPELINE_MAX + 1,
                    ..ok.clone()
                },
                "--pipeline",
            ),
            (
                DriverConfig {
                    stop: Stop::Ops(0),
                    ..ok.clone()
                },
                "--ops",
            ),
            (
                DriverConfig {
                    stop: Stop::After(Duration::ZERO),
                    ..ok.clone()
                },
                "--duration",
            ),
        ] {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err} should name {flag}");
        }
    }

    #[test]
    fn op_count_is_exact_over_all_connections() {
        let report = drive("fake", &config(Stop::Ops(1000)), |_| {
            Ok(Fake {
                started: 0,
                fail_every: 0,
            })
        })
        .unwrap();
        assert_eq!(report.tally.ops(OpKind::Echo), 1000);
        assert_eq!(report.tally.errors(), 0);
        assert_eq!(report.connections, 3);
    }

    #[test]
    fn errors_are_counted_and_do_not_stop_a_healthy_connection() {
        let report = drive("fake", &config(Stop::Ops(300)), |_| {
            Ok(Fake {
                started: 0,
                fail_every: 10,
            })
        })
        .unwrap();
        let t = &report.tally;
        assert_eq!(t.ops(OpKind::Echo) + t.errors(), 300);
        assert!(t.errors() >= 27, "about a tenth failed: {}", t.errors());
        assert!(t.first_error().unwrap().ends_with("failed"));
        assert_eq!(t.connections_given_up(), 0);
    }

    #[test]
    fn a_connection_that_always_fails_gives_up() {
        let report = drive(
            "fake",
            &config(Stop::After(Duration::from_secs(60))),
            |_| {
                Ok(Fake {
                    started: 0,
                    fail_every: 1,
                })
            },
        )
        .unwrap();
        assert_eq!(report.tally.connections_given_up(), 3);
        assert_eq!(
            report.tally.errors(),
            3 * u64::from(CONSECUTIVE_ERRORS_MAX) + 3 * 3,
            "each gives up at the bound, then drains the 3 others in flight"
        );
    }

    #[test]
    fn a_failed_setup_fails_the_run_and_releases_every_thread() {
        let err = drive("fake", &config(Stop::After(Duration::from_secs(60))), |i| {
            if i == 1 {
                Err(OpError("refused".into()))
            } else {
                Ok(Fake {
                    started: 0,
                    fail_every: 0,
                })
            }
        })
        .unwrap_err();
        assert!(matches!(err, BenchError::Setup { index: 1, .. }), "{err}");
    }

    #[test]
    fn duration_runs_for_about_the_duration() {
        let begin = Instant::now();
        let cfg = DriverConfig {
            warmup: Duration::from_millis(50),
            ..config(Stop::After(Duration::from_millis(200)))
        };
        let report = drive("fake", &cfg, |_| {
            Ok(Fake {
                started: 0,
                fail_every: 0,
            })
        })
        .unwrap();
        let took = begin.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(report.elapsed, Duration::from_millis(200));
        assert!(report.tally.ops(OpKind::Echo) > 0);
    }
}
