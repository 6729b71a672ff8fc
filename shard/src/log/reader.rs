//! Commit-log recovery: reads every segment in order, hands each record to the caller, drops a
//! torn tail and reports corruption anywhere else. It never guesses.
//!
//! The rules (see `format.rs` for the bytes):
//! - Segments are read in number order; their numbers must be contiguous and their record
//!   sequence numbers must continue one another.
//! - Within a segment, batches are read until one is not valid. What follows decides:
//!   zeros to the end of the file is a clean end (DMA writes pad the last page); a valid batch
//!   anywhere after it, or any valid record in a later segment, is corruption (a later write
//!   completed, so this batch had been synced); non-zero bytes with nothing valid after them
//!   are a torn tail, allowed only in the last segment (only the last write can be torn).
//! - A torn tail is truncated away on disk, so the next recovery sees a clean end.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use tessera_io::{file, LogPosition};

use super::format::{
    decode_batch, decode_batch_header, decode_record, decode_segment_header, parse_segment_name,
    ObjectRecord, BATCH_ALIGNMENT, SEGMENT_HEADER_BYTES,
};

/// Why recovery stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Damaged bytes followed by intact ones: data that was acknowledged is unreadable.
    #[error(
        "commit log corruption in {} at byte {offset}: {what}. The node refuses to start rather \
         than serve a silently shortened history; restore this shard's data from a replica or \
         backup, or move the damaged segment aside if losing its records is acceptable",
        path.display()
    )]
    Corruption {
        /// The damaged segment.
        path: PathBuf,
        /// Offset of the first damaged byte found.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// Reading the log failed.
    #[error("cannot read commit log file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// A torn tail that recovery dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Segment file.
    pub path: PathBuf,
    /// Where the valid log ended.
    pub offset: usize,
    /// Bytes dropped.
    pub dropped_bytes: usize,
}

/// What recovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Where the writer continues.
    pub next: LogPosition,
    /// Records handed to the caller.
    pub records: u64,
    /// Segments read.
    pub segments: usize,
    /// The torn tail dropped, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// How a segment's valid prefix ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// The file ends, or only zeros follow.
    Clean,
    /// Non-zero bytes with no valid batch after them.
    Torn,
    /// A bad batch at `bad_at` is followed by a valid one at `valid_at`.
    ValidAfter {
        /// First bad byte.
        bad_at: usize,
        /// A later valid batch.
        valid_at: usize,
    },
}

/// The valid prefix of one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// The header's first record number, if the header is valid.
    pub first_record: Option<u64>,
    /// Payload ranges of valid batches, in order, with their first record numbers.
    pub batches: Vec<(u64, Range<usize>)>,
    /// Offset just past the last valid batch (0 if the header itself is bad).
    pub valid_end: usize,
    /// How the valid prefix ended.
    pub end: SegmentEnd,
}

/// Finds the valid prefix of a segment's bytes. Pure: no I/O, so it is tested directly.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan {
    let Some(header) = decode_segment_header(bytes) else {
        return SegmentScan {
            first_record: None,
            batches: Vec::new(),
            valid_end: 0,
            end: classify_rest(bytes, 0, SEGMENT_HEADER_BYTES, 0),
        };
    };
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut batches = Vec::new();
    while let Some((h, _)) = bytes.get(pos..).and_then(decode_batch) {
        let payload = pos + super::format::BATCH_HEADER_BYTES;
        batches.push((h.first_record, payload..payload + h.payload_len));
        pos += h.total_len();
    }
    // If the bad batch's header is intact (only its payload is torn), a later valid batch can
    // only start after the length it declares: a value inside the torn payload that happens to
    // look like a batch must not count as one.
    let search_from = bytes
        .get(pos..)
        .and_then(decode_batch_header)
        .map_or(pos + BATCH_ALIGNMENT, |h| pos + h.total_len());
    // A batch written after the bad one continues the numbering; one that does not cannot be
    // a later write (it could be a batch image inside a torn value).
    let min_first = batches
        .last()
        .map_or(header.first_record, |(first, _)| first + 1);
    SegmentScan {
        first_record: Some(header.first_record),
        batches,
        valid_end: pos.min(bytes.len()),
        end: classify_rest(bytes, pos, search_from, min_first),
    }
}

/// Decides what the bytes from `bad_at` on are: valid batches numbered from `min_first` on
/// are searched from `search_from`.
fn classify_rest(bytes: &[u8], bad_at: usize, search_from: usize, min_first: u64) -> SegmentEnd {
    let rest = bytes.get(bad_at..).unwrap_or(&[]);
    if rest.iter().all(|&b| b == 0) {
        return SegmentEnd::Clean;
    }
    let first = search_from.div_ceil(BATCH_ALIGNMENT) * BATCH_ALIGNMENT;
    let valid = (first..bytes.len())
        .step_by(BATCH_ALIGNMENT)
        .find(|&at| decode_batch(&bytes[at..]).is_some_and(|(h, _)| h.first_record >= min_first));
    match valid {
        Some(valid_at) => SegmentEnd::ValidAfter { bad_at, valid_at },
        None => SegmentEnd::Torn,
    }
}

/// Recovers the log in `dir`, calling `apply(sequence, record)` for every record in order.
/// `apply` returns an error string for a record it cannot use, which is corruption.
pub async fn recover(
    dir: &Path,
    mut apply: impl FnMut(u64, ObjectRecord<'_>) -> Result<(), String>,
) -> Result<RecoveryReport, RecoveryError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecoveryError::Io { path, source }
    };
    let mut segments: Vec<(u64, PathBuf)> = file::list_files(dir)
        .map_err(io_err(dir))?
        .into_iter()
        .filter_map(|p| Some((parse_segment_name(&p)?, p)))
        .collect();
    segments.sort();
    let mut report = RecoveryReport {
        next: LogPosition {
            segment: 0,
            next_record: 0,
        },
        records: 0,
        segments: segments.len(),
        torn_tail: None,
    };
    let mut expected: Option<u64> = None;
    let mut prior_end: Option<(PathBuf, usize, SegmentEnd)> = None;
    // The last segment's replayed bytes, made durable before the writer builds on them.
    let mut last_replayed: Option<(PathBuf, Vec<u8>)> = None;
    for (i, (number, path)) in segments.iter().enumerate() {
        if i > 0 && *number != segments[i - 1].0 + 1 {
            return Err(corruption(
                path,
                0,
                format!("segment {} is missing", segments[i - 1].0 + 1),
            ));
        }
        let bytes = file::read_file_blocking(path).map_err(io_err(path))?;
        let scan = scan_segment(&bytes);
        let is_last = i + 1 == segments.len();
        if !scan.batches.is_empty() {
            if let Some((p, offset, _)) = prior_end.take() {
                return Err(corruption(
                    &p,
                    offset,
                    "damaged bytes before a later valid segment".into(),
                ));
            }
        }
        match scan.end {
            SegmentEnd::ValidAfter { bad_at, valid_at } => {
                let what = format!("damaged batch followed by a valid batch at byte {valid_at}");
                return Err(corruption(path, bad_at, what));
            }
            SegmentEnd::Torn if !is_last => {
                prior_end = Some((path.clone(), scan.valid_end, scan.end))
            }
            _ => {}
        }
        if let (Some(first), Some(want)) = (scan.first_record, expected) {
            if first != want {
                return Err(corruption(
                    path,
                    0,
                    format!("segment starts at record {first}, expected {want}"),
                ));
            }
        }
        let mut seq = scan.first_record.or(expected).unwrap_or(0);
        for (first, range) in &scan.batches {
            if *first != seq {
                return Err(corruption(
                    path,
                    range.start,
                    format!("batch starts at record {first}, expected {seq}"),
                ));
            }
            let mut payload = &bytes[range.clone()];
            while !payload.is_empty() {
                let (record, rest) = decode_record(payload)
                    .map_err(|e| corruption(path, range.end - payload.len(), e.to_string()))?;
                apply(seq, record).map_err(|e| corruption(path, range.end - payload.len(), e))?;
                payload = rest;
                seq += 1;
                report.records += 1;
            }
        }
        expected = Some(seq);
        report.next = LogPosition {
            segment: number + 1,
            next_record: seq,
        };
        if is_last && scan.end == SegmentEnd::Torn {
            report.torn_tail = Some(drop_torn_tail(path, &scan, bytes.len())?);
            if scan.first_record.is_none() {
                // The segment's header was torn and the file removed: its number is free
                // again, and reusing it keeps the numbering contiguous for the next recovery.
                report.next.segment = *number;
            }
        }
        if is_last && scan.first_record.is_some() {
            let mut valid = bytes;
            valid.truncate(scan.valid_end);
            last_replayed = Some((path.clone(), valid));
        }
    }
    // Everything replayed is about to be built on (the writer starts the next segment after
    // it and acknowledges new writes there), so it must be on disk first: after a crash
    // without a reboot, the tail of the last segment may exist only in the page cache, and a
    // power cut later would leave the acknowledged writes of the next segment behind a gap.
    // Only the last segment can hold unsynced bytes: the writer rolls only once a segment is
    // durable.
    if let Some((path, valid)) = &last_replayed {
        file::rewrite_prefix_durable_blocking(path, valid).map_err(io_err(path))?;
        file::sync_dir_blocking(dir).map_err(io_err(dir))?;
    }
    if let Some((p, offset, _)) = prior_end {
        return Err(corruption(
            &p,
            offset,
            "damaged bytes at the end of a segment that is not the last".into(),
        ));
    }
    Ok(report)
}

/// Cuts a torn tail off the last segment (or removes a segment whose header was torn).
fn drop_torn_tail(path: &Path, scan: &SegmentScan, len: usize) -> Result<TornTail, RecoveryError> {
    let io_err = |source| RecoveryError::Io {
        path: path.to_path_buf(),
        source,
    };
    if scan.first_record.is_none() {
        file::remove_file_blocking(path).map_err(io_err)?;
    } else {
        file::truncate_file_blocking(path, scan.valid_end as u64).map_err(io_err)?;
    }
    tracing::warn!(
        path = %path.display(),
        offset = scan.valid_end,
        dropped_bytes = len - scan.valid_end,
        "dropped a torn commit-log tail (a write that was never acknowledged)"
    );
    Ok(TornTail {
        path: path.to_path_buf(),
        offset: scan.valid_end,
        dropped_bytes: len - scan.valid_end,
    })
}

fn corruption(path: &Path, offset: usize, what: String) -> RecoveryError {
    RecoveryError::Corruption {
        path: path.to_path_buf(),
        offset,
        what,
    }
}
