//! `tessera-bench storage` end to end on a small key space: every benchmark runs and the
//! command refuses a directory that already exists (it would mix two runs' files).

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
}

#[test]
fn every_benchmark_runs_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("engine");
    let out = bench()
        .args([
            "storage",
            "--num",
            "20000",
            "--reads",
            "5000",
            "--memory-budget",
            "16MiB",
        ])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["fillrandom", "readrandom", "readmissing", "overwrite"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains("ops/s")),
            "{name}: {stdout}"
        );
    }
    // Nothing written is missing: every read of a missing key misses.
    assert!(stdout.contains("(0 of 5000 found)"), "{stdout}");
    assert!(stdout.contains("peak resident"), "{stdout}");
    // A second run into the same directory is refused with a reason.
    let again = bench()
        .args(["storage", "--num", "10"])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}
