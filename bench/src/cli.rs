//! The command line: `run` (a YCSB workload, or echo round trips, against a server) and
//! `echo-server`, parsed with clap and checked against the bounds in [`crate::constants`]
//! before anything connects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tessera_io::ShardPlacement;
use tessera_schema::Durability;

use crate::constants::{
    CONNECTIONS_DEFAULT, DURATION_SECS_DEFAULT, DURATION_SECS_MAX, RECORDS_DEFAULT, SEED_DEFAULT,
};
use crate::echo_server::{EchoServer, EchoServerConfig};
use crate::engine::shared::Protocol;
use crate::engine::{PhaseConfig, PhaseStop};
use crate::error::BenchError;
use crate::proto::native::WriteMode;
use crate::run::{run as run_workload, write_outputs, RunConfig};
use crate::workload::{KeyDistribution, WorkloadName};

const AFTER_HELP: &str = "\
Workloads (YCSB core): A 50% read/50% update, B 95/5, C read only, D 95% read latest/5% insert, \
F 50% read/50% read-modify-write. E (range scans) is not offered: Tessera places keys by hash.

A connection is one session: one socket, or one per server shard for --protocol native (keys \
go straight to their shard). Sessions are driven by a few threads (--threads) with epoll. \
Closed loop by default (each session keeps --pipeline requests in flight); --rate switches to \
an open loop whose latencies count from each operation's scheduled time.

Every value names its record and write; after the run every record is read back and checked \
against the writes that were acknowledged: lost or wrong values are reported (0 expected).

Examples:
  tessera-bench run --protocol native -s 127.0.0.1:7000 --workload A -c 50 -d 10
  tessera-bench run --protocol resp -s 127.0.0.1:6379 --workload B -c 50 -P 16 --plot b.png
  tessera-bench run --protocol memcache -s 127.0.0.1:11211 --workload C --rate 20000

Exit status: 0 when every operation succeeded and every record checked out, 1 otherwise or \
when the run could not start, 2 for bad arguments.";

/// Tessera's benchmark runner.
#[derive(Debug, Parser)]
#[command(
    name = "tessera-bench",
    version,
    about = "Tessera's YCSB-style benchmark runner: Tessera, Redis, memcached, or a TCP echo.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// The runner's arguments, for embedding as a subcommand (`tessera bench ...`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load records, run a workload against a server, check every record; print the report.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// A glommio TCP echo server of length-prefixed frames: the ceiling for `run --protocol echo`.
    EchoServer(EchoServerArgs),
    /// One shard's storage engine alone, in process, measured like RocksDB's db_bench
    /// (fillrandom, readrandom, readmissing, overwrite).
    Storage(crate::storage::StorageArgs),
}

/// The protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Tessera's native port (any port of the node; the shard ports are learned from it).
    Native,
    /// RESP2: Redis, or Tessera's --resp-listen port.
    Resp,
    /// memcached's text protocol.
    Memcache,
    /// `tessera-bench echo-server` frames (no workload: round trips only).
    Echo,
}

/// Durability asked of native writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// The server's setting.
    Default,
    /// Fsynced before the acknowledgement.
    Durable,
    /// Acknowledged once in memory.
    Relaxed,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The server's address.
    #[arg(long, short = 's', value_name = "HOST:PORT")]
    pub server: String,
    /// The protocol to speak.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Native)]
    pub protocol: ProtocolArg,
    /// YCSB workload: A, B, C, D or F.
    #[arg(long, short = 'w', value_name = "LETTER", default_value = "A")]
    pub workload: WorkloadName,
    /// Key distribution [default: the workload's: zipfian, or latest for D].
    #[arg(long, value_enum)]
    pub distribution: Option<KeyDistribution>,
    /// Records loaded before the run (and keys drawn from).
    #[arg(long, short = 'r', value_name = "N", default_value_t = RECORDS_DEFAULT)]
    pub records: u64,
    /// Bytes of every value (at least 16: the header the final check reads).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub value_size: usize,
    /// Keys are PREFIX followed by the record number in 12 digits.
    #[arg(long, value_name = "PREFIX", default_value = "user")]
    pub key_prefix: String,
    /// Sessions (logical connections).
    #[arg(long, short = 'c', value_name = "N", default_value_t = CONNECTIONS_DEFAULT)]
    pub connections: usize,
    /// Requests each session keeps in flight (1 = strict request/response).
    #[arg(long, short = 'P', value_name = "N", default_value_t = 1)]
    pub pipeline: usize,
    /// Send pipelined requests in whole batches of --pipeline, the next batch once the last is
    /// answered (as redis-benchmark does), instead of keeping --pipeline in flight.
    #[arg(long)]
    pub batch: bool,
    /// Driver threads.
    #[arg(long, short = 't', value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Measured seconds (fractions allowed) [default: 10 unless --ops is given].
    #[arg(long, short = 'd', value_name = "SECS", value_parser = parse_secs, conflicts_with = "ops")]
    pub duration: Option<Duration>,
    /// Measure this many operations instead of a duration.
    #[arg(long, value_name = "N")]
    pub ops: Option<u64>,
    /// Seconds of unrecorded load before measuring starts.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "1")]
    pub warmup: Duration,
    /// Open loop at this many operations per second over all sessions (default: closed loop).
    #[arg(long, value_name = "OPS")]
    pub rate: Option<f64>,
    /// Seconds to wait for one answer before its session is given up [default: 10].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "10")]
    pub timeout: Duration,
    /// Durability of native writes.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Default)]
    pub durability: DurabilityArg,
    /// How native writes treat stored versions.
    #[arg(long, value_enum, default_value_t = WriteMode::Context)]
    pub write_mode: WriteMode,
    /// Do not load records first (they exist from an earlier run with the same prefix).
    #[arg(long)]
    pub no_load: bool,
    /// Do not read every record back at the end.
    #[arg(long)]
    pub no_check: bool,
    /// Seed of the choices (session i uses SEED + i).
    #[arg(long, value_name = "N", default_value_t = SEED_DEFAULT)]
    pub seed: u64,
    /// Write the result as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw latency by percentile to FILE (PNG).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Against a cluster (native protocol): send every request to --server, which coordinates
    /// keys it holds no replica of with an extra hop, instead of straight to a replica of each
    /// key (the default, as the cluster-aware client routes).
    #[arg(long)]
    pub via_server: bool,
}

impl RunArgs {
    /// The run's configuration, checked.
    pub fn config(&self) -> Result<RunConfig, BenchError> {
        let stop = match (self.duration, self.ops) {
            (_, Some(n)) => PhaseStop::Ops(n),
            (Some(d), None) => PhaseStop::After(d),
            (None, None) => PhaseStop::After(Duration::from_secs_f64(DURATION_SECS_DEFAULT)),
        };
        let durability = match self.durability {
            DurabilityArg::Default => Durability::Default,
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::Relaxed => Durability::Relaxed,
        };
        let protocol = match self.protocol {
            ProtocolArg::Native => Protocol::Native {
                durability,
                mode: self.write_mode,
            },
            ProtocolArg::Resp => Protocol::Resp,
            ProtocolArg::Memcache => Protocol::Memcache,
            ProtocolArg::Echo => Protocol::Echo,
        };
        let config = RunConfig {
            server: self.server.clone(),
            protocol,
            workload: self.workload,
            distribution: self
                .distribution
                .unwrap_or_else(|| self.workload.distribution()),
            records: self.records,
            value_size: self.value_size,
            key_prefix: self.key_prefix.clone(),
            phase: PhaseConfig {
                title: String::new(),
                protocol,
                connections: self.connections,
                pipeline: self.pipeline,
                batch: self.batch,
                threads: self.threads,
                warmup: self.warmup,
                stop,
                rate: self.rate,
                timeout: self.timeout,
                progress: !self.quiet,
            },
            load: !self.no_load,
            verify: !self.no_check,
            seed: self.seed,
            json: self.json.clone(),
            plot: self.plot.clone(),
            via_server: self.via_server,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `echo-server` arguments.
#[derive(Debug, Args)]
pub struct EchoServerArgs {
    /// Address every shard listens on (port 0 picks a free port, printed at start).
    #[arg(long, short = 'l', value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// Shards, one executor thread each. Default: one per CPU.
    #[arg(long, value_name = "N")]
    pub shards: Option<u16>,
    /// Let shard threads run on any CPU instead of pinning shard i to CPU i.
    #[arg(long)]
    pub unbound: bool,
}

impl EchoServerArgs {
    /// The server configuration, checked.
    pub fn config(&self) -> Result<EchoServerConfig, BenchError> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let config = EchoServerConfig {
            listen: self.listen,
            shards: self
                .shards
                .unwrap_or_else(|| u16::try_from(cpus).unwrap_or(u16::MAX)),
            placement: if self.unbound {
                ShardPlacement::Unbound
            } else {
                ShardPlacement::Pinned
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses seconds, fractions allowed, up to [`DURATION_SECS_MAX`].
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(0.0..=DURATION_SECS_MAX).contains(&secs) {
        return Err(format!("seconds must be between 0 and {DURATION_SECS_MAX}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `args` (the first is the program name) and runs; for `main` and embedding CLIs.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    match Cli::try_parse_from(args) {
        Ok(cli) => run(cli.bench),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// Runs parsed arguments, printing reports to stdout and problems to stderr.
pub fn run(args: BenchArgs) -> ExitCode {
    let outcome = match args.command {
        Command::Run(a) => run_command(&a),
        Command::EchoServer(a) => run_echo_server(&a).map(|()| true),
        Command::Storage(a) => crate::storage::run_storage(&a).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tessera-bench: {e}");
            match e {
                BenchError::InvalidArgs(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Runs `run`; `Ok(false)` when an operation failed or a record did not check out.
fn run_command(args: &RunArgs) -> Result<bool, BenchError> {
    let config = args.config()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone())
        .map_err(BenchError::io("cannot install a signal handler"))?;
    eprintln!(
        "{:?} at {}: {} records of {} bytes, {} connection(s) x pipeline {}, {} thread(s)",
        config.protocol,
        config.server,
        config.records,
        config.value_size,
        config.phase.connections,
        config.phase.pipeline,
        config.phase.threads
    );
    let outcome = run_workload(&config, &interrupted)?;
    print!("{}", outcome.to_text());
    write_outputs(&config, &outcome)?;
    Ok(outcome.passed())
}

/// Runs the echo server until SIGINT or SIGTERM.
fn run_echo_server(args: &EchoServerArgs) -> Result<(), BenchError> {
    let config = args.config()?;
    let server = EchoServer::start(&config)?;
    let stop = server.stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(BenchError::io("cannot install a signal handler"))?;
    }
    println!(
        "echo server listening on {} with {} shard{} ({:?}); stop with Ctrl-C",
        server.local_addr(),
        config.shards,
        if config.shards == 1 { "" } else { "s" },
        config.placement
    );
    server.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera-bench").chain(args.iter().copied()))
            .map(|c| c.bench.command)
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).unwrap() {
            Command::Run(a) => a,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let c = run_args(&["run", "--server", "127.0.0.1:7400"])
            .config()
            .unwrap();
        assert_eq!(c.phase.connections, CONNECTIONS_DEFAULT);
        assert_eq!((c.phase.pipeline, c.phase.threads), (1, 1));
        assert_eq!(c.phase.warmup, Duration::from_secs(1));
        assert_eq!(c.phase.stop, PhaseStop::After(Duration::from_secs(10)));
        assert_eq!(c.workload, WorkloadName::A);
        assert_eq!(c.distribution, KeyDistribution::Zipfian);
        assert_eq!((c.records, c.value_size), (100_000, 100));
        assert!(c.load && c.verify && c.phase.rate.is_none());
        assert_eq!(
            c.protocol,
            Protocol::Native {
                durability: Durability::Default,
                mode: WriteMode::Context
            }
        );
    }

    #[test]
    fn run_flags() {
        let c = run_args(&[
            "run",
            "-s",
            "h:1",
            "--protocol",
            "resp",
            "-w",
            "d",
            "-c",
            "8",
            "--ops",
            "5000",
            "-P",
            "4",
            "--warmup",
            "0.5",
            "--records",
            "10",
            "--value-size",
            "16",
            "--rate",
            "1000",
            "--no-check",
            "--json",
            "/tmp/x.json",
            "-t",
            "2",
        ])
        .config()
        .unwrap();
        assert_eq!(c.protocol, Protocol::Resp);
        assert_eq!(c.workload, WorkloadName::D);
        assert_eq!(c.distribution, KeyDistribution::Latest);
        assert_eq!(
            (c.phase.connections, c.phase.pipeline, c.phase.threads),
            (8, 4, 2)
        );
        assert_eq!(c.phase.stop, PhaseStop::Ops(5000));
        assert_eq!(c.phase.rate, Some(1000.0));
        assert!(!c.verify);
        assert_eq!(c.json, Some(PathBuf::from("/tmp/x.json")));
    }

    #[test]
    fn contradictions_and_bad_values_are_refused() {
        for args in [
            &["run", "-s", "h:1", "--duration", "1", "--ops", "5"][..],
            &["run", "-s", "h:1", "--duration", "-1"],
            &["run", "-s", "h:1", "--duration", "abc"],
            &["run", "-s", "h:1", "--duration", "100000"],
            &["run", "-s", "h:1", "--workload", "E"],
            &["run", "-s", "h:1", "--protocol", "smtp"],
            &["run", "--records", "5"],
            &["echo-server", "--listen", "not-an-address"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should not parse");
        }
        for args in [
            &["run", "-s", "h:1", "--connections", "0"][..],
            &["run", "-s", "h:1", "--connections", "100000"],
            &["run", "-s", "h:1", "--pipeline", "0"],
            &["run", "-s", "h:1", "--threads", "0"],
            &["run", "-s", "h:1", "--duration", "0"],
            &["run", "-s", "h:1", "--ops", "0"],
            &["run", "-s", "h:1", "--records", "0"],
            &["run", "-s", "h:1", "--value-size", "15"],
            &["run", "-s", "h:1", "--value-size", "2000000"],
            &["run", "-s", "h:1", "--rate", "0"],
        ] {
            assert!(
                run_args(args).config().is_err(),
                "{args:?} should be refused"
            );
        }
        let e = parse(&["run", "-s", "h:1", "--workload", "E"]).unwrap_err();
        assert!(e.to_string().contains("range scans"), "{e}");
    }

    #[test]
    fn echo_and_echo_server_parse() {
        match parse(&[
            "echo-server",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--unbound",
        ])
        .unwrap()
        {
            Command::EchoServer(a) => {
                let c = a.config().unwrap();
                assert_eq!(c.shards, 2);
                assert_eq!(c.placement, ShardPlacement::Unbound);
                assert_eq!(c.listen.port(), 0);
            }
            other => panic!("not echo-server: {other:?}"),
        }
        let zero = parse(&["echo-server", "--listen", "127.0.0.1:0", "--shards", "0"]).unwrap();
        let Command::EchoServer(a) = zero else {
            panic!("not echo-server")
        };
        assert!(a.config().is_err());
    }

    #[test]
    fn seconds_parse_with_fractions_and_bounds() {
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("-0.5").is_err());
    }
}
