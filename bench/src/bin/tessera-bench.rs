//! `tessera-bench`: Tessera's load generator (`tessera-bench --help`).

fn main() -> std::process::ExitCode {
    tessera_bench::main_with_args(std::env::args())
}
