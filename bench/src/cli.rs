//! The command line: `load`, `echo-server` and `echo`, parsed with clap and checked against
//! the bounds in [`crate::constants`] before anything connects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tessera_client::Durability;
use tessera_io::ShardPlacement;

use crate::constants::{
    CONNECTIONS_DEFAULT, DURATION_SECS_DEFAULT, DURATION_SECS_MAX, SEED_DEFAULT,
};
use crate::driver::{drive, DriverConfig, Stop};
use crate::echo::{EchoConfig, EchoOp};
use crate::echo_server::{EchoServer, EchoServerConfig};
use crate::error::BenchError;
use crate::load::{make_value, prefill, ContextTable, LoadConfig, LoadOp};
use crate::report::Report;

const AFTER_HELP: &str = "\
A connection is one driver thread. For `load` it is one tessera Client, which holds one TCP \
connection to every server shard; for `echo` it is one TCP connection. Each connection is a \
closed loop keeping --pipeline requests in flight (1 = strict request/response).

Exit status: 0 when every operation succeeded, 1 when any failed or the run could not start, \
2 for bad arguments.";

/// Tessera's load generator.
#[derive(Debug, Parser)]
#[command(
    name = "tessera-bench",
    version,
    about = "Tessera's load generator: drive a server, or measure the echo baseline.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// The load generator's arguments, for embedding as a subcommand (`tessera bench ...`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Closed-loop gets and puts against a Tessera server; prints throughput and latencies.
    #[command(after_help = AFTER_HELP)]
    Load(LoadArgs),
    /// A glommio TCP echo server of length-prefixed frames: the baseline for `echo`.
    EchoServer(EchoServerArgs),
    /// The `load` driver sending frames to an echo server: the ceiling on this machine.
    #[command(after_help = AFTER_HELP)]
    Echo(EchoArgs),
}

/// How any workload is driven.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// Connections, each driven by its own thread (see below for what a connection is).
    #[arg(long, short = 'c', value_name = "M", default_value_t = CONNECTIONS_DEFAULT)]
    pub connections: usize,
    /// Measured seconds (fractions allowed). Default 10 unless --ops is given.
    #[arg(long, short = 'd', value_name = "SECS", value_parser = parse_secs, conflicts_with = "ops")]
    pub duration: Option<Duration>,
    /// Measure this many operations (over all connections) instead of a duration.
    #[arg(long, value_name = "N")]
    pub ops: Option<u64>,
    /// Requests each connection keeps in flight.
    #[arg(long, short = 'p', value_name = "N", default_value_t = 1)]
    pub pipeline: usize,
    /// Seconds of unrecorded load before measuring starts.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "0")]
    pub warmup: Duration,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl DriverArgs {
    /// The driver configuration, checked.
    pub fn config(&self) -> Result<DriverConfig, BenchError> {
        let stop = match (self.duration, self.ops) {
            (Some(_), Some(_)) => {
                return Err(BenchError::InvalidArgs(
                    "give --duration or --ops, not both".into(),
                ))
            }
            (_, Some(n)) => Stop::Ops(n),
            (Some(d), None) => Stop::After(d),
            (None, None) => Stop::After(Duration::from_secs_f64(DURATION_SECS_DEFAULT)),
        };
        let config = DriverConfig {
            connections: self.connections,
            pipeline: self.pipeline,
            warmup: self.warmup,
            stop,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `load` arguments.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Any address of the Tessera server (the client learns every shard's port from it).
    #[arg(long, short = 's', value_name = "HOST:PORT")]
    pub server: String,
    #[command(flatten)]
    pub driver: DriverArgs,
    /// Fraction of operations that are gets (the rest are puts), from 0 to 1.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5)]
    pub read_ratio: f64,
    /// Distinct keys, named key-00000000, key-00000001, ...; each op picks one uniformly.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub keys: u64,
    /// Bytes of every value written.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub value_size: usize,
    /// Writes wait for fsync on the server.
    #[arg(long, conflicts_with = "relaxed")]
    pub durable: bool,
    /// Writes are acknowledged once in memory (not synced). Default: the server's setting.
    #[arg(long)]
    pub relaxed: bool,
    /// Write every key once (in batches) before the run so that reads find values.
    #[arg(long)]
    pub prefill: bool,
    /// Send puts without a causal context: each adds a sibling, and the server refuses writes
    /// to a key past its sibling limit. By default a put carries the last context seen.
    #[arg(long)]
    pub blind_writes: bool,
    /// Seed of the key and get/put choices (connection i uses SEED + i).
    #[arg(long, value_name = "N", default_value_t = SEED_DEFAULT)]
    pub seed: u64,
}

impl LoadArgs {
    /// The workload configuration, checked.
    pub fn config(&self) -> Result<LoadConfig, BenchError> {
        let durability = match (self.durable, self.relaxed) {
            (true, true) => {
                return Err(BenchError::InvalidArgs(
                    "give --durable or --relaxed, not both".into(),
                ))
            }
            (true, false) => Durability::Durable,
            (false, true) => Durability::Relaxed,
            (false, false) => Durability::Default,
        };
        let config = LoadConfig {
            server: self.server.clone(),
            read_ratio: self.read_ratio,
            keys: self.keys,
            value_size: self.value_size,
            durability,
            prefill: self.prefill,
            blind_writes: self.blind_writes,
            seed: self.seed,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `echo` arguments.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Address of a `tessera-bench echo-server`.
    #[arg(long, short = 's', value_name = "HOST:PORT")]
    pub server: String,
    #[command(flatten)]
    pub driver: DriverArgs,
    /// Frame body bytes sent and received back per operation.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub size: usize,
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
        Command::Load(a) => run_load(&a),
        Command::Echo(a) => run_echo(&a),
        Command::EchoServer(a) => run_echo_server(&a).map(|()| true),
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

/// Runs `load`; `Ok(false)` when some operation failed.
fn run_load(args: &LoadArgs) -> Result<bool, BenchError> {
    let driver = args.driver.config()?;
    let config = args.config()?;
    let value = make_value(config.value_size);
    let contexts = (!config.blind_writes).then(|| ContextTable::new(config.keys));
    if config.prefill {
        eprintln!("prefilling {} keys...", config.keys);
        let took = prefill(&config, &value, contexts.as_ref())?;
        eprintln!(
            "prefilled {} keys in {:.2} s",
            config.keys,
            took.as_secs_f64()
        );
    }
    announce("load", &config.server, &driver);
    let report = drive("load", &driver, |i| {
        LoadOp::open(&config, i, &value, contexts.as_ref())
    })?;
    finish(&report, args.driver.json.as_ref())
}

/// Runs `echo`; `Ok(false)` when some operation failed.
fn run_echo(args: &EchoArgs) -> Result<bool, BenchError> {
    let driver = args.driver.config()?;
    let config = EchoConfig {
        server: args.server.clone(),
        size: args.size,
    };
    config.validate(driver.pipeline)?;
    announce("echo", &config.server, &driver);
    let report = drive("echo", &driver, |_| EchoOp::open(&config))?;
    finish(&report, args.driver.json.as_ref())
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

fn announce(what: &str, server: &str, driver: &DriverConfig) {
    let stop = match driver.stop {
        Stop::After(d) => format!("{:.2} s", d.as_secs_f64()),
        Stop::Ops(n) => format!("{n} ops"),
    };
    eprintln!(
        "{what}: {} connection{} x pipeline {} against {server} for {stop} (warm-up {:.2} s)",
        driver.connections,
        if driver.connections == 1 { "" } else { "s" },
        driver.pipeline,
        driver.warmup.as_secs_f64()
    );
}

/// Prints the report, writes the JSON if asked; `Ok(false)` when some operation failed.
fn finish(report: &Report, json: Option<&PathBuf>) -> Result<bool, BenchError> {
    print!("{}", report.to_text());
    if let Some(path) = json {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(BenchError::io(format!("cannot write {}", path.display())))?;
    }
    Ok(report.tally.errors() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera-bench").chain(args.iter().copied()))
            .map(|c| c.bench.command)
    }

    fn load(args: &[&str]) -> LoadArgs {
        match parse(args).unwrap() {
            Command::Load(a) => a,
            other => panic!("not load: {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn load_defaults() {
        let a = load(&["load", "--server", "127.0.0.1:7400"]);
        let d = a.driver.config().unwrap();
        assert_eq!(d.connections, CONNECTIONS_DEFAULT);
        assert_eq!(d.pipeline, 1);
        assert_eq!(d.warmup, Duration::ZERO);
        assert_eq!(d.stop, Stop::After(Duration::from_secs(10)));
        let c = a.config().unwrap();
        assert_eq!(c.read_ratio, 0.5);
        assert_eq!(c.keys, 100_000);
        assert_eq!(c.value_size, 100);
        assert_eq!(c.durability, Durability::Default);
        assert!(!c.prefill && !c.blind_writes);
    }

    #[test]
    fn load_flags() {
        let a = load(&[
            "load",
            "-s",
            "h:1",
            "-c",
            "8",
            "--ops",
            "5000",
            "--pipeline",
            "4",
            "--warmup",
            "0.5",
            "--read-ratio",
            "0.9",
            "--keys",
            "10",
            "--value-size",
            "0",
            "--relaxed",
            "--prefill",
            "--json",
            "/tmp/x.json",
        ]);
        let d = a.driver.config().unwrap();
        assert_eq!((d.connections, d.pipeline), (8, 4));
        assert_eq!(d.stop, Stop::Ops(5000));
        assert_eq!(d.warmup, Duration::from_millis(500));
        let c = a.config().unwrap();
        assert_eq!(c.durability, Durability::Relaxed);
        assert_eq!((c.keys, c.value_size, c.prefill), (10, 0, true));
        assert_eq!(a.driver.json, Some(PathBuf::from("/tmp/x.json")));
        let durable = load(&["load", "-s", "h:1", "--durable"]).config().unwrap();
        assert_eq!(durable.durability, Durability::Durable);
    }

    #[test]
    fn contradictions_and_bad_values_are_refused() {
        for args in [
            &["load", "-s", "h:1", "--durable", "--relaxed"][..],
            &["load", "-s", "h:1", "--duration", "1", "--ops", "5"],
            &["load", "-s", "h:1", "--duration", "-1"],
            &["load", "-s", "h:1", "--duration", "abc"],
            &["load", "-s", "h:1", "--duration", "100000"],
            &["load", "--keys", "5"],
            &["echo-server", "--listen", "not-an-address"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should not parse");
        }
        for args in [
            &["load", "-s", "h:1", "--connections", "0"][..],
            &["load", "-s", "h:1", "--connections", "1025"],
            &["load", "-s", "h:1", "--pipeline", "0"],
            &["load", "-s", "h:1", "--duration", "0"],
            &["load", "-s", "h:1", "--ops", "0"],
        ] {
            let a = load(args);
            assert!(a.driver.config().is_err(), "{args:?} should be refused");
        }
        for args in [
            &["load", "-s", "h:1", "--read-ratio", "1.01"][..],
            &["load", "-s", "h:1", "--keys", "0"],
            &["load", "-s", "h:1", "--value-size", "2000000"],
        ] {
            assert!(load(args).config().is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn echo_and_echo_server_parse() {
        match parse(&["echo", "-s", "h:1", "--size", "64", "-c", "2", "-d", "1.5"]).unwrap() {
            Command::Echo(a) => {
                assert_eq!(a.size, 64);
                let d = a.driver.config().unwrap();
                assert_eq!(d.connections, 2);
                assert_eq!(d.stop, Stop::After(Duration::from_millis(1500)));
            }
            other => panic!("not echo: {other:?}"),
        }
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
