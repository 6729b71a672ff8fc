//! `tessera server`: start a node and run it until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tessera_shard::config::size::{format_size, parse_size};
use tessera_shard::config::{ClusterSettings, ConflictSetting, PlacementSetting};
use tessera_shard::NodeConfig;

/// Options of `tessera server`; flags override the config file.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory for the node's data, created if missing [default: tessera-data, or the
    /// config file's data_dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Main address; shard i also listens on port+1+i of the same host [default:
    /// 127.0.0.1:7000, or the config file's listen].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Also serve the Redis protocol (RESP2) on this address, e.g. 127.0.0.1:6379, so that
    /// redis-cli, redis-benchmark and Redis clients work against the default keyspace
    /// [default: off, or the config file's resp_listen].
    #[arg(long, value_name = "HOST:PORT")]
    resp_listen: Option<SocketAddr>,
    /// Number of shards (default: one per CPU; fixed once the data directory exists).
    #[arg(long)]
    shards: Option<u16>,
    /// TOML config file (see README for the settings).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Pin each shard to a CPU (production) or let threads float (tests, shared machines).
    #[arg(long, value_enum)]
    placement: Option<Placement>,
    /// Acknowledge writes before their log record is fsynced (faster, loses the last
    /// writes on power failure). Requests may still ask for durability explicitly.
    #[arg(long)]
    no_durable_writes: bool,
    /// Memory for all memtables and block caches of the node, shared among shards, e.g.
    /// 64MiB, 1GiB, 512MB or a number of bytes; at least 16MiB per shard [default: 1GiB (64MiB
    /// per shard if more), or the config file's memory_budget].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<u64>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Cluster membership flags; any of them makes the node a cluster member (one shard).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// Where this node listens for its peers (an address they can reach) [default: the main
    /// host, port 7900, or the config file's cluster.peer_listen].
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_listen: Option<SocketAddr>,
    /// Peer addresses of nodes already in the cluster, comma-separated. None: this node
    /// founds a new cluster (or, restarting, waits for its peers).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub seeds: Vec<SocketAddr>,
    /// Rack label; replicas of a key are spread over racks [default: rack-1].
    #[arg(long)]
    pub rack: Option<String>,
    /// Datacenter label [default: dc-1].
    #[arg(long)]
    pub dc: Option<String>,
    /// Relative capacity: the node claims partitions in proportion to it [default: 1].
    #[arg(long)]
    pub weight: Option<u32>,
    /// Replicas of every key, n [default: 3].
    #[arg(long, conflicts_with = "replicas_per_dc")]
    pub replicas: Option<usize>,
    /// Replicas of every key in each datacenter, as DC=N pairs (e.g. east=2,west=1); n is
    /// their sum. Give every node the same list.
    #[arg(long, value_name = "DC=N,...", value_delimiter = ',', value_parser = dc_count)]
    pub replicas_per_dc: Vec<(String, usize)>,
    /// Replicas that must answer a read, r [default: 2].
    #[arg(long)]
    pub read_quorum: Option<usize>,
    /// Replicas that must acknowledge a write, w [default: 2].
    #[arg(long)]
    pub write_quorum: Option<usize>,
    /// How concurrent writes to a key resolve: siblings (kept for the next writer to merge;
    /// nothing acknowledged is lost) or lww (the newest wins and the others are silently
    /// dropped) [default: siblings].
    #[arg(long, value_enum)]
    pub conflict: Option<Conflict>,
    /// How old a tombstone (a delete) must be, in seconds, before the cluster may purge it;
    /// must exceed the longest time a write can stay in flight (a slow request, a message
    /// queued for a peer), or a late write can bring a deleted value back [default: 3600, or
    /// the config file's cluster.tombstone_grace_secs].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub tombstone_grace: Option<u64>,
}

/// One `--replicas-per-dc` pair, `DC=N`.
fn dc_count(text: &str) -> Result<(String, usize), String> {
    let bad = || format!("{text:?}: expected DC=N, a datacenter name and a replica count");
    let (dc, n) = text.split_once('=').ok_or_else(bad)?;
    let n = n.trim().parse::<usize>().map_err(|_| bad())?;
    if dc.trim().is_empty() {
        return Err(bad());
    }
    Ok((dc.trim().to_string(), n))
}

/// `--conflict`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Conflict {
    /// Keep concurrent writes as siblings.
    Siblings,
    /// Last write wins.
    Lww,
}

impl ClusterArgs {
    fn any(&self) -> bool {
        self.peer_listen.is_some()
            || !self.seeds.is_empty()
            || self.rack.is_some()
            || self.dc.is_some()
            || self.weight.is_some()
            || self.replicas.is_some()
            || !self.replicas_per_dc.is_empty()
            || self.read_quorum.is_some()
            || self.write_quorum.is_some()
            || self.conflict.is_some()
            || self.tombstone_grace.is_some()
    }

    /// Applies the flags given to `config`'s cluster settings, creating them if needed.
    pub fn apply(self, config: &mut NodeConfig) {
        if !self.any() {
            return;
        }
        let listen_ip = config.listen.ip();
        let cluster = config.cluster.get_or_insert_with(|| ClusterSettings {
            peer_listen: SocketAddr::new(listen_ip, 7900),
            ..ClusterSettings::default()
        });
        if let Some(addr) = self.peer_listen {
            cluster.peer_listen = addr;
        }
        if !self.seeds.is_empty() {
            cluster.seeds = self.seeds;
        }
        let set = |field: &mut String, value: Option<String>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut cluster.rack, self.rack);
        set(&mut cluster.dc, self.dc);
        cluster.weight = self.weight.unwrap_or(cluster.weight);
        cluster.replicas = self.replicas.unwrap_or(cluster.replicas);
        if !self.replicas_per_dc.is_empty() {
            cluster.replicas_per_dc = self.replicas_per_dc.into_iter().collect();
        }
        cluster.read_quorum = self.read_quorum.unwrap_or(cluster.read_quorum);
        cluster.write_quorum = self.write_quorum.unwrap_or(cluster.write_quorum);
        match self.conflict {
            Some(Conflict::Siblings) => cluster.conflict = ConflictSetting::Siblings,
            Some(Conflict::Lww) => cluster.conflict = ConflictSetting::Lww,
            None => {}
        }
        cluster.tombstone_grace_secs = self.tombstone_grace.unwrap_or(cluster.tombstone_grace_secs);
        // A cluster node runs one shard (see `ClusterSettings`): the default follows.
        config.shards = 1;
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Placement {
    Pinned,
    Unbound,
}

/// Runs the node in the foreground.
pub fn run(args: ServerArgs) -> Result<ExitCode, String> {
    init_logging();
    let mut config = match &args.config {
        Some(path) => NodeConfig::from_file(path).map_err(|e| e.to_string())?,
        None => NodeConfig::default(),
    };
    apply_flags(args, &mut config);
    // Handlers first: a signal during recovery then stops the node cleanly once it is up.
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.clone())
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let node =
        tessera_shard::start_with_shutdown(config.clone(), shutdown).map_err(|e| e.to_string())?;
    let records: u64 = node.shards().iter().map(|s| s.recovered_records).sum();
    let torn: usize = node.shards().iter().filter_map(|s| s.torn_tail_bytes).sum();
    tracing::info!(records, torn_tail_bytes = torn, "recovered");
    print_banner(&config, node.topology().node_id);
    node.wait().map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Overrides the file's (or the default) settings with the flags given.
fn apply_flags(args: ServerArgs, config: &mut NodeConfig) {
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(resp) = args.resp_listen {
        config.resp_listen = Some(resp);
    }
    if let Some(shards) = args.shards {
        config.shards = shards;
    }
    if let Some(p) = args.placement {
        config.placement = match p {
            Placement::Pinned => PlacementSetting::Pinned,
            Placement::Unbound => PlacementSetting::Unbound,
        };
    }
    if args.no_durable_writes {
        config.durable_writes = false;
    }
    if let Some(bytes) = args.memory_budget {
        config.memory_budget_bytes = bytes;
    }
    let shards = args.shards;
    args.cluster.apply(config);
    if let Some(shards) = shards {
        // An explicit --shards stands; validation explains if a cluster cannot use it.
        config.shards = shards;
    }
}

fn print_banner(config: &NodeConfig, node_id: u64) {
    let first = config.shard_port(0);
    let last = config.shard_port(config.shards - 1);
    let durable = if config.durable_writes {
        "durable (fsync before ack)"
    } else {
        "NOT durable (ack before fsync)"
    };
    println!(
        "tessera node {node_id:016x} serving on {listen} with {shards} shard(s) (shard ports {first}-{last})\n\
         data: {dir}   writes: {durable}   {replication}\n\
         {memory}\n\
         try:  tessera put hello world --server {listen}\n      \
               tessera get hello --server {listen}{resp}\n\
         stop with Ctrl-C (or SIGTERM); every acknowledged write survives a restart",
        listen = config.listen,
        shards = config.shards,
        dir = config.data_dir.display(),
        memory = memory_banner(config),
        resp = resp_banner(config.resp_listen),
        replication = replication_banner(config),
    );
}

/// The banner's replication: a single node's, or the cluster settings.
fn replication_banner(config: &NodeConfig) -> String {
    match &config.cluster {
        None => "single node: n=r=w=1".into(),
        Some(c) => format!(
            "cluster: n={} r={} w={}, peers on {}, rack {}, dc {}, seeds {}",
            c.replicas,
            c.read_quorum,
            c.write_quorum,
            c.peer_listen,
            c.rack,
            c.dc,
            if c.seeds.is_empty() {
                "none (founding or rejoining)".to_string()
            } else {
                c.seeds
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        ),
    }
}

/// The banner's memory line: the node budget and one shard's split of it.
fn memory_banner(config: &NodeConfig) -> String {
    let share = config.shard_budget();
    format!(
        "memory: {} budget (per shard: {} memtables, {} block cache, table indexes and \
         filters included); data beyond it lives in SSTables on disk",
        format_size(config.memory_budget_bytes),
        format_size(share.memtable_bytes),
        format_size(share.cache_bytes),
    )
}

/// The banner's RESP lines: where Redis clients connect, and what SET means here.
fn resp_banner(resp: Option<SocketAddr>) -> String {
    match resp {
        Some(addr) => format!(
            "\nredis: RESP2 on {addr} (GET SET DEL EXISTS MGET MSET PING INFO; SET overwrites)\n      \
             redis-cli -h {host} -p {port}",
            host = addr.ip(),
            port = addr.port(),
        ),
        None => String::new(),
    }
}

/// Logs go to stderr at `info`; `TESSERA_LOG` (an env-filter such as `debug` or
/// `info,tessera_shard=debug`) overrides that.
///
/// A log line that cannot be written (stderr redirected to a file on a full disk, a closed
/// pipe) is dropped: by default the subscriber reports such a failure with `eprintln!` to the
/// same stderr, which panics when that write fails too, and would take down the shard thread
/// that logged (and, with `panic = "abort"`, the node) while it should keep serving reads.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn parse(args: &[&str]) -> Result<NodeConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let mut config = NodeConfig::default();
        apply_flags(cli.server, &mut config);
        Ok(config)
    }

    #[test]
    fn memory_budget_flag_takes_a_size_and_overrides_the_default() {
        assert_eq!(
            parse(&[]).unwrap().memory_budget_bytes,
            NodeConfig::default().memory_budget_bytes
        );
        let config = parse(&["--memory-budget", "64MiB"]).unwrap();
        assert_eq!(config.memory_budget_bytes, 64 << 20);
        assert_eq!(
            parse(&["--memory-budget=512MB"])
                .unwrap()
                .memory_budget_bytes,
            512_000_000
        );
        assert_eq!(
            parse(&["--memory-budget", "4096"])
                .unwrap()
                .memory_budget_bytes,
            4096
        );
        let err = parse(&["--memory-budget", "1.5GiB"]).unwrap_err();
        assert!(
            err.contains("--memory-budget") && err.contains("1536MiB"),
            "{err}"
        );
    }

    #[test]
    fn tombstone_grace_flag_sets_the_clusters_grace_in_seconds() {
        assert!(parse(&[]).unwrap().cluster.is_none());
        let config = parse(&["--peer-listen", "127.0.0.9:7900"]).unwrap();
        assert_eq!(config.cluster.unwrap().tombstone_grace_secs, 3_600);
        let config = parse(&["--tombstone-grace", "60"]).unwrap();
        assert_eq!(config.cluster.unwrap().tombstone_grace_secs, 60);
        let err = parse(&["--tombstone-grace", "0"]).unwrap_err();
        assert!(err.contains("--tombstone-grace"), "{err}");
    }

    #[test]
    fn the_banner_shows_the_budget_and_its_split() {
        let config = NodeConfig {
            shards: 2,
            memory_budget_bytes: 1 << 30,
            ..NodeConfig::default()
        };
        assert!(
            memory_banner(&config).starts_with(
                "memory: 1GiB budget (per shard: 128MiB memtables, 384MiB block cache"
            ),
            "{}",
            memory_banner(&config)
        );
    }
}
