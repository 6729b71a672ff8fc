//! Range reads over tables: one table's entries in a key range, read block by block, and the
//! newest-wins merge of several tables' entries (partition streaming).

use super::{decode, LsmError, SsTable};
use crate::merge::Merge;
use tessera_core::Object;
use tessera_io::fs::Fs;

use super::table::Cache;

/// Entries of `table` with `start <= key < end` (no bound if `end` is `None`), in key order.
/// Blocks are read through the cache without inserting (a scan must not evict hot blocks).
pub async fn read_range<F: Fs>(
    table: &SsTable<F>,
    start: &[u8],
    end: Option<&[u8]>,
    cache: &Cache,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, LsmError> {
    let meta = table.meta();
    let mut out = Vec::new();
    if table.index().is_empty()
        || &meta.largest[..] < start
        || end.is_some_and(|end| &meta.smallest[..] >= end)
    {
        return Ok(out);
    }
    let index = table.index();
    let mut i = index.block_for(start);
    while i < index.block_count() {
        let block = table.block(i, cache, false).await?;
        for at in block.lower_bound(start)..block.len() {
            let key = block.key(at);
            if end.is_some_and(|end| key >= end) {
                return Ok(out);
            }
            out.push((key.to_vec(), block.value(at).to_vec()));
        }
        if end.is_some_and(|end| index.last_key_of(i) >= end) {
            break;
        }
        i += 1;
    }
    Ok(out)
}

/// Merges runs given newest first into one run of decoded objects, the newest version of
/// every key, in key order.
pub fn merge_runs(runs: Vec<Vec<(Vec<u8>, Vec<u8>)>>) -> Result<Vec<(Vec<u8>, Object)>, LsmError> {
    let sources = runs
        .into_iter()
        .map(|run| run.into_iter().map(Ok::<_, LsmError>))
        .collect();
    let mut out = Vec::new();
    for entry in Merge::new(sources) {
        let (key, bytes) = entry.map_err(merge_error)?;
        let object = decode(&key, &bytes)?;
        out.push((key, object));
    }
    Ok(out)
}

/// A merge failure as an [`LsmError`]: a source's own error, or keys out of order in a table
/// (which the table's checks should have caught: a damaged table).
pub fn merge_error(error: crate::merge::MergeError<LsmError>) -> LsmError {
    match error {
        crate::merge::MergeError::Source { error, .. } => error,
        other => LsmError::Merge(other.to_string()),
    }
}
