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

pub mod session;
pub mod shared;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mio::{Events, Interest, Poll, Token};

use crate::check::VerifyTally;
use crate::constants::{CONNECT_TIMEOUT, POLL_IDLE_MAX, SPIN_BELOW};
use crate::error::BenchError;
use crate::report::{Report, Tally};
use session::{Finish, Job, Schedule, Session, Sock};
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
    clock: OnceLock<Clock>,
    abort: AtomicBool,
    interrupted: Arc<AtomicBool>,
    /// Measured operations that may still start (`PhaseStop::Ops`).
    ops_left: Option<AtomicU64>,
    completed: AtomicU64,
    setup_errors: Mutex<Vec<String>>,
}

impl Control {
    fn stopping(&self, now: Instant, clock: &Clock) -> bool {
        self.abort.load(Ordering::Relaxed)
            || self.interrupted.load(Ordering::Relaxed)
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
        clock: OnceLock::new(),
        abort: AtomicBool::new(false),
        interrupted: interrupted.clone(),
        ops_left: match cfg.stop {
            PhaseStop::Ops(n) => Some(AtomicU64::new(n)),
            _ => None,
        },
        completed: AtomicU64::new(0),
        setup_errors: Mutex::new(Vec::new()),
    });
    let barrier = Arc::new(Barrier::new(threads + 1));
    let (done_tx, done_rx) = mpsc::channel();
    let mut jobs: Vec<Vec<(usize, Job)>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..cfg.connections {
        jobs[i % threads].push((i, job_of(i)));
    }
    let mut handles = Vec::new();
    for (t, jobs) in jobs.into_iter().enumerate() {
        let (cfg, shared, control, barrier, done) = (
            cfg.clone(),
            shared.clone(),
            control.clone(),
            barrier.clone(),
            done_tx.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                let out = thread_main(&cfg, &shared, &control, &barrier, jobs);
                let _ = done.send(());
                out
            })
            .map_err(BenchError::io("starting a driver thread"))?;
        handles.push(handle);
    }
    drop(done_tx);
    barrier.wait(); // every session connected (or failed to)
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
    if !setup_errors.is_empty() {
        control.abort.store(true, Ordering::Relaxed);
    }
    let _ = control.clock.set(clock);
    barrier.wait(); // go
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

/// One driver thread: connects its sessions, then runs them until the phase ends. Returns
/// its tally, its verdicts, and when its last measured operation finished.
fn thread_main(
    cfg: &PhaseConfig,
    shared: &Shared,
    control: &Control,
    barrier: &Barrier,
    jobs: Vec<(usize, Job)>,
) -> (Tally, VerifyTally, Instant) {
    let connected = connect_all(cfg, shared, jobs);
    if let Err(e) = &connected {
        control
            .setup_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e.clone());
    }
    barrier.wait();
    barrier.wait();
    let (mut tally, mut verify) = (Tally::new(), VerifyTally::default());
    let Some(clock) = control.clock.get().copied() else {
        return (tally, verify, Instant::now());
    };
    let (Ok((poll, sessions)), false) = (connected, control.abort.load(Ordering::Relaxed)) else {
        return (tally, verify, clock.start);
    };
    let mut driver = Driver {
        cfg,
        shared,
        control,
        clock,
        poll,
        sessions,
        tally: &mut tally,
        verify: &mut verify,
        last_measured: clock.from,
    };
    driver.run();
    let last = driver.last_measured;
    (tally, verify, last)
}

/// Sessions per socket index in a mio token.
const TOKEN_STRIDE: usize = 1 << 12;

fn connect_all(
    cfg: &PhaseConfig,
    shared: &Shared,
    jobs: Vec<(usize, Job)>,
) -> Result<(Poll, Vec<Session>), String> {
    let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let per_session = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.connections as f64 / r));
    let mut sessions = Vec::new();
    for (local, (global, job)) in jobs.into_iter().enumerate() {
        let mut socks = Vec::new();
        for (k, addr) in shared.endpoints.addrs.iter().enumerate() {
            let mut stream = connect(*addr).map_err(|e| format!("connection {global}: {e}"))?;
            let token = Token(local * TOKEN_STRIDE + k);
            poll.registry()
                .register(&mut stream, token, Interest::READABLE)
                .map_err(|e| format!("epoll register: {e}"))?;
            socks.push(Sock::new(
                stream,
                cfg.protocol.codec(shared.value_size),
                token,
            ));
        }
        // Open loop: sessions start spread over one interval, not all at once.
        let schedule = per_session.map(|interval| Schedule {
            next: Instant::now() + interval.mul_f64(global as f64 / cfg.connections.max(1) as f64),
            interval,
        });
        sessions.push(Session::new(
            socks,
            job,
            schedule,
            cfg.protocol.uses_contexts(),
        ));
    }
    Ok((poll, sessions))
}

fn connect(addr: SocketAddr) -> Result<mio::net::TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_nodelay(true)
        .and_then(|()| s.set_nonblocking(true))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(mio::net::TcpStream::from_std(s))
}

/// One thread's loop over its sessions.
struct Driver<'a> {
    cfg: &'a PhaseConfig,
    shared: &'a Shared,
    control: &'a Control,
    clock: Clock,
    poll: Poll,
    sessions: Vec<Session>,
    tally: &'a mut Tally,
    verify: &'a mut VerifyTally,
    last_measured: Instant,
}

impl Driver<'_> {
    fn run(&mut self) {
        // Open-loop schedules start now that everyone is connected.
        let shift = Instant::now().saturating_duration_since(self.clock.start);
        for s in &mut self.sessions {
            if let Some(sch) = &mut s.schedule {
                sch.next = sch.next.max(self.clock.start) + shift;
            }
        }
        let mut events = Events::with_capacity(1024);
        let mut drain_deadline = None;
        let mut next_timeout_check = Instant::now();
        loop {
            let now = Instant::now();
            let stopping = self.control.stopping(now, &self.clock);
            if !stopping {
                self.fill(now);
            }
            self.flush_all(now);
            if self.sessions.iter().all(|s| s.idle_and_done(stopping)) {
                return;
            }
            if stopping {
                let deadline = *drain_deadline.get_or_insert(now + self.cfg.timeout);
                if now >= deadline {
                    self.fail_all("no answer before the end of the run", now);
                    return;
                }
            }
            if now >= next_timeout_check {
                self.check_timeouts(now);
                next_timeout_check = now + Duration::from_millis(100);
            }
            let timeout = self.poll_timeout(now, stopping);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.fail_all(&format!("epoll failed: {e}"), now);
                    return;
                }
            }
            self.handle(&events);
        }
    }

    /// Starts operations in every session that has room (and, open loop, is due).
    fn fill(&mut self, now: Instant) {
        for s in &mut self.sessions {
            if self.cfg.batch && s.inflight() > 0 {
                continue;
            }
            while !s.dead && !s.exhausted && s.inflight() < self.cfg.pipeline {
                let due = match &mut s.schedule {
                    None => now,
                    Some(sch) if sch.next <= now => {
                        let due = sch.next;
                        sch.next += sch.interval;
                        due
                    }
                    Some(_) => break,
                };
                let measured = self.clock.measures(due);
                if measured && !self.control.claim() {
                    break;
                }
                if !s.start(self.shared, due, now, measured) {
                    break;
                }
            }
        }
    }

    fn flush_all(&mut self, now: Instant) {
        for i in 0..self.sessions.len() {
            let s = &mut self.sessions[i];
            if s.dead || !s.has_output() {
                continue;
            }
            for k in 0..s.socks.len() {
                if let Err(e) = s.flush(k, self.poll.registry()) {
                    let mut f = finish_ctx(now, &self.clock, self.shared, self.tally, self.verify);
                    s.fail(&e, &mut f);
                    break;
                }
            }
        }
    }

    fn handle(&mut self, events: &Events) {
        let now = Instant::now();
        let mut completed = 0;
        for ev in events {
            let (i, k) = (ev.token().0 / TOKEN_STRIDE, ev.token().0 % TOKEN_STRIDE);
            let mut f = finish_ctx(now, &self.clock, self.shared, self.tally, self.verify);
            let Some(s) = self.sessions.get_mut(i) else {
                continue;
            };
            if s.dead {
                continue;
            }
            let mut result = Ok(());
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                result = s.on_readable(k, &mut f);
            }
            if result.is_ok() && ev.is_writable() {
                result = s.flush(k, self.poll.registry());
            }
            if let Err(e) = result {
                s.fail(&e, &mut f);
            }
            completed += f.completed;
        }
        if completed > 0 {
            self.last_measured = now;
            self.control
                .completed
                .fetch_add(completed, Ordering::Relaxed);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.cfg.timeout;
        for i in 0..self.sessions.len() {
            let late = self.sessions[i]
                .oldest_sent()
                .is_some_and(|t| now.saturating_duration_since(t) > timeout);
            if late {
                let why = format!("no answer within {:.1} s", timeout.as_secs_f64());
                let mut f = finish_ctx(now, &self.clock, self.shared, self.tally, self.verify);
                self.sessions[i].fail(&why, &mut f);
            }
        }
    }

    fn fail_all(&mut self, why: &str, now: Instant) {
        for i in 0..self.sessions.len() {
            if self.sessions[i].inflight() > 0 {
                let mut f = finish_ctx(now, &self.clock, self.shared, self.tally, self.verify);
                self.sessions[i].fail(why, &mut f);
            }
        }
    }

    /// How long epoll may sleep: until the next scheduled operation or phase boundary.
    fn poll_timeout(&self, now: Instant, stopping: bool) -> Duration {
        let mut wake = now + POLL_IDLE_MAX;
        if !stopping {
            if now < self.clock.from {
                wake = wake.min(self.clock.from);
            }
            if let Some(u) = self.clock.until {
                wake = wake.min(u);
            }
            for s in &self.sessions {
                if let Some(sch) = &s.schedule {
                    if !s.dead && s.inflight() < self.cfg.pipeline {
                        wake = wake.min(sch.next);
                    }
                }
            }
        }
        let d = wake.saturating_duration_since(now);
        if d < SPIN_BELOW {
            Duration::ZERO
        } else {
            d - Duration::from_millis(1)
        }
    }
}

fn finish_ctx<'a>(
    now: Instant,
    clock: &'a Clock,
    shared: &'a Shared,
    tally: &'a mut Tally,
    verify: &'a mut VerifyTally,
) -> Finish<'a> {
    Finish {
        now,
        clock,
        shared,
        tally,
        verify,
        completed: 0,
    }
}
