//! `tessera-bench`: Tessera's load generator (`tessera-bench --help`).

// The server's allocator, so `storage` measures memory as a node would use it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Warnings from the engine (`storage`) reach stderr; `TESSERA_LOG` (an env-filter such
    // as `debug`) asks for more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    tessera_bench::main_with_args(std::env::args())
}
