//! Manifest tests on the simulated file system: codec round trips and corruption, recovery
//! of fresh and damaged directories, and a crash sweep over every operation of a run of
//! commits. A failing crash case names its cut and seed; `crash_image(seed)` replays it.

#![allow(clippy::unwrap_used)]

use futures_lite::future::block_on;
use proptest::prelude::*;
use tessera_io::fs::SimFs;

use super::*;

fn dir() -> &'static Path {
    Path::new("shard0")
}

fn table(id: u64, level: u8, smallest: &[u8], largest: &[u8]) -> TableMeta {
    TableMeta {
        id,
        level,
        smallest: smallest.to_vec(),
        largest: largest.to_vec(),
        entry_count: id * 10 + 1,
        file_size: id * 4096 + 7,
    }
}

fn add(tables: Vec<TableMeta>) -> ManifestEdit {
    ManifestEdit {
        add: tables,
        ..ManifestEdit::default()
    }
}

/// A run of commits a flush-and-compact engine could make: flushes that raise the log
/// floor, then a compaction that replaces two tables with one.
fn edits() -> Vec<ManifestEdit> {
    vec![
        ManifestEdit {
            log_floor: Some(1),
            ..add(vec![table(0, 0, b"a", b"m")])
        },
        ManifestEdit {
            log_floor: Some(2),
            ..add(vec![table(1, 0, b"c", b"z")])
        },
        ManifestEdit {
            add: vec![table(2, 1, b"a", b"z")],
            remove: vec![0, 1],
            log_floor: None,
        },
        ManifestEdit {
            log_floor: Some(5),
            ..add(vec![table(3, 0, b"", b"\xff")])
        },
        ManifestEdit {
            remove: vec![3],
            ..ManifestEdit::default()
        },
    ]
}

fn sample() -> Manifest {
    let mut m = Manifest::default();
    for edit in edits().iter().take(4) {
        m = m.apply(edit).unwrap();
    }
    m
}

#[test]
fn encode_decode_round_trips() {
    for m in [Manifest::default(), sample()] {
        assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m);
    }
}

#[test]
fn every_single_byte_corruption_is_a_typed_error() {
    let bytes = sample().encode().unwrap();
    for at in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            assert!(
                Manifest::decode(&bad).is_err(),
                "byte {at} ^ {flip:#x} accepted"
            );
        }
    }
    for len in 0..bytes.len() {
        assert!(
            Manifest::decode(&bytes[..len]).is_err(),
            "prefix of {len} accepted"
        );
    }
    let current = encode_current(42);
    assert_eq!(decode_current(&current), Ok(42));
    for at in 0..current.len() {
        let mut bad = current.clone();
        bad[at] ^= 0x01;
        assert!(decode_current(&bad).is_err(), "CURRENT byte {at} accepted");
    }
}

#[test]
fn edits_that_break_invariants_are_refused() {
    let m = sample();
    let bad = [
        ManifestEdit {
            remove: vec![99],
            ..ManifestEdit::default()
        },
        add(vec![table(2, 0, b"a", b"b")]),
        add(vec![table(9, 0, b"z", b"a")]),
        add(vec![table(9, MANIFEST_LEVELS_MAX, b"a", b"b")]),
        ManifestEdit {
            log_floor: Some(0),
            ..ManifestEdit::default()
        },
    ];
    for edit in bad {
        assert!(
            matches!(m.apply(&edit), Err(ManifestError::InvalidEdit(_))),
            "{edit:?}"
        );
    }
}

proptest! {
    /// Random edits: each valid one round-trips through the codec and keeps the invariants.
    #[test]
    fn random_edit_sequences_round_trip(
        steps in prop::collection::vec(
            (prop::collection::vec((0u8..4, any::<Vec<u8>>(), any::<Vec<u8>>()), 0..4),
             prop::collection::vec(any::<prop::sample::Index>(), 0..3),
             prop::option::of(0u64..8)),
            1..12)
    ) {
        let mut m = Manifest::default();
        for (adds, removes, floor) in steps {
            let mut next_id = m.next_table_id;
            let add = adds.into_iter().map(|(level, a, b)| {
                next_id += 1;
                let (smallest, largest) = if a <= b { (a, b) } else { (b, a) };
                TableMeta { id: next_id, level, smallest, largest, entry_count: 1, file_size: 2 }
            }).collect();
            let mut remove: Vec<u64> = removes.iter().filter(|_| !m.tables.is_empty())
                .map(|i| m.tables[i.index(m.tables.len())].id).collect();
            remove.sort_unstable();
            remove.dedup();
            let log_floor = floor.map(|f| m.log_floor + f);
            let next = m.apply(&ManifestEdit { add, remove, log_floor }).unwrap();
            prop_assert_eq!(next.seq, m.seq + 1);
            prop_assert_eq!(&Manifest::decode(&next.encode().unwrap()).unwrap(), &next);
            m = next;
        }
    }
}

#[test]
fn a_fresh_directory_recovers_empty_and_commits() {
    block_on(async {
        let fs = SimFs::new();
        let mut m = Manifest::recover(&fs, dir()).await.unwrap();
        assert_eq!(m, Manifest::default());
        for edit in edits() {
            m.commit(&fs, dir(), edit).await.unwrap();
        }
        assert_eq!(Manifest::recover(&fs, dir()).await.unwrap(), m);
        // Only the live manifest and CURRENT are left.
        let names = fs.list(dir()).await.unwrap();
        assert_eq!(names, [CURRENT.to_owned(), manifest_name(m.seq)]);
    });
}

#[test]
fn manifest_files_without_current_are_refused() {
    block_on(async {
        let fs = SimFs::new();
        let mut m = Manifest::default();
        m.commit(&fs, dir(), edits()[0].clone()).await.unwrap();
        fs.remove(&dir().join(CURRENT)).await.unwrap();
        let err = Manifest::recover(&fs, dir()).await.unwrap_err();
        assert!(matches!(err, ManifestError::NoCurrent { .. }), "{err}");
    });
}

#[test]
fn a_torn_current_or_missing_manifest_is_refused() {
    block_on(async {
        let fs = SimFs::new();
        let mut m = Manifest::default();
        m.commit(&fs, dir(), edits()[0].clone()).await.unwrap();
        let current = fs
            .open(&dir().join(CURRENT), OpenMode::Existing)
            .await
            .unwrap();
        current.write_at(3, b"X".to_vec()).await.unwrap();
        let err = Manifest::recover(&fs, dir()).await.unwrap_err();
        assert!(matches!(err, ManifestError::Corrupt { .. }), "{err}");
        current.write_at(0, encode_current(7)).await.unwrap();
        let err = Manifest::recover(&fs, dir()).await.unwrap_err();
        assert!(matches!(err, ManifestError::Dangling { .. }), "{err}");
    });
}

/// Seeds per crash point.
const SEEDS: u64 = 20;

/// Runs [`edits`] from a fresh directory until one fails. Returns the manifest of the last
/// commit that returned `Ok` and, if a commit failed, the manifest it was committing.
fn run(fs: &SimFs) -> (Manifest, Option<Manifest>) {
    block_on(async {
        let Ok(mut m) = Manifest::recover(fs, dir()).await else {
            return (Manifest::default(), None);
        };
        for edit in edits() {
            let attempt = m.apply(&edit).unwrap();
            if m.commit(fs, dir(), edit).await.is_err() {
                return (m, Some(attempt));
            }
        }
        (m, None)
    })
}

/// The crash invariant: cut the run after every number of operations `n` (0 up to all of
/// them) and crash the disk with each seed. Recovery of the image then succeeds and yields
/// exactly the last manifest whose commit returned `Ok`, or the one whose commit was cut;
/// never an error, an older manifest, or a mix. Recovery leaves a directory that commits
/// again, and a crash after recovery recovers the same manifest.
#[test]
fn a_crash_at_any_operation_recovers_the_last_or_the_cut_commit() {
    let probe = SimFs::new();
    let (full, cut) = run(&probe);
    assert!(cut.is_none());
    let total = probe.ops_done();
    let mut outcomes = (0, 0);
    for n in 0..=total {
        let fs = SimFs::new();
        fs.crash_after(n);
        let (committed, attempt) = run(&fs);
        for seed in 0..SEEDS {
            let image = fs.crash_image(seed);
            let got = block_on(Manifest::recover(&image, dir()))
                .unwrap_or_else(|e| panic!("cut {n} seed {seed}: {e}"));
            if got == committed {
                outcomes.0 += 1;
            } else if Some(&got) == attempt.as_ref() {
                outcomes.1 += 1;
            } else {
                panic!("cut {n} seed {seed}: recovered {got:?}, committed {committed:?}");
            }
            let again = block_on(Manifest::recover(&image.crash_image(seed), dir()));
            assert_eq!(again.unwrap(), got, "cut {n} seed {seed}: second recovery");
            let mut next = got;
            block_on(next.commit(&image, dir(), ManifestEdit::default()))
                .unwrap_or_else(|e| panic!("cut {n} seed {seed}: commit after recovery: {e}"));
        }
    }
    assert_eq!(full.seq, edits().len() as u64);
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}
