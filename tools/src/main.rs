//! `tessera`: the command line. Start a server, read and write keys, inspect a node.
//!
//! Exit status: 0 on success, 1 when `get` finds no value, 2 on any error (the message says
//! what to do).

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod cluster;
mod kv;
mod membership;
mod server;
mod sim;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tessera: a Dynamo-style distributed key-value store.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: a Dynamo-style key-value store (thread-per-core, io_uring)",
    after_help = "Examples:\n  tessera cluster up --nodes 3 --data-dir ./tessera-data --port 7000\n  tessera server --data-dir ./tessera-data --listen 127.0.0.1:7000\n  \
                  tessera put greeting hello\n  tessera get greeting\n  \
                  tessera put greeting hi --w 3 --strict   (all three replicas, no stand-ins)\n  \
                  tessera status\n\n\
                  Client commands talk to 127.0.0.1:7000 unless --server or TESSERA_SERVER says otherwise."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: one shard per core, each with its own commit log and port.
    Server(server::ServerArgs),
    /// Write a value. By default it replaces whatever the key holds (the current versions are
    /// read first and superseded); --blind adds it as a sibling instead.
    Put(kv::PutArgs),
    /// Read a key: prints each sibling value on its own line; exit status 1 if not found.
    Get(kv::GetArgs),
    /// Delete a key (supersedes every version currently stored).
    Del(kv::DelArgs),
    /// Show a node's shards, ports and partitions, and on a cluster member every node's
    /// health and the partition transfers in progress (bytes, rate, ETA).
    Status(kv::StatusArgs),
    /// Show the ring: every cluster member, its rack and datacenter, and the partitions it
    /// owns now and after the change in progress.
    Ring(membership::RingArgs),
    /// Make a node leave the cluster: it hands its partitions off, then shows `Left`.
    Leave(membership::LeaveArgs),
    /// Remove a node that is gone for good (a lost machine, or one whose data directory was
    /// wiped: it comes back under a new id and joins anew). The cluster stops waiting for it
    /// and copies its partitions again from the surviving replicas. Refused for a live node.
    Remove(membership::RemoveArgs),
    /// YCSB-style benchmark runner and TCP echo ceiling (same as the `tessera-bench` binary).
    Bench(tessera_bench::BenchArgs),
    /// Run a local cluster: `tessera cluster up --nodes 3 --data-dir DIR --port 7000`.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Run the deterministic cluster simulator over many seeds (faults, workloads, checkers).
    Sim(sim::SimArgs),
}

/// Where the server is; shared by the client commands.
#[derive(Debug, Args, Clone)]
pub struct ServerAddr {
    /// Address of any tessera node (its main port).
    #[arg(
        long,
        short = 's',
        default_value = "127.0.0.1:7000",
        env = "TESSERA_SERVER"
    )]
    server: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Put(args) => kv::put(args),
        Command::Get(args) => kv::get(args),
        Command::Del(args) => kv::del(args),
        Command::Status(args) => kv::status(args),
        Command::Ring(args) => membership::ring(args),
        Command::Leave(args) => membership::leave(args),
        Command::Remove(args) => membership::remove(args),
        Command::Bench(args) => return tessera_bench::run(args),
        Command::Sim(args) => return sim::run_sim(args),
        Command::Cluster(command) => cluster::run(command),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "tessera: {message}");
            ExitCode::from(2)
        }
    }
}
