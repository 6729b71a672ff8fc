//! Group-commit writer for a segmented, append-only log.
//!
//! Appenders copy framed records into a pending buffer and get a [`Ticket`]; one flusher task
//! per log takes everything pending as one batch, writes it with one write and makes it
//! durable with one `fdatasync`. Records that arrive while that write and sync run form the
//! next batch: one sync covers every record that arrived while the previous one ran.
//!
//! Segment files go through the file-system seam ([`Fs`]), so the same writer runs on the
//! kernel ([`RealFs`](crate::fs::RealFs)) and on the crash simulator
//! ([`SimFs`](crate::fs::SimFs)). The writer remembers which segments it started
//! ([`GroupCommitLog::take_started_segments`]) so that its owner can release old ones; it
//! never removes a file itself.
//!
//! Invariants:
//! - At most one write is in flight per log, so only the last batch can ever be torn.
//! - Records become durable in append order: `durable_records` only grows, and a ticket is
//!   durable iff its sequence number is below it.
//! - A segment is started only after every batch of the previous one is durable, and its
//!   directory entry is fsynced before any record in it is reported durable. It is reported
//!   by [`GroupCommitLog::take_started_segments`] only from then on, so a segment listed there
//!   exists, with a valid header, whatever a crash does.
//! - A failed operation (other than "no space") is never retried and trusted: the log
//!   becomes failed for good and every waiter, present and future, gets [`LogError::Failed`].
//!   That includes [`FsError::Crashed`], the simulator's power cut.
//! - "No space" ([`FsError::NoSpace`]: ENOSPC, EDQUOT, or a short write) is not sticky. The batch
//!   that hit it, and every record appended before the failure was seen, is *refused*: its waiters
//!   get [`LogError::NoSpace`], never success, unless a later write made it durable. Its records
//!   are kept, in order, at the front of the pending buffer, and the flusher retries them every
//!   [`NO_SPACE_RETRY`]; while it waits, appends are refused at once with [`LogError::NoSpace`], so
//!   nothing joins the retained records and the caller's state (the shard's memtable) never gets
//!   ahead of the log by more than they are.
//! - After a failed write, the segment is cut back (truncated, and the cut `fdatasync`ed) to
//!   the end of its last durable batch before anything else is written: no byte of a failed
//!   write survives beside a later write, so recovery only ever sees failed bytes as a torn
//!   tail, never as a damaged batch followed by a valid one or as a batch numbered twice.
//! - Appenders that wait for room in [`GroupCommitLog::ready`] are let through first come,
//!   first served ([`Turns`]): a later caller never takes room freed for an earlier one, so
//!   appends of one client's writes stay in the order the client issued them.
//!
//! The bytes of segment headers and batch headers are drawn by the caller's [`LogFormat`], so
//! the reader of this log lives beside that format, not here.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use glommio::task::JoinHandle;

use crate::fs::{parent_dir, Fs, FsError, FsFile, FsOp, OpenMode};
use crate::notify::Notify;
use crate::turns::Turns;

/// How long the flusher waits before it retries records refused for lack of disk space. Short,
/// so writes resume soon after the operator frees space; one failed write of at most one batch
/// per interval costs nothing while the disk stays full.
pub const NO_SPACE_RETRY: Duration = Duration::from_millis(100);

/// How the caller's log format frames batches and segments.
pub trait LogFormat: 'static {
    /// Bytes reserved before each batch's records for [`LogFormat::seal_batch`].
    fn batch_header_bytes(&self) -> usize;
    /// Every batch starts at a multiple of this many bytes from the segment start.
    fn batch_alignment(&self) -> usize;
    /// Fills `header` for a batch holding `records`, whose first record has sequence number
    /// `first_record`.
    fn seal_batch(&self, header: &mut [u8], records: &[u8], first_record: u64);
    /// Bytes that open segment number `segment`, whose first record is `first_record`.
    fn segment_header(&self, segment: u64, first_record: u64) -> Vec<u8>;
    /// The file that holds segment number `segment`.
    fn segment_path(&self, segment: u64) -> PathBuf;
}

/// Where a new writer starts: the segment number to create and the next record's number.
/// `Default` is the start of a fresh log: segment 0, record 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// Number of the segment the first batch goes to (created fresh).
    pub segment: u64,
    /// Sequence number of the next record appended.
    pub next_record: u64,
}

/// A segment and the sequence number of its first record: what the owner of a log needs to
/// know which segments hold only records below some number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentStart {
    /// The segment's number.
    pub segment: u64,
    /// Sequence number of its first record (of the next record at its start, if it holds
    /// none).
    pub first_record: u64,
}

/// Sizes of a log writer.
#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    /// A segment is closed once the next batch would take it past this size.
    pub segment_bytes: u64,
    /// Appenders wait in [`GroupCommitLog::ready`] while this much is pending. It also bounds
    /// one batch and one record.
    pub pending_bytes_max: usize,
}

/// A record's place in the log; it is durable once [`GroupCommitLog::wait_durable`] says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// The record's sequence number.
    pub fn record(self) -> u64 {
        self.0 - 1
    }
}

/// Why a log did not take or did not persist a record.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A write or sync failed; nothing more is written. Check the disk and restart the node.
    #[error(
        "commit log failed and takes no more writes ({0}); check the disk, then restart the node"
    )]
    Failed(Rc<str>),
    /// The disk (or the quota) is full: this record was not made durable and is not
    /// acknowledged. The log keeps running and retries; writes succeed again once there is
    /// space.
    #[error(
        "no space left for the commit log ({0}); the write was not acknowledged. Free disk \
         space on the data directory's filesystem; writes resume by themselves"
    )]
    NoSpace(Rc<str>),
    /// The log was closed by shutdown.
    #[error("commit log is closed (the shard is shutting down)")]
    Closed,
    /// One record larger than the log can batch.
    #[error("log record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Size of the record.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// State shared by appenders and the flusher, all on one executor.
#[derive(Debug)]
struct Shared {
    config: LogConfig,
    pending: RefCell<Vec<u8>>,
    /// Sequence number of the first record in `pending`.
    pending_first_record: Cell<u64>,
    next_record: Cell<u64>,
    durable_records: Cell<u64>,
    durable_waiters: RefCell<Vec<(u64, Waker)>>,
    /// Callers of `ready` that found the log full, or someone already waiting, in arrival
    /// order.
    ready_turns: Turns,
    /// The one caller waiting for room: the holder of the current `ready_turns` turn (the
    /// others wait for their turn, not for room), so one wake-up per freed batch suffices.
    space_waiter: RefCell<Option<Waker>>,
    failure: RefCell<Option<LogError>>,
    /// Why the last write found no space, while the records it refused wait for a retry.
    /// `None` once a retry (or any later batch) is durable.
    no_space: RefCell<Option<LogError>>,
    /// Tickets up to this one were refused by a "no space" failure: their waiters get
    /// [`LogError::NoSpace`] unless the record is durable by the time they look.
    refused_upto: Cell<u64>,
    closing: Cell<bool>,
    flusher_wake: Notify,
    batches_written: Cell<u64>,
    /// Segments started whose first batch (and header) is durable, not yet taken by
    /// [`GroupCommitLog::take_started_segments`].
    started_segments: RefCell<Vec<SegmentStart>>,
}

impl Shared {
    fn new(config: LogConfig, next_record: u64) -> Self {
        Self {
            config,
            pending: RefCell::new(Vec::with_capacity(config.pending_bytes_max)),
            pending_first_record: Cell::new(next_record),
            next_record: Cell::new(next_record),
            durable_records: Cell::new(next_record),
            durable_waiters: RefCell::default(),
            ready_turns: Turns::default(),
            space_waiter: RefCell::default(),
            failure: RefCell::default(),
            no_space: RefCell::default(),
            refused_upto: Cell::new(0),
            closing: Cell::new(false),
            flusher_wake: Notify::new(),
            batches_written: Cell::new(0),
            started_segments: RefCell::default(),
        }
    }

    /// Whether an append may go ahead now: there is room, or the log takes no more appends
    /// (so the append reports why at once instead of waiting for room that never comes).
    fn may_append(&self) -> bool {
        self.failure.borrow().is_some()
            || self.no_space.borrow().is_some()
            || self.closing.get()
            || self.pending.borrow().len() < self.config.pending_bytes_max
    }

    fn check_failed(&self) -> Result<(), LogError> {
        match &*self.failure.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Whether the record behind `ticket` has an answer: durable, refused or failed.
    fn outcome(&self, ticket: u64) -> Option<Result<(), LogError>> {
        if self.durable_records.get() >= ticket {
            return Some(Ok(()));
        }
        if ticket <= self.refused_upto.get() {
            let err = self.no_space.borrow().clone().unwrap_or_else(|| {
                // Refused, then durable after all: answered above. Reaching here means a
                // retry succeeded for an earlier batch only, which cannot happen (the retry
                // holds every refused record); refuse rather than hang.
                LogError::NoSpace(Rc::from("refused earlier"))
            });
            return Some(Err(err));
        }
        self.check_failed().err().map(Err)
    }

    fn wake_durable(&self) {
        self.durable_waiters.borrow_mut().retain(|(ticket, waker)| {
            let done = self.outcome(*ticket).is_some();
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }

    /// Wakes the caller waiting for room, if any. The callers queued behind it are woken one
    /// by one as each turn ends, so they re-check the room in arrival order.
    fn wake_space(&self) {
        let waker = self.space_waiter.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A write found no space: refuses every record not yet durable (the failed batch's and
    /// those appended since), keeps them in order at the front of the pending buffer for the
    /// retry, and refuses appends until a retry succeeds.
    fn refuse(&self, err: &FsError, failed: Vec<u8>, first_record: u64) -> Vec<u8> {
        let already_refusing = self.no_space.borrow().is_some();
        if already_refusing {
            tracing::debug!(error = %err, "commit log still has no space");
        } else {
            tracing::error!(
                error = %err,
                "commit log has no space; refusing writes until disk space is freed"
            );
        }
        *self.no_space.borrow_mut() = Some(LogError::NoSpace(Rc::from(err.to_string())));
        self.refused_upto.set(self.next_record.get());
        let mut retained = failed;
        let mut pending = self.pending.borrow_mut();
        retained.extend_from_slice(&pending);
        let mut spare = std::mem::replace(&mut *pending, retained);
        drop(pending);
        spare.clear();
        self.pending_first_record.set(first_record);
        self.wake_durable();
        // Callers waiting for room go on and are refused at once instead of waiting.
        self.wake_space();
        spare
    }

    fn fail(&self, err: &FsError) {
        tracing::error!(error = %err, "commit log write failed; refusing further writes");
        *self.failure.borrow_mut() = Some(LogError::Failed(Rc::from(err.to_string())));
        self.wake_durable();
        self.wake_space();
    }
}

/// A segmented commit log with group commit. Single-executor: not `Send`.
#[derive(Debug)]
pub struct GroupCommitLog {
    shared: Rc<Shared>,
    flusher: RefCell<Option<JoinHandle<()>>>,
}

impl GroupCommitLog {
    /// Starts a writer on `fs` whose first batch creates segment `start.segment` (which must
    /// not exist). The flusher runs in the current task queue of the current glommio
    /// executor, whatever `fs` is: [`SimFs`](crate::fs::SimFs) futures never wait, but the
    /// flusher is still a task.
    pub fn start<F: Fs + 'static>(
        fs: Rc<F>,
        format: Rc<dyn LogFormat>,
        start: LogPosition,
        config: LogConfig,
    ) -> Self {
        let shared = Rc::new(Shared::new(config, start.next_record));
        let cursor = SegmentCursor::new(fs, format, start.segment, config.segment_bytes);
        let flusher = glommio::spawn_local(run_flusher(shared.clone(), cursor)).detach();
        Self {
            shared,
            flusher: RefCell::new(Some(flusher)),
        }
    }

    /// Waits until the pending buffer has room, so that an append right after it (with no
    /// `.await` in between) does not overrun the bound. Returns at once if the log failed or
    /// is closing, so that the append reports why.
    ///
    /// First come, first served: callers resolve in the order they first polled this, so
    /// their appends follow that order. A caller that finds someone already waiting queues
    /// behind them even if there is room now; otherwise a write issued later (a pipelined
    /// `SET k 2`) could take the room freed for an earlier one (`SET k 1`) before that one's
    /// task runs again, and the key would end with the older value.
    ///
    /// Cancel-safe: dropping the future gives its place up, and the next caller is served.
    pub async fn ready(&self) {
        let s = &self.shared;
        // The hot path: nobody ahead and room now. No turn, no allocation, no wake-up.
        if s.ready_turns.is_idle() && s.may_append() {
            return;
        }
        // Held until this returns: the next caller is woken then, and runs only after this
        // caller's append (there is no `.await` between the two), so it sees the room that
        // append left. Dropped early (the caller went away), it lets the next one in the same
        // way, and the next one re-checks the room itself.
        let _turn = s.ready_turns.take().await;
        poll_fn(|cx| {
            if s.may_append() {
                Poll::Ready(())
            } else {
                // Only the turn holder gets here, so the slot is never someone else's.
                *s.space_waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Appends one record, framed by `write` directly into the pending buffer. The record is
    /// part of the next batch; wait on the ticket to know it is durable.
    pub fn append_with(&self, write: impl FnOnce(&mut Vec<u8>)) -> Result<Ticket, LogError> {
        let s = &self.shared;
        s.check_failed()?;
        if s.closing.get() {
            return Err(LogError::Closed);
        }
        // Refused before the caller does anything else with the record (the engine applies it
        // to its memtable only after this succeeds).
        if let Some(no_space) = &*s.no_space.borrow() {
            return Err(no_space.clone());
        }
        let mut pending = s.pending.borrow_mut();
        let before = pending.len();
        write(&mut pending);
        let len = pending.len() - before;
        if len > s.config.pending_bytes_max {
            pending.truncate(before);
            return Err(LogError::RecordTooLarge {
                len,
                max: s.config.pending_bytes_max,
            });
        }
        let seq = s.next_record.get();
        s.next_record.set(seq + 1);
        drop(pending);
        s.flusher_wake.notify();
        Ok(Ticket(seq + 1))
    }

    /// Waits until the record behind `ticket` (and every record before it) is durable, or
    /// until it is refused for lack of space ([`LogError::NoSpace`]: not durable now, and it
    /// may or may not become durable later) or the log fails.
    pub async fn wait_durable(&self, ticket: Ticket) -> Result<(), LogError> {
        poll_fn(|cx| {
            let s = &self.shared;
            if let Some(outcome) = s.outcome(ticket.0) {
                return Poll::Ready(outcome);
            }
            s.durable_waiters
                .borrow_mut()
                .push((ticket.0, cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    /// Waits until every record appended so far is durable.
    pub async fn sync(&self) -> Result<(), LogError> {
        let last = self.shared.next_record.get();
        self.wait_durable(Ticket(last)).await
    }

    /// The failure that stopped this log for good, if any. A lack of space is not one (see
    /// [`GroupCommitLog::no_space`]).
    pub fn failure(&self) -> Option<LogError> {
        self.shared.failure.borrow().clone()
    }

    /// Why appends are refused for now for lack of disk space, if they are.
    pub fn no_space(&self) -> Option<LogError> {
        self.shared.no_space.borrow().clone()
    }

    /// Batches written and synced so far: with group commit, far fewer than records.
    pub fn batches_written(&self) -> u64 {
        self.shared.batches_written.get()
    }

    /// Number of records appended so far (the next record's sequence number).
    pub fn next_record(&self) -> u64 {
        self.shared.next_record.get()
    }

    /// The segments this writer started since the last call, oldest first, each reported
    /// once its header and first batch are durable (so it exists after any crash). The
    /// segment being written is among them once it holds a durable batch.
    pub fn take_started_segments(&self) -> Vec<SegmentStart> {
        std::mem::take(&mut *self.shared.started_segments.borrow_mut())
    }

    /// Makes everything appended durable, stops the flusher and closes the segment file.
    pub async fn close(&self) -> Result<(), LogError> {
        let result = self.sync().await;
        self.shared.closing.set(true);
        self.shared.flusher_wake.notify();
        let flusher = self.flusher.borrow_mut().take();
        if let Some(flusher) = flusher {
            flusher.await;
        }
        // The flusher's last try may have made durable what the first sync found refused.
        let next = self.shared.next_record.get();
        if result.is_err() && matches!(self.shared.outcome(next), Some(Ok(()))) {
            return Ok(());
        }
        result
    }
}

/// The flusher: one batch at a time, for as long as the log lives.
async fn run_flusher<F: Fs>(shared: Rc<Shared>, mut cursor: SegmentCursor<F>) {
    let mut spare = Vec::with_capacity(shared.config.pending_bytes_max);
    loop {
        if shared.no_space.borrow().is_some() {
            // Refused records wait in `pending`; retry them after a pause (at once if the log
            // is closing: one last try, so a clean shutdown keeps them if it can).
            if !shared.closing.get() {
                futures_lite::future::or(
                    glommio::timer::sleep(NO_SPACE_RETRY),
                    shared.flusher_wake.notified(),
                )
                .await;
            }
        } else if shared.pending.borrow().is_empty() {
            if shared.closing.get() || shared.failure.borrow().is_some() {
                break;
            }
            shared.flusher_wake.notified().await;
            continue;
        }
        let batch = std::mem::replace(&mut *shared.pending.borrow_mut(), spare);
        let first = shared.pending_first_record.get();
        let end = shared.next_record.get();
        shared.pending_first_record.set(end);
        shared.wake_space();
        match cursor.write_batch(&batch, first).await {
            Ok(started) => {
                if let Some(started) = started {
                    shared.started_segments.borrow_mut().push(started);
                }
                debug_assert!(end >= shared.durable_records.get());
                shared.durable_records.set(end);
                shared.batches_written.set(shared.batches_written.get() + 1);
                if shared.no_space.borrow_mut().take().is_some() {
                    tracing::warn!("commit log has space again; taking writes");
                    // Callers that found the log refusing may now append.
                    shared.wake_space();
                }
                shared.wake_durable();
                spare = batch;
                spare.clear();
            }
            Err(err) if is_no_space(&err) => {
                spare = shared.refuse(&err, batch, first);
                if shared.closing.get() {
                    // The last try at shutdown failed: the refused records were never
                    // acknowledged, so dropping them loses nothing promised.
                    break;
                }
            }
            Err(err) => {
                shared.fail(&err);
                break;
            }
        }
    }
    if cursor.tail_dirty {
        // Bytes of a batch that failed (refused for lack of space, or a fatal error) must not
        // outlive the process: the next recovery would replay them and build on them.
        if let Err(err) = cursor.cut_tail().await {
            tracing::warn!(error = %err, "cutting failed bytes off the commit log failed");
        }
    }
    if let Err(err) = cursor.close().await {
        tracing::warn!(error = %err, "closing commit log segment failed");
    }
}

/// Whether a failed write or sync only lacked space: ENOSPC, EDQUOT, or a short write (which
/// a regular file does only when it runs out of space), all of which the [`Fs`] reports as
/// [`FsError::NoSpace`] and [`SegmentCursor`] can retry after cutting its failed bytes off.
fn is_no_space(err: &FsError) -> bool {
    matches!(err, FsError::NoSpace { .. })
}

/// The segment being written.
///
/// Each batch is one [`FsFile::write_at`] at its exact offset followed by one
/// [`FsFile::sync`]. On [`RealFs`](crate::fs::RealFs) those are glommio *buffered* file
/// operations through its ordinary ring (DMA files made glommio probe and use its polled-I/O
/// ring, whose completions were seen to be lost on devices that cannot poll; see
/// linux-only.md). Writes need no alignment, so no page holding acknowledged records is ever
/// rewritten by Tessera.
///
/// After a failed write the cursor's offset is still the end of the last durable batch (it
/// moves only once a write and its syncs succeed), and the next write first truncates the
/// file back to it. Why retrying there is safe:
/// - the bytes cut off were never acknowledged (their batch's sync did not succeed);
/// - the cut is `fdatasync`ed before anything new is written, so after any crash the file holds
///   either the failed bytes at its end (a torn tail, or a whole valid batch of records that
///   were refused, which recovery may keep: a refused write may or may not take effect) or the
///   new write, never a failed batch *after* a later one, which recovery would call corruption
///   or a record numbered twice. This holds even when the retry goes to a fresh segment;
/// - every byte before the offset was synced by an earlier, successful `fdatasync`, so it is on
///   disk whatever the failed sync did to the page cache; the retry rewrites every byte after
///   it, and trusts only its own, later sync.
struct SegmentCursor<F: Fs> {
    fs: Rc<F>,
    format: Rc<dyn LogFormat>,
    file: Option<F::File>,
    segment: u64,
    /// The first record of the current segment, reported once its first batch is durable.
    first_record: u64,
    segment_bytes: u64,
    /// Bytes of the current segment known durable: the next write goes here (after the
    /// pending segment header, if any).
    end: u64,
    /// Length of the segment header, so a fresh segment is never rolled again.
    header_len: u64,
    /// The directory entry of the current segment has not been fsynced yet.
    dir_unsynced: bool,
    /// Bytes of the segment header still to be written with the next batch. Kept until a
    /// write of them succeeds, so a failed first batch is retried with its header.
    pending_header: Vec<u8>,
    /// A write or sync failed since the last durable batch: the file may hold failed bytes
    /// past `end`, to be cut off before the next write.
    tail_dirty: bool,
}

impl<F: Fs> SegmentCursor<F> {
    fn new(fs: Rc<F>, format: Rc<dyn LogFormat>, segment: u64, segment_bytes: u64) -> Self {
        Self {
            fs,
            format,
            file: None,
            segment,
            first_record: 0,
            segment_bytes,
            end: 0,
            header_len: 0,
            dir_unsynced: false,
            pending_header: Vec::new(),
            tail_dirty: false,
        }
    }

    /// Writes and syncs one batch. Returns the segment it started, if this batch was the
    /// first durable one of a new segment.
    async fn write_batch(
        &mut self,
        records: &[u8],
        first_record: u64,
    ) -> Result<Option<SegmentStart>, FsError> {
        let result = self.try_write_batch(records, first_record).await;
        if result.is_err() {
            self.tail_dirty = true;
        }
        result
    }

    async fn try_write_batch(
        &mut self,
        records: &[u8],
        first_record: u64,
    ) -> Result<Option<SegmentStart>, FsError> {
        if self.tail_dirty {
            self.cut_tail().await?;
        }
        let header_bytes = self.format.batch_header_bytes();
        let align = self.format.batch_alignment();
        let batch_len = (header_bytes + records.len()).div_ceil(align) * align;
        let fresh = self.end <= self.header_len;
        if self.file.is_none() || (!fresh && self.end + batch_len as u64 > self.segment_bytes) {
            self.roll(first_record).await?;
        }
        let mut bytes = self.pending_header.clone();
        let start = bytes.len();
        bytes.resize(start + header_bytes, 0);
        bytes.extend_from_slice(records);
        bytes.resize(start + batch_len, 0);
        let (header, body) = bytes[start..].split_at_mut(header_bytes);
        self.format
            .seal_batch(header, &body[..records.len()], first_record);
        let pos = self.end;
        self.write_and_sync(bytes, pos).await?;
        if self.pending_header.is_empty() {
            return Ok(None);
        }
        // The header went out with this batch, and both are durable, directory entry too.
        self.pending_header.clear();
        Ok(Some(SegmentStart {
            segment: self.segment,
            first_record: self.first_record,
        }))
    }

    /// Truncates the segment back to its durable end and syncs that (see the type's doc).
    async fn cut_tail(&mut self) -> Result<(), FsError> {
        if let Some(file) = &self.file {
            file.truncate(self.end).await?;
            file.sync().await?;
            tracing::debug!(
                segment = self.segment,
                offset = self.end,
                "cut failed bytes off the commit log segment"
            );
        }
        self.tail_dirty = false;
        Ok(())
    }

    async fn write_and_sync(&mut self, bytes: Vec<u8>, pos: u64) -> Result<(), FsError> {
        let path = self.format.segment_path(self.segment);
        let file = self.file.as_ref().ok_or_else(|| FsError::Io {
            op: FsOp::Write,
            path: path.clone(),
            source: io::Error::other("log segment is not open"),
        })?;
        let len = bytes.len();
        // A short write comes back as `NoSpace` (see `RealFile::write_at`): retried like ENOSPC.
        file.write_at(pos, bytes).await?;
        file.sync().await?;
        if self.dir_unsynced {
            self.fs.sync_dir(parent_dir(&path)).await?;
            self.dir_unsynced = false;
        }
        // Only now: a failed write or sync leaves the offset at the last durable byte.
        self.end = pos + len as u64;
        Ok(())
    }

    async fn roll(&mut self, first_record: u64) -> Result<(), FsError> {
        if let Some(file) = self.file.take() {
            // The number moves on before the close can fail: the old file exists, so a retry
            // must not try to create it again.
            self.segment += 1;
            self.end = 0;
            self.header_len = 0;
            file.close().await?;
        }
        let path = self.format.segment_path(self.segment);
        // CreateNew: a segment number is never reused, so an existing file means a bug or a
        // second writer; refusing is safer than truncating acknowledged records.
        let file = self.fs.open(&path, OpenMode::CreateNew).await?;
        self.pending_header = self.format.segment_header(self.segment, first_record);
        self.header_len = self.pending_header.len() as u64;
        self.first_record = first_record;
        self.end = 0;
        self.file = Some(file);
        self.dir_unsynced = true;
        tracing::debug!(segment = self.segment, path = %path.display(), "started log segment");
        Ok(())
    }

    async fn close(&mut self) -> Result<(), FsError> {
        match self.file.take() {
            Some(file) => file.close().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! `ready` ordering, driven by hand: the log under test has no flusher, and the test
    //! "flushes" (empties the pending buffer and wakes the waiter, as the flusher does) at the
    //! moments it chooses, so each interleaving is exact rather than left to disk timing.

    use std::future::Future;

    use futures_lite::future::{poll_once, yield_now};

    use super::*;

    /// Bytes of one record; the pending bound, so one record fills the log.
    const RECORD: usize = 64;

    fn log_without_flusher() -> Rc<GroupCommitLog> {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            pending_bytes_max: RECORD,
        };
        Rc::new(GroupCommitLog {
            shared: Rc::new(Shared::new(config, 0)),
            flusher: RefCell::new(None),
        })
    }

    fn is_full(log: &GroupCommitLog) -> bool {
        !log.shared.may_append()
    }

    /// What the flusher does when it takes a batch: the pending buffer empties and the caller
    /// waiting for room is woken.
    fn flush(log: &GroupCommitLog) {
        let s = &log.shared;
        s.pending.borrow_mut().clear();
        s.pending_first_record.set(s.next_record.get());
        s.wake_space();
    }

    /// Appends one record that fills the log and notes its tag in `order`.
    fn append(log: &GroupCommitLog, order: &RefCell<Vec<u8>>, tag: u8) {
        log.append_with(|out| out.extend_from_slice(&[tag; RECORD]))
            .unwrap();
        order.borrow_mut().push(tag);
    }

    /// A writer: `ready`, then an append with no `.await` in between (as the engine does).
    /// `started` records the order writers called `ready` in.
    fn writer(
        log: &Rc<GroupCommitLog>,
        tag: u8,
        started: &Rc<RefCell<Vec<u8>>>,
        order: &Rc<RefCell<Vec<u8>>>,
    ) -> impl Future<Output = ()> + 'static {
        let (log, started, order) = (log.clone(), started.clone(), order.clone());
        async move {
            started.borrow_mut().push(tag);
            log.ready().await;
            append(&log, &order, tag);
        }
    }

    /// Flushes whenever the log is full until `want` appends happened; bounded, so a wedged
    /// queue fails the test instead of hanging it.
    async fn drain(log: &GroupCommitLog, order: &RefCell<Vec<u8>>, want: usize) {
        for _ in 0..100 {
            if order.borrow().len() == want {
                return;
            }
            if is_full(log) {
                flush(log);
            }
            yield_now().await;
        }
        panic!("writers wedged: appended only {:?}", order.borrow());
    }

    fn run<F: Future<Output = ()> + 'static>(make: impl FnOnce() -> F + Send + 'static) {
        crate::executor::run_unbound("test", make).unwrap();
    }

    #[test]
    fn ready_lets_writers_append_in_arrival_order_even_when_a_newcomer_finds_room() {
        run(|| async {
            let log = log_without_flusher();
            let started = Rc::new(RefCell::new(Vec::new()));
            let order = Rc::new(RefCell::new(Vec::new()));
            append(&log, &order, 0xff);
            order.borrow_mut().clear();
            assert!(is_full(&log));

            // Writers 0..3 find the log full and wait, in that order.
            let mut tasks: Vec<_> = (0..3)
                .map(|tag| glommio::spawn_local(writer(&log, tag, &started, &order)))
                .collect();
            yield_now().await;
            assert_eq!(*started.borrow(), [0, 1, 2]);
            assert!(order.borrow().is_empty());

            // Room frees up, and writers 3 and 4 arrive before the woken waiter runs again
            // (glommio polls a spawned task at once, as a connection's reader spawns one per
            // command): they find room, but must not take it ahead of the writers waiting.
            flush(&log);
            tasks.extend(
                (3..5).map(|tag| glommio::spawn_local(writer(&log, tag, &started, &order))),
            );
            drain(&log, &order, 5).await;
            for task in tasks {
                task.await;
            }
            assert_eq!(*started.borrow(), [0, 1, 2, 3, 4]);
            assert_eq!(*order.borrow(), [0, 1, 2, 3, 4], "appends in arrival order");
            assert!(log.shared.ready_turns.is_idle());
        });
    }

    #[test]
    fn a_dropped_waiter_passes_its_turn_on() {
        run(|| async {
            let log = log_without_flusher();
            let started = Rc::new(RefCell::new(Vec::new()));
            let order = Rc::new(RefCell::new(Vec::new()));
            append(&log, &order, 0xff);
            order.borrow_mut().clear();

            let mut tasks: Vec<_> = (0..5)
                .map(|tag| glommio::spawn_local(writer(&log, tag, &started, &order)))
                .collect();
            yield_now().await;
            assert_eq!(*started.borrow(), [0, 1, 2, 3, 4]);
            // Writer 0 holds the turn and waits for room; 2 waits for its turn; 4 is last.
            // All three go away (their connections closed) before the log has room.
            tasks.remove(4).cancel().await;
            tasks.remove(2).cancel().await;
            tasks.remove(0).cancel().await;
            flush(&log);
            drain(&log, &order, 2).await;
            for task in tasks {
                task.await;
            }
            assert_eq!(*order.borrow(), [1, 3]);

            // Nobody is left waiting: with room, `ready` resolves on its first poll.
            assert!(log.shared.ready_turns.is_idle());
            flush(&log);
            assert_eq!(poll_once(log.ready()).await, Some(()));

            // A future dropped while it waits for room (not its task) gives its place up too.
            append(&log, &order, 5);
            let mut first = Box::pin(log.ready());
            assert_eq!(poll_once(first.as_mut()).await, None);
            let second = glommio::spawn_local(writer(&log, 6, &started, &order));
            yield_now().await;
            drop(first);
            flush(&log);
            drain(&log, &order, 4).await;
            second.await;
            assert_eq!(*order.borrow(), [1, 3, 5, 6]);
            assert!(log.shared.ready_turns.is_idle());
        });
    }

    /// The writer on the simulated file system: what it writes, what it reports, and how it
    /// takes a full disk and a power cut. The framing here is a stand-in (the shard's real
    /// format and its reader are tested in `shard/`).
    mod on_sim_fs {
        use std::path::Path;

        use super::*;
        use crate::fs::{Fs, FsFile, OpenMode, SimFs};

        const HEADER: usize = 8;
        const BATCH_HEADER: usize = 8;

        #[derive(Debug)]
        struct TestFormat;

        impl LogFormat for TestFormat {
            fn batch_header_bytes(&self) -> usize {
                BATCH_HEADER
            }
            fn batch_alignment(&self) -> usize {
                8
            }
            fn seal_batch(&self, header: &mut [u8], records: &[u8], first_record: u64) {
                header[..4].copy_from_slice(&(records.len() as u32).to_le_bytes());
                header[4..].copy_from_slice(&(first_record as u32).to_le_bytes());
            }
            fn segment_header(&self, segment: u64, _first_record: u64) -> Vec<u8> {
                let mut h = b"SEG".to_vec();
                h.resize(HEADER, segment as u8);
                h
            }
            fn segment_path(&self, segment: u64) -> PathBuf {
                Path::new("log").join(format!("{segment:04}.seg"))
            }
        }

        fn start(fs: &Rc<SimFs>, segment_bytes: u64) -> GroupCommitLog {
            let config = LogConfig {
                segment_bytes,
                pending_bytes_max: 256,
            };
            GroupCommitLog::start(
                fs.clone(),
                Rc::new(TestFormat),
                LogPosition::default(),
                config,
            )
        }

        /// Appends one 8-byte record of `tag` and returns its ticket.
        fn append(log: &GroupCommitLog, tag: u8) -> Result<Ticket, LogError> {
            log.append_with(|out| out.extend_from_slice(&[tag; 8]))
        }

        async fn content(fs: &SimFs, segment: u64) -> Vec<u8> {
            let file = fs
                .open(&TestFormat.segment_path(segment), OpenMode::Existing)
                .await
                .unwrap();
            let len = file.len().await.unwrap() as usize;
            file.read_at(0, len).await.unwrap()
        }

        /// One batch of `tags`' records, as the writer frames it.
        fn batch(first: u8, tags: &[u8]) -> Vec<u8> {
            let mut out = ((tags.len() * 8) as u32).to_le_bytes().to_vec();
            out.extend_from_slice(&u32::from(first).to_le_bytes());
            for &tag in tags {
                out.extend_from_slice(&[tag; 8]);
            }
            out
        }

        #[test]
        fn segments_are_reported_once_durable_and_batches_land_in_order() {
            run(|| async {
                let fs = Rc::new(SimFs::new());
                // Room for the header and two one-record batches per segment.
                let log = start(&fs, (HEADER + 2 * (BATCH_HEADER + 8)) as u64);
                assert!(
                    log.take_started_segments().is_empty(),
                    "nothing written yet"
                );
                for tag in 0..5u8 {
                    let ticket = append(&log, tag).unwrap();
                    log.wait_durable(ticket).await.unwrap();
                }
                let started = log.take_started_segments();
                let want: Vec<SegmentStart> = [(0, 0), (1, 2), (2, 4)]
                    .map(|(segment, first_record)| SegmentStart {
                        segment,
                        first_record,
                    })
                    .into();
                assert_eq!(started, want);
                assert!(log.take_started_segments().is_empty(), "taken once");
                log.close().await.unwrap();
                let mut seg1 = b"SEG".to_vec();
                seg1.resize(HEADER, 1);
                seg1.extend(batch(2, &[2]));
                seg1.extend(batch(3, &[3]));
                assert_eq!(content(&fs, 1).await, seg1);
                assert_eq!(fs.list(Path::new("log")).await.unwrap().len(), 3);
            });
        }

        #[test]
        fn a_full_disk_refuses_writes_then_a_retry_makes_them_durable() {
            run(|| async {
                let fs = Rc::new(SimFs::new());
                let log = start(&fs, 1 << 20);
                let first = append(&log, 1).unwrap();
                log.wait_durable(first).await.unwrap();
                let used = (HEADER + BATCH_HEADER + 8) as u64;
                fs.set_capacity(Some(used));

                let refused = append(&log, 2).unwrap();
                let err = log.wait_durable(refused).await.unwrap_err();
                assert!(matches!(err, LogError::NoSpace(_)), "{err}");
                assert!(log.failure().is_none(), "no space is not a failure");
                assert!(log.no_space().is_some());
                assert!(matches!(append(&log, 3), Err(LogError::NoSpace(_))));

                // Space comes back; the shutdown's last try writes the refused record.
                fs.set_capacity(None);
                log.close().await.unwrap();
                let mut want = b"SEG".to_vec();
                want.resize(HEADER, 0);
                want.extend(batch(0, &[1]));
                want.extend(batch(1, &[2]));
                assert_eq!(content(&fs, 0).await, want, "the refused record, once");
            });
        }

        #[test]
        fn a_power_cut_fails_the_log_and_keeps_what_was_durable() {
            run(|| async {
                let fs = Rc::new(SimFs::new());
                let log = start(&fs, 1 << 20);
                let first = append(&log, 1).unwrap();
                log.wait_durable(first).await.unwrap();
                // The next batch's write goes through; its sync is cut.
                fs.crash_after(1);
                let cut = append(&log, 2).unwrap();
                let err = log.wait_durable(cut).await.unwrap_err();
                assert!(matches!(err, LogError::Failed(_)), "{err}");
                assert!(log.failure().is_some());
                assert!(matches!(append(&log, 3), Err(LogError::Failed(_))));
                assert!(log.close().await.is_err());
                for seed in 0..20 {
                    let after = fs.crash(seed);
                    let got = content(&after, 0).await;
                    let mut durable = b"SEG".to_vec();
                    durable.resize(HEADER, 0);
                    durable.extend(batch(0, &[1]));
                    assert!(
                        got.starts_with(&durable),
                        "seed {seed}: lost a durable batch"
                    );
                }
            });
        }
    }
}
