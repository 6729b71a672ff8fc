//! `tessera`: the command line. Start a server, read and write keys, inspect a node.
//!
//! Exit status: 0 on success, 1 when `get` finds no value, 2 on any error (the message says
//! what to do).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod kv;
mod server;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tessera: a Dynamo-style distributed key-value store.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
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
    /// Show a node's shards, ports, partitions and health.
    Status(kv::StatusArgs),
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
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "tessera: {message}");
            ExitCode::from(2)
        }
    }
}

/// Default data directory, relative to where the server starts.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("tessera-data")
}
