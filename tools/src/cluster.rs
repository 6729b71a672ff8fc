//! `tessera cluster up`: a local cluster in one command.
//!
//! Node i (from 1) runs as its own `tessera server` process on 127.0.0.i, serving clients on
//! the given port and its peers on port + [`PEER_PORT_OFFSET`], with its data in
//! `DIR/node-i`. Node 1 founds the cluster; the others join through it. SIGINT or SIGTERM
//! stops every node by its PID (SIGTERM, so each closes its log cleanly) and waits for all of
//! them. A node that exits on its own is reported; the others keep serving.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tessera_client::{Client, ClientConfig};

/// A node's peer port is its client port plus this (7000 → 7900).
pub const PEER_PORT_OFFSET: u16 = 900;
/// Most nodes `cluster up` starts (127.0.0.1 to 127.0.0.N).
pub const NODES_MAX: u8 = 16;
/// How often the supervisor looks at its nodes and its stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Longest `cluster up` waits for every node to answer before it reports them as slow.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The key the readiness check reads (it is never written).
const READY_PROBE_KEY: &[u8] = b"tessera:cluster-up:ready-probe";

/// `tessera cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start N nodes on this machine (node i on 127.0.0.i:PORT) and run them until Ctrl-C.
    Up(UpArgs),
}

/// Options of `tessera cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=i64::from(NODES_MAX)))]
    nodes: u8,
    /// Directory for the nodes' data (node i in DIR/node-i), created if missing.
    #[arg(long, default_value = "tessera-data")]
    data_dir: PathBuf,
    /// Client port of every node; peers use PORT+900.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// Replicas of every key (n), at most the number of nodes that hold them [default: 3,
    /// or the node count if smaller].
    #[arg(long)]
    replicas: Option<usize>,
    /// Passed to every node's --tombstone-grace: how old, in seconds, a tombstone must be
    /// before the cluster may purge it; must exceed the longest time a write can stay in
    /// flight [default: the server's, 3600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    tombstone_grace: Option<u64>,
}

/// Runs a cluster command.
pub fn run(command: ClusterCommand) -> Result<ExitCode, String> {
    match command {
        ClusterCommand::Up(args) => up(&args),
    }
}

fn node_ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))
}

fn up(args: &UpArgs) -> Result<ExitCode, String> {
    let peer_port = args.port.checked_add(PEER_PORT_OFFSET).ok_or_else(|| {
        format!("--port {} leaves no room for the peer port (port + {PEER_PORT_OFFSET}); pick a lower one", args.port)
    })?;
    let replicas = args.replicas.unwrap_or(3).min(usize::from(args.nodes));
    let quorum = replicas / 2 + 1;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the tessera binary: {e}"))?;
    let seed = SocketAddr::new(node_ip(1), peer_port);
    let mut nodes: Vec<(u8, Option<Child>)> = Vec::new();
    for i in 1..=args.nodes {
        let dir = args.data_dir.join(format!("node-{i}"));
        let mut command = Command::new(&exe);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(&dir)
            .arg("--listen")
            .arg(SocketAddr::new(node_ip(i), args.port).to_string())
            .arg("--peer-listen")
            .arg(SocketAddr::new(node_ip(i), peer_port).to_string())
            .arg("--placement=unbound")
            .arg(format!("--replicas={replicas}"))
            .arg(format!("--read-quorum={quorum}"))
            .arg(format!("--write-quorum={quorum}"))
            .arg(format!("--rack=rack-{}", (i - 1) % 2 + 1));
        if i > 1 {
            command.arg(format!("--seeds={seed}"));
        }
        if let Some(secs) = args.tombstone_grace {
            command.arg(format!("--tombstone-grace={secs}"));
        }
        match command.spawn() {
            Ok(child) => {
                say(format_args!(
                    "node {i}: pid {} on {}:{} (data {})",
                    child.id(),
                    node_ip(i),
                    args.port,
                    dir.display()
                ));
                nodes.push((i, Some(child)));
            }
            Err(e) => {
                stop_all(&mut nodes);
                return Err(format!("cannot start node {i}: {e}"));
            }
        }
    }
    wait_ready(args, &stop);
    say(format_args!(
        "cluster: {} nodes, n={replicas} r=w={quorum}, racks rack-1/rack-2 alternating\n\
         try:  tessera put hello world --server 127.0.0.1:{port}\n      \
         tessera get hello --server 127.0.0.{last}:{port}\n\
         stop with Ctrl-C (or SIGTERM): every node stops cleanly",
        args.nodes,
        port = args.port,
        last = args.nodes,
    ));
    supervise(&mut nodes, &stop);
    let failed = stop_all(&mut nodes);
    if failed == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!(
            "{failed} node(s) did not stop cleanly; see their logs above"
        ))
    }
}

/// Prints a line on stdout; a stdout that is gone (a closed pipe) must not stop the
/// supervisor, whose job is to stop its nodes cleanly.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Like [`say`], on stderr.
fn esay(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Waits until every node answers a quorum read and sees the ring settled with every node in
/// it, so that the first request a user sends succeeds and every node holds its share; gives up after
/// [`READY_TIMEOUT`] with a warning (the nodes keep forming; their logs say how far).
fn wait_ready(args: &UpArgs, stop: &AtomicBool) {
    let started = Instant::now();
    let config = ClientConfig {
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let mut pending: Vec<u8> = (1..=args.nodes).collect();
    while !pending.is_empty() && !stop.load(Ordering::Acquire) {
        pending.retain(|&i| {
            let addr = SocketAddr::new(node_ip(i), args.port).to_string();
            let ready = Client::connect(addr.as_str(), config.clone()).is_ok_and(|client| {
                client.get(READY_PROBE_KEY).is_ok()
                    && client
                        .cluster_status()
                        .is_ok_and(|s| ring_complete(&s, args.nodes))
            });
            !ready
        });
        if started.elapsed() > READY_TIMEOUT {
            esay(format_args!(
                "tessera cluster: nodes {pending:?} do not answer quorum reads after {READY_TIMEOUT:?}; \
                 they keep trying (their logs show the ring and the peers they see)"
            ));
            return;
        }
        if !pending.is_empty() {
            std::thread::sleep(POLL);
        }
    }
    say(format_args!(
        "cluster ready in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// Whether a node sees the ring settled with every one of `nodes` owning partitions.
fn ring_complete(status: &tessera_client::ClusterStatus, nodes: u8) -> bool {
    status.ring_phase == "Stable"
        && status.members.iter().filter(|m| m.partitions > 0).count() == usize::from(nodes)
}

/// Waits for the stop flag, reporting nodes that exit on their own.
fn supervise(nodes: &mut [(u8, Option<Child>)], stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        for (i, slot) in nodes.iter_mut() {
            if let Some(child) = slot {
                if let Ok(Some(status)) = child.try_wait() {
                    esay(format_args!(
                        "tessera cluster: node {i} exited ({status}); the others keep serving"
                    ));
                    *slot = None;
                }
            }
        }
        if nodes.iter().all(|(_, slot)| slot.is_none()) {
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// Sends SIGTERM to every running node by its PID and waits for each; returns how many did
/// not exit successfully.
fn stop_all(nodes: &mut [(u8, Option<Child>)]) -> usize {
    for (_, child) in nodes.iter().filter_map(|(i, c)| Some((i, c.as_ref()?))) {
        // A PID we spawned and have not reaped, so it cannot name another process.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let mut failed = 0;
    for (i, slot) in nodes.iter_mut() {
        if let Some(mut child) = slot.take() {
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    esay(format_args!(
                        "tessera cluster: node {i} stopped with {status}"
                    ));
                    failed += 1;
                }
                Err(e) => {
                    esay(format_args!(
                        "tessera cluster: cannot wait for node {i}: {e}"
                    ));
                    failed += 1;
                }
            }
        }
    }
    failed
}
