//! One shard's storage engine: commit log, memtables and SSTables (DESIGN §6).
//!
//! Write path: take the key's turn ([`keys`]) → find the key's stored object (active
//! memtable, frozen memtable, then the tables, which may read the disk) → wait for room in the
//! commit log → compute the new object → append it to the log → apply it to the memtable →
//! acknowledge once the record is durable (if the write asked for durability). From the log
//! room onwards there is no `.await` until the append, so the log holds records in memtable
//! order; the key's turn, held from arrival to apply (not through the wait for durability),
//! makes the writes of one key read and
//! apply one at a time in arrival order, so none builds on an object another write replaced
//! and a client's pipelined writes of a key apply in the order sent.
//!
//! Every write builds on the whole stored object, read through to the tables on a memtable
//! miss: that is what lets a flush and a compaction keep only the newest version of a key
//! (`merge.rs`): the newest version already holds the history of the older ones.
//!
//! An overwrite ([`Supersedes::Everything`]) takes the stored object's clock as its context
//! inside that same synchronous section, so concurrent overwrites of one key on this shard
//! each supersede the one before and never leave siblings.
//!
//! Read path: active memtable, frozen memtable, then the tables (`lsm/`): level 0 newest
//! first, then each level, behind bloom filters and the block cache.
//!
//! Flush: when the active memtable reaches its share of the memory budget it is frozen (made
//! read-only, still searched) and a fresh one takes writes; a background task writes the
//! frozen one to a level-0 table and commits it with the log floor (the number of the first
//! record it does not hold), then releases the commit-log segments wholly below the floor.
//! Writes wait only when the active memtable is full while the previous one is still being
//! flushed, or while level 0 holds `l0_stall_tables` tables (compaction is behind).
//! Compaction runs in its own low-priority task queue, paced by an I/O budget.
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
//!   acknowledged may do (it may or may not take effect); one after keeps it. A flush may also
//!   make it durable first, in a table.
//! - Guarantee: every acknowledged write is durable; a read may return a write that is not
//!   durable yet (applied, unacknowledged, with its record still queued in the log), as it
//!   always could, and while the disk is full that window lasts until space is freed.
//!
//! A flush that fails (a full disk) is retried; until it succeeds the frozen memtable stays
//! and, once the active one fills too, writes are refused as overloaded rather than queued
//! without bound.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_core::{NodeId, Object, VersionVector};
use tessera_io::fs::{Fs, RealFs};
use tessera_io::log_writer::LogConfig;

use crate::constants::OBJECT_BYTES_MAX;
use crate::error::ShardError;
use crate::log::{recover, CommitLog, RecoveryError, RecoveryReport, RecoveryStart};
use crate::lsm::{Lsm, LsmError, LsmOptions, LsmStats, TombstoneGc};
use crate::memtable::{encode_mem_key, mem_key, partition_bounds, Memtable};
use crate::merge::Merge;

mod background;
pub mod keys;
mod signal;

use keys::KeyTurns;
use signal::Signal;

/// Sizes and budgets of one shard's engine.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// The active memtable is frozen for flush at this many bytes; a frozen one may hold as
    /// much again while it flushes.
    pub memtable_bytes_max: usize,
    /// The shard's whole memory budget: memtables, block cache, table indexes and filters.
    /// The block cache gets what the others leave.
    pub memory_budget_bytes: u64,
    /// Log sizes.
    pub log: LogConfig,
    /// Table format, compaction policy and pacing.
    pub lsm: LsmOptions,
}

/// The least `memtable_bytes_max`: below it every write would freeze its own memtable.
pub const MEMTABLE_BYTES_MIN: usize = 256;

impl EngineLimits {
    /// Checks the limits work together: a memtable that holds a few entries, a valid
    /// compaction policy, and a level-0 stall above the level-0 compaction trigger (or writes
    /// would wait for a compaction the policy never starts).
    pub fn validate(&self) -> Result<(), String> {
        if self.memtable_bytes_max < MEMTABLE_BYTES_MIN {
            return Err(format!(
                "memtable_bytes_max {} is below {MEMTABLE_BYTES_MIN}",
                self.memtable_bytes_max
            ));
        }
        self.lsm.policy.validate().map_err(|e| e.to_string())?;
        if self.lsm.l0_stall_tables <= self.lsm.policy.l0_trigger {
            return Err(format!(
                "l0_stall_tables {} must exceed the level-0 compaction trigger {}",
                self.lsm.l0_stall_tables, self.lsm.policy.l0_trigger
            ));
        }
        Ok(())
    }
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

/// Why the engine did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The tables or the manifest could not be opened (damage, or I/O).
    #[error("cannot open the shard's tables in {}: {source}", dir.display())]
    Tables {
        /// The table directory.
        dir: PathBuf,
        /// Why.
        source: LsmError,
    },
    /// The commit log could not be recovered.
    #[error(transparent)]
    Log(#[from] RecoveryError),
    /// The limits do not work together.
    #[error("invalid engine limits: {0}")]
    Invalid(String),
}

/// A frozen memtable and the log floor that holds once it is in a table.
#[derive(Debug)]
struct Frozen {
    memtable: Rc<Memtable>,
    log_floor: u64,
}

/// State shared with the background tasks.
pub(crate) struct Shared<F: Fs> {
    node: NodeId,
    active: RefCell<Memtable>,
    /// At most one: a memtable is frozen only when none is.
    frozen: RefCell<Option<Frozen>>,
    log: CommitLog<F>,
    lsm: Lsm<F>,
    limits: EngineLimits,
    keys: KeyTurns,
    /// Wakes the flush task.
    flush_wanted: tessera_io::Notify,
    /// Wakes the compaction task.
    compaction_wanted: tessera_io::Notify,
    /// Signalled whenever a flush finishes or fails, or a compaction finishes: writers
    /// waiting for memtable room or for level 0 to shrink.
    flushed: Signal,
    /// The last flush failed (and is being retried): writes that need room are refused.
    flush_failing: Cell<bool>,
    /// The last compaction failed (and is being retried): writes stalled on level 0 are
    /// refused.
    compaction_failing: Cell<bool>,
    /// The engine is closing: waiting writers give up.
    closed: Cell<bool>,
    /// The last background failure, for operators.
    last_error: RefCell<Option<String>>,
    scratch: RefCell<Vec<u8>>,
}

/// A shard's engine. Single-executor.
pub struct Engine<F: Fs = RealFs> {
    shared: Rc<Shared<F>>,
    tasks: RefCell<Vec<glommio::task::JoinHandle<()>>>,
}

impl<F: Fs> std::fmt::Debug for Engine<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("lsm", &self.shared.lsm)
            .finish_non_exhaustive()
    }
}

/// What a shard holds, for INFO, the CLI and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Keys in the memtables (tombstoned ones included).
    pub memtable_keys: usize,
    /// Bytes in the memtables.
    pub memtable_bytes: usize,
    /// Live tables.
    pub tables: usize,
    /// Entries in the tables (a key may be counted in several).
    pub table_entries: u64,
    /// Bytes of live tables on disk.
    pub disk_bytes: u64,
    /// Block cache bytes in use.
    pub cache_bytes: u64,
    /// Memory of table indexes and filters.
    pub index_bytes: usize,
    /// Flush and compaction counters.
    pub lsm: LsmStats,
}

impl<F: Fs + 'static> Engine<F> {
    /// Opens the shard in `dir`: its tables (`dir/sst`), then its commit log (`dir/log`)
    /// from the tables' floor into a fresh memtable; starts the flush and compaction tasks.
    pub async fn open(
        fs: Rc<F>,
        dir: &Path,
        node: NodeId,
        limits: EngineLimits,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        limits.validate().map_err(OpenError::Invalid)?;
        let sst_dir = dir.join("sst");
        let lsm = Lsm::open(fs.clone(), &sst_dir, limits.lsm.clone())
            .await
            .map_err(|source| OpenError::Tables {
                dir: sst_dir.clone(),
                source,
            })?;
        let log_dir = dir.join("log");
        fs.create_dir(&log_dir).await.map_err(RecoveryError::from)?;
        let mut memtable = Memtable::new();
        // Records below the tables' floor are in tables already.
        let start = RecoveryStart {
            floor_record: lsm.log_floor(),
            next_segment_min: 0,
        };
        let report = recover(&*fs, &log_dir, start, |_, record| {
            let object = Object::decode(record.object).map_err(|e| e.to_string())?;
            memtable.insert(record.keyspace, record.key, object);
            Ok(())
        })
        .await?;
        let log = CommitLog::start(fs.clone(), log_dir, &report, limits.log);
        let shared = Rc::new(Shared {
            node,
            active: RefCell::new(memtable),
            frozen: RefCell::new(None),
            log,
            lsm,
            limits,
            keys: KeyTurns::default(),
            flush_wanted: tessera_io::Notify::new(),
            compaction_wanted: tessera_io::Notify::new(),
            flushed: Signal::default(),
            flush_failing: Cell::new(false),
            compaction_failing: Cell::new(false),
            closed: Cell::new(false),
            last_error: RefCell::new(None),
            scratch: RefCell::new(Vec::new()),
        });
        shared.fit_cache();
        let tasks = background::spawn(&shared);
        // A recovered memtable may already be over its share: freeze it now.
        shared.maybe_freeze();
        shared.compaction_wanted.notify();
        Ok((
            Self {
                shared,
                tasks: RefCell::new(tasks),
            },
            report,
        ))
    }

    /// Runs `f` on the object of (keyspace, key), if there is one.
    ///
    /// Reads see writes as soon as they are applied, before their log record is durable (as
    /// in most LSM stores): a write that a crash then loses was never acknowledged, but a
    /// reader may have seen it. Once the log has failed, reads are refused too, because the
    /// memtable may hold writes that will never be durable. A full disk does not stop reads:
    /// the writes it refused are still queued in the log (see the module doc).
    pub async fn read<T>(
        &self,
        keyspace: &str,
        key: &[u8],
        f: impl FnOnce(Option<&Object>) -> T,
    ) -> Result<T, ShardError> {
        let s = &self.shared;
        s.check_log()?;
        let mem_key = mem_key(keyspace, key);
        match s.in_memtables(&mem_key, f) {
            Ok(answer) => Ok(answer),
            Err(f) => {
                let object = s.lsm.get(&mem_key).await.map_err(storage)?;
                Ok(f(object.as_ref()))
            }
        }
    }

    /// Like [`Engine::read`], but only if the answer needs no disk read (the memtables, the
    /// bloom filters or the block cache give it); `None` otherwise. Lets a connection answer
    /// a hit in place, without a task.
    pub fn read_now<T>(
        &self,
        keyspace: &str,
        key: &[u8],
        f: impl FnOnce(Option<&Object>) -> T,
    ) -> Option<Result<T, ShardError>> {
        let s = &self.shared;
        if let Err(e) = s.check_log() {
            return Some(Err(e));
        }
        let mut mem_key = s.scratch.borrow_mut();
        encode_mem_key(&mut mem_key, keyspace, key);
        match s.in_memtables(&mem_key, f) {
            Ok(answer) => Some(Ok(answer)),
            Err(f) => match s.lsm.get_cached(&mem_key)? {
                Ok(object) => Some(Ok(f(object.as_ref()))),
                Err(e) => Some(Err(storage(e))),
            },
        }
    }

    /// Every stored entry of one partition (token), newest version of each key, in key order:
    /// `(memtable key, object)`, tombstones included. For anti-entropy and node join.
    pub async fn read_partition(
        &self,
        token: tessera_core::Token,
    ) -> Result<Vec<(Vec<u8>, Object)>, ShardError> {
        let (start, end) = partition_bounds(token);
        self.read_between(&start, end.as_deref()).await
    }

    /// One page of the entries whose token lies in `tokens` (both inclusive) and whose
    /// memtable key comes after `after` (from the range's start if `None`), in key order:
    /// at most `max_entries`, and no more once their encoded size reaches `max_bytes` (one
    /// entry at least). Also says whether the range holds nothing after the page. For the
    /// partition streams of ring changes.
    pub async fn read_range(
        &self,
        tokens: (u64, u64),
        after: Option<&[u8]>,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(Vec<u8>, Object)>, bool), ShardError> {
        let mut start = tokens.0.to_be_bytes().to_vec();
        if let Some(after) = after {
            // The first key after `after` in byte order is `after` followed by a zero byte.
            let mut next = after.to_vec();
            next.push(0);
            start = start.max(next);
        }
        let end = tokens.1.checked_add(1).map(|e| e.to_be_bytes().to_vec());
        let all = self.read_between(&start, end.as_deref()).await?;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut rest = all.into_iter();
        for (key, object) in rest.by_ref() {
            bytes += key.len() + object.encoded_len();
            page.push((key, object));
            if page.len() >= max_entries.max(1) || bytes >= max_bytes {
                break;
            }
        }
        let end = rest.next().is_none();
        Ok((page, end))
    }

    /// Every stored entry with a memtable key in `[start, end)`, newest version of each, in
    /// key order.
    async fn read_between(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Object)>, ShardError> {
        let s = &self.shared;
        s.check_log()?;
        // Copied without an `.await`, so memtables and tables are read as of one moment: a
        // flush finishing meanwhile only puts the frozen entries into a table too, and the
        // memtable copy, newer in the merge, wins.
        let owned = |m: &Memtable| -> Vec<(Vec<u8>, Object)> {
            m.range(start, end)
                .map(|(k, o)| (k.to_vec(), o.clone()))
                .collect()
        };
        let active = owned(&s.active.borrow());
        let frozen = s
            .frozen
            .borrow()
            .as_ref()
            .map(|f| owned(&f.memtable))
            .unwrap_or_default();
        let tables = s.lsm.range(start, end).await.map_err(storage)?;
        let sources = [active, frozen, tables]
            .into_iter()
            .map(|run| run.into_iter().map(Ok::<_, std::convert::Infallible>))
            .collect();
        Merge::new(sources)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ShardError::Storage(format!("range read: {e}")))
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
        let node = self.shared.node;
        self.modify(keyspace, key, durable, |mut object| {
            // The overwrite's context is read here, with no `.await` before the append, so no
            // other write of this key can slip in between and survive as a sibling.
            let context = match supersedes {
                Supersedes::Context(context) => context.clone(),
                Supersedes::Everything => object.clock().clone(),
            };
            object.update(&context, node, now_ms(), value)?;
            let clock = object.clock().clone();
            Ok((object, clock))
        })
        .await
    }

    /// Replaces the object of (keyspace, key) by the one `change` makes of the stored object
    /// (empty if the key is absent) and logs it; returns what `change` returned beside it.
    /// The key's writes are serialized, and nothing else can change the key between the read
    /// `change` sees and the append: the primitive under client writes, replica updates and
    /// merges. `change` owns the stored object, so a caller pays for a copy only if it wants
    /// one.
    pub async fn modify<T>(
        &self,
        keyspace: &str,
        key: &[u8],
        durable: bool,
        change: impl FnOnce(Object) -> Result<(Object, T), ShardError>,
    ) -> Result<T, ShardError> {
        let s = &self.shared;
        let mem_key = mem_key(keyspace, key);
        // Taken before any `.await`: see the module doc and `keys.rs`.
        let queue = s.keys.queue(&mem_key);
        let turn = queue.turns().take().await;
        let stored = loop {
            s.wait_for_room().await?;
            let stored = match s.in_memtables(&mem_key, |o| o.cloned()) {
                Ok(object) => object,
                Err(_) => s.lsm.get(&mem_key).await.map_err(storage)?,
            };
            // First come, first served: writes leave this wait in the order they reached it.
            s.log.ready().await;
            // The memtable may have filled during those waits: then wait again, so that the
            // memtables stay within their share of the budget.
            if s.has_room() {
                break stored.unwrap_or_default();
            }
        };
        // From here to the append there is no `.await` (see the module doc). The key's turn
        // kept every other write of it out since `stored` was read, and flushes only move
        // objects between memtables and tables, so `stored` is still the key's object.
        let (after, answer) = change(stored)?;
        let ticket = s.append(keyspace, key, after)?;
        s.maybe_freeze();
        // The write's place in the log is fixed: the next write of this key may go ahead
        // (and share this one's group commit) while this one waits to be durable.
        drop(turn);
        drop(queue);
        if durable {
            s.log.wait_durable(ticket).await?;
        }
        Ok(answer)
    }

    /// Waits until every write so far is durable.
    pub async fn sync(&self) -> Result<(), ShardError> {
        Ok(self.shared.log.sync().await?)
    }

    /// Keys held in the memtables (tombstoned ones included).
    pub fn key_count(&self) -> usize {
        let s = &self.shared;
        s.active.borrow().len() + s.frozen.borrow().as_ref().map_or(0, |f| f.memtable.len())
    }

    /// What the shard holds.
    pub fn stats(&self) -> EngineStats {
        let s = &self.shared;
        let tables = s.lsm.tables();
        let frozen = s.frozen.borrow();
        let frozen = frozen.as_ref().map(|f| &f.memtable);
        EngineStats {
            memtable_keys: self.key_count(),
            memtable_bytes: s.active.borrow().bytes() + frozen.map_or(0, |m| m.bytes()),
            tables: tables.len(),
            table_entries: tables.iter().map(|t| t.entry_count).sum(),
            disk_bytes: s.lsm.disk_bytes(),
            cache_bytes: s.lsm.cache_bytes(),
            index_bytes: s.lsm.index_bytes(),
            lsm: s.lsm.stats(),
        }
    }

    /// Sets the hook that decides which tombstones a compaction with nothing older below may
    /// drop ([`Lsm::set_tombstone_gc`]); `None` keeps every one (the default).
    pub fn set_tombstone_gc(&self, gc: Option<TombstoneGc>) {
        self.shared.lsm.set_tombstone_gc(gc);
    }

    /// The tables (for tests and tools).
    pub fn lsm(&self) -> &Lsm<F> {
        &self.shared.lsm
    }

    /// Freezes the active memtable now (if it holds anything) and waits until it is in a
    /// table. For tests, tools and benchmarks; the engine flushes on its own.
    pub async fn flush_now(&self) -> Result<(), ShardError> {
        let s = &self.shared;
        loop {
            if s.frozen.borrow().is_none() {
                if s.active.borrow().is_empty() {
                    return Ok(());
                }
                s.freeze();
            }
            let seen = s.flushed.generation();
            if s.flush_failing.get() {
                return Err(ShardError::Storage(
                    s.last_error.borrow().clone().unwrap_or_default(),
                ));
            }
            s.flushed.changed(seen).await;
            if s.frozen.borrow().is_none() && s.active.borrow().is_empty() {
                return Ok(());
            }
        }
    }

    /// Runs compactions until the policy asks for none. For tests and tools.
    pub async fn compact_now(&self) -> Result<usize, ShardError> {
        let mut done = 0;
        while self.shared.lsm.compact_once().await.map_err(storage)? {
            done += 1;
        }
        self.shared.fit_cache();
        Ok(done)
    }

    /// Makes every write durable, stops the background tasks and closes the log. A flush cut
    /// short leaves an orphan table, removed at the next open; the log holds its data.
    pub async fn close(&self) -> Result<(), ShardError> {
        self.shared.closed.set(true);
        self.shared.flushed.signal();
        let tasks: Vec<_> = self.tasks.borrow_mut().drain(..).collect();
        for task in tasks {
            task.cancel();
            task.await;
        }
        Ok(self.shared.log.close().await?)
    }
}

impl<F: Fs> Drop for Engine<F> {
    /// An engine dropped without [`Engine::close`] (a crash test, a failed start) stops its
    /// background tasks, which would otherwise keep it alive.
    fn drop(&mut self) {
        for task in self.tasks.borrow_mut().drain(..) {
            task.cancel();
        }
    }
}

impl<F: Fs + 'static> Shared<F> {
    /// Refuses everything once the log has failed for good.
    fn check_log(&self) -> Result<(), ShardError> {
        match self.log.failure() {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        }
    }

    /// `f` of the key's object in the memtables, newest first; `Err(f)` if neither holds it.
    fn in_memtables<T, G: FnOnce(Option<&Object>) -> T>(
        &self,
        mem_key: &[u8],
        f: G,
    ) -> Result<T, G> {
        if let Some(object) = self.active.borrow().get_mem(mem_key) {
            return Ok(f(Some(object)));
        }
        let frozen = self.frozen.borrow();
        match frozen.as_ref().and_then(|fz| fz.memtable.get_mem(mem_key)) {
            Some(object) => Ok(f(Some(object))),
            None => Err(f),
        }
    }

    /// Waits while the active memtable is full and the previous one is still flushing, or
    /// while level 0 holds too many tables (compaction is behind); refuses the write if the
    /// flush is failing (a full disk), so writes do not queue without bound.
    async fn wait_for_room(&self) -> Result<(), ShardError> {
        loop {
            if self.closed.get() {
                return Err(ShardError::Closing);
            }
            let waiting_flush = self.waiting_flush();
            let stalled = self.lsm.stalled();
            if !waiting_flush && !stalled {
                return Ok(());
            }
            if (waiting_flush && self.flush_failing.get())
                || (stalled && self.compaction_failing.get())
            {
                let why = self.last_error.borrow().clone().unwrap_or_default();
                return Err(ShardError::WritesStalled(why));
            }
            tracing::trace!(waiting_flush, stalled, "a write waits for room");
            let seen = self.flushed.generation();
            self.flushed.changed(seen).await;
        }
    }

    /// The active memtable is full and the previous one is still being flushed.
    fn waiting_flush(&self) -> bool {
        self.active.borrow().bytes() >= self.limits.memtable_bytes_max
            && self.frozen.borrow().is_some()
    }

    /// Whether a write may apply now without taking the memtables past their share or
    /// adding to a level 0 that is already too deep.
    fn has_room(&self) -> bool {
        !self.waiting_flush() && !self.lsm.stalled()
    }

    /// Logs `object` as the new object of (keyspace, key) and puts it in the active memtable.
    fn append(
        &self,
        keyspace: &str,
        key: &[u8],
        object: Object,
    ) -> Result<tessera_io::Ticket, ShardError> {
        self.check_log()?;
        let len = object.encoded_len();
        if len > OBJECT_BYTES_MAX {
            return Err(ShardError::TooLarge {
                what: "the key's versions (resolve its siblings)",
                len,
                max: OBJECT_BYTES_MAX,
            });
        }
        let ticket = self.log.append_object(keyspace, key, &object)?;
        self.active.borrow_mut().insert(keyspace, key, object);
        Ok(ticket)
    }

    /// Freezes the active memtable if it is full and none is frozen.
    fn maybe_freeze(&self) {
        if self.active.borrow().bytes() >= self.limits.memtable_bytes_max
            && self.frozen.borrow().is_none()
        {
            self.freeze();
        }
    }

    /// Makes the active memtable the frozen one and starts a new one. The caller checked that
    /// none is frozen. Synchronous: every record appended so far is in a memtable, so the
    /// log's next record number is the floor once this memtable is in a table.
    fn freeze(&self) {
        let memtable = std::mem::take(&mut *self.active.borrow_mut());
        tracing::trace!(
            keys = memtable.len(),
            bytes = memtable.bytes(),
            "memtable frozen"
        );
        *self.frozen.borrow_mut() = Some(Frozen {
            memtable: Rc::new(memtable),
            log_floor: self.log.next_record(),
        });
        self.flush_wanted.notify();
    }

    /// Gives the block cache what the memtables, indexes and filters leave of the budget.
    fn fit_cache(&self) {
        let memtables = 2 * self.limits.memtable_bytes_max as u64;
        let indexes = self.lsm.index_bytes() as u64;
        let cache = self
            .limits
            .memory_budget_bytes
            .saturating_sub(memtables + indexes)
            .max(CACHE_BYTES_MIN);
        self.lsm.set_cache_budget(cache);
    }
}

/// The least block cache a shard keeps even when indexes and filters fill its budget: a few
/// blocks, so a read of one block is not decoded twice.
const CACHE_BYTES_MIN: u64 = 1 << 20;

/// A table error as a request error.
fn storage(error: LsmError) -> ShardError {
    ShardError::Storage(error.to_string())
}

/// Wall-clock milliseconds for a sibling's timestamp (used later by last-write-wins and TTL;
/// never for ordering versions, which the dots do).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
