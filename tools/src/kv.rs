//! The client commands: `put`, `get`, `del`, `status`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use tessera_client::{Client, ClientConfig, Context, Durability};

use crate::ServerAddr;

/// Options of `tessera put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key.
    key: String,
    /// The value.
    value: String,
    #[command(flatten)]
    addr: ServerAddr,
    /// Add the value as a sibling of existing versions instead of replacing them.
    #[arg(long, conflicts_with = "context")]
    blind: bool,
    /// Supersede exactly the versions of this context (hex, from `get --show-context`).
    #[arg(long)]
    context: Option<String>,
    /// Do not wait for the write to be fsynced.
    #[arg(long)]
    relaxed: bool,
}

/// Options of `tessera get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key.
    key: String,
    #[command(flatten)]
    addr: ServerAddr,
    /// Also print the causal context (hex) on stderr, for `put --context`.
    #[arg(long)]
    show_context: bool,
}

/// Options of `tessera del`.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key.
    key: String,
    #[command(flatten)]
    addr: ServerAddr,
}

/// Options of `tessera status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    addr: ServerAddr,
}

fn connect(addr: &ServerAddr, durability: Durability) -> Result<Client, String> {
    let config = ClientConfig {
        durability,
        ..ClientConfig::default()
    };
    Client::connect(addr.server.as_str(), config).map_err(|e| e.to_string())
}

/// `tessera put`.
pub fn put(args: PutArgs) -> Result<ExitCode, String> {
    let durability = if args.relaxed {
        Durability::Relaxed
    } else {
        Durability::Default
    };
    let client = connect(&args.addr, durability)?;
    let key = args.key.as_bytes();
    let context = match (&args.context, args.blind) {
        (Some(hex), _) => Some(Context::from_hex(hex).map_err(|e| e.to_string())?),
        (None, true) => None,
        (None, false) => Some(client.get(key).map_err(|e| e.to_string())?.context),
    };
    client
        .put(key, args.value.as_bytes(), context.as_ref())
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `tessera get`.
pub fn get(args: GetArgs) -> Result<ExitCode, String> {
    let client = connect(&args.addr, Durability::Default)?;
    let read = client.get(args.key.as_bytes()).map_err(|e| e.to_string())?;
    if args.show_context {
        eprintln!("context: {}", read.context.to_hex());
    }
    if read.is_not_found() {
        eprintln!("not found: {}", args.key);
        return Ok(ExitCode::from(1));
    }
    if read.values.len() > 1 {
        eprintln!(
            "{} siblings (concurrent writes); `tessera put` replaces them all",
            read.values.len()
        );
    }
    let mut out = std::io::stdout().lock();
    for value in &read.values {
        out.write_all(value).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `tessera del`.
pub fn del(args: DelArgs) -> Result<ExitCode, String> {
    let client = connect(&args.addr, Durability::Default)?;
    let key = args.key.as_bytes();
    let read = client.get(key).map_err(|e| e.to_string())?;
    client
        .delete(key, Some(&read.context))
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `tessera status`.
pub fn status(args: StatusArgs) -> Result<ExitCode, String> {
    let client = connect(&args.addr, Durability::Default)?;
    let rtt = client.ping().map_err(|e| e.to_string())?;
    let t = client.topology();
    println!("node        {:016x}", t.node_id);
    println!("address     {}", args.addr.server);
    println!("partitions  {}", t.partitions);
    println!(
        "shards      {} (all answering; slowest ping {:?})",
        t.shards.len(),
        rtt
    );
    for s in &t.shards {
        let owned = t.partition_shard.iter().filter(|&&p| p == s.shard).count();
        println!(
            "  shard {:<3} port {:<5} partitions {owned}",
            s.shard, s.port
        );
    }
    match crate::membership::cluster_status(&client)? {
        Some(cluster) => crate::membership::print_cluster(&client, cluster)?,
        None => println!("replication single node: n=r=w=1 (not a cluster member)"),
    }
    Ok(ExitCode::SUCCESS)
}
