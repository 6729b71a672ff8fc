//! The commit log's contract, end to end and byte by byte:
//! - what is appended and acknowledged durable is recovered, in order, across restarts and
//!   segment rolls, and one group-commit write covers many concurrent appends;
//! - a torn tail (the last batch of the last segment) is dropped, truncated on disk and reported;
//! - damage anywhere else is `RecoveryError::Corruption` naming the file and offset, and never
//!   hands out records that differ from what was written;
//! - the engine rebuilds the same objects (siblings and clocks) from its log.

mod common;

use std::rc::Rc;

use proptest::prelude::*;
use tessera_core::{NodeId, Object, VersionVector};
use tessera_io::fs::RealFs;
use tessera_io::log_writer::LogConfig;
use tessera_io::{LogError, LogPosition, SegmentStart};
use tessera_shard::engine::{Engine, EngineLimits};
use tessera_shard::log::format::{
    decode_record, encode_segment_header, segment_path, BATCH_ALIGNMENT, BATCH_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use tessera_shard::log::reader::{scan_segment, SegmentEnd, SegmentScan};
use tessera_shard::log::{RecoveryError, RecoveryReport, RecoveryStart, TornTail};

use common::{
    append, build_segment, expected, push_batch, record, recover_collect, recover_ok, run,
    segments, start_log, write_batches, RawRecord, RealLog, Rec, Rng, TestDir,
};

/// Large enough that nothing rolls or waits for room.
const BIG: LogConfig = LogConfig {
    segment_bytes: 64 << 20,
    pending_bytes_max: 1 << 20,
};

/// Small enough that a few hundred records fill many segments and many batches.
const SMALL: LogConfig = LogConfig {
    segment_bytes: 64 << 10,
    pending_bytes_max: 16 << 10,
};

/// Records in the given batches of a segment's bytes.
fn count_records(bytes: &[u8], batches: &[(u64, std::ops::Range<usize>)]) -> usize {
    batches
        .iter()
        .map(|(_, range)| {
            let mut payload = &bytes[range.clone()];
            let mut n = 0;
            while !payload.is_empty() {
                payload = decode_record(payload).expect("record of a valid batch").1;
                n += 1;
            }
            n
        })
        .sum()
}

fn file_len(path: &std::path::Path) -> usize {
    std::fs::metadata(path).expect("stat").len() as usize
}

/// Recovery must fail with corruption in `path` at `offset`; the records handed out before
/// that must be exactly `before` (a prefix of what was written). Returns the message.
async fn expect_corruption(
    log_dir: &std::path::Path,
    path: &std::path::Path,
    offset: usize,
    before: &[Rec],
) -> String {
    let (recs, result) = recover_collect(log_dir).await;
    match result {
        Err(RecoveryError::Corruption {
            path: p,
            offset: o,
            what,
        }) => {
            assert_eq!(p, path, "corruption names the damaged segment ({what})");
            assert_eq!(
                o, offset,
                "corruption names the first damaged byte ({what})"
            );
            assert_eq!(recs, before, "records handed out before the damage");
            what
        }
        other => panic!(
            "expected corruption in {} at {offset}, got {other:?}",
            path.display()
        ),
    }
}

// 1. Round trip ---------------------------------------------------------------------------

#[test]
fn round_trip_recovers_every_record_in_order_and_continues_numbering() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();

        let (recs, report) = recover_ok(&log_dir).await;
        assert!(recs.is_empty());
        let empty = RecoveryReport {
            next: LogPosition {
                segment: 0,
                next_record: 0,
            },
            records: 0,
            records_below_floor: 0,
            segments: Vec::new(),
            torn_tail: None,
        };
        assert_eq!(report, empty);
        assert_eq!(report, RecoveryReport::default());

        // First run: 200 records appended with no await in between, so one batch takes them.
        let n = 200u64;
        let log = start_log(log_dir.clone(), &report, BIG);
        let tickets: Vec<_> = (0..n).map(|i| append(&log, i, 40)).collect();
        for (i, t) in tickets.iter().enumerate() {
            assert_eq!(t.record(), i as u64);
            log.wait_durable(*t).await.unwrap();
        }
        assert_eq!(
            log.batches_written(),
            1,
            "everything pending goes in one batch"
        );
        log.close().await.unwrap();
        let (ks, key, object) = record(0, 1);
        assert!(matches!(
            log.append_object(&ks, &key, &object),
            Err(LogError::Closed)
        ));

        let first: Vec<Rec> = (0..n).map(|i| expected(i, i, 40)).collect();
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, first);
        assert_eq!(
            report,
            RecoveryReport {
                next: LogPosition {
                    segment: 1,
                    next_record: n,
                },
                records: n,
                records_below_floor: 0,
                segments: vec![SegmentStart {
                    segment: 0,
                    first_record: 0,
                }],
                torn_tail: None,
            }
        );
        // Recovery is read-only on a clean log: again gives the same.
        assert_eq!(recover_ok(&log_dir).await, (first.clone(), report.clone()));

        // Second run continues the numbering in a new segment.
        let log = start_log(log_dir.clone(), &report, BIG);
        let second = write_batches(&log, 1_000, n, 5, 10, 25).await;
        log.close().await.unwrap();
        assert_eq!(segments(&log_dir).len(), 2);

        let (recs, report) = recover_ok(&log_dir).await;
        let all: Vec<Rec> = first.into_iter().chain(second).collect();
        assert_eq!(recs, all);
        assert_eq!(
            report.next,
            LogPosition {
                segment: 2,
                next_record: n + 50,
            }
        );
        assert_eq!((report.records, report.segments.len()), (n + 50, 2));
        assert_eq!(
            report.segments[1],
            SegmentStart {
                segment: 1,
                first_record: n
            }
        );
        assert_eq!(report.torn_tail, None);
    });
}

// 2. Group commit -------------------------------------------------------------------------

#[test]
fn group_commit_covers_many_concurrent_appends_with_one_sync() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let log = Rc::new(start_fresh(log_dir.clone(), BIG));
        let tasks = 500u64;
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    log.ready().await;
                    let ticket = append(&log, i, 30);
                    log.wait_durable(ticket).await.unwrap();
                    (ticket.record(), i)
                })
            })
            .collect();
        let mut done = Vec::new();
        for h in handles {
            done.push(h.await);
        }
        let batches = log.batches_written();
        assert!(batches >= 1);
        assert!(
            batches < tasks / 2,
            "{batches} batches for {tasks} concurrent appends: group commit is not grouping"
        );
        log.close().await.unwrap();

        // Every acknowledged record is on disk under the number its ticket promised.
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(report.records, tasks);
        assert_eq!(report.next.next_record, tasks);
        done.sort();
        let seqs: Vec<u64> = done.iter().map(|&(seq, _)| seq).collect();
        assert_eq!(seqs, (0..tasks).collect::<Vec<_>>());
        for (seq, i) in done {
            assert_eq!(recs[seq as usize], expected(seq, i, 30));
        }
    });
}

// 3. Segment roll -------------------------------------------------------------------------

#[test]
fn segments_roll_at_their_size_and_recovery_reads_them_all_in_order() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let log = start_fresh(log_dir.clone(), SMALL);
        let n = 400u64;
        let value_len = 700;
        let mut want = Vec::new();
        let mut record_bytes_max = 0;
        let mut last = None;
        for i in 0..n {
            if i == 100 {
                // A record over the batch bound is refused and leaves no trace.
                let mut big = Object::new();
                big.update(&VersionVector::new(), NodeId(1), 1, Some(vec![1; 20 << 10]))
                    .unwrap();
                log.ready().await;
                match log.append_object("users", b"too-big", &big) {
                    Err(LogError::RecordTooLarge { len, max }) => {
                        assert_eq!(max, SMALL.pending_bytes_max);
                        assert!(len > max);
                    }
                    other => panic!("expected RecordTooLarge, got {other:?}"),
                }
            }
            // The writer's own bound: wait for room, then append with no await in between.
            log.ready().await;
            let ticket = append(&log, i, value_len);
            assert_eq!(ticket.record(), i);
            last = Some(ticket);
            want.push(expected(i, i, value_len));
            let (ks, key, object) = record(i, value_len);
            let mut one = Vec::new();
            tessera_shard::log::format::encode_object_record(&mut one, &ks, &key, |o| {
                object.encode(o)
            });
            record_bytes_max = record_bytes_max.max(one.len());
        }
        log.wait_durable(last.unwrap()).await.unwrap();
        assert!(
            log.batches_written() >= 10,
            "the pending bound splits batches"
        );
        log.close().await.unwrap();

        let files = segments(&log_dir);
        let total: usize = files.iter().map(|p| file_len(p)).sum();
        assert!(files.len() >= 5, "only {} segments", files.len());
        assert!(total as u64 >= n * value_len as u64);
        let mut next_first = 0u64;
        for (number, path) in files.iter().enumerate() {
            assert_eq!(*path, segment_path(&log_dir, number as u64));
            assert!(
                file_len(path) as u64 <= SMALL.segment_bytes,
                "{} is {} bytes",
                path.display(),
                file_len(path)
            );
            let bytes = std::fs::read(path).unwrap();
            let header = tessera_shard::log::format::decode_segment_header(&bytes).unwrap();
            assert_eq!(header.segment, number as u64);
            assert_eq!(
                header.first_record, next_first,
                "segments continue one another"
            );
            let scan = scan_segment(&bytes);
            assert_eq!(scan.end, SegmentEnd::Clean);
            assert!(!scan.batches.is_empty());
            for (first, range) in &scan.batches {
                assert!(
                    range.len() < SMALL.pending_bytes_max + record_bytes_max,
                    "batch of {} bytes breaks the pending bound",
                    range.len()
                );
                let mut payload = &bytes[range.clone()];
                let mut count = 0;
                while !payload.is_empty() {
                    payload = decode_record(payload).unwrap().1;
                    count += 1;
                }
                assert_eq!(*first, next_first);
                next_first += count;
            }
        }
        assert_eq!(next_first, n);

        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, want);
        assert_eq!(report.segments.len(), files.len());
        assert_eq!(
            report.next,
            LogPosition {
                segment: files.len() as u64,
                next_record: n,
            }
        );

        // A second run keeps rolling from where the first stopped.
        let log = start_log(log_dir.clone(), &report, SMALL);
        let more = write_batches(&log, 5_000, n, 20, 5, value_len).await;
        log.close().await.unwrap();
        want.extend(more);
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, want);
        assert!(report.segments.len() > files.len() + 1);
        assert_eq!(report.segments.len(), segments(&log_dir).len());
    });
}

/// On the real file system too: `release_below` removes exactly the segments wholly below the
/// floor, and recovery at that floor reads the rest.
#[test]
fn release_below_removes_old_segment_files_and_recovery_skips_below_the_floor() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let log = start_fresh(log_dir.clone(), SMALL);
        let all = write_batches(&log, 0, 0, 80, 5, 700).await;
        let known = log.segments();
        assert_eq!(known.len(), segments(&log_dir).len());
        assert!(known.len() >= 4, "{known:?}");
        let floor = known[2].first_record;
        assert_eq!(log.release_below(floor).await.unwrap(), 2);
        let on_disk = segments(&log_dir);
        let want: Vec<_> = known[2..]
            .iter()
            .map(|s| segment_path(&log_dir, s.segment))
            .collect();
        assert_eq!(on_disk, want);
        log.close().await.unwrap();

        let start = RecoveryStart {
            floor_record: floor,
            next_segment_min: 0,
        };
        let (recs, report) = common::recover_collect_on(&RealFs, &log_dir, start).await;
        let report = report.unwrap();
        assert_eq!(recs, all[floor as usize..]);
        assert_eq!(
            report.records_below_floor, 0,
            "segment 2 starts at the floor"
        );
        assert_eq!(report.segments[..], known[2..]);
        // Without the floor, the released records are missing: corruption, not silence.
        let (_, result) = recover_collect(&log_dir).await;
        let missing = match &result {
            Err(RecoveryError::Corruption { what, .. }) => what.contains("above the floor 0"),
            _ => false,
        };
        assert!(missing, "{result:?}");
    });
}

/// A log in `dir` (empty) starting at segment 0, record 0.
fn start_fresh(dir: std::path::PathBuf, config: LogConfig) -> RealLog {
    start_log(dir, &RecoveryReport::default(), config)
}

/// Six durable batches of three records in segment 0 of a fresh log in `log_dir`: the
/// records, the segment's path and its bytes.
async fn six_batch_segment(log_dir: &std::path::Path) -> (Vec<Rec>, std::path::PathBuf, Vec<u8>) {
    let log = start_fresh(log_dir.to_path_buf(), BIG);
    let all = write_batches(&log, 0, 0, 6, 3, 60).await;
    log.close().await.expect("close the log");
    let seg = segment_path(log_dir, 0);
    let pristine = std::fs::read(&seg).expect("read segment 0");
    (all, seg, pristine)
}

// 4. Torn tail ----------------------------------------------------------------------------

/// Recovers a log whose last segment `seg` has a torn tail that starts at `offset`: exactly
/// `want` comes back, the tail is reported and cut off on disk, and recovering again is clean.
async fn check_torn(log_dir: &std::path::Path, seg: &std::path::Path, want: &[Rec], offset: usize) {
    let len_before = file_len(seg);
    let (recs, report) = recover_ok(log_dir).await;
    assert_eq!(recs, want, "records before the torn batch");
    assert_eq!(
        report.torn_tail,
        Some(TornTail {
            path: seg.to_path_buf(),
            offset,
            dropped_bytes: len_before - offset,
        })
    );
    assert_eq!(report.records, want.len() as u64);
    assert_eq!(file_len(seg), offset, "the torn tail is truncated on disk");
    let (again, report2) = recover_ok(log_dir).await;
    assert_eq!(again, want);
    assert_eq!(
        report2.torn_tail, None,
        "a second recovery sees a clean end"
    );
    assert_eq!(report2.next, report.next);
}

#[test]
fn torn_tail_is_dropped_truncated_and_reported() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let (all, seg, pristine) = six_batch_segment(&log_dir).await;
        let scan = scan_segment(&pristine);
        assert_eq!(scan.end, SegmentEnd::Clean);
        assert_eq!(scan.batches.len(), 6);
        let last = &scan.batches[5].1;
        let last_start = last.start - BATCH_HEADER_BYTES;
        let last_payload_end = last.end;
        let last_end = last_payload_end.div_ceil(BATCH_ALIGNMENT) * BATCH_ALIGNMENT;
        assert_eq!(scan.valid_end, last_end);
        assert!(
            last_end <= pristine.len(),
            "the segment ends at or after the last batch"
        );
        let before = &all[..15];
        let mut rng = Rng::new(0x5EED_0001);

        // Cut inside the last batch: every header byte, then every few payload bytes.
        let cuts = (last_start + 1..last_start + BATCH_HEADER_BYTES + 8)
            .chain((last_start + BATCH_HEADER_BYTES + 8..last_payload_end).step_by(5));
        for cut in cuts {
            std::fs::write(&seg, &pristine[..cut]).unwrap();
            check_torn(&log_dir, &seg, before, last_start).await;
        }

        // A cut at the batch's start is a write that never began; one at its payload's end
        // loses only padding: both are clean ends.
        for (cut, want) in [(last_start, before), (last_payload_end, &all[..])] {
            std::fs::write(&seg, &pristine[..cut]).unwrap();
            let (recs, report) = recover_ok(&log_dir).await;
            assert_eq!(recs, want);
            assert_eq!(report.torn_tail, None);
            assert_eq!(file_len(&seg), cut);
        }

        // The last batch's bytes overwritten from some offset on with random non-zero bytes,
        // the file's length kept (as a torn write of whole sectors leaves it).
        for from in (last_start..last_payload_end).step_by(9) {
            let mut bytes = pristine.clone();
            for b in &mut bytes[from..last_payload_end] {
                *b = rng.byte_other_than(*b);
            }
            std::fs::write(&seg, &bytes).unwrap();
            check_torn(&log_dir, &seg, before, last_start).await;
        }

        // One flipped bit in the last batch looks exactly like a torn write.
        for at in [
            last_start,
            last_start + 5,
            last_start + 21,
            last.start + 3,
            last.end - 1,
        ] {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x10;
            std::fs::write(&seg, &bytes).unwrap();
            check_torn(&log_dir, &seg, before, last_start).await;
        }

        // Garbage after the last complete batch (in zero padding past it, as a page-padded
        // write leaves, or appended past the file's end) is a torn tail that costs no record.
        let mut bytes = pristine.clone();
        bytes.resize(last_end + 4096, 0);
        *bytes.last_mut().unwrap() = 0x01;
        std::fs::write(&seg, &bytes).unwrap();
        check_torn(&log_dir, &seg, &all, last_end).await;
        let mut bytes = pristine.clone();
        bytes.extend_from_slice(b"\xde\xad\xbe\xef garbage");
        std::fs::write(&seg, &bytes).unwrap();
        check_torn(&log_dir, &seg, &all, last_end).await;

        // After a torn tail the writer continues in a new segment and nothing is lost.
        let mut bytes = pristine.clone();
        bytes.truncate(last_start + 30);
        std::fs::write(&seg, &bytes).unwrap();
        check_torn(&log_dir, &seg, before, last_start).await;
        let (_, report) = recover_ok(&log_dir).await;
        assert_eq!(
            report.next,
            LogPosition {
                segment: 1,
                next_record: 15,
            }
        );
        let log = start_log(log_dir.clone(), &report, BIG);
        let more = write_batches(&log, 100, 15, 2, 3, 60).await;
        log.close().await.unwrap();
        let want: Vec<Rec> = before.iter().cloned().chain(more).collect();
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, want);
        assert_eq!(report.torn_tail, None);
        assert_eq!(report.segments.len(), 2);
    });
}

#[test]
fn torn_header_of_the_last_segment_is_dropped() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let log = start_fresh(log_dir.clone(), BIG);
        let all = write_batches(&log, 0, 0, 2, 3, 20).await;
        log.close().await.unwrap();

        // A roll to segment 1 whose first write tore inside the segment header.
        let seg1 = segment_path(&log_dir, 1);
        let mut torn = encode_segment_header(1, 6)[..20].to_vec();
        torn.extend_from_slice(&[0x77; 40]);
        std::fs::write(&seg1, &torn).unwrap();
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, all);
        assert_eq!(
            report.torn_tail,
            Some(TornTail {
                path: seg1.clone(),
                offset: 0,
                dropped_bytes: torn.len(),
            })
        );
        assert!(!seg1.exists(), "a segment with a torn header is removed");
        assert_eq!(report.next.next_record, 6);

        // An empty last segment (created, never written) is a clean end.
        std::fs::write(&seg1, b"").unwrap();
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, all);
        assert_eq!(report.torn_tail, None);
        assert_eq!(
            report.next,
            LogPosition {
                segment: 2,
                next_record: 6,
            }
        );
    });
}

/// Recovery removes a last segment whose header is torn, and the writer reuses its number, so
/// the following recovery finds no hole in the numbering (a regression test: it used to).
#[test]
fn writer_continues_after_a_torn_segment_header_is_dropped() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let log = start_fresh(log_dir.clone(), BIG);
        let mut all = write_batches(&log, 0, 0, 2, 3, 20).await;
        log.close().await.unwrap();
        let seg1 = segment_path(&log_dir, 1);
        let mut torn = encode_segment_header(1, 6)[..20].to_vec();
        torn.extend_from_slice(&[0x77; 40]);
        std::fs::write(&seg1, &torn).unwrap();
        let (_, report) = recover_ok(&log_dir).await;
        assert!(report.torn_tail.is_some());

        let log = start_log(log_dir.clone(), &report, BIG);
        all.extend(write_batches(&log, 50, 6, 1, 3, 20).await);
        log.close().await.unwrap();
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, all);
        assert_eq!(report.torn_tail, None);
    });
}

// 5. Damage before the tail ---------------------------------------------------------------

#[test]
fn bit_flip_before_the_last_batch_is_corruption() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let (all, seg, pristine) = six_batch_segment(&log_dir).await;
        let scan = scan_segment(&pristine);
        assert_eq!(scan.batches.len(), 6);
        let starts: Vec<usize> = scan
            .batches
            .iter()
            .map(|(_, r)| r.start - BATCH_HEADER_BYTES)
            .collect();

        // Every header field of batch 2, and payload bytes at its start, middle and end:
        // the corruption names batch 2's first byte, and no record of the segment is handed
        // out (the segment is checked before any of its records is applied).
        let payload = scan.batches[2].1.clone();
        let mut offsets: Vec<usize> = (starts[2]..starts[2] + BATCH_HEADER_BYTES).collect();
        offsets.extend([
            payload.start,
            payload.start + 4,
            payload.start + 8,
            payload.start + payload.len() / 2,
            payload.end - 1,
        ]);
        for at in offsets {
            for bit in [0u8, 7] {
                let mut bytes = pristine.clone();
                bytes[at] ^= 1 << bit;
                std::fs::write(&seg, &bytes).unwrap();
                let what = expect_corruption(&log_dir, &seg, starts[2], &[]).await;
                assert!(what.contains(&format!("byte {}", starts[3])), "{what}");
                assert_eq!(
                    std::fs::read(&seg).unwrap(),
                    bytes,
                    "corruption is never truncated away"
                );
            }
        }

        // The first batch, and the segment header.
        let mut bytes = pristine.clone();
        bytes[starts[0] + 30] ^= 0x04;
        std::fs::write(&seg, &bytes).unwrap();
        expect_corruption(&log_dir, &seg, starts[0], &[]).await;
        for at in [0, 9, 13, 21, 29] {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x80;
            std::fs::write(&seg, &bytes).unwrap();
            expect_corruption(&log_dir, &seg, 0, &[]).await;
        }

        std::fs::write(&seg, &pristine).unwrap();
        assert_eq!(recover_ok(&log_dir).await.0, all);
    });
}

#[test]
fn damage_in_an_earlier_segment_or_a_missing_segment_is_corruption() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let config = LogConfig {
            segment_bytes: 8 << 10,
            pending_bytes_max: 4 << 10,
        };
        let log = start_fresh(log_dir.clone(), config);
        let all = write_batches(&log, 0, 0, 24, 3, 300).await;
        log.close().await.unwrap();
        let files = segments(&log_dir);
        assert!(files.len() >= 3, "{} segments", files.len());
        let pristine: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let scans: Vec<SegmentScan> = pristine.iter().map(|b| scan_segment(b)).collect();
        let in_seg0 = count_records(&pristine[0], &scans[0].batches);
        let in_seg1 = count_records(&pristine[1], &scans[1].batches);
        assert!(scans[0].batches.len() >= 3 && scans[1].batches.len() >= 3);
        let batch_start = |seg: usize, b: usize| scans[seg].batches[b].1.start - BATCH_HEADER_BYTES;
        let restore = || {
            for (p, b) in files.iter().zip(&pristine) {
                std::fs::write(p, b).unwrap();
            }
        };

        // The last batch of segment 0 damaged: within its segment that looks torn, but later
        // segments hold records, so it was synced: corruption. Segment 0's intact batches may
        // be handed out first; they are exactly the originals.
        let last0 = scans[0].batches.len() - 1;
        let intact0 = count_records(&pristine[0], &scans[0].batches[..last0]);
        let mut bytes = pristine[0].clone();
        bytes[scans[0].batches[last0].1.start + 2] ^= 0x01;
        std::fs::write(&files[0], &bytes).unwrap();
        expect_corruption(&log_dir, &files[0], batch_start(0, last0), &all[..intact0]).await;

        // The same as a cut: segment 0 truncated inside its last batch.
        restore();
        std::fs::write(&files[0], &pristine[0][..batch_start(0, last0) + 10]).unwrap();
        expect_corruption(&log_dir, &files[0], batch_start(0, last0), &all[..intact0]).await;

        // A middle batch of segment 1.
        restore();
        let mut bytes = pristine[1].clone();
        bytes[batch_start(1, 1) + 6] ^= 0x40;
        std::fs::write(&files[1], &bytes).unwrap();
        expect_corruption(&log_dir, &files[1], batch_start(1, 1), &all[..in_seg0]).await;

        // Segment 1's header.
        restore();
        let mut bytes = pristine[1].clone();
        bytes[20] ^= 0x02;
        std::fs::write(&files[1], &bytes).unwrap();
        expect_corruption(&log_dir, &files[1], 0, &all[..in_seg0]).await;

        // Segment 1 removed: segment 2 reports the hole.
        restore();
        std::fs::remove_file(&files[1]).unwrap();
        let what = expect_corruption(&log_dir, &files[2], 0, &all[..in_seg0]).await;
        assert!(what.contains("segment 1 is missing"), "{what}");

        // Segment 1 replaced by one whose numbering does not continue segment 0.
        restore();
        let (fake, _) = build_segment(
            1,
            in_seg0 as u64 + 1,
            &[vec![("k".into(), b"x".to_vec(), b"y".to_vec())]],
        );
        std::fs::write(&files[1], &fake).unwrap();
        let what = expect_corruption(&log_dir, &files[1], 0, &all[..in_seg0]).await;
        assert!(what.contains("expected"), "{what}");

        restore();
        let (recs, report) = recover_ok(&log_dir).await;
        assert_eq!(recs, all);
        assert_eq!(report.segments.len(), files.len());
        assert!(in_seg0 + in_seg1 < all.len());
    });
}

#[test]
fn bad_record_inside_a_valid_batch_is_corruption_at_the_record() {
    run(|| async {
        let dir = TestDir::new().await;
        let log_dir = dir.log_dir();
        let seg = segment_path(&log_dir, 0);
        let (ks, key, object) = record(1, 10);
        let mut object_bytes = Vec::new();
        object.encode(&mut object_bytes);
        let good: RawRecord = (ks.clone(), key.clone(), object_bytes.clone());
        let good_rec = Rec {
            seq: 0,
            keyspace: ks,
            key,
            object,
        };
        let build = |second: &[u8]| -> (Vec<u8>, usize) {
            let (mut bytes, _) = build_segment(0, 0, &[vec![good.clone()]]);
            let start = bytes.len();
            bytes.resize(start + BATCH_HEADER_BYTES, 0);
            let mut payload = Vec::new();
            tessera_shard::log::format::encode_object_record(&mut payload, &good.0, &good.1, |o| {
                o.extend_from_slice(&good.2)
            });
            let second_at = start + BATCH_HEADER_BYTES + payload.len();
            payload.extend_from_slice(second);
            bytes.extend_from_slice(&payload);
            let (header, body) = bytes[start..].split_at_mut(BATCH_HEADER_BYTES);
            tessera_shard::log::format::seal_batch_header(header, body, 1);
            bytes.resize(bytes.len().div_ceil(8) * 8, 0);
            (bytes, second_at)
        };
        // Batch 0 holds the good record; batch 1 the good record again, then the bad one.
        let good_twice = [good_rec.clone(), Rec { seq: 1, ..good_rec }];
        let mut valid_second = Vec::new();
        tessera_shard::log::format::encode_object_record(&mut valid_second, "ks", b"k", |o| {
            o.extend_from_slice(&object_bytes)
        });

        // Record checksum wrong (the batch checksum covers the damage, as if written so).
        let mut bad_crc = valid_second.clone();
        bad_crc[4] ^= 1;
        // Unknown kind, with a matching record checksum.
        let mut bad_kind = valid_second.clone();
        bad_kind[8] = 9;
        let crc = crc32c::crc32c(&bad_kind[8..]);
        bad_kind[4..8].copy_from_slice(&crc.to_le_bytes());
        // Length past the payload.
        let mut bad_len = valid_second.clone();
        bad_len[0] = 0xFF;
        // An object the engine cannot decode: the apply callback's error is corruption too.
        let mut bad_object = Vec::new();
        tessera_shard::log::format::encode_object_record(&mut bad_object, "ks", b"k", |o| {
            o.extend_from_slice(b"\xFFnot an object")
        });
        for (second, needle) in [
            (bad_crc, "checksum"),
            (bad_kind, "kind 9"),
            (bad_len, "truncated"),
            (bad_object, ""),
        ] {
            let (bytes, second_at) = build(&second);
            std::fs::write(&seg, &bytes).unwrap();
            let what = expect_corruption(&log_dir, &seg, second_at, &good_twice).await;
            assert!(what.contains(needle), "{what}");
        }
    });
}

// 6. scan_segment on hand-built bytes -----------------------------------------------------

fn raw(i: u8, len: usize) -> RawRecord {
    (
        format!("ks{i}"),
        vec![i; 3],
        (0..len).map(|j| i.wrapping_add(j as u8) | 1).collect(),
    )
}

/// The records in a scan's batches, with their sequence numbers; panics on a bad record.
fn scanned_records(bytes: &[u8], scan: &SegmentScan) -> Vec<(u64, RawRecord)> {
    let mut out = Vec::new();
    for (first, range) in &scan.batches {
        let mut seq = *first;
        let mut payload = &bytes[range.clone()];
        while !payload.is_empty() {
            let (r, rest) = decode_record(payload).expect("records of a valid batch decode");
            out.push((
                seq,
                (r.keyspace.to_string(), r.key.to_vec(), r.object.to_vec()),
            ));
            seq += 1;
            payload = rest;
        }
    }
    out
}

fn numbered(first: u64, batches: &[Vec<RawRecord>]) -> Vec<(u64, RawRecord)> {
    batches
        .iter()
        .flatten()
        .cloned()
        .enumerate()
        .map(|(i, r)| (first + i as u64, r))
        .collect()
}

#[test]
fn scan_of_hand_built_segments() {
    let batches = vec![
        vec![raw(1, 5), raw(2, 0)],
        vec![raw(3, 17)],
        vec![raw(4, 1), raw(5, 2), raw(6, 3)],
    ];
    let (seg, starts) = build_segment(4, 100, &batches);
    let end = seg.len();
    let originals = numbered(100, &batches);

    // Nothing, and a header alone, are clean.
    let empty = scan_segment(&[]);
    assert_eq!((empty.first_record, empty.valid_end), (None, 0));
    assert_eq!(empty.end, SegmentEnd::Clean);
    let header = scan_segment(&seg[..SEGMENT_HEADER_BYTES]);
    assert_eq!(header.first_record, Some(100));
    assert!(header.batches.is_empty());
    assert_eq!(
        (header.valid_end, header.end),
        (SEGMENT_HEADER_BYTES, SegmentEnd::Clean)
    );
    // A header torn to zeros (never written) is clean too.
    assert_eq!(scan_segment(&[0; 4096]).end, SegmentEnd::Clean);

    // Batches with and without a page of zero padding: clean, every record.
    for pad in [0, 1, 7, 4096 - end % 4096] {
        let mut bytes = seg.clone();
        bytes.resize(end + pad, 0);
        let scan = scan_segment(&bytes);
        assert_eq!(scan.first_record, Some(100));
        assert_eq!(scan.end, SegmentEnd::Clean, "pad {pad}");
        assert_eq!(scan.valid_end, end);
        let firsts: Vec<u64> = scan.batches.iter().map(|(f, _)| *f).collect();
        assert_eq!(firsts, [100, 102, 103]);
        for (i, (_, r)) in scan.batches.iter().enumerate() {
            assert_eq!(r.start, starts[i] + BATCH_HEADER_BYTES);
        }
        assert_eq!(scanned_records(&bytes, &scan), originals);
    }

    // Trailing garbage, garbage inside the padding, and a cut last batch: torn.
    let mut garbage = seg.clone();
    garbage.extend_from_slice(&[0, 0, 0, 0x33, 0, 0]);
    let mut garbage_then_zeros = seg.clone();
    garbage_then_zeros.extend_from_slice(&[0x33; 3]);
    garbage_then_zeros.resize(8192, 0);
    for bytes in [garbage, garbage_then_zeros] {
        let scan = scan_segment(&bytes);
        assert_eq!(scan.end, SegmentEnd::Torn);
        assert_eq!(scan.valid_end, end);
        assert_eq!(scanned_records(&bytes, &scan), originals);
    }
    for cut in [starts[2] + 1, starts[2] + BATCH_HEADER_BYTES, end - 8] {
        let scan = scan_segment(&seg[..cut]);
        assert_eq!(scan.end, SegmentEnd::Torn, "cut at {cut}");
        assert_eq!(scan.valid_end, starts[2]);
        assert_eq!(scanned_records(&seg, &scan), originals[..3]);
    }

    // A bad batch followed by a good one: valid after.
    for at in [starts[1], starts[1] + 4, starts[1] + 23, starts[1] + 30] {
        let mut bytes = seg.clone();
        bytes[at] ^= 0x08;
        let scan = scan_segment(&bytes);
        assert_eq!(
            scan.end,
            SegmentEnd::ValidAfter {
                bad_at: starts[1],
                valid_at: starts[2],
            }
        );
        assert_eq!(scan.valid_end, starts[1]);
        assert_eq!(scanned_records(&bytes, &scan), originals[..2]);
    }
    // Zeroed (not garbage) middle batch followed by a good one: still valid after.
    let mut bytes = seg.clone();
    bytes[starts[1]..starts[2]].fill(0);
    assert_eq!(
        scan_segment(&bytes).end,
        SegmentEnd::ValidAfter {
            bad_at: starts[1],
            valid_at: starts[2],
        }
    );

    // A bad segment header before good batches: valid after, nothing returned.
    let mut bytes = seg.clone();
    bytes[3] ^= 0x01;
    let scan = scan_segment(&bytes);
    assert_eq!(scan.first_record, None);
    assert!(scan.batches.is_empty());
    assert_eq!(
        scan.end,
        SegmentEnd::ValidAfter {
            bad_at: 0,
            valid_at: SEGMENT_HEADER_BYTES,
        }
    );
    // A garbage header with nothing valid after it: torn.
    let scan = scan_segment(&[0x5A; 100]);
    assert_eq!((scan.first_record, scan.end), (None, SegmentEnd::Torn));
}

/// A torn last batch whose (client-chosen) value happens to hold the image of a valid batch at
/// an 8-aligned file offset is reported as mid-log corruption instead of a torn tail.
#[test]
fn torn_batch_embedding_a_batch_image_is_still_torn() {
    let mut fake = Vec::new();
    push_batch(&mut fake, &[raw(9, 4)], 12345);
    let (seg, _) = build_segment(0, 0, &[vec![raw(1, 4)]]);
    // A record whose object bytes start 8-aligned in the file and hold `fake`.
    let mut bytes = seg.clone();
    let start = bytes.len();
    bytes.resize(start + BATCH_HEADER_BYTES, 0);
    let fixed = 8 + 1 + 1 + 2 + 4 + 1; // record header, kind, ks len, "ks", key len, key
    let pad = (BATCH_ALIGNMENT - (start + BATCH_HEADER_BYTES + fixed) % BATCH_ALIGNMENT) % 8;
    let mut value = vec![0xEE; pad];
    value.extend_from_slice(&fake);
    value.extend_from_slice(&[0xEE; 64]);
    tessera_shard::log::format::encode_object_record(&mut bytes, "ks", b"k", |o| {
        o.extend_from_slice(&value)
    });
    let (header, body) = bytes[start..].split_at_mut(BATCH_HEADER_BYTES);
    tessera_shard::log::format::seal_batch_header(header, body, 1);
    // The write tore after the embedded image.
    bytes.truncate(bytes.len() - 10);
    assert_eq!(scan_segment(&bytes).end, SegmentEnd::Torn);
}

/// Like the test above, but the torn batch's own header is torn too, so its length is unknown
/// and the search starts inside its payload: an embedded image numbered before the batches
/// already read cannot be a later write, so the tail is still torn.
#[test]
fn torn_header_with_an_old_numbered_batch_image_inside_is_still_torn() {
    let mut fake = Vec::new();
    push_batch(&mut fake, &[raw(9, 4)], 0);
    let (seg, _) = build_segment(0, 0, &[vec![raw(1, 4)]]);
    let mut bytes = seg.clone();
    let start = bytes.len();
    bytes.resize(start + BATCH_HEADER_BYTES, 0xAB); // a header that never got written
    let fixed = 8 + 1 + 1 + 2 + 4 + 1;
    let pad = (BATCH_ALIGNMENT - (start + BATCH_HEADER_BYTES + fixed) % BATCH_ALIGNMENT) % 8;
    let mut value = vec![0xEE; pad];
    value.extend_from_slice(&fake);
    value.extend_from_slice(&[0xEE; 64]);
    tessera_shard::log::format::encode_object_record(&mut bytes, "ks", b"k", |o| {
        o.extend_from_slice(&value)
    });
    assert_eq!(scan_segment(&bytes).end, SegmentEnd::Torn);
    // The same image numbered as a later batch would be one: that is corruption.
    let mut later = Vec::new();
    push_batch(&mut later, &[raw(9, 4)], 7);
    let mut bytes2 = bytes[..start + BATCH_HEADER_BYTES].to_vec();
    let mut value2 = vec![0xEE; pad];
    value2.extend_from_slice(&later);
    value2.extend_from_slice(&[0xEE; 64]);
    tessera_shard::log::format::encode_object_record(&mut bytes2, "ks", b"k", |o| {
        o.extend_from_slice(&value2)
    });
    assert!(matches!(
        scan_segment(&bytes2).end,
        SegmentEnd::ValidAfter { .. }
    ));
}

fn raw_record() -> impl Strategy<Value = RawRecord> {
    (
        "[a-z]{1,8}",
        prop::collection::vec(any::<u8>(), 0..16),
        prop::collection::vec(any::<u8>(), 0..48),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One flipped bit anywhere in a segment (header, batch headers, payloads, padding, the
    /// page's zero tail) never yields records that differ from the originals: the scan returns
    /// a prefix of them, drops records only with an end that is not clean, and reports a
    /// damaged batch followed by an intact one as `ValidAfter`.
    #[test]
    fn single_bit_flip_is_never_silent(
        batches in prop::collection::vec(prop::collection::vec(raw_record(), 1..4), 1..6),
        first_record in 0u64..1_000_000,
        zero_tail in 0usize..64,
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut bytes, starts) = build_segment(3, first_record, &batches);
        let valid_len = bytes.len();
        bytes.resize(valid_len + zero_tail, 0);
        let originals = numbered(first_record, &batches);
        let pristine = scan_segment(&bytes);
        prop_assert_eq!(pristine.end, SegmentEnd::Clean);
        prop_assert_eq!(scanned_records(&bytes, &pristine), originals.clone());

        let at = flip.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let scan = scan_segment(&bytes);
        let got = scanned_records(&bytes, &scan);

        // The safety property.
        prop_assert!(got.len() <= originals.len());
        prop_assert_eq!(&got[..], &originals[..got.len()], "records changed silently");
        if scan.end == SegmentEnd::Clean {
            prop_assert_eq!(got.len(), originals.len(), "records dropped with a clean end");
        }

        // The exact outcome, by where the bit was.
        let records_before = |b: usize| batches[..b].iter().map(Vec::len).sum::<usize>();
        if at < SEGMENT_HEADER_BYTES {
            prop_assert_eq!(scan.first_record, None);
            prop_assert!(got.is_empty());
            prop_assert_eq!(
                scan.end,
                SegmentEnd::ValidAfter { bad_at: 0, valid_at: SEGMENT_HEADER_BYTES }
            );
        } else if at >= valid_len {
            prop_assert_eq!(scan.end, SegmentEnd::Torn);
            prop_assert_eq!(got.len(), originals.len());
            prop_assert_eq!(scan.valid_end, valid_len);
        } else {
            let b = starts.iter().rposition(|&s| s <= at).expect("inside a batch");
            let payload_end = pristine.batches[b].1.end;
            if at >= payload_end {
                // Padding between batches is not checksummed and carries nothing.
                prop_assert_eq!(&scan, &pristine);
            } else if b + 1 < starts.len() {
                prop_assert_eq!(
                    scan.end,
                    SegmentEnd::ValidAfter { bad_at: starts[b], valid_at: starts[b + 1] }
                );
                prop_assert_eq!(got.len(), records_before(b));
            } else {
                prop_assert_eq!(scan.end, SegmentEnd::Torn);
                prop_assert_eq!(scan.valid_end, starts[b]);
                prop_assert_eq!(got.len(), records_before(b));
            }
        }
    }
}

// 7. Engine -------------------------------------------------------------------------------

/// Every key's object, keyspaces alternating as the test writes them.
async fn snapshot(engine: &Engine, keys: &[Vec<u8>]) -> Vec<Option<Object>> {
    let mut out = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let ks = if i % 2 == 0 { "users" } else { "events" };
        out.push(engine.read(ks, key, |o| o.cloned()).await.expect("read"));
    }
    out
}

#[test]
fn engine_reopen_restores_objects_with_siblings_and_clocks() {
    run(|| async {
        let dir = TestDir::new().await;
        let limits = EngineLimits {
            memtable_bytes_max: 64 << 20,
            memory_budget_bytes: 256 << 20,
            log: BIG,
            lsm: tessera_shard::lsm::LsmOptions::default(),
        };
        let node = NodeId(1);
        let keys: Vec<Vec<u8>> = (0..20).map(|i| format!("key-{i}").into_bytes()).collect();
        let empty = VersionVector::new();

        let (engine, report) = Engine::open(Rc::new(RealFs), dir.root(), node, limits.clone())
            .await
            .unwrap();
        assert_eq!(report.records, 0);
        let mut writes = 0u64;
        let mut clocks = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let ks = if i % 2 == 0 { "users" } else { "events" };
            clocks.push(
                engine
                    .write(ks, key, &empty, Some(vec![i as u8; 10 + i]), true)
                    .await
                    .unwrap(),
            );
            writes += 1;
        }
        // key-0: a blind write beside the first: two siblings.
        engine
            .write("users", &keys[0], &empty, Some(b"other".to_vec()), true)
            .await
            .unwrap();
        // key-2: superseded with its context: one sibling.
        engine
            .write("users", &keys[2], &clocks[2], Some(b"new".to_vec()), true)
            .await
            .unwrap();
        // key-4: deleted: a tombstone.
        engine
            .write("users", &keys[4], &clocks[4], None, true)
            .await
            .unwrap();
        // key-6: written without waiting for durability; close makes it durable.
        engine
            .write("users", &keys[6], &clocks[6], Some(b"lazy".to_vec()), false)
            .await
            .unwrap();
        writes += 4;

        let before = snapshot(&engine, &keys).await;
        assert_eq!(before[0].as_ref().unwrap().siblings().len(), 2);
        assert_eq!(
            before[2]
                .as_ref()
                .unwrap()
                .live_values()
                .collect::<Vec<_>>(),
            [b"new"]
        );
        assert!(before[4].as_ref().unwrap().is_deleted());
        assert!(before.iter().all(Option::is_some));
        assert_eq!(
            engine
                .read("users", b"absent", |o| o.cloned())
                .await
                .unwrap(),
            None
        );
        let key_count = engine.key_count();
        engine.close().await.unwrap();
        drop(engine);

        let (engine, report) = Engine::open(Rc::new(RealFs), dir.root(), node, limits.clone())
            .await
            .unwrap();
        assert_eq!(report.records, writes);
        assert_eq!(report.torn_tail, None);
        assert_eq!(snapshot(&engine, &keys).await, before);
        assert_eq!(engine.key_count(), key_count);

        // Writing on after a restart orders after the recovered versions.
        let ctx = before[0].as_ref().unwrap().clock().clone();
        let clock = engine
            .write("users", &keys[0], &ctx, Some(b"resolved".to_vec()), true)
            .await
            .unwrap();
        assert!(clock.descends(&ctx) && clock != ctx);
        engine.close().await.unwrap();
        drop(engine);

        let (engine, report) = Engine::open(Rc::new(RealFs), dir.root(), node, limits.clone())
            .await
            .unwrap();
        assert_eq!(report.records, writes + 1);
        let after = snapshot(&engine, &keys).await;
        let resolved = after[0].as_ref().unwrap();
        assert_eq!(resolved.live_values().collect::<Vec<_>>(), [b"resolved"]);
        assert_eq!(resolved.clock(), &clock);
        assert_eq!(after[1..], before[1..]);
        engine.close().await.unwrap();
    });
}
