//! The client commands: `put`, `get`, `del`, `status`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use tessera_client::{
    Client, ClientConfig, Consistency, Context, Durability, CONSISTENCY_REPLICAS_MAX,
};

use crate::ServerAddr;

/// Which nodes count toward a command's r or w: `--strict` and `--scope`.
#[derive(Debug, Args)]
struct QuorumArgs {
    /// Strict quorum: only the key's own replicas (its preference list) count. By default
    /// (sloppy quorum) another node stands in for a replica that is down (a write it keeps is
    /// handed over once the replica is back); with --strict the command fails instead while
    /// fewer than r (or w) of the key's replicas are up. Ignored by a single node (not in a
    /// cluster).
    #[arg(long)]
    strict: bool,
    /// Where the answers counted toward r (or w) come from: `local-dc`, only replicas in the
    /// datacenter of the node you ask (like LOCAL_QUORUM); `each-dc`, r (or w) in every
    /// datacenter holding replicas of the key (like EACH_QUORUM). Without --r/--w, a majority
    /// of the replicas in each datacenter counted. Default: any replicas.
    #[arg(long, value_enum, value_name = "WHERE")]
    scope: Option<ScopeArg>,
}

/// `--scope` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    /// Only the datacenter of the node asked.
    LocalDc,
    /// Each datacenter holding replicas of the key.
    EachDc,
}

/// `--r`/`--w` values: 1 up to the most replicas a key can have (the node refuses more than its
/// own n, saying what n is).
fn replicas_arg(text: &str) -> Result<u8, String> {
    let max = CONSISTENCY_REPLICAS_MAX;
    match text.parse::<u8>() {
        Ok(n) if n >= 1 && usize::from(n) <= max => Ok(n),
        _ => Err(format!("must be a number of replicas from 1 to {max}")),
    }
}

/// The consistency a command asks for: `replicas` (0 for the node's default), `--strict` and
/// `--scope`.
fn consistency(replicas: Option<u8>, quorum: &QuorumArgs) -> Consistency {
    let c = Consistency::replicas(replicas.unwrap_or(0));
    let c = if quorum.strict { c.strict() } else { c };
    match quorum.scope {
        None => c,
        Some(ScopeArg::LocalDc) => c.local_dc(),
        Some(ScopeArg::EachDc) => c.each_dc(),
    }
}

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
    /// Replicas that must acknowledge the write (w) before it succeeds; default: the node's w.
    /// With n=3, --w 3 succeeds only once every replica has the value. Ignored by a single
    /// node (not in a cluster).
    #[arg(long = "w", value_name = "N", value_parser = replicas_arg)]
    w: Option<u8>,
    #[command(flatten)]
    quorum: QuorumArgs,
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
    /// Replicas that must answer the read (r); default: the node's r. With n=3, --r 3 waits
    /// for all three replicas, --r 1 answers from the first that answers. Ignored by a single
    /// node (not in a cluster).
    #[arg(long = "r", value_name = "N", value_parser = replicas_arg)]
    r: Option<u8>,
    #[command(flatten)]
    quorum: QuorumArgs,
}

/// Options of `tessera del`.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key.
    key: String,
    #[command(flatten)]
    addr: ServerAddr,
    /// Replicas that must acknowledge the delete (w) before it succeeds; default: the node's
    /// w. Ignored by a single node (not in a cluster).
    #[arg(long = "w", value_name = "N", value_parser = replicas_arg)]
    w: Option<u8>,
    #[command(flatten)]
    quorum: QuorumArgs,
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
    let consistency = consistency(args.w, &args.quorum);
    let context = match (&args.context, args.blind) {
        (Some(hex), _) => Some(Context::from_hex(hex).map_err(|e| e.to_string())?),
        (None, true) => None,
        (None, false) => Some(
            client
                .get_with(key, consistency.read_before_write())
                .map_err(|e| e.to_string())?
                .context,
        ),
    };
    client
        .put_with(key, args.value.as_bytes(), context.as_ref(), consistency)
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `tessera get`.
pub fn get(args: GetArgs) -> Result<ExitCode, String> {
    let client = connect(&args.addr, Durability::Default)?;
    let read = client
        .get_with(args.key.as_bytes(), consistency(args.r, &args.quorum))
        .map_err(|e| e.to_string())?;
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
    let consistency = consistency(args.w, &args.quorum);
    let read = client
        .get_with(key, consistency.read_before_write())
        .map_err(|e| e.to_string())?;
    client
        .delete_with(key, Some(&read.context), consistency)
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
