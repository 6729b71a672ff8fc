//! Properties of the crash model, each checked over [`SEEDS`] seeds. A failing assertion
//! names its seed; `fs.crash_image(seed)` with that seed replays it.

#![allow(clippy::unwrap_used)]

use futures_lite::future::block_on;

use super::*;

/// Seeds tried per property: enough that each 1-in-2 outcome shows up with near certainty.
const SEEDS: u64 = 200;

fn p(name: &str) -> PathBuf {
    Path::new("data").join(name)
}

fn dir() -> &'static Path {
    Path::new("data")
}

/// Creates (or opens) `path`, writes `bytes` at `offset`, and syncs the file if asked.
async fn write(fs: &SimFs, path: &Path, offset: u64, bytes: &[u8], sync: bool) {
    let file = fs.open(path, OpenMode::Create).await.unwrap();
    file.write_at(offset, bytes.to_vec()).await.unwrap();
    if sync {
        file.sync().await.unwrap();
    }
    file.close().await.unwrap();
}

/// The whole content of `path`, or `None` if it does not exist.
async fn read(fs: &SimFs, path: &Path) -> Option<Vec<u8>> {
    let file = match fs.open(path, OpenMode::Existing).await {
        Ok(file) => file,
        Err(FsError::NotFound { .. }) => return None,
        Err(e) => panic!("open {}: {e}", path.display()),
    };
    let len = file.len().await.unwrap();
    let bytes = file.read_at(0, len as usize).await.unwrap();
    file.close().await.unwrap();
    Some(bytes)
}

#[test]
fn synced_data_survives_every_crash() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("a"), 0, b"durable-a", true).await;
        write(&fs, &p("b"), 0, b"durable-b", true).await;
        fs.sync_dir(dir()).await.unwrap();
        // Unsynced appends past the durable bytes, and an unsynced new file.
        write(&fs, &p("a"), 9, b"-maybe", false).await;
        write(&fs, &p("b"), 20, b"-maybe", false).await;
        write(&fs, &p("c"), 0, b"maybe", false).await;
        for seed in 0..SEEDS {
            let after = fs.crash_image(seed);
            for (name, want) in [("a", b"durable-a"), ("b", b"durable-b")] {
                let got = read(&after, &p(name)).await;
                let got = got.unwrap_or_else(|| panic!("seed {seed}: {name} vanished"));
                assert_eq!(&got[..9], want, "seed {seed}: {name}");
            }
        }
    });
}

#[test]
fn unsynced_data_sometimes_survives_and_sometimes_not() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("log"), 0, b"head", true).await;
        fs.sync_dir(dir()).await.unwrap();
        write(&fs, &p("log"), 4, b"tail", false).await;
        let (mut kept, mut lost) = (0, 0);
        for seed in 0..SEEDS {
            let got = read(&fs.crash_image(seed), &p("log")).await.unwrap();
            match got.as_slice() {
                b"headtail" => kept += 1,
                b"head" => lost += 1,
                // A torn write: a strict prefix of the tail.
                other => assert!(b"headtail".starts_with(other), "seed {seed}: {other:?}"),
            }
        }
        assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
    });
}

#[test]
fn a_torn_write_leaves_a_prefix_of_itself() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("seg"), 0, b"HEADER00", true).await;
        fs.sync_dir(dir()).await.unwrap();
        write(&fs, &p("seg"), 8, &[0xab; 64], false).await;
        let mut torn = 0;
        for seed in 0..SEEDS {
            let got = read(&fs.crash_image(seed), &p("seg")).await.unwrap();
            assert_eq!(&got[..8], b"HEADER00", "seed {seed}");
            let tail = &got[8..];
            assert!(tail.len() <= 64, "seed {seed}: {} bytes", tail.len());
            assert!(tail.iter().all(|&b| b == 0xab), "seed {seed}: not a prefix");
            if !tail.is_empty() && tail.len() < 64 {
                torn += 1;
            }
        }
        assert!(torn > 0, "no seed tore the write");
    });
}

#[test]
fn a_new_file_may_vanish_until_its_directory_is_synced() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("new"), 0, b"synced data", true).await;
        let (mut present, mut vanished) = (0, 0);
        for seed in 0..SEEDS {
            match read(&fs.crash_image(seed), &p("new")).await {
                Some(bytes) => {
                    assert_eq!(bytes, b"synced data", "seed {seed}");
                    present += 1;
                }
                None => vanished += 1,
            }
        }
        assert!(
            present > 0 && vanished > 0,
            "{present} present, {vanished} vanished"
        );

        fs.sync_dir(dir()).await.unwrap();
        for seed in 0..SEEDS {
            let got = read(&fs.crash_image(seed), &p("new")).await;
            assert_eq!(got.as_deref(), Some(&b"synced data"[..]), "seed {seed}");
        }
    });
}

#[test]
fn rename_is_atomic_across_crashes_and_durable_after_sync_dir() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("CURRENT"), 0, b"old manifest", true).await;
        fs.sync_dir(dir()).await.unwrap();
        write(&fs, &p("CURRENT.tmp"), 0, b"new manifest!", true).await;
        fs.rename(&p("CURRENT.tmp"), &p("CURRENT")).await.unwrap();
        let (mut old, mut new) = (0, 0);
        for seed in 0..SEEDS {
            let after = fs.crash_image(seed);
            match read(&after, &p("CURRENT")).await.as_deref() {
                Some(b"old manifest") => old += 1,
                Some(b"new manifest!") => {
                    new += 1;
                    let tmp = read(&after, &p("CURRENT.tmp")).await;
                    assert_eq!(tmp, None, "seed {seed}: renamed file has both names");
                }
                other => panic!("seed {seed}: CURRENT is {other:?}"),
            }
        }
        assert!(old > 0 && new > 0, "{old} old, {new} new");

        fs.sync_dir(dir()).await.unwrap();
        for seed in 0..SEEDS {
            let after = fs.crash_image(seed);
            let current = read(&after, &p("CURRENT")).await;
            assert_eq!(
                current.as_deref(),
                Some(&b"new manifest!"[..]),
                "seed {seed}"
            );
            assert_eq!(after.list(dir()).await.unwrap(), ["CURRENT"], "seed {seed}");
        }
    });
}

#[test]
fn removal_may_be_undone_until_its_directory_is_synced() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("old.sst"), 0, b"table", true).await;
        fs.sync_dir(dir()).await.unwrap();
        fs.remove(&p("old.sst")).await.unwrap();
        assert!(fs.list(dir()).await.unwrap().is_empty());
        let back = (0..SEEDS).filter(|&seed| {
            let after = fs.crash_image(seed);
            block_on(read(&after, &p("old.sst"))).is_some()
        });
        assert!(back.count() > 0, "no crash undid the remove");
        fs.sync_dir(dir()).await.unwrap();
        for seed in 0..SEEDS {
            assert_eq!(
                read(&fs.crash_image(seed), &p("old.sst")).await,
                None,
                "seed {seed}"
            );
        }
    });
}

#[test]
fn the_same_seed_gives_the_same_state() {
    block_on(async {
        let fs = SimFs::new();
        for i in 0..8u8 {
            write(&fs, &p(&format!("f{i}")), 0, &[i; 32], i % 2 == 0).await;
            write(&fs, &p(&format!("f{i}")), 32, &[i; 32], false).await;
        }
        for seed in 0..20 {
            let (x, y) = (fs.crash_image(seed), fs.crash_image(seed));
            let names = x.list(dir()).await.unwrap();
            assert_eq!(names, y.list(dir()).await.unwrap(), "seed {seed}");
            for name in names {
                assert_eq!(read(&x, &p(&name)).await, read(&y, &p(&name)).await);
            }
        }
    });
}

#[test]
fn crash_after_n_fails_every_later_operation() {
    block_on(async {
        let fs = SimFs::new();
        let file = fs.open(&p("a"), OpenMode::Create).await.unwrap();
        fs.crash_after(2);
        file.write_at(0, b"one".to_vec()).await.unwrap();
        file.sync().await.unwrap();
        assert!(!fs.is_crashed());
        assert!(matches!(file.len().await, Err(FsError::Crashed)));
        assert!(fs.is_crashed());
        assert!(matches!(file.read_at(0, 3).await, Err(FsError::Crashed)));
        assert!(matches!(fs.sync_dir(dir()).await, Err(FsError::Crashed)));
        assert!(matches!(fs.list(dir()).await, Err(FsError::Crashed)));
        let open = fs.open(&p("b"), OpenMode::Create).await;
        assert!(matches!(open, Err(FsError::Crashed)));
        assert!(matches!(file.close().await, Err(FsError::Crashed)));
        assert_eq!(fs.ops_done(), 3, "open, write and sync ran; nothing after");
    });
}

/// A manifest swap done right (write, sync, rename, sync_dir), cut at every operation and
/// crashed with several seeds: the manifest is always the old one or the new one.
#[test]
fn a_manifest_swap_cut_at_any_operation_leaves_old_or_new() {
    async fn swap(fs: &SimFs) -> Result<(), FsError> {
        let tmp = fs.open(&p("CURRENT.tmp"), OpenMode::CreateNew).await?;
        tmp.write_at(0, b"new".to_vec()).await?;
        tmp.sync().await?;
        tmp.close().await?;
        fs.rename(&p("CURRENT.tmp"), &p("CURRENT")).await?;
        fs.sync_dir(dir()).await
    }
    block_on(async {
        let setup = || async {
            let fs = SimFs::new();
            write(&fs, &p("CURRENT"), 0, b"old", true).await;
            fs.sync_dir(dir()).await.unwrap();
            fs
        };
        let probe = setup().await;
        let start = probe.ops_done();
        swap(&probe).await.unwrap();
        let total = probe.ops_done() - start;
        for cut in 0..=total {
            for seed in 0..SEEDS / 10 {
                let fs = setup().await;
                fs.crash_after(cut);
                let finished = swap(&fs).await.is_ok();
                let got = read(&fs.crash(seed), &p("CURRENT")).await;
                let ok = matches!(got.as_deref(), Some(b"old") | Some(b"new"));
                assert!(ok, "cut {cut} seed {seed}: {got:?}");
                if finished {
                    assert_eq!(got.as_deref(), Some(&b"new"[..]), "cut {cut} seed {seed}");
                }
            }
        }
    });
}

#[test]
fn capacity_gives_no_space_and_writes_nothing_partial() {
    block_on(async {
        let fs = SimFs::new();
        fs.set_capacity(Some(100));
        let a = fs.open(&p("a"), OpenMode::Create).await.unwrap();
        a.write_at(0, vec![1; 60]).await.unwrap();
        let b = fs.open(&p("b"), OpenMode::Create).await.unwrap();
        let full = b.write_at(0, vec![2; 50]).await;
        assert!(matches!(
            full,
            Err(FsError::NoSpace {
                op: FsOp::Write,
                ..
            })
        ));
        assert_eq!(
            b.len().await.unwrap(),
            0,
            "a refused write left bytes behind"
        );
        // Overwriting in place needs no space; growing past the limit does.
        a.write_at(0, vec![3; 60]).await.unwrap();
        let grow = a.write_at(50, vec![4; 51]).await;
        assert!(matches!(grow, Err(FsError::NoSpace { .. })));
        assert_eq!(a.read_at(0, 100).await.unwrap(), vec![3; 60]);
        b.write_at(0, vec![2; 40]).await.unwrap();
        // Removing a file frees its space.
        fs.remove(&p("a")).await.unwrap();
        b.write_at(40, vec![2; 60]).await.unwrap();
        assert_eq!(b.len().await.unwrap(), 100);
    });
}

#[test]
fn crash_cuts_the_power_of_the_file_system_it_is_called_on() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("a"), 0, b"x", true).await;
        let _image = fs.crash_image(1);
        assert!(!fs.is_crashed(), "an image leaves the run going");
        let after = fs.crash(1);
        assert!(fs.is_crashed());
        assert!(matches!(fs.list(dir()).await, Err(FsError::Crashed)));
        assert!(!after.is_crashed());
        after.list(dir()).await.unwrap();
    });
}

#[test]
fn an_unsynced_truncate_survives_or_not_and_a_synced_one_always() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("seg"), 0, b"HEADTAIL", true).await;
        fs.sync_dir(dir()).await.unwrap();
        let file = fs.open(&p("seg"), OpenMode::Existing).await.unwrap();
        file.truncate(4).await.unwrap();
        assert_eq!(
            file.len().await.unwrap(),
            4,
            "a reader sees the new length at once"
        );
        let (mut cut, mut kept) = (0, 0);
        for seed in 0..SEEDS {
            match read(&fs.crash_image(seed), &p("seg")).await.as_deref() {
                Some(b"HEAD") => cut += 1,
                Some(b"HEADTAIL") => kept += 1,
                // Never torn: a truncate is all or nothing.
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        assert!(cut > 0 && kept > 0, "{cut} cut, {kept} kept");

        file.sync().await.unwrap();
        for seed in 0..SEEDS {
            let got = read(&fs.crash_image(seed), &p("seg")).await;
            assert_eq!(got.as_deref(), Some(&b"HEAD"[..]), "seed {seed}");
        }
        // Extending reads as zeros, and is pending like any truncate.
        file.truncate(6).await.unwrap();
        assert_eq!(file.read_at(0, 10).await.unwrap(), b"HEAD\0\0");
        let extended = (0..SEEDS).filter(|&seed| {
            let got = block_on(read(&fs.crash_image(seed), &p("seg")));
            assert!(matches!(got.as_deref(), Some(b"HEAD") | Some(b"HEAD\0\0")));
            got.as_deref() == Some(b"HEAD\0\0")
        });
        assert!(extended.count() > 0);
        file.close().await.unwrap();
    });
}

/// The commit log's recovery from a failed write: cut the file back to its durable end, sync
/// that, then write again. No crash may bring the failed write's bytes back.
#[test]
fn a_write_cut_off_by_a_synced_truncate_never_comes_back() {
    block_on(async {
        let fs = SimFs::new();
        write(&fs, &p("seg"), 0, b"HEAD", true).await;
        fs.sync_dir(dir()).await.unwrap();
        let file = fs.open(&p("seg"), OpenMode::Existing).await.unwrap();
        file.write_at(4, b"XXXXXXXX".to_vec()).await.unwrap();
        // Before the cut is synced, the failed bytes may survive (in whole or torn).
        file.truncate(4).await.unwrap();
        let back = (0..SEEDS)
            .filter(|&seed| {
                let got = block_on(read(&fs.crash_image(seed), &p("seg"))).unwrap();
                assert!(b"HEADXXXXXXXX".starts_with(&got), "seed {seed}: {got:?}");
                got.len() > 4
            })
            .count();
        assert!(
            back > 0,
            "an unsynced cut never let the failed bytes survive"
        );

        file.sync().await.unwrap();
        file.write_at(4, b"YY".to_vec()).await.unwrap();
        let mut retried = 0;
        for seed in 0..SEEDS {
            let got = read(&fs.crash_image(seed), &p("seg")).await.unwrap();
            assert!(
                b"HEADYY".starts_with(&got) && got.len() >= 4,
                "seed {seed}: {got:?}"
            );
            retried += usize::from(got == b"HEADYY");
        }
        assert!(retried > 0);
        file.close().await.unwrap();
    });
}

#[test]
fn create_dir_and_truncate_are_crash_points() {
    block_on(async {
        let fs = SimFs::new();
        let file = fs.open(&p("a"), OpenMode::Create).await.unwrap();
        fs.crash_after(2);
        fs.create_dir(Path::new("data/sub")).await.unwrap();
        file.truncate(0).await.unwrap();
        assert!(matches!(file.truncate(1).await, Err(FsError::Crashed)));
        let again = fs.create_dir(Path::new("data/other")).await;
        assert!(matches!(again, Err(FsError::Crashed)));
        assert_eq!(fs.ops_done(), 3);
    });
}
