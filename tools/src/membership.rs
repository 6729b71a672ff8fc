//! The cluster commands: `ring` (who owns what), the cluster part of `status` (health and
//! transfers), `leave` (hand a node's partitions off) and `remove` (take a dead node out).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use tessera_client::{Client, ClusterStatus, ErrorCode};

use crate::ServerAddr;

/// How long `status` watches transfers to measure their rate.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Running transfers `status` lists one per line; the rest are counted.
const TRANSFER_LINES_MAX: usize = 20;
/// How often `leave --wait` and `remove --wait` look.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Options of `tessera ring`.
#[derive(Debug, Args)]
pub struct RingArgs {
    #[command(flatten)]
    addr: ServerAddr,
}

/// Options of `tessera leave`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    addr: ServerAddr,
    /// Wait until the node has handed every partition off.
    #[command(flatten)]
    follow: FollowArgs,
}

/// Options of `tessera remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    addr: ServerAddr,
    /// The dead node's id, in hex as `tessera status` shows it.
    node: String,
    /// Wait until no ring names the node.
    #[command(flatten)]
    follow: FollowArgs,
}

/// How `leave` and `remove` follow the change they asked for.
#[derive(Debug, Args)]
struct FollowArgs {
    /// Wait (with a progress bar) until the change is done.
    #[arg(long)]
    wait: bool,
    /// Longest to wait with --wait, in seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

/// The cluster status of the node behind `client`, or `None` if it is not a cluster member.
pub fn cluster_status(client: &Client) -> Result<Option<ClusterStatus>, String> {
    match client.cluster_status() {
        Ok(status) => Ok(Some(status)),
        Err(tessera_client::ClientError::Server(e)) if e.code == ErrorCode::BadRequest => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn connect(addr: &ServerAddr) -> Result<Client, String> {
    Client::connect(
        addr.server.as_str(),
        tessera_client::ClientConfig::default(),
    )
    .map_err(|e| e.to_string())
}

fn member_of(client: &Client, addr: &ServerAddr) -> Result<ClusterStatus, String> {
    cluster_status(client)?.ok_or_else(|| {
        format!(
            "{} is a single node, not a cluster member; start nodes with --peer-listen and \
             --seeds, or `tessera cluster up`",
            addr.server
        )
    })
}

/// `tessera ring`.
pub fn ring(args: RingArgs) -> Result<ExitCode, String> {
    let client = connect(&args.addr)?;
    let status = member_of(&client, &args.addr)?;
    let total: u32 = status.members.iter().map(|m| m.partitions).sum();
    println!(
        "ring epoch {} ({}), n={} r={} w={}, as node {:016x} sees it",
        status.ring_epoch,
        status.ring_phase,
        status.replicas,
        status.read_quorum,
        status.write_quorum,
        status.node_id
    );
    println!(
        "{:<18} {:<22} {:<8} {:<6} {:>10} {:>7} {:>10}",
        "node", "peer address", "rack", "dc", "partitions", "share", "after move"
    );
    for m in &status.members {
        let share = if total == 0 {
            0.0
        } else {
            100.0 * f64::from(m.partitions) / f64::from(total)
        };
        println!(
            "{:<18} {:<22} {:<8} {:<6} {:>10} {:>6.1}% {:>10}",
            format!("{:016x}", m.id),
            m.addr,
            m.rack,
            m.dc,
            m.partitions,
            share,
            m.next_partitions
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The cluster lines of `tessera status`: this node's view of every member's health, and
/// its transfers with their rate and an estimate of the time left.
pub fn print_cluster(client: &Client, first: ClusterStatus) -> Result<(), String> {
    let busy = |s: &ClusterStatus| {
        s.moves_pending > 0 || s.transfers.iter().any(|t| t.state != "Completed")
    };
    let (status, rate) = if !busy(&first) {
        (first, None)
    } else {
        // Two looks a second apart give the rate.
        std::thread::sleep(RATE_WINDOW);
        let second = cluster_status(client)?.ok_or("the node left the cluster meanwhile")?;
        let bytes = |s: &ClusterStatus| s.transfers.iter().map(|t| t.bytes).sum::<u64>();
        let rate = bytes(&second).saturating_sub(bytes(&first)) as f64 / RATE_WINDOW.as_secs_f64();
        let moves_rate = f64::from(first.moves_pending.saturating_sub(second.moves_pending))
            / RATE_WINDOW.as_secs_f64();
        (second, Some((rate, moves_rate)))
    };
    println!(
        "cluster     node status {}, ring epoch {} ({}), n={} r={} w={}, hints held {}",
        status.status,
        status.ring_epoch,
        status.ring_phase,
        status.replicas,
        status.read_quorum,
        status.write_quorum,
        status.hints_held
    );
    println!(
        "repairs     since this node started: {} hints delivered, {} read repairs, \
         anti-entropy {} exchanges / {} keys repaired / {} sent, {} tombstones reaped",
        status.hints_delivered,
        status.read_repairs,
        status.ae_exchanges,
        status.ae_keys_repaired,
        human_bytes(status.ae_bytes_sent as f64),
        status.tombstones_reaped
    );
    println!(
        "requests    coordinated {}, of which {} for keys this node holds no replica of (an \
         extra hop; the cluster-aware client avoids it)",
        status.requests_coordinated, status.requests_coordinated_off_replica
    );
    for m in &status.members {
        let health = if m.alive { "up" } else { "DOWN" };
        println!(
            "  {:016x} {:<22} {:<6} {:<8} rack {:<8} dc {:<6} partitions {}{}",
            m.id,
            m.addr,
            health,
            m.status,
            m.rack,
            m.dc,
            m.partitions,
            if m.next_partitions == m.partitions {
                String::new()
            } else {
                format!(" -> {}", m.next_partitions)
            }
        );
    }
    let (active, finished): (Vec<_>, Vec<_>) = status
        .transfers
        .iter()
        .partition(|t| t.state != "Completed");
    if active.is_empty() && status.moves_pending == 0 {
        println!("transfers   none running ({} finished)", finished.len());
        return Ok(());
    }
    println!(
        "transfers   {} running, {} finished, {} partition moves left to stream from this node",
        active.len(),
        finished.len(),
        status.moves_pending
    );
    for t in active.iter().take(TRANSFER_LINES_MAX) {
        println!(
            "  partition {:<6} {} {:016x} {:<10} {} entries, {}",
            t.partition,
            if t.outgoing { "to  " } else { "from" },
            t.peer,
            t.state,
            t.entries,
            human_bytes(t.bytes as f64)
        );
    }
    if active.len() > TRANSFER_LINES_MAX {
        println!("  ... and {} more", active.len() - TRANSFER_LINES_MAX);
    }
    if let Some((rate, moves_rate)) = rate {
        let eta = if moves_rate > 0.0 {
            format!("{:.0}s", f64::from(status.moves_pending) / moves_rate)
        } else {
            "unknown yet (no move finished in the last second)".into()
        };
        println!("rate        {}/s, ETA {eta}", human_bytes(rate));
    }
    Ok(())
}

fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `tessera remove`.
pub fn remove(args: RemoveArgs) -> Result<ExitCode, String> {
    let id = u64::from_str_radix(args.node.trim_start_matches("0x"), 16).map_err(|_| {
        format!(
            "'{}' is not a node id; give the hex id `tessera status` lists",
            args.node
        )
    })?;
    let client = connect(&args.addr)?;
    member_of(&client, &args.addr)?;
    client.remove_node(id).map_err(|e| match e {
        tessera_client::ClientError::Server(e) => {
            format!("cannot remove node {id:016x}: {}", e.message)
        }
        e => e.to_string(),
    })?;
    println!(
        "node {id:016x} is being removed: its partitions are copied again from the surviving replicas"
    );
    args.follow
        .run(&client, &args.addr, |status| {
            let named = status
                .members
                .iter()
                .any(|m| m.id == id && (m.partitions > 0 || m.next_partitions > 0));
            (!named && status.ring_phase == "Stable").then_some("removed: no ring names the node")
        })
        .map_err(|e| format!("{e}; the removal goes on"))
}

impl FollowArgs {
    /// Without --wait, says how to watch the change; with it, polls `client`'s cluster status
    /// with a spinner until `done` returns its final message, or fails after the timeout.
    fn run(
        &self,
        client: &Client,
        addr: &ServerAddr,
        done: impl Fn(&ClusterStatus) -> Option<&'static str>,
    ) -> Result<ExitCode, String> {
        if !self.wait {
            println!("watch it with `tessera status --server {}`", addr.server);
            return Ok(ExitCode::SUCCESS);
        }
        let deadline = Instant::now() + Duration::from_secs(self.timeout);
        wait_with_spinner(client, deadline, done)
    }
}

/// Polls `client`'s cluster status with a spinner until `done` returns its final message,
/// or fails at `deadline`.
fn wait_with_spinner(
    client: &Client,
    deadline: Instant,
    done: impl Fn(&ClusterStatus) -> Option<&'static str>,
) -> Result<ExitCode, String> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .map_err(|e| e.to_string())?,
    );
    loop {
        let status = client.cluster_status().map_err(|e| e.to_string())?;
        if let Some(message) = done(&status) {
            bar.finish_with_message(message);
            return Ok(ExitCode::SUCCESS);
        }
        let bytes: u64 = status.transfers.iter().map(|t| t.bytes).sum();
        bar.set_message(format!(
            "{}: ring epoch {} ({}), {} moves left, {} transfers running ({})",
            status.status,
            status.ring_epoch,
            status.ring_phase,
            status.moves_pending,
            status.transfers.len(),
            human_bytes(bytes as f64)
        ));
        if Instant::now() >= deadline {
            bar.abandon_with_message("gave up waiting");
            return Err("not done in the time given; `tessera status` shows how far it got".into());
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// `tessera leave`.
pub fn leave(args: LeaveArgs) -> Result<ExitCode, String> {
    let client = connect(&args.addr)?;
    member_of(&client, &args.addr)?;
    let status = client.leave().map_err(|e| e.to_string())?;
    println!(
        "node {:016x} is leaving ({}): its partitions stream to the nodes that take them over",
        status.node_id, status.status
    );
    args.follow
        .run(&client, &args.addr, |status| {
            (status.status == "Left").then_some("left: every partition was handed off")
        })
        .map_err(|e| format!("{e}; the node keeps leaving"))
}
