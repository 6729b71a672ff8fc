//! K-way merge of sorted runs (memtable, SSTables), the core of compaction and of a scan over
//! several runs.
//!
//! [`Merge`] takes sources in priority order, **newest first**, each yielding
//! `Result<(key, value), E>` with strictly increasing keys, and yields every key once, with the
//! value of the newest source holding it, in key order. A [`std::collections::BinaryHeap`] holds
//! the head entry of each source, ordered by `(key, source index)`, so the smallest key comes
//! out first and, among equal keys, the newest source.
//!
//! Why newest-wins rather than [`Object::merge`] of every version: in Tessera every write
//! (client write, replication, read repair, hinted handoff) reads the key's stored object and
//! writes back the full object that supersedes it (`Object::update` or `Object::merge` applied to
//! what was read). A newer run's object for a key therefore already includes the causal history
//! of every older run's object for it; merging them again would give the same object
//! (merge is idempotent) at a decode and merge per key. **The engine must guarantee that
//! read-through when it lands**: a blind write to the memtable that skipped the SSTables would
//! make newest-wins drop concurrent siblings held only in older runs.
//!
//! Invariants:
//! - Output keys strictly increase; each key's value comes from the lowest-indexed (newest)
//!   source that holds it, and older entries of that key are discarded.
//! - A source out of order or failing ends the merge with an error ([`MergeError`]); after an
//!   error the merge yields nothing more, and its output so far must not replace the inputs.
//! - The drop hook ([`Merge::drop_if`]) sees only the winning value of a key, after older
//!   entries were discarded: dropping a tombstone also drops whatever it shadowed in this merge.
//!   It may only say yes when no run outside the merge can still hold the key and every replica
//!   has the tombstone (DESIGN.md §6); the cluster will control it. By default nothing is
//!   dropped.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::marker::PhantomData;

use tessera_core::{CoreError, Object};

use crate::sstable::SstError;

/// What ends a merge early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError<E> {
    /// A source failed to yield its next entry; see the inner error (a damaged table is rebuilt
    /// from a replica). The merge output is incomplete: discard it.
    #[error("merge source {source_index} failed: {error}")]
    Source {
        source_index: usize,
        #[source]
        error: E,
    },
    /// A source yielded a key not greater than its previous one: the run is damaged or a caller
    /// bug. The merge output is incomplete: discard it.
    #[error("merge source {source_index} out of order: {key:?} does not follow {previous:?}")]
    OutOfOrder {
        source_index: usize,
        previous: Vec<u8>,
        key: Vec<u8>,
    },
}

/// One merge output: a winning `(key, value)`, or the error that ended the merge.
pub type MergeItem<V, E> = Result<(Vec<u8>, V), MergeError<E>>;

/// The head entry of one source in the heap.
struct Head<V> {
    key: Vec<u8>,
    source_index: usize,
    value: V,
}

impl<V> Head<V> {
    fn rank(&self) -> (&[u8], usize) {
        (&self.key, self.source_index)
    }
}

// `BinaryHeap` is a max-heap: order heads by reversed `(key, source index)` so the smallest key,
// and among equal keys the newest source, is on top. Values play no part.
impl<V> Ord for Head<V> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank().cmp(&self.rank())
    }
}

impl<V> PartialOrd for Head<V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<V> PartialEq for Head<V> {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl<V> Eq for Head<V> {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    Running,
    Done,
}

/// The default drop hook: keep everything.
fn keep_all<V>(_: &V) -> bool {
    false
}

/// Merges sorted sources, newest first; see the module docs.
pub struct Merge<I, V, E, F = fn(&V) -> bool> {
    sources: Vec<I>,
    heap: BinaryHeap<Head<V>>,
    drop_if: F,
    state: State,
    _error: PhantomData<fn() -> E>,
}

impl<I, V, E, F> fmt::Debug for Merge<I, V, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merge")
            .field("sources", &self.sources.len())
            .field("heads", &self.heap.len())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<I, V, E> Merge<I, V, E>
where
    I: Iterator<Item = Result<(Vec<u8>, V), E>>,
{
    /// A merge of `sources`, newest first, keeping every winning entry.
    pub fn new(sources: Vec<I>) -> Self {
        Merge {
            heap: BinaryHeap::with_capacity(sources.len()),
            sources,
            drop_if: keep_all::<V>,
            state: State::NotStarted,
            _error: PhantomData,
        }
    }
}

impl<I, V, E, F> Merge<I, V, E, F>
where
    I: Iterator<Item = Result<(Vec<u8>, V), E>>,
    F: FnMut(&V) -> bool,
{
    /// The same merge, leaving out every key whose winning value `drop_if` accepts (see the
    /// module docs for when that is safe).
    pub fn drop_if<G: FnMut(&V) -> bool>(self, drop_if: G) -> Merge<I, V, E, G> {
        Merge {
            sources: self.sources,
            heap: self.heap,
            drop_if,
            state: self.state,
            _error: PhantomData,
        }
    }

    /// Pushes the next entry of source `source_index`, which must follow `previous` (the key it
    /// yielded last, `None` before its first).
    fn pull(&mut self, source_index: usize, previous: Option<&[u8]>) -> Result<(), MergeError<E>> {
        let Some(source) = self.sources.get_mut(source_index) else {
            debug_assert!(false, "source {source_index} does not exist");
            return Ok(());
        };
        match source.next() {
            None => Ok(()),
            Some(Err(error)) => Err(MergeError::Source {
                source_index,
                error,
            }),
            Some(Ok((key, value))) => {
                if let Some(previous) = previous.filter(|p| key.as_slice() <= *p) {
                    return Err(MergeError::OutOfOrder {
                        source_index,
                        previous: previous.to_vec(),
                        key,
                    });
                }
                self.heap.push(Head {
                    key,
                    source_index,
                    value,
                });
                Ok(())
            }
        }
    }

    /// Pulls the first entry of every source.
    fn start(&mut self) -> Result<(), MergeError<E>> {
        self.state = State::Running;
        (0..self.sources.len()).try_for_each(|i| self.pull(i, None))
    }

    /// Discards older sources' entries for the winner's key and refills every source that held
    /// it, so the heap again holds the head of every unfinished source.
    fn advance_past(&mut self, winner: &Head<V>) -> Result<(), MergeError<E>> {
        self.pull(winner.source_index, Some(&winner.key))?;
        // The winner's own source now heads with a greater key, so only older sources match.
        while self.heap.peek().is_some_and(|h| h.key == winner.key) {
            let Some(older) = self.heap.pop() else { break };
            self.pull(older.source_index, Some(&older.key))?;
        }
        Ok(())
    }

    fn fail(&mut self, error: MergeError<E>) -> Option<MergeItem<V, E>> {
        self.state = State::Done;
        self.heap.clear();
        Some(Err(error))
    }
}

impl<I, V, E, F> Iterator for Merge<I, V, E, F>
where
    I: Iterator<Item = Result<(Vec<u8>, V), E>>,
    F: FnMut(&V) -> bool,
{
    type Item = MergeItem<V, E>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            State::Done => return None,
            State::NotStarted => {
                if let Err(e) = self.start() {
                    return self.fail(e);
                }
            }
            State::Running => {}
        }
        while let Some(winner) = self.heap.pop() {
            if let Err(e) = self.advance_past(&winner) {
                return self.fail(e);
            }
            if !(self.drop_if)(&winner.value) {
                return Some(Ok((winner.key, winner.value)));
            }
        }
        self.state = State::Done;
        None
    }
}

/// What can go wrong reading one SSTable run as objects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The table could not be read: it is damaged; rebuild it from a replica.
    #[error("cannot read table: {0}")]
    Table(#[from] SstError),
    /// A stored value is not an object: the table is damaged; rebuild it from a replica.
    #[error("stored object of key {key:?} does not decode: {error}")]
    Object {
        key: Vec<u8>,
        #[source]
        error: CoreError,
    },
}

/// Adapts a table scan (`Table::iter` or `Table::range`) into a merge source of decoded objects.
pub fn decode_objects<I>(entries: I) -> impl Iterator<Item = Result<(Vec<u8>, Object), RunError>>
where
    I: Iterator<Item = Result<(Vec<u8>, Vec<u8>), SstError>>,
{
    entries.map(|entry| {
        let (key, value) = entry?;
        match Object::decode(&value) {
            Ok(object) => Ok((key, object)),
            Err(error) => Err(RunError::Object { key, error }),
        }
    })
}

#[cfg(test)]
mod tests;
