//! `tessera cluster up` on loopback: three real node processes (127.0.0.1-3, port 19700)
//! form a cluster, replicate writes with no node ever seen down, keep answering at r = w = 2
//! after one node is killed with SIGKILL (which every peer sees within 10 s), take the node
//! back when it restarts (seen up within 5 s, with every write readable through it), and all
//! stop cleanly on SIGTERM.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{quick_config, wait_or_kill};
use std::time::Instant;
use tessera_client::Client;

const PORT: u16 = 19700;
/// Longest the cluster may take to form (it took under 2 s here).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const KEYS: usize = 300;
/// A killed node must be seen down by every peer within this (the bound).
const DOWN_WITHIN: Duration = Duration::from_secs(10);
/// A restarted node must be seen up by every peer within this.
const UP_WITHIN: Duration = Duration::from_secs(5);

/// The supervisor process; killed (with its nodes, by PID) if a test fails midway.
struct Cluster {
    child: Child,
    node_pids: Vec<u32>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for &pid in &self.node_pids {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tessera cluster up` and waits for its "cluster ready" line, collecting the nodes'
/// PIDs from the lines before it.
fn cluster_up(dir: &std::path::Path) -> Cluster {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["cluster", "up", "--nodes", "3", "--port", &PORT.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("cluster.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Drains stdout to the end even once nobody listens, so the supervisor never writes
        // into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut cluster = Cluster {
        child,
        node_pids: Vec::new(),
    };
    loop {
        let line = rx
            .recv_timeout(READY_TIMEOUT)
            .expect("cluster up printed no ready line in time");
        if let Some(rest) = line.strip_prefix("node ") {
            let pid = rest.split("pid ").nth(1).and_then(|p| p.split(' ').next());
            cluster.node_pids.push(pid.unwrap().parse().unwrap());
        }
        assert!(!line.starts_with("tessera cluster:"), "{line}");
        if line.starts_with("cluster ready") {
            return cluster;
        }
    }
}

fn client(node: u8) -> Client {
    Client::connect(format!("127.0.0.{node}:{PORT}").as_str(), quick_config()).unwrap()
}

/// Writes keys [from, to) through `node`, retrying a refused write a few times (a ring change
/// may still be settling right after start-up or a kill).
fn write_keys(node: u8, range: std::ops::Range<usize>) {
    let c = client(node);
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let mut attempts = 0;
        let mut context = None;
        while let Err(e) = c.put(key.as_bytes(), value.as_bytes(), context.as_ref()) {
            attempts += 1;
            assert!(
                attempts < 20,
                "write {i} through node {node} kept failing: {e}"
            );
            std::thread::sleep(Duration::from_millis(100));
            // A failed write may still have reached some replicas: supersede what it left
            // instead of adding a sibling beside it.
            context = c.get(key.as_bytes()).ok().map(|read| read.context);
        }
    }
}

fn assert_all_readable(node: u8, keys: usize) {
    let c = client(node);
    for i in 0..keys {
        let key = format!("key-{i}");
        let mut attempts = 0;
        // A node that just restarted may not yet see enough live replicas for r = 2.
        let got = loop {
            match c.get(key.as_bytes()) {
                Ok(got) => break got,
                Err(e) => {
                    attempts += 1;
                    assert!(
                        attempts < 50,
                        "read of {key} through node {node} kept failing: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        assert_eq!(
            got.values,
            vec![format!("value-{i}").into_bytes()],
            "key-{i} read through node {node}"
        );
    }
}

/// Whether `observer` sees the node with client port on 127.0.0.`node` as alive. The node is
/// named by its peer address, which gossip carries.
fn sees_alive(observer: u8, node: u8) -> Option<bool> {
    let status = client(observer).cluster_status().ok()?;
    let addr = format!("127.0.0.{node}:{}", PORT + 900);
    status
        .members
        .iter()
        .find(|m| m.addr == addr)
        .map(|m| m.alive)
}

/// Waits until every observer sees `node` as `alive`; returns how long that took, or fails
/// after `within`.
fn wait_seen(observers: &[u8], node: u8, alive: bool, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if observers
            .iter()
            .all(|&o| sees_alive(o, node) == Some(alive))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "node {node} not seen {} by all of {observers:?} within {within:?}",
            if alive { "up" } else { "down" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts node 3 again as `cluster up` started it.
fn restart_node3(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.join("node-3"))
        .args(["--listen", &format!("127.0.0.3:{PORT}")])
        .args(["--peer-listen", &format!("127.0.0.3:{}", PORT + 900)])
        .args(["--seeds", &format!("127.0.0.1:{}", PORT + 900)])
        .args([
            "--placement=unbound",
            "--replicas=3",
            "--read-quorum=2",
            "--write-quorum=2",
        ])
        .arg("--rack=rack-1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("node-3-restart.log")).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn a_local_cluster_replicates_survives_a_killed_node_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_up(dir.path());
    assert_eq!(cluster.node_pids.len(), 3);

    write_keys(1, 0..KEYS);
    assert_all_readable(2, KEYS);
    assert_all_readable(3, KEYS);
    // No false downs on a healthy cluster that just took load.
    for observer in 1..=3 {
        for node in (1..=3).filter(|&n| n != observer) {
            assert_eq!(
                sees_alive(observer, node),
                Some(true),
                "{observer} sees {node}"
            );
        }
    }

    // One of three replicas gone: r = w = 2 still holds for every key.
    let killed = cluster.node_pids[2];
    assert!(Command::new("kill")
        .args(["-9", &killed.to_string()])
        .status()
        .unwrap()
        .success());
    let killed_at = Instant::now();
    write_keys(2, KEYS..2 * KEYS);
    assert_all_readable(1, 2 * KEYS);
    assert_all_readable(2, 2 * KEYS);
    let remaining = DOWN_WITHIN.saturating_sub(killed_at.elapsed());
    wait_seen(&[1, 2], 3, false, remaining);
    eprintln!(
        "node 3 seen down by both peers {:?} after SIGKILL",
        killed_at.elapsed()
    );

    let mut node3 = restart_node3(dir.path());
    let up = wait_seen(&[1, 2], 3, true, UP_WITHIN);
    eprintln!("node 3 seen up by both peers {up:?} after its restart");
    // Hinted handoff and read repair bring it the writes it missed; a quorum read through it
    // sees every write either way.
    assert_all_readable(3, 2 * KEYS);
    assert!(Command::new("kill")
        .args(["-TERM", &node3.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_or_kill(&mut node3, Duration::from_secs(30)).expect("node 3 stops");
    assert!(status.success(), "restarted node 3 exited with {status}");

    assert!(Command::new("kill")
        .args(["-TERM", &cluster.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_or_kill(&mut cluster.child, Duration::from_secs(30))
        .expect("cluster up did not stop within 30 s of SIGTERM");
    let log = std::fs::read_to_string(dir.path().join("cluster.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert!(
        status.success(),
        "cluster up exited with {status}; its log ends:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    for &pid in &cluster.node_pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "node process {pid} outlived cluster up"
        );
    }
    cluster.node_pids.clear();
}
