//! One driver thread: it connects its sessions, waits for the phase to start, then runs an
//! epoll loop over them until the phase ends. See the parent module for the timing rules.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::session::{Finish, Job, Schedule, Session, Sock};
use super::shared::Shared;
use super::{Clock, Control, PhaseConfig};
use crate::check::VerifyTally;
use crate::constants::{CONNECT_TIMEOUT, POLL_IDLE_MAX, SPIN_BELOW};
use crate::report::Tally;

/// One driver thread: connects its sessions, then runs them until the phase ends. Returns
/// its tally, its verdicts, and when its last measured operation finished.
pub(super) fn thread_main(
    cfg: &PhaseConfig,
    shared: &Shared,
    control: &Control,
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
    let go = control.gate.arrive_and_wait();
    let (mut tally, mut verify) = (Tally::new(), VerifyTally::default());
    let (Some(clock), Ok((poll, sessions))) = (go, connected) else {
        return (tally, verify, Instant::now());
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
        // Open loop: sessions are spread evenly over one interval, not all due at once.
        let schedule = per_session.map(|interval| Schedule {
            next: Instant::now(),
            interval,
            offset: interval.mul_f64(global as f64 / cfg.connections.max(1) as f64),
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
        // Open-loop schedules start together, from the phase's start.
        for s in &mut self.sessions {
            if let Some(sch) = &mut s.schedule {
                sch.next = self.clock.start + sch.offset;
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
                if drain_deadline.is_none() {
                    self.count_missed();
                }
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

    /// Open loop: counts operations due in the measured window that never started.
    fn count_missed(&mut self) {
        let end = self.clock.until.unwrap_or_else(Instant::now);
        let missed: u64 = self
            .sessions
            .iter()
            .filter_map(|s| s.schedule.as_ref())
            .map(|sch| sch.due_between(self.clock.from, end))
            .sum();
        self.tally.record_missed(missed);
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
