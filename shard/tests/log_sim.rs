//! The commit log on the crash simulator (`SimFs`), writer and recovery together:
//! - cut at every file operation of a workload (appends from concurrent tasks, segment rolls,
//!   releases below a floor) and crashed with several seeds, recovery never fails and never
//!   panics, and returns every acknowledged record at or above the floor, in order, with no
//!   gap, each exactly as appended; a writer started on the recovered state carries on;
//! - `release_below` removes exactly the segments wholly below the floor, and recovery at that
//!   floor skips what is below it and reports corruption when records it needs are missing;
//! - the engine itself opens, writes and recovers on the simulator.
//!
//! A failing case names its cut and seed; the workload is deterministic, so they replay it.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use tessera_core::{NodeId, VersionVector};
use tessera_io::fs::{Fs, FsFile, OpenMode, SimFs};
use tessera_io::log_writer::LogConfig;
use tessera_io::{LogPosition, SegmentStart};
use tessera_shard::engine::{Engine, EngineLimits};
use tessera_shard::log::format::{encode_segment_header, segment_path};
use tessera_shard::log::{CommitLog, RecoveryError, RecoveryReport, RecoveryStart};

use common::{expected, recover_collect_on, run, write_batches, Rec};

/// Small enough that a few dozen records roll many segments.
const CONFIG: LogConfig = LogConfig {
    segment_bytes: 1024,
    pending_bytes_max: 512,
};
/// Value bytes of the test records (20 to 50 with `common::record`'s spread).
const VALUE_LEN: usize = 20;
/// Seeds tried per cut point.
const SEEDS_PER_CUT: u64 = 10;

fn dir() -> &'static Path {
    Path::new("shard-0/log")
}

fn start_at(floor: u64) -> RecoveryStart {
    RecoveryStart {
        floor_record: floor,
        next_segment_min: 0,
    }
}

/// What a workload run did, as far as its caller could see.
#[derive(Debug, Default)]
struct Outcome {
    /// Sequence number → test record index, for every record appended.
    appended: BTreeMap<u64, u64>,
    /// Every record below this was acknowledged durable.
    acked_end: u64,
    /// The floor recovery must use: set (as a manifest commit would make it durable) just
    /// before `release_below` runs with it.
    floor: u64,
}

/// Rounds of 1 to 4 concurrent appenders, each waiting for its record to be durable; after
/// rounds 7 and 14 the log releases segments below what has been acknowledged. Stops at the
/// first failure (the simulator's power cut).
async fn workload(fs: Rc<SimFs>) -> Outcome {
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let Ok(()) = fs.create_dir(dir()).await else {
        return outcome.take();
    };
    let (_, report) = recover_collect_on(&*fs, dir(), RecoveryStart::default()).await;
    let Ok(report) = report else {
        return outcome.take();
    };
    let log = Rc::new(CommitLog::start(fs.clone(), dir().into(), &report, CONFIG));
    let mut next_index = 0u64;
    for round in 0..20u64 {
        let tasks: Vec<_> = (0..1 + round % 4)
            .map(|_| {
                let (log, outcome, i) = (log.clone(), outcome.clone(), next_index);
                next_index += 1;
                glommio::spawn_local(async move {
                    log.ready().await;
                    let Ok(ticket) = append_checked(&log, i) else {
                        return;
                    };
                    outcome.borrow_mut().appended.insert(ticket.record(), i);
                    if log.wait_durable(ticket).await.is_ok() {
                        let mut o = outcome.borrow_mut();
                        o.acked_end = o.acked_end.max(ticket.record() + 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        if log.failure().is_some() {
            break;
        }
        if round == 7 || round == 14 {
            let floor = outcome.borrow().acked_end;
            outcome.borrow_mut().floor = floor;
            if log.release_below(floor).await.is_err() {
                break;
            }
        }
    }
    // A cut run fails here; its outcome stands as it is.
    let _ = log.close().await;
    outcome.take()
}

/// `common::append` without its panic on a refused append (the log fails when the power
/// is cut).
fn append_checked(
    log: &CommitLog<SimFs>,
    i: u64,
) -> Result<tessera_io::Ticket, tessera_io::LogError> {
    let (keyspace, key, object) = common::record(i, VALUE_LEN);
    log.append_object(&keyspace, &key, &object)
}

/// Recovers `image` at `floor` and checks the records against what was appended: contiguous
/// from the floor, every acknowledged one there, each as written. Returns them.
async fn check_recovery(
    image: &SimFs,
    outcome: &Outcome,
    floor: u64,
    case: &str,
) -> (Vec<Rec>, RecoveryReport) {
    let (recs, result) = recover_collect_on(image, dir(), start_at(floor)).await;
    let report = result.unwrap_or_else(|e| panic!("{case}: recovery failed: {e}"));
    for (k, rec) in recs.iter().enumerate() {
        let seq = floor + k as u64;
        assert_eq!(rec.seq, seq, "{case}: a gap or a reordering");
        let i = *outcome
            .appended
            .get(&seq)
            .unwrap_or_else(|| panic!("{case}: record {seq} was never appended"));
        assert_eq!(
            *rec,
            expected(seq, i, VALUE_LEN),
            "{case}: record {seq} differs"
        );
    }
    let end = floor + recs.len() as u64;
    assert!(
        end >= outcome.acked_end,
        "{case}: acknowledged records up to {} but recovered up to {end}",
        outcome.acked_end
    );
    assert_eq!(report.records, recs.len() as u64, "{case}");
    assert_eq!(
        report.next.next_record, end,
        "{case}: where the writer continues"
    );
    (recs, report)
}

/// A writer on the recovered image appends a few records; recovering again gives the old ones
/// and the new ones, contiguous.
async fn check_continues(image: SimFs, outcome: &Outcome, floor: u64, case: &str) {
    let (recs, report) = check_recovery(&image, outcome, floor, case).await;
    let image = Rc::new(image);
    let log = CommitLog::start(image.clone(), dir().into(), &report, CONFIG);
    let end = report.next.next_record;
    let more = write_batches(&log, 100_000, end, 3, 1, VALUE_LEN).await;
    log.close()
        .await
        .unwrap_or_else(|e| panic!("{case}: close: {e}"));
    let (again, result) = recover_collect_on(&*image, dir(), start_at(floor)).await;
    result.unwrap_or_else(|e| panic!("{case}: second recovery: {e}"));
    let want: Vec<Rec> = recs.into_iter().chain(more).collect();
    assert_eq!(again, want, "{case}: after writing on");
}

#[test]
fn every_acknowledged_record_survives_a_crash_at_every_operation() {
    run(|| async {
        let probe = Rc::new(SimFs::new());
        let full = workload(probe.clone()).await;
        let total_ops = probe.ops_done();
        // Deterministic (so a cut and seed replay a failure): a second run does the same.
        let again = Rc::new(SimFs::new());
        let same = workload(again.clone()).await;
        assert_eq!(
            (again.ops_done(), same.acked_end),
            (total_ops, full.acked_end)
        );
        assert_eq!(
            (same.appended, same.floor),
            (full.appended.clone(), full.floor)
        );
        assert!(
            full.acked_end >= 45,
            "workload acknowledged {}",
            full.acked_end
        );
        assert!(full.floor > 0, "the workload released segments");
        let mut states = 0;
        for cut in 0..=total_ops {
            for seed in 0..SEEDS_PER_CUT {
                let fs = Rc::new(SimFs::new());
                fs.crash_after(cut);
                let outcome = workload(fs.clone()).await;
                let case = format!("cut {cut} seed {seed}");
                check_continues(fs.crash(seed), &outcome, outcome.floor, &case).await;
                states += 1;
            }
        }
        assert!(states >= 400, "only {states} crash states");
    });
}

/// Segments of at most two 2-record batches each, written by a log on `fs`.
async fn many_segments(fs: &Rc<SimFs>) -> (CommitLog<SimFs>, Vec<Rec>) {
    let log = CommitLog::start(fs.clone(), dir().into(), &RecoveryReport::default(), CONFIG);
    let recs = write_batches(&log, 0, 0, 30, 2, VALUE_LEN).await;
    (log, recs)
}

fn segment_numbers(segments: &[SegmentStart]) -> Vec<u64> {
    segments.iter().map(|s| s.segment).collect()
}

async fn listed(fs: &SimFs) -> Vec<String> {
    fs.list(dir()).await.unwrap()
}

/// Recovery at `floor` must fail with corruption whose message contains `needle`.
async fn expect_corruption(fs: &SimFs, floor: u64, needle: &str) {
    match recover_collect_on(fs, dir(), start_at(floor)).await.1 {
        Err(RecoveryError::Corruption { what, .. }) => {
            assert!(what.contains(needle), "{what}");
        }
        other => panic!("expected corruption ({needle}), got {other:?}"),
    }
}

#[test]
fn release_below_removes_old_segments_and_recovery_starts_at_the_floor() {
    run(|| async {
        let fs = Rc::new(SimFs::new());
        let (log, all) = many_segments(&fs).await;
        let segments = log.segments();
        assert!(segments.len() >= 8, "{segments:?}");
        assert_eq!(listed(&fs).await.len(), segments.len());

        // A floor inside segment 3: segments 0..3 hold only records below it.
        let floor = segments[3].first_record + 1;
        assert!(floor < segments[4].first_record);
        assert_eq!(log.release_below(floor).await.unwrap(), 3);
        assert_eq!(log.segments()[..], segments[3..]);
        assert_eq!(listed(&fs).await.len(), segments.len() - 3);
        assert_eq!(log.release_below(floor).await.unwrap(), 0, "nothing more");
        assert_eq!(log.release_below(0).await.unwrap(), 0);
        log.close().await.unwrap();

        // Records below the floor are read but not handed out.
        let (recs, report) = recover_collect_on(&*fs, dir(), start_at(floor)).await;
        let report = report.unwrap();
        assert_eq!(recs, all[floor as usize..]);
        assert_eq!(report.records, all.len() as u64 - floor);
        assert_eq!(report.records_below_floor, 1);
        assert_eq!(report.segments[..], segments[3..]);
        assert_eq!(
            report.next,
            LogPosition {
                segment: segments.len() as u64,
                next_record: all.len() as u64,
            }
        );

        // At a lower floor, the records between it and segment 3 are missing.
        expect_corruption(&fs, 0, "above the floor 0").await;
        // A middle segment gone.
        let holed = fs.crash_image(0);
        let middle = &listed(&holed).await[2];
        holed.remove(&dir().join(middle)).await.unwrap();
        expect_corruption(&holed, floor, "is missing").await;
        // The first remaining segment gone: segment 4 starts above the floor.
        let front = fs.crash_image(0);
        let first = &listed(&front).await[0];
        front.remove(&dir().join(first)).await.unwrap();
        expect_corruption(&front, floor, "above the floor").await;
    });
}

#[test]
fn a_log_released_whole_continues_at_the_floor_and_the_callers_segment() {
    run(|| async {
        let fs = Rc::new(SimFs::new());
        let (log, all) = many_segments(&fs).await;
        let end = all.len() as u64;
        let count = log.segments().len();
        assert_eq!(log.release_below(end).await.unwrap(), count - 1);
        let last = log.segments();
        assert_eq!(last.len(), 1, "the segment being written stays");
        log.close().await.unwrap();

        // Its last segment removed too (as a later release would, once a newer one exists):
        // recovery continues at the floor, in the segment number the caller gives.
        for name in listed(&fs).await {
            fs.remove(&dir().join(name)).await.unwrap();
        }
        let floor = end + 5;
        let start = RecoveryStart {
            floor_record: floor,
            next_segment_min: 40,
        };
        let (recs, report) = recover_collect_on(&*fs, dir(), start).await;
        let report = report.unwrap();
        assert!(recs.is_empty());
        assert_eq!(
            report,
            RecoveryReport {
                next: LogPosition {
                    segment: 40,
                    next_record: floor,
                },
                ..RecoveryReport::default()
            }
        );
        let log = CommitLog::start(fs.clone(), dir().into(), &report, CONFIG);
        let more = write_batches(&log, 500, floor, 2, 2, VALUE_LEN).await;
        assert_eq!(segment_numbers(&log.segments()), [40]);
        log.close().await.unwrap();
        let (recs, report) = recover_collect_on(&*fs, dir(), start).await;
        assert_eq!(recs, more);
        assert_eq!(report.unwrap().segments[0].first_record, floor);
    });
}

/// A floor above the log's end (tables hold records whose log writes a crash lost): the writer
/// continues at the floor, and the jump in numbering is accepted as long as it is below the
/// floor.
#[test]
fn a_jump_in_numbering_is_accepted_only_below_the_floor() {
    run(|| async {
        let fs = Rc::new(SimFs::new());
        let (log, all) = many_segments(&fs).await;
        log.close().await.unwrap();
        let end = all.len() as u64;
        let floor = end + 7;
        let (recs, report) = recover_collect_on(&*fs, dir(), start_at(floor)).await;
        let report = report.unwrap();
        assert!(recs.is_empty());
        assert_eq!(report.records_below_floor, end);
        assert_eq!(report.next.next_record, floor, "never below the floor");

        let log = CommitLog::start(fs.clone(), dir().into(), &report, CONFIG);
        let more = write_batches(&log, 700, floor, 2, 1, VALUE_LEN).await;
        log.close().await.unwrap();
        let (recs, report) = recover_collect_on(&*fs, dir(), start_at(floor)).await;
        report.unwrap();
        assert_eq!(recs, more);
        // At the old floor the records end..floor are needed, and they are not there.
        expect_corruption(&fs, end, "are missing and not below the floor").await;
    });
}

/// Numbers read from disk at the top of their range are corruption, never an overflow panic;
/// so is a segment whose header disagrees with its file name.
#[test]
fn numbers_at_the_limit_or_misnamed_segments_are_corruption() {
    run(|| async {
        let (keyspace, key, object) = common::record(0, 4);
        let mut object_bytes = Vec::new();
        object.encode(&mut object_bytes);
        let record = || vec![(keyspace.clone(), key.clone(), object_bytes.clone())];
        // (file's number, header's number, first record, what recovery says)
        let cases = [
            (u64::MAX, u64::MAX, 0, "segment number overflows"),
            (0, 0, u64::MAX, "record number overflows"),
            (5, 6, 0, "header says segment 6"),
        ];
        for (named, segment, first_record, needle) in cases {
            let fs = SimFs::new();
            let mut bytes = encode_segment_header(segment, first_record);
            common::push_batch(&mut bytes, &record(), first_record);
            let path = segment_path(dir(), named);
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            file.write_at(0, bytes).await.unwrap();
            file.sync().await.unwrap();
            file.close().await.unwrap();
            expect_corruption(&fs, u64::MAX, needle).await;
        }
    });
}

#[test]
fn the_engine_opens_writes_and_recovers_on_the_simulator() {
    run(|| async {
        let fs = Rc::new(SimFs::new());
        let limits = EngineLimits {
            memtable_bytes_max: 1 << 20,
            memory_budget_bytes: 4 << 20,
            log: CONFIG,
            lsm: tessera_shard::lsm::LsmOptions::default(),
        };
        let root = Path::new("data/shard-0");
        let (engine, report) = Engine::open(fs.clone(), root, NodeId(1), limits.clone())
            .await
            .unwrap();
        assert_eq!(report.records, 0);
        let empty = VersionVector::new();
        for i in 0..20u8 {
            let value = Some(vec![i; 40]);
            engine.write("ks", &[i], &empty, value, true).await.unwrap();
        }
        // Everything acknowledged is durable: any crash now keeps it.
        for seed in 0..10 {
            let image = Rc::new(fs.crash_image(seed));
            let (engine, report) = Engine::open(image, root, NodeId(1), limits.clone())
                .await
                .unwrap();
            assert_eq!(report.records, 20, "seed {seed}");
            for i in 0..20u8 {
                let got = engine
                    .read("ks", &[i], |o| o.cloned())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(got.live_values().collect::<Vec<_>>(), [&vec![i; 40]]);
            }
            engine.close().await.unwrap();
        }
        engine.close().await.unwrap();
    });
}
