//! Harness for cluster tests: `tessera cluster up` on loopback (node i on 127.0.0.i), clients
//! per node, each node's view of the others, signals by PID.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tessera_client::{Client, ClusterStatus};

use super::{quick_config, wait_or_kill};

/// Longest a cluster may take to form (under 2 s here).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// A node's peer port is its client port plus this (as `cluster up` sets it).
pub const PEER_PORT_OFFSET: u16 = 900;

/// A `tessera cluster up` process and its nodes; every process is killed by PID on drop.
pub struct Cluster {
    child: Child,
    /// Node i's PID at index i - 1 (0 once the test stopped it itself).
    pub node_pids: Vec<u32>,
    /// Client port of every node.
    pub port: u16,
    /// The data directory (node i in `node-i`).
    pub dir: PathBuf,
    /// Nodes restarted by the test, stopped on drop.
    restarted: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for &pid in self.node_pids.iter().filter(|&&p| p != 0) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        for child in &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Starts `tessera cluster up --nodes N --port PORT` in `dir` and waits for its "cluster
    /// ready" line, collecting the nodes' PIDs from the lines before it.
    pub fn up(dir: &Path, nodes: u8, port: u16) -> Cluster {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["cluster", "up", "--nodes", &nodes.to_string()])
            .args(["--port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("cluster.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Drains stdout to the end even once nobody listens, so the supervisor never
            // writes into a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut cluster = Cluster {
            child,
            node_pids: Vec::new(),
            port,
            dir: dir.to_path_buf(),
            restarted: Vec::new(),
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
                assert_eq!(cluster.node_pids.len(), usize::from(nodes));
                return cluster;
            }
        }
    }

    /// A client of node `node`.
    pub fn client(&self, node: u8) -> Client {
        Client::connect(
            format!("127.0.0.{node}:{}", self.port).as_str(),
            quick_config(),
        )
        .unwrap()
    }

    /// Node `node`'s view of the cluster, `None` if it does not answer.
    pub fn status(&self, node: u8) -> Option<ClusterStatus> {
        self.client_opt(node)?.cluster_status().ok()
    }

    fn client_opt(&self, node: u8) -> Option<Client> {
        Client::connect(
            format!("127.0.0.{node}:{}", self.port).as_str(),
            quick_config(),
        )
        .ok()
    }

    /// Whether `observer` sees `node` alive (named by its peer address, which gossip carries).
    pub fn sees_alive(&self, observer: u8, node: u8) -> Option<bool> {
        let addr = format!("127.0.0.{node}:{}", self.port + PEER_PORT_OFFSET);
        super::member_alive(&self.status(observer)?, &addr)
    }

    /// Waits until every observer sees `node` as `alive`; returns how long that took, or
    /// fails after `within`.
    pub fn wait_seen(&self, observers: &[u8], node: u8, alive: bool, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if observers
                .iter()
                .all(|&o| self.sees_alive(o, node) == Some(alive))
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

    /// Sends `signal` (e.g. "-STOP") to node `node` by its PID.
    pub fn signal(&self, node: u8, signal: &str) {
        let pid = self.node_pids[usize::from(node) - 1];
        assert!(Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap()
            .success());
    }

    /// SIGKILLs node `node` and waits until its process is gone.
    pub fn kill9(&mut self, node: u8) {
        self.signal(node, "-9");
        let pid = self.node_pids[usize::from(node) - 1];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}/status")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .contains("zombie")
        {
            assert!(Instant::now() < deadline, "node {node} outlived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `node` again as `cluster up` started it (node 1 founds, so it gets no
    /// seeds), with its log in `dir/node-N-restart.log`; stopped when the cluster drops.
    pub fn restart(&mut self, node: u8, replicas: usize) -> u32 {
        let quorum = replicas / 2 + 1;
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .arg("server")
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{node}")))
            .args(["--listen", &format!("127.0.0.{node}:{}", self.port)])
            .args([
                "--peer-listen",
                &format!("127.0.0.{node}:{}", self.port + PEER_PORT_OFFSET),
            ])
            .arg("--placement=unbound")
            .arg(format!("--replicas={replicas}"))
            .arg(format!("--read-quorum={quorum}"))
            .arg(format!("--write-quorum={quorum}"))
            .arg(format!("--rack=rack-{}", (node - 1) % 2 + 1))
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join(format!("node-{node}-restart.log"))).unwrap(),
            );
        if node > 1 {
            command.args([
                "--seeds",
                &format!("127.0.0.1:{}", self.port + PEER_PORT_OFFSET),
            ]);
        }
        let child = command.spawn().unwrap();
        let pid = child.id();
        self.node_pids[usize::from(node) - 1] = pid;
        self.restarted.push(child);
        pid
    }

    /// Stops `cluster up` with SIGTERM and checks that it and every node it started exit
    /// cleanly within 30 s; restarted nodes get SIGTERM too and must exit cleanly.
    pub fn stop_cleanly(mut self) {
        for child in &mut self.restarted {
            assert!(Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success());
            let status =
                wait_or_kill(child, Duration::from_secs(30)).expect("a restarted node stops");
            assert!(status.success(), "a restarted node exited with {status}");
        }
        assert!(Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = wait_or_kill(&mut self.child, Duration::from_secs(30))
            .expect("cluster up did not stop within 30 s of SIGTERM");
        let log = std::fs::read_to_string(self.dir.join("cluster.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        assert!(
            status.success(),
            "cluster up exited with {status}; its log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        for &pid in &self.node_pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "node process {pid} outlived cluster up"
            );
        }
        self.node_pids.clear();
        self.restarted.clear();
    }
}
