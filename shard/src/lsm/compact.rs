//! Running one compaction job: read the inputs block by block (paced by the I/O budget, never
//! filling the cache), merge them newest first, write outputs split at the policy's table size,
//! then install them with one manifest edit and delete the inputs.
//!
//! The merge (`merge.rs`) is a synchronous iterator; table blocks arrive by `.await`. Each
//! input therefore feeds the merge from a buffer that this driver refills, one block at a
//! time, before every step of the merge, so that it holds more than one step can take unless
//! its table is exhausted.
//! Should the merge ever read an empty buffer of an unfinished input anyway, that input
//! reports [`LsmError::Starved`] and the job fails with nothing installed, rather than the
//! merge taking the gap for the table's end and dropping its remaining keys.
//!
//! Crash safety: outputs are synced and their names made durable before the edit commits;
//! until it commits they are orphans (removed at the next open); after it commits the inputs
//! are orphans until removed here (or at the next open).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use tessera_core::Object;
use tessera_io::fs::Fs;

use super::scan::merge_error;
use super::write::{pace, TableWriter};
use super::{Lsm, LsmError, SsTable, TombstoneGc};
use crate::compaction::{apply_job, overlaps, pick, CompactionError, CompactionJob};
use crate::manifest::TableMeta;
use crate::merge::Merge;

/// One input's entries read so far and not yet taken by the merge.
#[derive(Debug, Default)]
struct Feed {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    next_block: usize,
    done: bool,
}

/// Runs the job the policy picks, if any; returns whether one ran.
pub async fn run_once<F: Fs>(lsm: &Lsm<F>) -> Result<bool, LsmError> {
    let job = pick(&lsm.manifest.borrow(), &lsm.options.policy);
    let Some(job) = job else {
        return Ok(false);
    };
    let inputs = job
        .inputs
        .iter()
        .map(|id| {
            lsm.open
                .borrow()
                .get(id)
                .cloned()
                .ok_or(CompactionError::InputNotLive(*id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gc = bottommost(lsm, &job)
        .then(|| lsm.tombstone_gc.borrow().clone())
        .flatten();
    tracing::debug!(?job, "compaction starts");
    let mut created = Vec::new();
    match merge_into_tables(lsm, &inputs, gc, &mut created).await {
        Ok(outputs) => install(lsm, &job, outputs).await?,
        Err(error) => {
            remove_outputs(lsm, &created).await;
            return Err(error);
        }
    }
    Ok(true)
}

/// Removes output tables the manifest does not name (a job that failed). Best effort: an
/// output left behind is an orphan, removed at the next open.
async fn remove_outputs<F: Fs>(lsm: &Lsm<F>, ids: &[u64]) {
    for id in ids {
        if lsm.open.borrow().contains_key(id) {
            continue;
        }
        let _ = lsm
            .fs
            .remove(&lsm.dir.join(super::table::table_file_name(*id)))
            .await;
    }
}

/// Whether no table outside the job, at a deeper level than its output, overlaps its inputs:
/// then no older run can hold a key the job merges, and a tombstone may go.
fn bottommost<F: Fs>(lsm: &Lsm<F>, job: &CompactionJob) -> bool {
    let manifest = lsm.manifest.borrow();
    let inputs: Vec<&TableMeta> = manifest
        .tables
        .iter()
        .filter(|t| job.inputs.contains(&t.id))
        .collect();
    !manifest.tables.iter().any(|t| {
        t.level > job.output_level
            && !job.inputs.contains(&t.id)
            && inputs.iter().any(|i| overlaps(i, t))
    })
}

async fn merge_into_tables<F: Fs>(
    lsm: &Lsm<F>,
    inputs: &[Rc<SsTable<F>>],
    gc: Option<TombstoneGc>,
    created: &mut Vec<u64>,
) -> Result<Vec<TableMeta>, LsmError> {
    let feeds: Vec<Rc<RefCell<Feed>>> = inputs.iter().map(|_| Rc::default()).collect();
    let sources = feeds
        .iter()
        .enumerate()
        .map(|(i, feed)| {
            let feed = feed.clone();
            std::iter::from_fn(move || {
                let mut feed = feed.borrow_mut();
                match feed.entries.pop_front() {
                    Some(entry) => Some(Ok(entry)),
                    None if feed.done => None,
                    None => Some(Err(LsmError::Starved(i))),
                }
            })
        })
        .collect();
    // Tombstones are dropped from the merge's output here rather than by `Merge::drop_if`,
    // which would pull again inside one step (see `refill`); the effect is the same, since
    // the hook sees only winning values either way.
    let droppable = |bytes: &[u8]| {
        gc.as_ref().is_some_and(|gc| {
            Object::decode(bytes).is_ok_and(|object| object.is_deleted() && gc(&object))
        })
    };
    let mut merge = Merge::new(sources);
    let target = lsm.options.policy.target_file_bytes;
    let mut outputs = Vec::new();
    let mut writer: Option<TableWriter<'_, F>> = None;
    loop {
        refill(lsm, inputs, &feeds).await?;
        let Some(entry) = merge.next() else { break };
        let (key, value) = entry.map_err(merge_error)?;
        if droppable(&value) {
            continue;
        }
        if writer.is_none() {
            let id = lsm.allocate_id();
            created.push(id);
            let table = lsm.options.table.clone();
            writer =
                Some(TableWriter::create(&*lsm.fs, &lsm.dir, id, table, Some(&lsm.budget)).await?);
        }
        if let Some(w) = writer.as_mut() {
            w.add(&key, &value).await?;
            if w.estimated_bytes() >= target {
                if let Some(done) = writer.take() {
                    outputs.push(done.finish().await?);
                }
            }
        }
    }
    if let Some(done) = writer.take() {
        outputs.push(done.finish().await?);
    }
    Ok(outputs)
}

/// Entries an unfinished input keeps buffered before each merge step: one step pulls at most
/// twice from an input (its first entry when the merge starts, then the entry after the one
/// it yields), so two suffice.
const FEED_ENTRIES_MIN: usize = 2;

/// Reads blocks into every input's buffer until it holds [`FEED_ENTRIES_MIN`] entries or its
/// table is done.
async fn refill<F: Fs>(
    lsm: &Lsm<F>,
    inputs: &[Rc<SsTable<F>>],
    feeds: &[Rc<RefCell<Feed>>],
) -> Result<(), LsmError> {
    for (table, feed) in inputs.iter().zip(feeds) {
        loop {
            let next = {
                let feed = feed.borrow();
                if feed.entries.len() >= FEED_ENTRIES_MIN || feed.done {
                    break;
                }
                feed.next_block
            };
            if next >= table.index().block_count() {
                feed.borrow_mut().done = true;
                break;
            }
            pace(&lsm.budget, table.index().loc(next).framed_len()).await;
            let block = table.block(next, &lsm.cache, false).await?;
            let mut feed = feed.borrow_mut();
            let entries =
                (0..block.len()).map(|i| (block.key(i).to_vec(), block.value(i).to_vec()));
            feed.entries.extend(entries);
            feed.next_block += 1;
        }
    }
    Ok(())
}

/// Commits the outputs in place of the inputs, then deletes the inputs' files.
async fn install<F: Fs>(
    lsm: &Lsm<F>,
    job: &CompactionJob,
    outputs: Vec<TableMeta>,
) -> Result<(), LsmError> {
    // Output names must be durable before the manifest refers to them.
    if let Err(error) = lsm.fs.sync_dir(&lsm.dir).await {
        let created: Vec<u64> = outputs.iter().map(|t| t.id).collect();
        remove_outputs(lsm, &created).await;
        return Err(error.into());
    }
    let written: u64 = outputs.iter().map(|t| t.file_size).sum();
    // Checked against the manifest the edit applies to (inside the commit turn): a flush may
    // have committed since the job was picked.
    let created: Vec<u64> = outputs.iter().map(|t| t.id).collect();
    if let Err(error) = lsm
        .install(|manifest| Ok(apply_job(manifest, job, outputs)?))
        .await
    {
        remove_outputs(lsm, &created).await;
        return Err(error);
    }
    for id in &job.inputs {
        lsm.cache.borrow_mut().remove_table(*id);
        let path = lsm.dir.join(super::table::table_file_name(*id));
        if let Err(error) = lsm.fs.remove(&path).await {
            // The edit is durable; a file left behind is removed at the next open.
            tracing::warn!(table = id, %error, "cannot remove a compacted table");
        }
    }
    lsm.fs.sync_dir(&lsm.dir).await?;
    let mut stats = lsm.stats.get();
    stats.compacted_bytes += written;
    stats.compactions += 1;
    lsm.stats.set(stats);
    tracing::debug!(?job, written, "compaction installed");
    Ok(())
}
