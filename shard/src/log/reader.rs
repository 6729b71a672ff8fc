//! Commit-log recovery: reads every segment in order, hands each record to the caller, drops a
//! torn tail and reports corruption anywhere else. It never guesses.
//!
//! Every file operation goes through the [`Fs`] seam, so recovery runs on the kernel and on
//! the crash simulator alike.
//!
//! The rules (see `format.rs` for the bytes):
//! - Segments are read in number order; their numbers must be contiguous and each header must
//!   carry its file's number.
//! - Records below the *floor* ([`RecoveryStart::floor_record`]) are already in durable
//!   SSTables: they are checked like any other but not handed out, and the segments that held
//!   only such records may have been deleted ([`CommitLog::release_below`]). So the first
//!   segment may have any number, but its first record must be at or below the floor, and a
//!   segment's first record must continue the one before it unless every record in between
//!   is below the floor. Otherwise records the caller needs are missing: corruption.
//! - Within a segment, batches are read until one is not valid. What follows decides:
//!   zeros to the end of the file is a clean end (DMA writes pad the last page); a valid batch
//!   anywhere after it, or any valid record in a later segment, is corruption (a later write
//!   completed, so this batch had been synced); non-zero bytes with nothing valid after them
//!   are a torn tail, allowed only in the last segment (only the last write can be torn).
//! - A torn tail is truncated away on disk, so the next recovery sees a clean end; a last
//!   segment whose header is torn is removed. Nothing is changed on disk before every segment
//!   has been checked.
//! - The writer continues after the last record, never below the floor, in a segment numbered
//!   above every remaining one ([`RecoveryReport::next`]).
//!
//! [`CommitLog::release_below`]: super::CommitLog::release_below

use std::ops::Range;
use std::path::{Path, PathBuf};

use tessera_io::fs::{Fs, FsError, FsFile, OpenMode};
use tessera_io::{LogPosition, SegmentStart};

use super::format::{
    decode_batch, decode_batch_header, decode_record, decode_segment_header, parse_segment_name,
    segment_path, ObjectRecord, BATCH_ALIGNMENT, SEGMENT_HEADER_BYTES,
};
use crate::constants::LOG_SEGMENT_FILE_BYTES_MAX;

/// Why recovery stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Damaged bytes followed by intact ones, or records missing: data that was acknowledged
    /// is unreadable.
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
    /// Reading or repairing the log failed (the error names the file and the operation).
    /// Check the disk; recovery can be run again.
    #[error("cannot recover the commit log: {0}")]
    Fs(#[from] FsError),
}

/// Where recovery starts: what the caller already holds elsewhere. `Default` is a log whose
/// every record is needed, in a directory that never held a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStart {
    /// Records numbered below this are in durable SSTables (the manifest's floor): they are
    /// not handed out, and segments holding only them may be gone.
    pub floor_record: u64,
    /// The number the writer's first segment gets if no segment remains. Deleted segments
    /// leave no trace, so only the caller can know a number above every segment that ever
    /// existed. Ignored while a segment remains: the writer then continues right after the
    /// last one, since a gap in the numbering would read as a missing segment.
    pub next_segment_min: u64,
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

/// What recovery found. `Default` is what an empty directory gives with
/// [`RecoveryStart::default`]: a writer may start from it on a fresh log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Where the writer continues.
    pub next: LogPosition,
    /// Records handed to the caller (those at or above the floor).
    pub records: u64,
    /// Records read and checked but not handed out, because they are below the floor.
    pub records_below_floor: u64,
    /// Every segment that remains, oldest first, with its first record (for a segment that
    /// holds none, the number the next record would have had).
    pub segments: Vec<SegmentStart>,
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
        .map_or(header.first_record, |(first, _)| first.saturating_add(1));
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

/// Recovers the log in `dir`, calling `apply(sequence, record)` for every record at or above
/// `start.floor_record`, in order. `apply` returns an error string for a record it cannot use,
/// which is corruption.
pub async fn recover<F: Fs>(
    fs: &F,
    dir: &Path,
    start: RecoveryStart,
    mut apply: impl FnMut(u64, ObjectRecord<'_>) -> Result<(), String>,
) -> Result<RecoveryReport, RecoveryError> {
    let floor = start.floor_record;
    let mut numbers: Vec<u64> = fs
        .list(dir)
        .await?
        .iter()
        .filter_map(|name| parse_segment_name(Path::new(name)))
        .collect();
    numbers.sort_unstable();
    let mut report = RecoveryReport {
        next: LogPosition {
            segment: start.next_segment_min,
            next_record: floor,
        },
        ..RecoveryReport::default()
    };
    // The record the next segment should start at, once a segment header has said where the
    // log is (the first segment's predecessors may be gone: see the module doc).
    let mut expected: Option<u64> = None;
    let mut prior_end: Option<(PathBuf, usize)> = None;
    // What the last segment needs on disk once every segment is checked.
    let mut last: Option<LastSegment> = None;
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment_path(dir, number);
        // Sorted and distinct, so `numbers[i - 1] + 1` cannot overflow.
        if i > 0 && number != numbers[i - 1] + 1 {
            let what = format!("segment {} is missing", numbers[i - 1] + 1);
            return Err(corruption(&path, 0, what));
        }
        let bytes = read_segment(fs, &path).await?;
        let scan = scan_segment(&bytes);
        let is_last = i + 1 == numbers.len();
        if !scan.batches.is_empty() {
            if let Some((p, offset)) = prior_end.take() {
                let what = "damaged bytes before a later valid segment".into();
                return Err(corruption(&p, offset, what));
            }
        }
        match scan.end {
            SegmentEnd::ValidAfter { bad_at, valid_at } => {
                let what = format!("damaged batch followed by a valid batch at byte {valid_at}");
                return Err(corruption(&path, bad_at, what));
            }
            SegmentEnd::Torn if !is_last => prior_end = Some((path.clone(), scan.valid_end)),
            _ => {}
        }
        if let Some(header) = decode_segment_header(&bytes) {
            if header.segment != number {
                let what = format!("header says segment {}", header.segment);
                return Err(corruption(&path, 0, what));
            }
        }
        if let Some(first) = scan.first_record {
            check_continues(&path, first, expected, floor)?;
        }
        let segment_first = scan.first_record.or(expected).unwrap_or(floor);
        let mut seq = segment_first;
        for (first, range) in &scan.batches {
            if *first != seq {
                return Err(corruption(
                    &path,
                    range.start,
                    format!("batch starts at record {first}, expected {seq}"),
                ));
            }
            let mut payload = &bytes[range.clone()];
            while !payload.is_empty() {
                let at = range.end - payload.len();
                let (record, rest) =
                    decode_record(payload).map_err(|e| corruption(&path, at, e.to_string()))?;
                if seq >= floor {
                    apply(seq, record).map_err(|e| corruption(&path, at, e))?;
                    report.records += 1;
                } else {
                    report.records_below_floor += 1;
                }
                payload = rest;
                // Numbers come from disk: one at the top of the range is damage, not a panic.
                seq = seq
                    .checked_add(1)
                    .ok_or_else(|| corruption(&path, at, "record number overflows".into()))?;
            }
        }
        if scan.first_record.is_some() || expected.is_some() {
            expected = Some(seq);
        }
        report.segments.push(SegmentStart {
            segment: number,
            first_record: segment_first,
        });
        // Never below the floor: records below it may live only in tables (a table can hold
        // records whose log write was lost with the crash), and their numbers are taken.
        let Some(next_segment) = number.checked_add(1) else {
            return Err(corruption(&path, 0, "segment number overflows".into()));
        };
        report.next = LogPosition {
            segment: next_segment,
            next_record: seq.max(floor),
        };
        if is_last {
            last = Some(LastSegment {
                path,
                number,
                len: bytes.len(),
                scan,
                bytes,
            });
        }
    }
    if let Some((p, offset)) = prior_end {
        let what = "damaged bytes at the end of a segment that is not the last".into();
        return Err(corruption(&p, offset, what));
    }
    if let Some(last) = last {
        repair_last_segment(fs, dir, last, start, &mut report).await?;
    }
    Ok(report)
}

/// Checks that a segment whose header says it starts at record `first` continues the log:
/// right after the previous segment, or anywhere at or below the floor (the records skipped
/// are in tables). `expected` is `None` for the first segment with a header.
fn check_continues(
    path: &Path,
    first: u64,
    expected: Option<u64>,
    floor: u64,
) -> Result<(), RecoveryError> {
    let what = match expected {
        Some(want) if first < want => {
            format!("segment starts at record {first}, expected {want}: records numbered twice")
        }
        Some(want) if first > want && first > floor => format!(
            "segment starts at record {first}, expected {want}: records {want}..{first} are \
             missing and not below the floor {floor}"
        ),
        None if first > floor => format!(
            "the first segment starts at record {first}, above the floor {floor}: records \
             {floor}..{first} are missing (their segments were deleted, or the floor is wrong)"
        ),
        _ => return Ok(()),
    };
    Err(corruption(path, 0, what))
}

/// The last segment as read, for [`repair_last_segment`].
struct LastSegment {
    path: PathBuf,
    number: u64,
    len: usize,
    scan: SegmentScan,
    bytes: Vec<u8>,
}

/// Makes the last segment what the writer may build on: a torn tail cut off (or the file
/// removed, if its header was torn), and its valid bytes durable.
async fn repair_last_segment<F: Fs>(
    fs: &F,
    dir: &Path,
    last: LastSegment,
    start: RecoveryStart,
    report: &mut RecoveryReport,
) -> Result<(), RecoveryError> {
    let LastSegment {
        path,
        number,
        len,
        scan,
        mut bytes,
    } = last;
    if scan.end == SegmentEnd::Torn {
        let dropped_bytes = len - scan.valid_end;
        tracing::warn!(
            path = %path.display(),
            offset = scan.valid_end,
            dropped_bytes,
            "dropping a torn commit-log tail (a write that was never acknowledged)"
        );
        report.torn_tail = Some(TornTail {
            path: path.clone(),
            offset: scan.valid_end,
            dropped_bytes,
        });
    }
    if scan.first_record.is_none() {
        if scan.end == SegmentEnd::Torn {
            // The header itself is torn: the segment never held a durable batch. Its number
            // is free again, and reusing it keeps the numbering contiguous for the next
            // recovery (or, if it was the only segment, the caller's minimum still holds).
            fs.remove(&path).await?;
            fs.sync_dir(dir).await?;
            report.segments.pop();
            report.next.segment = match report.segments.last() {
                Some(_) => number,
                None => number.max(start.next_segment_min),
            };
        }
        // An empty (or zeroed) segment holds nothing to make durable.
        return Ok(());
    }
    // Everything replayed is about to be built on (the writer starts the next segment after
    // it and acknowledges new writes there), so it must be on disk first: after a crash
    // without a reboot, the tail of the last segment may exist only in the page cache, and a
    // power cut later would leave the acknowledged writes of the next segment behind a gap.
    // After a failed writeback the kernel may even hold those bytes as clean pages that never
    // reached the disk, which a plain fsync would not write again: rewriting dirties them, so
    // the sync that follows puts them on disk or fails. Only the last segment can hold
    // unsynced bytes: the writer rolls only once a segment is durable. The truncate drops a
    // torn tail (and any zero padding) in the same sync.
    bytes.truncate(scan.valid_end);
    let valid_len = bytes.len() as u64;
    let file = fs.open(&path, OpenMode::Existing).await?;
    let repaired = async {
        file.write_at(0, bytes).await?;
        if len as u64 > valid_len {
            file.truncate(valid_len).await?;
        }
        file.sync().await
    }
    .await;
    let closed = file.close().await;
    repaired?;
    closed?;
    // The segment's own name, too, may not be durable yet (a crash right after a roll).
    fs.sync_dir(dir).await?;
    Ok(())
}

/// Reads a whole segment file, refusing one longer than any segment the writer makes.
async fn read_segment<F: Fs>(fs: &F, path: &Path) -> Result<Vec<u8>, RecoveryError> {
    let file = fs.open(path, OpenMode::Existing).await?;
    let read = async {
        let len = file.len().await?;
        let Some(len) = usize::try_from(len)
            .ok()
            .filter(|_| len <= LOG_SEGMENT_FILE_BYTES_MAX)
        else {
            let what = format!(
                "segment file of {len} bytes is longer than any segment ({} bytes at most)",
                LOG_SEGMENT_FILE_BYTES_MAX
            );
            return Err(corruption(path, 0, what));
        };
        let bytes = file.read_at(0, len).await?;
        if bytes.len() != len {
            // Nothing else writes the log during recovery: a file that shrinks is damage.
            let what = format!("file shrank from {len} to {} bytes while read", bytes.len());
            return Err(corruption(path, bytes.len(), what));
        }
        Ok(bytes)
    }
    .await;
    let closed = file.close().await;
    let bytes = read?;
    closed?;
    Ok(bytes)
}

fn corruption(path: &Path, offset: usize, what: String) -> RecoveryError {
    RecoveryError::Corruption {
        path: path.to_path_buf(),
        offset,
        what,
    }
}
