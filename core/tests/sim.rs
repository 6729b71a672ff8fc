//! The deterministic simulator in CI: hundreds of seeds of whole clusters under faults, the
//! canaries that prove the checkers catch what they claim to, and determinism.
//!
//! `TESSERA_SIM_SEEDS=N` runs N seeds per workload instead of the default (a longer soak).

use tessera_core::sim::{run, workload::WorkloadKind, Canary, SimConfig, SimReport};

/// Seeds per workload in CI: the issue asks for at least 500 in all.
const SET_SEEDS_DEFAULT: u64 = 400;
const REGISTER_SEEDS_DEFAULT: u64 = 200;
/// Seeds per canary.
const CANARY_SEEDS: u64 = 20;

fn seeds(default: u64) -> u64 {
    std::env::var("TESSERA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn run_seeds(workload: WorkloadKind, count: u64, first: u64) -> Vec<SimReport> {
    (first..first + count)
        .map(|seed| {
            let config = SimConfig::new(seed, workload, None);
            let report = run(&config);
            assert!(
                report.passed(),
                "seed {seed} failed: {:#?}\nreplay it with: {}",
                report.violations,
                config.replay_command()
            );
            report
        })
        .collect()
}

#[test]
fn set_workload_loses_no_acknowledged_add_and_replicas_converge() {
    let reports = run_seeds(WorkloadKind::Set, seeds(SET_SEEDS_DEFAULT), 1);
    let sum = |f: fn(&SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    let adds: usize = reports.iter().map(|r| r.acked_adds).sum();
    // The runs must have exercised what they check: adds acknowledged through faults, and every
    // repair mechanism reached (a checker that never saw a hint proves nothing about hints).
    assert!(adds > 50 * reports.len(), "only {adds} adds acknowledged");
    assert!(sum(|r| r.faults) > 5 * reports.len() as u64);
    assert!(
        sum(|r| r.sloppy_writes) > 0,
        "no write went through a sloppy quorum"
    );
    assert!(sum(|r| r.hints_delivered) > 0, "no hint was delivered");
    assert!(sum(|r| r.read_repairs) > 0, "no read repair happened");
    assert!(
        sum(|r| r.ae_keys_repaired) > 0,
        "anti-entropy never repaired a key"
    );
    let failed_ops = sum(|r| r.failed);
    assert!(failed_ops > 0, "faults never made an operation fail");
    // Churn keys were deleted and their tombstones reaped while faults ran: the check that no
    // deleted value came back saw reaps.
    let deletes: usize = reports.iter().map(|r| r.acked_deletes).sum();
    let reaped = sum(|r| r.tombstones_reaped);
    eprintln!("{deletes} deletes acknowledged, {reaped} tombstones reaped");
    assert!(
        deletes > 10 * reports.len(),
        "only {deletes} deletes acknowledged"
    );
    assert!(reaped > 0, "no tombstone was reaped");
    assert_ring_changes_ran(&reports);
    // A third of the runs had two datacenters, where clients also counted answers in their
    // node's datacenter only and in each datacenter.
    let two_dcs = reports.iter().filter(|r| r.datacenters).count();
    assert!(
        two_dcs > reports.len() / 4,
        "only {two_dcs} runs had two datacenters"
    );
    assert!(sum(|r| r.scoped_local) > 0 && sum(|r| r.scoped_each) > 0);
    let scoped_acked = sum(|r| r.scoped_writes_acked);
    eprintln!(
        "{two_dcs} runs with two datacenters: {} local-dc and {} each-dc set requests, \
         {scoped_acked} such adds acknowledged",
        sum(|r| r.scoped_local),
        sum(|r| r.scoped_each)
    );
    assert!(
        scoped_acked > 10 * two_dcs as u64,
        "only {scoped_acked} adds counted per datacenter were acknowledged"
    );
}

/// Every run had a node join, about half had one leave, partitions moved, and some writes met
/// a replica that had moved on to a newer ring (the fence that keeps a streaming source from
/// taking writes that skip the new replica).
fn assert_ring_changes_ran(reports: &[SimReport]) {
    let joined: usize = reports.iter().map(|r| r.joined).sum();
    let left: usize = reports.iter().map(|r| r.left).sum();
    assert_eq!(joined, reports.len(), "a node joins in every run");
    assert!(
        left > reports.len() / 4 && left < reports.len() * 3 / 4,
        "{left} leaves in {} runs",
        reports.len()
    );
    let moved = reports.iter().filter(|r| r.moves_completed > 0).count();
    assert!(
        moved > reports.len() * 9 / 10,
        "partitions moved in only {moved} runs"
    );
    let refused: u64 = reports.iter().map(|r| r.stale_ring_refusals).sum();
    assert!(refused > 0, "no write ever met a newer ring");
}

#[test]
fn register_workload_reads_see_the_latest_acknowledged_write() {
    let reports = run_seeds(
        WorkloadKind::Register,
        seeds(REGISTER_SEEDS_DEFAULT),
        1_000_001,
    );
    let acked: u64 = reports.iter().map(|r| r.acknowledged).sum();
    assert!(
        acked > 100 * reports.len() as u64,
        "only {acked} operations acknowledged"
    );
    assert_ring_changes_ran(&reports);
}

/// Runs a canary over `seeds` seeds of `workload`; returns how many seeds caught it with a
/// violation containing `expected`.
fn canary_catches_in(canary: Canary, workload: WorkloadKind, seeds: u64, expected: &str) -> u64 {
    (1..=seeds)
        .filter(|&seed| {
            let report = run(&SimConfig::new(seed, workload, Some(canary)));
            report.violations.iter().any(|v| v.contains(expected))
        })
        .count() as u64
}

fn canary_catches(canary: Canary, expected: &str) -> u64 {
    canary_catches_in(canary, WorkloadKind::Set, CANARY_SEEDS, expected)
}

#[test]
fn flipping_ownership_before_the_data_moved_is_caught_by_stale_reads() {
    // A flip without transfers leaves a new replica empty until anti-entropy reaches it; a
    // strict read that asks it and one other stale replica returns an old value. That needs
    // a cold key, a changed list and an unlucky pair, so only about a third of seeds see it.
    let seeds = 2 * CANARY_SEEDS;
    let caught = canary_catches_in(
        Canary::EarlyFlip,
        WorkloadKind::Register,
        seeds,
        "stale read",
    );
    assert!(
        caught >= seeds / 5,
        "early flip caught in only {caught} of {seeds} seeds"
    );
}

#[test]
fn last_write_wins_is_caught_losing_adds() {
    let caught = canary_catches(Canary::Lww, "lost acknowledged adds");
    assert!(
        caught >= CANARY_SEEDS * 9 / 10,
        "lww caught in only {caught} of {CANARY_SEEDS} seeds"
    );
}

#[test]
fn turning_read_repair_off_is_caught_by_the_convergence_check() {
    let caught = canary_catches(Canary::NoReadRepair, "read repair");
    assert!(
        caught >= CANARY_SEEDS / 2,
        "caught in only {caught} of {CANARY_SEEDS} seeds"
    );
}

#[test]
fn turning_hint_delivery_off_is_caught_by_the_convergence_check() {
    let caught = canary_catches(Canary::NoHints, "hints did not drain");
    assert!(
        caught >= CANARY_SEEDS / 2,
        "caught in only {caught} of {CANARY_SEEDS} seeds"
    );
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for workload in [WorkloadKind::Set, WorkloadKind::Register] {
        for seed in [7, 8] {
            let a = run(&SimConfig::new(seed, workload, None));
            let b = run(&SimConfig::new(seed, workload, None));
            assert_eq!(
                a.trace_hash, b.trace_hash,
                "seed {seed} is not deterministic"
            );
            assert_eq!(a.events, b.events);
        }
        let a = run(&SimConfig::new(7, workload, None));
        let c = run(&SimConfig::new(8, workload, None));
        assert_ne!(
            a.trace_hash, c.trace_hash,
            "different seeds ran the same trace"
        );
    }
}
