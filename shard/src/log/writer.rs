//! Appending object records to the shard's commit log.
//!
//! A record holds the whole object of a key after a write, so replay is "last record wins"
//! per key and needs no merge logic; replaying a record twice is harmless.

use std::path::PathBuf;
use std::rc::Rc;

use tessera_core::Object;
use tessera_io::log_writer::LogConfig;
use tessera_io::{GroupCommitLog, LogError, LogPosition, Ticket};

use super::format::{encode_object_record, ShardLogFormat};

/// A shard's commit log, open for appends.
#[derive(Debug)]
pub struct CommitLog {
    inner: GroupCommitLog,
}

impl CommitLog {
    /// Starts appending in `dir` at `next` (from recovery).
    pub fn start(dir: PathBuf, next: LogPosition, config: LogConfig) -> Self {
        let format = Rc::new(ShardLogFormat::new(dir));
        Self {
            inner: GroupCommitLog::start(format, next, config),
        }
    }

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
}
