//! One session: a logical client connection (one socket, or one per shard for the native
//! protocol), the operations it has in flight, and what it does when an answer arrives.
//!
//! Invariants: every operation started is finished exactly once, by an answer, a refusal or
//! the session's failure; a write's ledger entry is closed the same way (acknowledged, or
//! unknown outcome). A session that failed is never used again.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::{make_value, Verdict, VerifyTally};
use crate::engine::shared::Shared;
use crate::engine::Clock;
use crate::proto::{Answer, Call, Codec};
use crate::report::{OpKind, Tally};
use crate::workload::{key_of, Action, Chooser};

/// First size of a socket's receive buffer; it doubles up to [`READ_BUFFER_BYTES_MAX`].
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Largest receive buffer: one whole answer must fit (a frame or value at its limit).
const READ_BUFFER_BYTES_MAX: usize = 32 << 20;

/// What a session does.
#[derive(Debug)]
pub enum Job {
    /// Write records `0..end`, taking numbers from the shared cursor.
    Load {
        /// Records to write.
        end: u64,
    },
    /// The YCSB workload.
    Workload(Box<Chooser>),
    /// Read back `list[i]` for `i` from the shared cursor, and judge each.
    Verify {
        /// Records to read.
        list: Arc<Vec<u64>>,
    },
    /// Send `payload` to be echoed.
    Echo {
        /// The bytes.
        payload: Vec<u8>,
    },
}

/// An operation in flight.
#[derive(Debug)]
struct Op {
    kind: OpKind,
    record: u64,
    /// The write in flight, if the current call is a write.
    version: Option<u32>,
    due: Instant,
    first_sent: Instant,
    sent: Instant,
    measured: bool,
}

/// One socket of a session.
pub struct Sock {
    pub(crate) stream: mio::net::TcpStream,
    codec: Box<dyn Codec>,
    out: Vec<u8>,
    out_at: usize,
    inb: Vec<u8>,
    lo: usize,
    hi: usize,
    /// Calls sent and not answered: (request id, op slot), oldest first.
    waiting: VecDeque<(u64, usize)>,
    /// epoll also watches for room to write (only while the kernel refused output: with
    /// write interest always on, every ACK on loopback would wake the loop).
    watching_writes: bool,
    token: mio::Token,
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Sock {
    /// A socket speaking `codec`, registered with epoll under `token` for reading.
    pub fn new(stream: mio::net::TcpStream, codec: Box<dyn Codec>, token: mio::Token) -> Self {
        Self {
            watching_writes: false,
            token,
            stream,
            codec,
            out: Vec::new(),
            out_at: 0,
            inb: vec![0; READ_BUFFER_BYTES],
            lo: 0,
            hi: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Makes room at the end of the receive buffer.
    fn make_room(&mut self) -> Result<(), String> {
        if self.hi < self.inb.len() {
            return Ok(());
        }
        if self.lo > 0 {
            self.inb.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
            return Ok(());
        }
        if self.inb.len() >= READ_BUFFER_BYTES_MAX {
            return Err(format!(
                "an answer is larger than {READ_BUFFER_BYTES_MAX} bytes"
            ));
        }
        self.inb.resize(self.inb.len() * 2, 0);
        Ok(())
    }
}

/// An open-loop schedule: the next operation is due at `next`, then every `interval`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// When the next operation is due.
    pub next: Instant,
    /// Time between operations.
    pub interval: Duration,
    /// This session's share of one interval, so that sessions are spread evenly over it.
    pub offset: Duration,
}

impl Schedule {
    /// Operations due in `[from, end)` that have not started.
    pub fn due_between(&self, from: Instant, end: Instant) -> u64 {
        let first = self.next.max(from);
        let late = end.saturating_duration_since(first);
        if late.is_zero() {
            return 0;
        }
        let n = late.as_nanos().div_ceil(self.interval.as_nanos().max(1));
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

/// A logical connection and its work.
#[derive(Debug)]
pub struct Session {
    pub(crate) socks: Vec<Sock>,
    slots: Vec<Option<Op>>,
    free: Vec<usize>,
    job: Job,
    next_id: u64,
    pub(crate) schedule: Option<Schedule>,
    /// The job has nothing more to start.
    pub(crate) exhausted: bool,
    /// A socket failed; nothing more happens here.
    pub(crate) dead: bool,
    /// Writes carry the context of the key's last answer (native context mode).
    uses_contexts: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    context: Vec<u8>,
    answers: Vec<(usize, Answer)>,
}

impl Session {
    /// A session over connected sockets.
    pub fn new(
        socks: Vec<Sock>,
        job: Job,
        schedule: Option<Schedule>,
        uses_contexts: bool,
    ) -> Self {
        Self {
            socks,
            slots: Vec::new(),
            free: Vec::new(),
            job,
            next_id: 1,
            schedule,
            exhausted: false,
            dead: false,
            uses_contexts,
            key: Vec::new(),
            value: Vec::new(),
            context: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// Operations in flight.
    pub fn inflight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether the session has nothing in flight and will start nothing more.
    pub fn idle_and_done(&self, stopping: bool) -> bool {
        self.dead || (self.inflight() == 0 && (stopping || self.exhausted))
    }

    /// The next operation to start, or `None` when the job is done.
    fn choose(&mut self, sh: &Shared) -> Option<(OpKind, u64, bool)> {
        Some(match &mut self.job {
            Job::Load { end } => (OpKind::Insert, sh.take(*end)?, true),
            Job::Verify { list } => {
                let i = sh.take(list.len() as u64)?;
                (OpKind::Read, list[usize::try_from(i).ok()?], false)
            }
            Job::Echo { .. } => (OpKind::Echo, 0, false),
            Job::Workload(chooser) => match chooser.next(&sh.records) {
                (Action::Read, n) => (OpKind::Read, n, false),
                (Action::Update, n) => (OpKind::Update, n, true),
                (Action::Insert, n) => (OpKind::Insert, n, true),
                (Action::ReadModifyWrite, n) => (OpKind::ReadModifyWrite, n, false),
            },
        })
    }

    /// Starts one operation due at `due`; false when the job is done.
    pub fn start(&mut self, sh: &Shared, due: Instant, now: Instant, measured: bool) -> bool {
        let Some((kind, record, write)) = self.choose(sh) else {
            self.exhausted = true;
            return false;
        };
        let op = Op {
            kind,
            record,
            version: None,
            due,
            first_sent: now,
            sent: now,
            measured,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(op);
                s
            }
            None => {
                self.slots.push(Some(op));
                self.slots.len() - 1
            }
        };
        self.send(sh, slot, write, now);
        true
    }

    /// Encodes the call of the operation in `slot` (a write when `write`).
    fn send(&mut self, sh: &Shared, slot: usize, write: bool, now: Instant) {
        let Some(op) = self.slots[slot].as_mut() else {
            return;
        };
        op.sent = now;
        let (s, call) = if let Job::Echo { payload } = &self.job {
            (0, Call::Echo { payload })
        } else {
            key_of(&sh.key_prefix, op.record, &mut self.key);
            let s = sh.endpoints.socket_of(&self.key);
            if write {
                let version = sh.ledger.begin(op.record);
                op.version = Some(version);
                make_value(
                    op.record,
                    version,
                    sh.ledger.nonce(),
                    sh.value_size,
                    &mut self.value,
                );
                if self.uses_contexts {
                    sh.contexts.load(op.record, &mut self.context);
                }
                let call = Call::Set {
                    key: &self.key,
                    value: &self.value,
                    context: &self.context,
                };
                (s, call)
            } else {
                (s, Call::Get { key: &self.key })
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let sock = &mut self.socks[s];
        sock.codec.encode(id, &call, &mut sock.out);
        sock.waiting.push_back((id, slot));
    }

    /// Writes what socket `s` has pending, until the kernel takes no more; then watches for
    /// room to write only if output is left.
    pub fn flush(&mut self, s: usize, registry: &mio::Registry) -> Result<(), String> {
        let sock = &mut self.socks[s];
        while sock.out_at < sock.out.len() {
            match sock.stream.write(&sock.out[sock.out_at..]) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => sock.out_at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        let left = sock.out_at < sock.out.len();
        if !left {
            sock.out.clear();
            sock.out_at = 0;
        }
        if left != sock.watching_writes {
            let interest = if left {
                mio::Interest::READABLE | mio::Interest::WRITABLE
            } else {
                mio::Interest::READABLE
            };
            registry
                .reregister(&mut sock.stream, sock.token, interest)
                .map_err(|e| format!("epoll: {e}"))?;
            sock.watching_writes = left;
        }
        Ok(())
    }

    /// Whether any socket has output the kernel did not take yet.
    pub fn has_output(&self) -> bool {
        self.socks.iter().any(|s| !s.out.is_empty())
    }

    /// Reads what socket `s` received and finishes the operations answered.
    pub fn on_readable(&mut self, s: usize, ctx: &mut Finish<'_>) -> Result<(), String> {
        loop {
            let sock = &mut self.socks[s];
            sock.make_room()?;
            let spare = sock.inb.len() - sock.hi;
            let n = match sock.stream.read(&mut sock.inb[sock.hi..]) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            };
            sock.hi += n;
            self.decode(s)?;
            self.finish_answers(ctx);
            // A short read drained the socket; new data raises a new readiness event.
            if n < spare {
                return Ok(());
            }
        }
    }

    /// Moves every whole answer of socket `s` to `self.answers`, matched to its operation.
    fn decode(&mut self, s: usize) -> Result<(), String> {
        let sock = &mut self.socks[s];
        while let Some(d) = sock.codec.decode(&sock.inb[sock.lo..sock.hi])? {
            sock.lo += d.consumed;
            let pos = match d.id {
                Some(id) => sock.waiting.iter().position(|&(i, _)| i == id),
                None => (!sock.waiting.is_empty()).then_some(0),
            };
            let Some((_, slot)) = pos.and_then(|p| sock.waiting.remove(p)) else {
                return Err("the server answered a request that was not sent".into());
            };
            self.answers.push((slot, d.answer));
        }
        if sock.lo == sock.hi {
            (sock.lo, sock.hi) = (0, 0);
        }
        Ok(())
    }

    fn finish_answers(&mut self, ctx: &mut Finish<'_>) {
        let mut answers = std::mem::take(&mut self.answers);
        for (slot, answer) in answers.drain(..) {
            self.answer(slot, answer, ctx);
        }
        self.answers = answers;
    }

    /// Handles the answer to the call in flight of the operation in `slot`.
    fn answer(&mut self, slot: usize, answer: Answer, ctx: &mut Finish<'_>) {
        let Some(op) = self.slots[slot].as_mut() else {
            return;
        };
        let (now, sh) = (ctx.now, ctx.shared);
        let echo = matches!(self.job, Job::Echo { .. });
        // Every (call, answer) pair that does not belong together is a refusal, so the op
        // and its ledger entry are still closed exactly once.
        let answer = match (answer, op.version.is_some(), echo) {
            (a @ Answer::Refused(_), _, _)
            | (a @ Answer::Echoed, _, true)
            | (a @ Answer::Values { .. }, false, false)
            | (a @ Answer::Stored { .. }, true, false) => a,
            (other, _, _) => Answer::Refused(format!("unexpected reply {other:?}")),
        };
        let verifying = matches!(self.job, Job::Verify { .. });
        match answer {
            Answer::Refused(msg) => {
                if let Some(v) = op.version {
                    sh.ledger.unknown(op.record, v);
                }
                if verifying {
                    ctx.verify
                        .count(op.record, Verdict::Wrong(format!("not read: {msg}")));
                }
                ctx.tally.record_error(op.kind, now - ctx.clock.start, &msg);
            }
            Answer::Values { values, context } => {
                if self.uses_contexts {
                    sh.contexts.store(op.record, context);
                }
                if verifying {
                    let verdict = sh.ledger.judge(op.record, &values);
                    ctx.verify.count(op.record, verdict);
                }
                if op.measured {
                    ctx.tally.record_read_values(OpKind::Read, values.len());
                }
                if op.kind == OpKind::ReadModifyWrite {
                    self.send(sh, slot, true, now);
                    return;
                }
                if op.measured {
                    ctx.tally.record(OpKind::Read, now - op.due, now - op.sent);
                }
            }
            Answer::Stored { context } => {
                if let Some(v) = op.version {
                    sh.ledger.acked(op.record, v);
                }
                if self.uses_contexts {
                    sh.contexts.store(op.record, context);
                }
                if op.kind == OpKind::Insert {
                    sh.records.insert_acked(op.record);
                }
                if op.measured {
                    // A read-modify-write is one operation, timed from its read's start.
                    ctx.tally.record(op.kind, now - op.due, now - op.first_sent);
                }
            }
            Answer::Echoed => {
                if op.measured {
                    ctx.tally.record(OpKind::Echo, now - op.due, now - op.sent);
                }
            }
        }
        if op.measured {
            ctx.completed += 1;
        }
        self.slots[slot] = None;
        self.free.push(slot);
    }

    /// Ends the session: every operation in flight fails with `why`.
    pub fn fail(&mut self, why: &str, ctx: &mut Finish<'_>) {
        if self.dead {
            return;
        }
        self.dead = true;
        ctx.tally.record_connection_lost();
        for sock in &mut self.socks {
            sock.waiting.clear();
        }
        for slot in 0..self.slots.len() {
            if let Some(op) = self.slots[slot].take() {
                if let Some(v) = op.version {
                    ctx.shared.ledger.unknown(op.record, v);
                }
                if let Job::Verify { .. } = self.job {
                    ctx.verify
                        .count(op.record, Verdict::Wrong(format!("not read: {why}")));
                }
                ctx.tally
                    .record_error(op.kind, ctx.now - ctx.clock.start, why);
                self.free.push(slot);
            }
        }
    }

    /// The oldest send time of any call still waiting for its answer.
    pub fn oldest_sent(&self) -> Option<Instant> {
        self.socks
            .iter()
            .filter_map(|s| s.waiting.front())
            .filter_map(|&(_, slot)| self.slots[slot].as_ref().map(|op| op.sent))
            .min()
    }
}

/// What finishing an operation updates, for one thread.
#[derive(Debug)]
pub struct Finish<'a> {
    /// Now, for latencies.
    pub now: Instant,
    /// The phase's clock.
    pub clock: &'a Clock,
    /// The run's shared state.
    pub shared: &'a Shared,
    /// The thread's measurements.
    pub tally: &'a mut Tally,
    /// The thread's verification verdicts.
    pub verify: &'a mut VerifyTally,
    /// Measured operations finished since the last progress update.
    pub completed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_count_the_operations_they_missed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let s = Schedule {
            next: t0 + ms(10),
            interval: ms(5),
            offset: ms(0),
        };
        // Due at 10, 15, 20, 25 before 30; none before 10.
        assert_eq!(s.due_between(t0, t0 + ms(30)), 4);
        assert_eq!(s.due_between(t0, t0 + ms(10)), 0);
        // Slots due before the window opened are not counted.
        assert_eq!(s.due_between(t0 + ms(20), t0 + ms(30)), 2);
    }
}
