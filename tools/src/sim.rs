//! `tessera sim`: runs the deterministic cluster simulator over many seeds.
//!
//! Each seed runs a whole cluster (3 to 5 nodes, clients, faults) in this process in virtual
//! time; see `tessera_core::sim`. The command stops at the first seed whose checkers fail,
//! prints what failed and the one command that replays that seed, and exits with status 1.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tessera_core::sim::{run, workload::WorkloadKind, Canary, SimConfig};

/// Arguments of `tessera sim`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  tessera sim --seeds 500\n  \
                        tessera sim --seeds 200 --workload register\n  \
                        tessera sim --seeds 50 --canary lww   # must fail: proves the checker works\n  \
                        tessera sim --seeds 1 --first-seed 1234 --verbose   # replay one seed")]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed; seeds run in order from it.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// The workload: `set` (no acknowledged add lost) or `register` (reads see the latest
    /// acknowledged write, strict quorum).
    #[arg(long, value_enum, default_value_t = WorkloadArg::Set)]
    workload: WorkloadArg,
    /// Break one mechanism on purpose; the run must then fail (exit status 1).
    #[arg(long, value_enum)]
    canary: Option<CanaryArg>,
    /// Virtual milliseconds of the workload phase (with faults) per seed.
    #[arg(long, default_value_t = 20_000)]
    workload_ticks: u64,
    /// Print every seed's report, not only failures.
    #[arg(long)]
    verbose: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WorkloadArg {
    Set,
    Register,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CanaryArg {
    /// Last-write-wins instead of siblings (caught losing adds by `--workload set`).
    Lww,
    /// No read repair (caught by the convergence check).
    NoReadRepair,
    /// No hint delivery (caught by the hint-drain check).
    NoHints,
    /// Ring changes flip ownership without moving data (caught by `--workload register`).
    EarlyFlip,
}

/// Runs the seeds; exit status 0 if every checker passed, 1 at the first failing seed.
pub fn run_sim(args: SimArgs) -> ExitCode {
    let workload = match args.workload {
        WorkloadArg::Set => WorkloadKind::Set,
        WorkloadArg::Register => WorkloadKind::Register,
    };
    let canary = args.canary.map(|c| match c {
        CanaryArg::Lww => Canary::Lww,
        CanaryArg::NoReadRepair => Canary::NoReadRepair,
        CanaryArg::NoHints => Canary::NoHints,
        CanaryArg::EarlyFlip => Canary::EarlyFlip,
    });
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let (mut acked, mut faults) = (0u64, 0u64);
    for seed in args.first_seed..args.first_seed.saturating_add(args.seeds) {
        let mut config = SimConfig::new(seed, workload, canary);
        config.workload_ticks = args.workload_ticks;
        let report = run(&config);
        acked += report.acknowledged;
        faults += report.faults;
        if args.verbose {
            bar.println(format!("{report:?}"));
        }
        if !report.passed() {
            bar.abandon();
            println!(
                "seed {seed} FAILED (trace hash {:#018x}):",
                report.trace_hash
            );
            for v in &report.violations {
                println!("  - {v}");
            }
            println!("replay it with:\n  {}", config.replay_command());
            return ExitCode::from(1);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds passed ({} to {}), {:.1} seeds/s; {acked} operations acknowledged, {faults} faults injected",
        args.seeds,
        args.first_seed,
        args.first_seed.saturating_add(args.seeds).saturating_sub(1),
        args.seeds as f64 / secs.max(1e-9),
    );
    ExitCode::SUCCESS
}
