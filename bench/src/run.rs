//! One benchmark run from start to end: load the records, run the workload (warm-up, then
//! the measured window), read every record back and judge it, then write the report, the
//! JSON result and the latency plot.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_client::{Client, ClientConfig, ClusterStatus, NO_REPLICA};
use tessera_core::{PartitionCount, ShardId, ShardMap};

use crate::check::{Ledger, VerifyTally, VALUE_HEADER_BYTES};
use crate::constants::{
    CONNECTIONS_MAX, INSERTS_MAX, LOAD_CONNECTIONS_MAX, LOAD_PIPELINE, PIPELINE_MAX, RECORDS_MAX,
    THREADS_MAX, VALUE_BYTES_MAX,
};
use crate::engine::session::Job;
use crate::engine::shared::{Contexts, Endpoints, Protocol, Shared};
use crate::engine::{run_phase, PhaseConfig, PhaseStop};
use crate::error::BenchError;
use crate::plot::{write_percentile_plot, PlotError, Series};
use crate::proto::native::WriteMode;
use crate::report::{OpKind, Report};
use crate::workload::{Chooser, KeyDistribution, Records, WorkloadName};

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The server's address (for the native protocol: any port of the node).
    pub server: String,
    /// The protocol and its options.
    pub protocol: Protocol,
    /// The workload (ignored by the echo protocol).
    pub workload: WorkloadName,
    /// Key distribution (default: the workload's).
    pub distribution: KeyDistribution,
    /// Records loaded before the run.
    pub records: u64,
    /// Bytes of every value.
    pub value_size: usize,
    /// Keys are this prefix and the record number.
    pub key_prefix: String,
    /// Sessions, pipeline, threads, warm-up, stop, rate, timeout of the measured phase.
    pub phase: PhaseConfig,
    /// Load the records first.
    pub load: bool,
    /// Read every record back at the end and judge it.
    pub verify: bool,
    /// Seed of session 0's choices; session `i` uses `seed + i`.
    pub seed: u64,
    /// Where to write the JSON result.
    pub json: Option<PathBuf>,
    /// Where to write the latency plot (PNG).
    pub plot: Option<PathBuf>,
    /// Native protocol against a cluster member: send everything through `server` (which
    /// then coordinates keys it holds no replica of) instead of straight to a replica of each
    /// key, as the cluster-aware client does.
    pub via_server: bool,
}

impl RunConfig {
    /// Checks every bound; the error names the flag to change.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::InvalidArgs(m));
        let p = &self.phase;
        if !(1..=CONNECTIONS_MAX).contains(&p.connections) {
            return bad(format!("--connections must be 1 to {CONNECTIONS_MAX}"));
        }
        if !(1..=PIPELINE_MAX).contains(&p.pipeline) {
            return bad(format!("--pipeline must be 1 to {PIPELINE_MAX}"));
        }
        if !(1..=THREADS_MAX).contains(&p.threads) {
            return bad(format!("--threads must be 1 to {THREADS_MAX}"));
        }
        if !(1..=RECORDS_MAX).contains(&self.records) {
            return bad(format!("--records must be 1 to {RECORDS_MAX}"));
        }
        let min = if self.protocol == Protocol::Echo {
            1
        } else {
            VALUE_HEADER_BYTES
        };
        if !(min..=VALUE_BYTES_MAX).contains(&self.value_size) {
            return bad(format!(
                "--value-size must be {min} to {VALUE_BYTES_MAX} bytes (values carry a \
                 {VALUE_HEADER_BYTES}-byte header that the final check reads)"
            ));
        }
        if let Some(path) = &self.plot {
            crate::plot::check_target(path)
                .map_err(|e| BenchError::InvalidArgs(format!("--plot: {e}")))?;
        }
        match (p.stop, p.rate) {
            (PhaseStop::After(d), _) if d.is_zero() => bad("--duration must be above 0".into()),
            (PhaseStop::Ops(0), _) => bad("--ops must be above 0".into()),
            (_, Some(r))
                if !(r.is_finite() && r > 0.0)
                    || Duration::try_from_secs_f64(p.connections as f64 / r)
                        .map_or(true, |d| d > Duration::from_secs(3600)) =>
            {
                bad("--rate must give each connection at least one operation an hour".into())
            }
            _ => Ok(()),
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// The load phase, if any.
    pub load: Option<Report>,
    /// The measured phase.
    pub run: Report,
    /// The final check, if any.
    pub verify: Option<VerifyTally>,
}

impl RunOutcome {
    /// Whether every operation succeeded and every record checked out.
    pub fn passed(&self) -> bool {
        self.run.tally.errors() == 0
            && self.load.as_ref().is_none_or(|l| l.tally.errors() == 0)
            && self.verify.as_ref().is_none_or(VerifyTally::passed)
    }

    /// The summary for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(load) = &self.load {
            out.push_str(&format!(
                "loaded {} records in {:.2} s ({} errors)\n",
                load.tally.ops(OpKind::Insert),
                load.elapsed.as_secs_f64(),
                load.tally.errors()
            ));
        }
        out.push_str(&self.run.to_text());
        if let Some(v) = &self.verify {
            out.push_str(&format!(
                "check: {} records read back: {} ok, {} never written, {} LOST, {} WRONG, {} not \
                 checked\n",
                v.checked, v.ok, v.absent, v.lost, v.wrong, v.unchecked
            ));
            for e in &v.examples {
                out.push_str(&format!("  {e}\n"));
            }
        }
        out
    }

    /// The JSON result.
    pub fn to_json(&self, cfg: &RunConfig) -> serde_json::Value {
        serde_json::json!({
            "server": cfg.server,
            "protocol": format!("{:?}", cfg.protocol),
            "workload": cfg.workload.letter().to_string(),
            "distribution": format!("{:?}", cfg.distribution).to_lowercase(),
            "records": cfg.records,
            "value_size": cfg.value_size,
            "threads": cfg.phase.threads,
            "warmup_secs": cfg.phase.warmup.as_secs_f64(),
            "load": self.load.as_ref().map(Report::to_json),
            "run": self.run.to_json(),
            "verify": self.verify,
            "passed": self.passed(),
        })
    }
}

/// Runs the whole thing; `interrupted` (Ctrl-C) ends the measured phase early.
pub fn run(cfg: &RunConfig, interrupted: &Arc<AtomicBool>) -> Result<RunOutcome, BenchError> {
    cfg.validate()?;
    let endpoints = endpoints(cfg)?;
    let inserts = match cfg.phase.stop {
        PhaseStop::Ops(n) => n.min(INSERTS_MAX),
        _ => INSERTS_MAX,
    };
    let shared = Arc::new(Shared {
        endpoints,
        value_size: cfg.value_size,
        key_prefix: cfg.key_prefix.clone(),
        records: Records::new(cfg.records, cfg.records + inserts),
        ledger: Ledger::new(rand::random(), cfg.value_size),
        contexts: Contexts::default(),
        cursor: AtomicU64::new(0),
    });
    let echo = cfg.protocol == Protocol::Echo;
    let load = if cfg.load && !echo {
        Some(load_phase(cfg, &shared, interrupted)?)
    } else {
        None
    };
    let value = vec![b'x'; cfg.value_size];
    let (mix, dist) = (cfg.workload.mix(), cfg.distribution);
    let phase = PhaseConfig {
        title: if echo {
            "echo".into()
        } else {
            format!("workload {}", cfg.workload.letter())
        },
        ..cfg.phase.clone()
    };
    let run = run_phase(&phase, &shared, interrupted, |i| {
        if echo {
            Job::Echo {
                payload: value.clone(),
            }
        } else {
            Job::Workload(Box::new(Chooser::new(
                mix,
                dist,
                cfg.seed.wrapping_add(i as u64),
            )))
        }
    })?
    .report;
    let verify = if cfg.verify && !echo {
        Some(verify_phase(cfg, &shared)?)
    } else {
        None
    };
    Ok(RunOutcome { load, run, verify })
}

/// A phase that walks every record once (load, check): closed loop, deeply pipelined, no
/// warm-up, over until the records run out.
fn bulk_phase(cfg: &RunConfig, title: &str) -> PhaseConfig {
    PhaseConfig {
        title: title.into(),
        connections: cfg.phase.connections.min(LOAD_CONNECTIONS_MAX),
        pipeline: LOAD_PIPELINE,
        batch: false,
        warmup: Duration::ZERO,
        stop: PhaseStop::Exhausted,
        rate: None,
        ..cfg.phase.clone()
    }
}

/// Writes records `0..records`, `LOAD_PIPELINE` deep, as plain overwrites.
fn load_phase(
    cfg: &RunConfig,
    shared: &Arc<Shared>,
    interrupted: &Arc<AtomicBool>,
) -> Result<Report, BenchError> {
    shared.cursor.store(0, Ordering::Relaxed);
    let phase = PhaseConfig {
        // The initial records replace whatever an earlier run left: no siblings with it.
        protocol: match cfg.protocol {
            Protocol::Native { durability, .. } => Protocol::Native {
                durability,
                mode: WriteMode::Overwrite,
            },
            p => p,
        },
        ..bulk_phase(cfg, "load")
    };
    let end = cfg.records;
    Ok(run_phase(&phase, shared, interrupted, |_| Job::Load { end })?.report)
}

/// Reads back every record written (loaded or inserted) and judges it.
fn verify_phase(cfg: &RunConfig, shared: &Arc<Shared>) -> Result<VerifyTally, BenchError> {
    let list = Arc::new(shared.ledger.records());
    shared.cursor.store(0, Ordering::Relaxed);
    // The check must finish even after Ctrl-C ended the measured phase.
    let not_interrupted = Arc::new(AtomicBool::new(false));
    let phase = bulk_phase(cfg, "check");
    let result = run_phase(&phase, shared, &not_interrupted, |_| Job::Verify {
        list: list.clone(),
    })?;
    let mut verify = result.verify;
    verify.unchecked = (list.len() as u64).saturating_sub(verify.checked);
    Ok(verify)
}

/// Where the sessions connect: the node's shard ports (native) or the one address.
fn endpoints(cfg: &RunConfig) -> Result<Endpoints, BenchError> {
    let addr: SocketAddr = cfg
        .server
        .to_socket_addrs()
        .map_err(BenchError::io(format!("resolving {}", cfg.server)))?
        .next()
        .ok_or_else(|| BenchError::InvalidArgs(format!("{} resolves to nothing", cfg.server)))?;
    let Protocol::Native { .. } = cfg.protocol else {
        return Ok(Endpoints::single(addr));
    };
    let client = Client::connect(addr, ClientConfig::default()).map_err(|e| BenchError::Setup {
        index: 0,
        why: format!("cannot reach the Tessera node at {addr}: {e}"),
    })?;
    if !cfg.via_server {
        // A cluster member: route like the cluster-aware client. A single node answers
        // the status request with an error and keeps its own shard routing.
        if let Ok(status) = client.cluster_status() {
            return replica_endpoints(&status);
        }
    }
    let addrs = client
        .topology()
        .shards
        .iter()
        .map(|s| SocketAddr::new(addr.ip(), s.port))
        .collect();
    Ok(Endpoints {
        addrs,
        shard_map: Some(client.shard_map().clone()),
    })
}

/// Endpoints of a cluster: one socket per member (its one shard), and a map that sends each
/// key's partition to the first replica the ring names (the one a [`ClusterClient`] prefers
/// while all are up).
///
/// [`ClusterClient`]: tessera_client::ClusterClient
fn replica_endpoints(status: &ClusterStatus) -> Result<Endpoints, BenchError> {
    let bad = |why: String| BenchError::Setup { index: 0, why };
    let n = usize::try_from(status.replicas).unwrap_or(0).max(1);
    // Each partition's first replica, as an index into `status.members`.
    let firsts: Vec<u16> = status
        .partition_replicas
        .chunks(n)
        .map(|list| list.first().copied().unwrap_or(NO_REPLICA))
        .collect();
    // One socket per member that is some partition's first replica (members that own nothing
    // may be gone), at its one shard's port.
    let mut sockets: Vec<u16> = firsts.clone();
    sockets.sort_unstable();
    sockets.dedup();
    let mut addrs = Vec::new();
    for &index in &sockets {
        let member = status
            .members
            .get(usize::from(index))
            .ok_or_else(|| bad("a partition has no replica the node can name".into()))?;
        let main: SocketAddr = member
            .client_addr
            .parse()
            .map_err(|e| bad(format!("member address {:?}: {e}", member.client_addr)))?;
        let client = Client::connect(main, ClientConfig::default())
            .map_err(|e| bad(format!("cannot reach member {main}: {e}")))?;
        let shard = client.topology().shards.first().map(|s| s.port);
        let port = shard.ok_or_else(|| bad(format!("member {main} has no shards")))?;
        addrs.push(SocketAddr::new(main.ip(), port));
    }
    let socket_of = |index: u16| sockets.binary_search(&index).unwrap_or(0);
    let table: Vec<ShardId> = firsts
        .iter()
        .map(|&i| ShardId(u16::try_from(socket_of(i)).unwrap_or(0)))
        .collect();
    let partitions = u32::try_from(table.len()).unwrap_or(0);
    let partitions = PartitionCount::new(partitions).map_err(|e| bad(e.to_string()))?;
    let count = u16::try_from(addrs.len()).map_err(|_| bad("too many members".into()))?;
    let shard_map = ShardMap::from_table(partitions, count, table)
        .map_err(|e| bad(format!("cannot route by the cluster's ring: {e}")))?;
    Ok(Endpoints {
        addrs,
        shard_map: Some(shard_map),
    })
}

/// Writes the JSON result and the plot, as asked. A run with nothing to plot (every
/// operation failed) gets a warning instead of a plot.
pub fn write_outputs(cfg: &RunConfig, outcome: &RunOutcome) -> Result<(), BenchError> {
    if let Some(path) = &cfg.json {
        let text = serde_json::to_string_pretty(&outcome.to_json(cfg))
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        std::fs::write(path, text + "\n")
            .map_err(BenchError::io(format!("writing {}", path.display())))?;
    }
    if let Some(path) = &cfg.plot {
        let tally = &outcome.run.tally;
        let series: Vec<Series<'_>> = OpKind::ALL
            .iter()
            .map(|&k| Series {
                label: k.name().into(),
                histogram: tally.latency(k),
            })
            .collect();
        let title = format!(
            "{} on {} ({} conn x pipeline {})",
            outcome.run.title, cfg.server, outcome.run.connections, outcome.run.pipeline
        );
        match write_percentile_plot(path, &title, &series) {
            Ok(()) => {}
            Err(PlotError::Empty) => eprintln!("no latency to plot: no operation succeeded"),
            Err(e) => {
                return Err(BenchError::Io {
                    what: format!("drawing {}", path.display()),
                    source: std::io::Error::other(e.to_string()),
                })
            }
        }
    }
    Ok(())
}
