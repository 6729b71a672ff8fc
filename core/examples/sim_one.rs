//! Runs simulator seeds and prints each report: `cargo run --release -p tessera-core --example
//! sim_one -- FIRST_SEED COUNT [set|register] [lww|no-read-repair|no-hints]`.

use tessera_core::sim::{run, workload::WorkloadKind, Canary, SimConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let first: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let count: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let workload = match args.get(3).map(String::as_str) {
        Some("register") => WorkloadKind::Register,
        _ => WorkloadKind::Set,
    };
    let canary = match args.get(4).map(String::as_str) {
        Some("lww") => Some(Canary::Lww),
        Some("no-read-repair") => Some(Canary::NoReadRepair),
        Some("no-hints") => Some(Canary::NoHints),
        Some("early-flip") => Some(Canary::EarlyFlip),
        _ => None,
    };
    let started = std::time::Instant::now();
    let mut failed = 0;
    for seed in first..first + count {
        let report = run(&SimConfig::new(seed, workload, canary));
        if !report.passed() {
            failed += 1;
        }
        println!("{report:?}");
    }
    println!(
        "{count} seeds, {failed} failed, {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
