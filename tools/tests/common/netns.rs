//! Harness for cluster tests over a real network: every node in its own network namespace.
//!
//! The test makes (as root) one hub namespace holding a bridge at 10.X.0.254/24, and one
//! namespace per node with a veth into the bridge at 10.X.0.i/24; nothing touches the host's
//! own namespace. The test's threads join the hub namespace ([`Net::enter_hub`]) to reach the
//! nodes. Faults are nftables rules inside the nodes' namespaces: one-way and full partitions
//! and random loss between nodes (the test's own client traffic, from the hub address, is never
//! dropped). Every node process is started with `ip netns exec` (which execs, so the child's
//! PID is the node's), and is stopped by that PID; the namespaces are deleted on drop.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_client::{Client, ClientConfig, ClusterStatus, NO_REPLICA};

use super::wait_or_kill;

/// Client port of every node.
pub const PORT: u16 = 7000;
/// Peer port of every node.
pub const PEER_PORT: u16 = 7900;
/// Longest a cluster may take to form (a few seconds here).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The nftables table that holds a node's faults.
const FAULT_TABLE: &str = "tessera_faults";

/// Runs `program args...`, failing the test with its stderr if it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (scripts/test.sh installs iproute2 and nftables): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces and links of one test's network.
pub struct Net {
    /// Namespace names start with this.
    prefix: String,
    /// Second octet of the subnet, 10.X.0.0/24.
    subnet: u8,
    /// Nodes (namespaces `{prefix}-n1` ...).
    pub nodes: u8,
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in std::iter::once(self.hub()).chain((1..=self.nodes).map(|i| self.ns(i))) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

impl Net {
    /// Makes the hub and `nodes` node namespaces on 10.`subnet`.0.0/24 (`subnet` apart per
    /// test, so tests in parallel never share addresses).
    pub fn create(subnet: u8, nodes: u8) -> Net {
        let net = Net {
            prefix: format!("tsr{subnet}-{}", std::process::id()),
            subnet,
            nodes,
        };
        let hub = net.hub();
        run("ip", &["netns", "add", &hub]);
        run("ip", &["-n", &hub, "link", "set", "lo", "up"]);
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        let hub_cidr = format!("{}/24", net.hub_ip());
        run("ip", &["-n", &hub, "addr", "add", &hub_cidr, "dev", "br0"]);
        run("ip", &["-n", &hub, "link", "set", "br0", "up"]);
        for i in 1..=nodes {
            let ns = net.ns(i);
            let port = format!("p{i}");
            run("ip", &["netns", "add", &ns]);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            run(
                "ip",
                &[
                    "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            );
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0"]);
            run("ip", &["-n", &hub, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", net.ip(i));
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: u8) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, i)
    }

    /// The test's own address (the bridge in the hub).
    pub fn hub_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, 254)
    }

    /// Moves the calling thread into the hub namespace; threads it starts afterwards are
    /// there too. Sockets opened there reach the nodes.
    pub fn enter_hub(&self) {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.hub())).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    }

    /// Applies an nftables script inside node `i`'s namespace.
    fn nft(&self, i: u8, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(i), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft in node {i}: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds one rule to node `i`'s input chain (creating the table on first use).
    fn input_rule(&self, i: u8, rule: &str) {
        self.nft(
            i,
            &format!(
                "add table inet {FAULT_TABLE}\n\
                 add chain inet {FAULT_TABLE} input {{ type filter hook input priority 0; policy accept; }}\n\
                 add rule inet {FAULT_TABLE} input {rule}\n"
            ),
        );
    }

    /// Drops every packet from node `from` to node `to` (only that direction).
    pub fn block(&self, from: u8, to: u8) {
        self.input_rule(to, &format!("ip saddr {} drop", self.ip(from)));
    }

    /// Cuts every node of `a` off from every node of `b`, both ways.
    pub fn partition(&self, a: &[u8], b: &[u8]) {
        for &x in a {
            for &y in b {
                self.block(x, y);
                self.block(y, x);
            }
        }
    }

    /// Drops `percent` of the packets node `i` receives from other nodes, at random.
    pub fn loss(&self, i: u8, percent: u8) {
        self.input_rule(
            i,
            &format!(
                "ip saddr != {} numgen random mod 100 < {percent} drop",
                self.hub_ip()
            ),
        );
    }

    /// Removes every fault.
    pub fn heal(&self) {
        for i in 1..=self.nodes {
            self.nft(
                i,
                &format!("add table inet {FAULT_TABLE}\ndelete table inet {FAULT_TABLE}\n"),
            );
        }
    }
}

/// How the nodes of a [`NetCluster`] are configured.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub replicas: usize,
    pub read_quorum: usize,
    pub write_quorum: usize,
    /// `siblings` or `lww`.
    pub conflict: &'static str,
    /// Rack of node i (from 1).
    pub rack: fn(u8) -> String,
    /// Datacenter of node i (from 1).
    pub dc: fn(u8) -> String,
    /// `--replicas-per-dc` (DC=N,...), instead of `replicas` anywhere, if set.
    pub replicas_per_dc: Option<&'static str>,
    /// `--tombstone-grace` in seconds, if set (the server's default is an hour).
    pub tombstone_grace: Option<u64>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            replicas: 3,
            read_quorum: 2,
            write_quorum: 2,
            conflict: "siblings",
            rack: |i| format!("rack-{}", (i - 1) % 2 + 1),
            dc: |_| "dc-1".to_string(),
            replicas_per_dc: None,
            tombstone_grace: None,
        }
    }
}

/// `tessera server` processes, node i in namespace i; node 1 founds the cluster.
pub struct NetCluster {
    pub net: Net,
    pub dir: PathBuf,
    pub options: NodeOptions,
    /// Node i's process at index i - 1 (`None` while the test has it stopped).
    nodes: Vec<Option<Child>>,
    /// Starts of each node so far (log files are numbered by them).
    starts: Vec<u32>,
    /// Nodes that must own partitions for the cluster to count as formed.
    pub owners: usize,
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl NetCluster {
    /// Makes the network, starts every node, enters the hub and waits until the cluster is
    /// formed: every node answers a quorum read and sees the ring settled with every node
    /// owning partitions.
    pub fn up(dir: &Path, subnet: u8, nodes: u8, options: NodeOptions) -> NetCluster {
        Self::up_some(dir, subnet, nodes, nodes, options)
    }

    /// Like [`NetCluster::up`] in a network of `nodes` namespaces, starting only the first
    /// `started` nodes (the others join later with [`NetCluster::start`]).
    pub fn up_some(
        dir: &Path,
        subnet: u8,
        nodes: u8,
        started: u8,
        options: NodeOptions,
    ) -> NetCluster {
        let net = Net::create(subnet, nodes);
        net.enter_hub();
        let mut cluster = NetCluster {
            net,
            dir: dir.to_path_buf(),
            options,
            nodes: (0..nodes).map(|_| None).collect(),
            starts: vec![0; usize::from(nodes)],
            owners: usize::from(started),
        };
        for i in 1..=started {
            cluster.start(i);
        }
        let begun = Instant::now();
        for i in 1..=started {
            cluster.wait_formed(i, begun + READY_TIMEOUT);
        }
        eprintln!(
            "{started} nodes formed a cluster in {:.1}s",
            begun.elapsed().as_secs_f64()
        );
        cluster
    }

    /// Node `i`'s client address.
    pub fn addr(&self, i: u8) -> SocketAddr {
        SocketAddr::from((self.net.ip(i), PORT))
    }

    /// Starts node `i` (again); every node but the founder gets node 1 as its seed.
    pub fn start(&mut self, i: u8) {
        let slot = usize::from(i) - 1;
        assert!(self.nodes[slot].is_none(), "node {i} is running");
        self.starts[slot] += 1;
        let log = self.dir.join(format!("node-{i}.{}.log", self.starts[slot]));
        let o = &self.options;
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &self.net.ns(i),
                env!("CARGO_BIN_EXE_tessera"),
            ])
            .arg("server")
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{i}")))
            .arg(format!("--listen={}", self.addr(i)))
            .arg(format!("--peer-listen={}:{PEER_PORT}", self.net.ip(i)))
            .arg("--placement=unbound")
            .arg(match o.replicas_per_dc {
                Some(per_dc) => format!("--replicas-per-dc={per_dc}"),
                None => format!("--replicas={}", o.replicas),
            })
            .arg(format!("--read-quorum={}", o.read_quorum))
            .arg(format!("--write-quorum={}", o.write_quorum))
            .arg(format!("--conflict={}", o.conflict))
            .arg(format!("--rack={}", (o.rack)(i)))
            .arg(format!("--dc={}", (o.dc)(i)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        if i > 1 {
            command.arg(format!("--seeds={}:{PEER_PORT}", self.net.ip(1)));
        }
        if let Some(secs) = o.tombstone_grace {
            command.arg(format!("--tombstone-grace={secs}"));
        }
        self.nodes[slot] = Some(command.spawn().unwrap());
    }

    /// Node `i`'s PID (it must be running).
    pub fn pid(&self, i: u8) -> u32 {
        self.nodes[usize::from(i) - 1].as_ref().unwrap().id()
    }

    /// Sends `signal` (e.g. "-STOP") to node `i` by its PID.
    pub fn signal(&self, i: u8, signal: &str) {
        let pid = self.pid(i).to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// SIGKILLs node `i` and reaps it.
    pub fn kill9(&mut self, i: u8) {
        let mut child = self.nodes[usize::from(i) - 1].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A client of node `i` with `config`.
    pub fn client_with(&self, i: u8, config: ClientConfig) -> Option<Client> {
        Client::connect(self.addr(i), config).ok()
    }

    /// Node `i`'s view of the cluster, `None` if it does not answer.
    pub fn status(&self, i: u8) -> Option<ClusterStatus> {
        let config = ClientConfig {
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            ..ClientConfig::default()
        };
        self.client_with(i, config)?.cluster_status().ok()
    }

    /// Whether `observer` sees node `i` alive (`None` if the observer does not answer).
    pub fn sees_alive(&self, observer: u8, i: u8) -> Option<bool> {
        let addr = format!("{}:{PEER_PORT}", self.net.ip(i));
        super::member_alive(&self.status(observer)?, &addr)
    }

    /// Waits until `observer` sees node `i` as `alive`, up to `within`; returns how long it
    /// took, or `None` if it did not happen in time.
    pub fn wait_seen(
        &self,
        observer: u8,
        i: u8,
        alive: bool,
        within: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.sees_alive(observer, i) == Some(alive) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Counters summed over the nodes that answer: (hints delivered, read repairs, keys
    /// repaired by anti-entropy).
    pub fn repair_counters(&self) -> (u64, u64, u64) {
        (1..=self.net.nodes)
            .filter_map(|i| self.status(i))
            .fold((0, 0, 0), |(h, r, a), s| {
                (
                    h + s.hints_delivered,
                    r + s.read_repairs,
                    a + s.ae_keys_repaired,
                )
            })
    }

    /// Waits until node `i` answers a quorum read and sees the ring settled with every node
    /// owning partitions; fails the test at `deadline`.
    pub fn wait_formed(&self, i: u8, deadline: Instant) {
        let nodes = self.owners;
        loop {
            let config = ClientConfig {
                request_timeout: Duration::from_secs(3),
                connect_timeout: Duration::from_secs(1),
                ..ClientConfig::default()
            };
            let formed = self.client_with(i, config).is_some_and(|c| {
                c.get(b"netns-ready-probe").is_ok()
                    && c.cluster_status().is_ok_and(|s| {
                        s.ring_phase == "Stable"
                            && s.members.iter().filter(|m| m.partitions > 0).count() == nodes
                    })
            });
            if formed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not see the cluster formed in time; logs in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no node holds hints (every sloppy write handed off), up to `within`;
    /// returns whether they drained, and the hints left per node.
    pub fn wait_hints_drained(&self, within: Duration) -> (bool, Vec<Option<u64>>) {
        let start = Instant::now();
        loop {
            let held: Vec<Option<u64>> = (1..=self.net.nodes)
                .map(|i| self.status(i).map(|s| s.hints_held))
                .collect();
            if held.iter().all(|h| *h == Some(0)) {
                return (true, held);
            }
            if start.elapsed() > within {
                return (false, held);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERMs node `i` and checks it exits cleanly within 30 s.
    pub fn stop(&mut self, i: u8) {
        let mut child = self.nodes[usize::from(i) - 1].take().unwrap();
        assert!(Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = wait_or_kill(&mut child, Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "node {i} did not stop cleanly on SIGTERM: {status:?}"
        );
    }

    /// Node `i`'s number from a member's peer address, if it is one of this network's.
    pub fn node_of(&self, addr: &str) -> Option<u8> {
        (1..=self.net.nodes).find(|&i| addr == format!("{}:{PEER_PORT}", self.net.ip(i)))
    }

    /// Each partition's preference list as node numbers, by `status`'s ring.
    pub fn preference_lists(&self, status: &ClusterStatus) -> Vec<Vec<u8>> {
        let n = status.replicas as usize;
        status
            .partition_replicas
            .chunks(n)
            .map(|list| {
                list.iter()
                    .map(|&i| {
                        assert_ne!(i, NO_REPLICA, "a partition has fewer than n replicas");
                        let member = &status.members[usize::from(i)];
                        self.node_of(&member.addr).unwrap()
                    })
                    .collect()
            })
            .collect()
    }

    /// Waits until node `observer` sees the ring settled with exactly `owners` owning partitions.
    pub fn wait_ring(&self, observer: u8, owners: &[u8], within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(s) = self.status(observer) {
                let owning: Vec<u8> = s
                    .members
                    .iter()
                    .filter(|m| m.partitions > 0)
                    .filter_map(|m| self.node_of(&m.addr))
                    .collect();
                let mut owning = owning;
                owning.sort_unstable();
                if s.ring_phase == "Stable" && owning == owners {
                    return start.elapsed();
                }
            }
            assert!(
                start.elapsed() < within,
                "the ring did not settle on {owners:?} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every partition's replicas (as `observer`'s ring names them, all among
    /// `running`) report equal Merkle roots; returns how long it took. Fails the test after
    /// `within`.
    pub fn wait_replicas_equal(&self, observer: u8, running: &[u8], within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let status = self.status(observer).unwrap();
            let lists = self.preference_lists(&status);
            let roots: Vec<Vec<u64>> = running
                .iter()
                .map(|&i| self.status(i).unwrap().partition_roots)
                .collect();
            let root = |node: u8, p: usize| {
                let at = running.iter().position(|&i| i == node);
                roots[at.unwrap_or_else(|| panic!("node {node} is named but not running"))][p]
            };
            let differing = lists
                .iter()
                .enumerate()
                .filter(|(p, list)| list.iter().any(|&n| root(n, *p) != root(list[0], *p)))
                .count();
            if differing == 0 {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{differing} partitions' replicas still differ after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `tessera args... --server <node i>` from the hub namespace (like the test's
    /// clients); returns its exit code and stderr.
    pub fn cli(&self, i: u8, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .args(["--server", &self.addr(i).to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    }

    /// SIGTERMs every running node and checks each exits cleanly within 30 s.
    pub fn stop_cleanly(mut self) {
        for i in 1..=self.net.nodes {
            if self.nodes[usize::from(i) - 1].is_some() {
                self.stop(i);
            }
        }
    }
}
