//! One shard's storage engine: the commit log and the memtable.
//!
//! Write path: compute the key's new object → append it to the commit log → apply it to the
//! memtable → acknowledge once the log record is durable (if the write asked for durability).
//! The first three steps run without an `.await` between them, so on this single-threaded
//! shard two writes to one key can never both start from the same old object: every write
//! sees every write appended before it, and the log holds them in memtable order. Waiting
//! for room in the log comes before all three and is first come, first served, so writes
//! apply in the order they called [`Engine::write`].
//!
//! An overwrite ([`Supersedes::Everything`]) takes the stored object's clock as its context
//! inside that same synchronous section, so concurrent overwrites of one key on this shard
//! each supersede the one before and never leave siblings.
//!
//! Read path: the memtable (the whole data set until SSTables exist).
//!
//! A full disk ([`LogError::NoSpace`](tessera_io::LogError::NoSpace)) is not a failure of the
//! log: writes are refused and reads go on. What that means for the memtable:
//! - A write refused *before* it is applied (the log refuses appends while it has no space)
//!   never touches the memtable.
//! - A write applied and appended, whose batch then found no space, is refused to its caller
//!   (never acknowledged) but stays in the memtable. Its log record is not dropped: the log
//!   keeps it, in order, and retries it until it is durable, so the memtable is always the
//!   durable log plus records still to be written, exactly as for a write whose sync is merely
//!   slow. A crash before the retry succeeds loses it, which a write that was never
//!   acknowledged may do (it may or may not take effect); one after keeps it.
//! - Guarantee: every acknowledged write is durable; a read may return a write that is not
//!   durable yet (applied, unacknowledged, with its record still queued in the log), as it
//!   always could, and while the disk is full that window lasts until space is freed. Undoing
//!   refused writes in the memtable was not chosen: a later write of the key may already
//!   have built on the refused one (objects are whole snapshots), and it is queued behind it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_core::{NodeId, Object, VersionVector};
use tessera_io::log_writer::LogConfig;

use crate::constants::OBJECT_BYTES_MAX;
use crate::error::ShardError;
use crate::log::{recover, CommitLog, RecoveryError, RecoveryReport};
use crate::memtable::Memtable;

/// Limits the engine enforces on every write.
#[derive(Clone, Copy, Debug)]
pub struct EngineLimits {
    /// Memory the memtable may use.
    pub memtable_bytes_max: usize,
    /// Log sizes.
    pub log: LogConfig,
}

/// A shard's engine. Single-executor.
#[derive(Debug)]
pub struct Engine {
    node: NodeId,
    memtable: RefCell<Memtable>,
    log: CommitLog,
    limits: EngineLimits,
}

/// The outcome of a write: the key's clock after it, which is the context for the next write.
pub type WriteOutcome = VersionVector;

/// Which stored versions of a key a write supersedes.
#[derive(Clone, Copy, Debug)]
pub enum Supersedes<'a> {
    /// The versions this causal context saw. An empty context supersedes nothing: a blind
    /// write that becomes a sibling of whatever is stored.
    Context(&'a VersionVector),
    /// Every version stored for the key when the write is applied (last-writer-wins for this
    /// write, as a Redis SET expects).
    Everything,
}

impl<'a> From<&'a VersionVector> for Supersedes<'a> {
    fn from(context: &'a VersionVector) -> Self {
        Supersedes::Context(context)
    }
}

impl Engine {
    /// Recovers the log in `dir/log` into a fresh memtable and opens the log for appends.
    pub async fn open(
        dir: &Path,
        node: NodeId,
        limits: EngineLimits,
    ) -> Result<(Self, RecoveryReport), RecoveryError> {
        let log_dir: PathBuf = dir.join("log");
        tessera_io::file::create_dir_durable_blocking(&log_dir).map_err(|source| {
            RecoveryError::Io {
                path: log_dir.clone(),
                source,
            }
        })?;
        let mut memtable = Memtable::new();
        let report = recover(&log_dir, |_, record| {
            let object = Object::decode(record.object).map_err(|e| e.to_string())?;
            memtable.insert(record.keyspace, record.key, object);
            Ok(())
        })
        .await?;
        let log = CommitLog::start(log_dir, report.next, limits.log);
        let engine = Self {
            node,
            memtable: RefCell::new(memtable),
            log,
            limits,
        };
        Ok((engine, report))
    }

    /// Runs `f` on the object of (keyspace, key), if there is one.
    ///
    /// Reads see writes as soon as they are applied, before their log record is durable (as
    /// in most LSM stores): a write that a crash then loses was never acknowledged, but a
    /// reader may have seen it. Once the log has failed, reads are refused too, because the
    /// memtable may hold writes that will never be durable. A full disk does not stop reads:
    /// the writes it refused are still queued in the log (see the module doc).
    pub fn read<T>(
        &self,
        keyspace: &str,
        key: &[u8],
        f: impl FnOnce(Option<&Object>) -> T,
    ) -> Result<T, ShardError> {
        if let Some(failure) = self.log.failure() {
            return Err(failure.into());
        }
        Ok(f(self.memtable.borrow().get(keyspace, key)))
    }

    /// Writes `value` (or a tombstone for `None`) superseding the versions `supersedes` names
    /// (a context's, or with [`Supersedes::Everything`] all of them).
    pub async fn write<'a>(
        &self,
        keyspace: &str,
        key: &[u8],
        supersedes: impl Into<Supersedes<'a>>,
        value: Option<Vec<u8>>,
        durable: bool,
    ) -> Result<WriteOutcome, ShardError> {
        let supersedes = supersedes.into();
        // First come, first served: writes leave this wait in the order they reached it,
        // even while they wait for log room, so writes of one key issued in some order (a
        // connection's pipelined SETs) apply in that order.
        self.log.ready().await;
        // From here to the append there is no `.await` (see the module doc).
        let (ticket, clock) = self.apply(keyspace, key, supersedes, value)?;
        if durable {
            self.log.wait_durable(ticket).await?;
        }
        Ok(clock)
    }

    fn apply(
        &self,
        keyspace: &str,
        key: &[u8],
        supersedes: Supersedes<'_>,
        value: Option<Vec<u8>>,
    ) -> Result<(tessera_io::Ticket, VersionVector), ShardError> {
        if let Some(failure) = self.log.failure() {
            return Err(failure.into());
        }
        let mut memtable = self.memtable.borrow_mut();
        if memtable.bytes() >= self.limits.memtable_bytes_max {
            return Err(ShardError::MemoryFull {
                max: self.limits.memtable_bytes_max,
            });
        }
        let mut object = memtable.get(keyspace, key).cloned().unwrap_or_default();
        // The overwrite's context is read here, with no `.await` before the append below, so
        // no other write of this key can slip in between and survive as a sibling.
        let stored_clock;
        let context = match supersedes {
            Supersedes::Context(context) => context,
            Supersedes::Everything => {
                stored_clock = object.clock().clone();
                &stored_clock
            }
        };
        object.update(context, self.node, now_ms(), value)?;
        let len = object.encoded_len();
        if len > OBJECT_BYTES_MAX {
            return Err(ShardError::TooLarge {
                what: "the key's versions (resolve its siblings)",
                len,
                max: OBJECT_BYTES_MAX,
            });
        }
        let ticket = self.log.append_object(keyspace, key, &object)?;
        let clock = object.clock().clone();
        memtable.insert(keyspace, key, object);
        Ok((ticket, clock))
    }

    /// Waits until every write so far is durable.
    pub async fn sync(&self) -> Result<(), ShardError> {
        Ok(self.log.sync().await?)
    }

    /// Keys held (tombstoned ones included).
    pub fn key_count(&self) -> usize {
        self.memtable.borrow().len()
    }

    /// Makes every write durable and closes the log.
    pub async fn close(&self) -> Result<(), ShardError> {
        Ok(self.log.close().await?)
    }
}

/// Wall-clock milliseconds for a sibling's timestamp (used later by last-write-wins and TTL;
/// never for ordering versions, which the dots do).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
