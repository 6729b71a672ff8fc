//! Appending object records to the shard's commit log, and releasing the segments that only
//! hold records already in SSTables.
//!
//! A record holds the whole object of a key after a write, so replay is "last record wins"
//! per key and needs no merge logic; replaying a record twice is harmless.
//!
//! [`CommitLog`] owns the list of the log's segments: the ones recovery found plus the ones
//! its writer started since. Invariants:
//! - The list is every segment file in the directory except, at most, the one being written
//!   before its first batch is durable, in number order, numbers contiguous (the writer starts
//!   each segment right after the last, and recovery refuses gaps).
//! - Segments are only ever removed from the front, oldest first, so after any crash the
//!   remaining ones are a contiguous suffix of the list, which recovery accepts as long as
//!   the first one starts at or below its floor ([`CommitLog::release_below`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use tessera_core::Object;
use tessera_io::fs::{Fs, FsError};
use tessera_io::log_writer::LogConfig;
use tessera_io::{GroupCommitLog, LogError, SegmentStart, Ticket, Turns};

use super::format::{encode_object_record, segment_path, ShardLogFormat};
use super::reader::RecoveryReport;

/// A shard's commit log, open for appends.
#[derive(Debug)]
pub struct CommitLog<F: Fs> {
    inner: GroupCommitLog,
    fs: Rc<F>,
    dir: PathBuf,
    /// The segments known to exist, oldest first (see the module doc). The writer's new ones
    /// are moved in from [`GroupCommitLog::take_started_segments`] when needed.
    segments: RefCell<VecDeque<SegmentStart>>,
    /// One release at a time: two interleaved releases could each remove a segment while
    /// the other failed to remove an older one, leaving a hole.
    release_turns: Turns,
}

impl<F: Fs + 'static> CommitLog<F> {
    /// Starts appending in `dir` on `fs`, where `recovered` (from [`super::recover`] on the
    /// same `dir`) says the writer continues and which segments exist. A fresh, empty
    /// directory may pass [`RecoveryReport::default`].
    pub fn start(fs: Rc<F>, dir: PathBuf, recovered: &RecoveryReport, config: LogConfig) -> Self {
        let format = Rc::new(ShardLogFormat::new(dir.clone()));
        Self {
            inner: GroupCommitLog::start(fs.clone(), format, recovered.next, config),
            fs,
            dir,
            segments: RefCell::new(recovered.segments.iter().copied().collect()),
            release_turns: Turns::default(),
        }
    }
}

impl<F: Fs> CommitLog<F> {
    /// Waits for room in the pending batch; call right before [`CommitLog::append_object`]
    /// with no `.await` in between.
    pub async fn ready(&self) {
        self.inner.ready().await
    }

    /// Appends the new state of (keyspace, key).
    pub fn append_object(
        &self,
        keyspace: &str,
        key: &[u8],
        object: &Object,
    ) -> Result<Ticket, LogError> {
        self.inner
            .append_with(|out| encode_object_record(out, keyspace, key, |o| object.encode(o)))
    }

    /// Waits until the record behind `ticket` is durable.
    pub async fn wait_durable(&self, ticket: Ticket) -> Result<(), LogError> {
        self.inner.wait_durable(ticket).await
    }

    /// Waits until every record appended so far is durable.
    pub async fn sync(&self) -> Result<(), LogError> {
        self.inner.sync().await
    }

    /// The failure that stopped the log, if any.
    pub fn failure(&self) -> Option<LogError> {
        self.inner.failure()
    }

    /// Makes everything durable and stops.
    pub async fn close(&self) -> Result<(), LogError> {
        self.inner.close().await
    }

    /// Group-commit batches written so far.
    pub fn batches_written(&self) -> u64 {
        self.inner.batches_written()
    }

    /// Number of records appended so far (the next record's sequence number).
    pub fn next_record(&self) -> u64 {
        self.inner.next_record()
    }

    /// The segments known to exist, oldest first, with their first records.
    pub fn segments(&self) -> Vec<SegmentStart> {
        self.absorb_started();
        self.segments.borrow().iter().copied().collect()
    }

    /// Removes every segment all of whose records are below `floor`, oldest first, then
    /// syncs the directory once. Returns how many were removed.
    ///
    /// A segment qualifies iff a later segment starts at or below `floor` (its records all
    /// precede that one's first), so the segment being written is never removed, nor the
    /// last one whose records reach the floor.
    ///
    /// `floor` must already be durable where recovery will read it (the manifest), with every
    /// record below it in durable SSTables: recovery needs it to accept a log whose first
    /// segments are gone. A crash during the release leaves the oldest segments removed and
    /// the rest in place (removals reach the disk in order), which recovery accepts at that
    /// floor. On an error, the segments not yet removed stay listed and a later call tries
    /// them again.
    pub async fn release_below(&self, floor: u64) -> Result<usize, FsError> {
        let _turn = self.release_turns.take().await;
        self.absorb_started();
        let releasable = {
            let segments = self.segments.borrow();
            segments
                .iter()
                .rposition(|s| s.first_record <= floor)
                .unwrap_or(0)
        };
        for _ in 0..releasable {
            let Some(oldest) = self.segments.borrow().front().copied() else {
                break;
            };
            self.fs
                .remove(&segment_path(&self.dir, oldest.segment))
                .await?;
            self.segments.borrow_mut().pop_front();
        }
        if releasable > 0 {
            // A removal that a crash undoes costs only disk space: recovery skips records
            // below the floor. The sync makes it stick.
            self.fs.sync_dir(&self.dir).await?;
            tracing::debug!(
                removed = releasable,
                floor,
                "released commit-log segments below the floor"
            );
        }
        Ok(releasable)
    }

    /// Moves the segments the writer started since the last look into the list.
    fn absorb_started(&self) {
        let started = self.inner.take_started_segments();
        let mut segments = self.segments.borrow_mut();
        for segment in started {
            debug_assert!(
                segments
                    .back()
                    .is_none_or(|last| last.segment < segment.segment),
                "segments are started in number order"
            );
            segments.push_back(segment);
        }
    }
}
