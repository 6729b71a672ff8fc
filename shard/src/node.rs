//! The node: one shard per core, each on its own executor, sharing nothing but the mesh.
//!
//! Start-up: validate the configuration, lock the data directory, check (or create) its
//! metadata so a node never reads data laid out for another shard or partition count, check
//! that every port (the RESP port too, if configured) is free, then start the shards and wait
//! until each has recovered and listens. Stopping sets a flag every shard watches; each
//! closes its log durably.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_core::{NodeId, PartitionCount, ShardMap};
use tessera_io::constants::MESH_CHANNEL_CAPACITY;
use tessera_io::file::{lock_dir, write_atomic_blocking, DirLock};
use tessera_io::{spawn_executor, ExecutorConfig, Mesh};
use tessera_schema::{ShardEndpoint, TopologyInfo};

use crate::config::NodeConfig;
use crate::runtime::{run_shard, ShardReady, ShardSetup};

/// Name of the metadata file in the data directory.
pub const META_FILE: &str = "tessera.meta";
/// Version of the data directory layout.
pub const META_FORMAT_VERSION: u32 = 1;
/// How long the start-up check waits for a connection to a port that should be free.
const PORT_PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long start-up waits for a crashed predecessor's listening sockets to disappear.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(10);
/// How often start-up checks again whether a port is free.
const PORT_PROBE_INTERVAL: Duration = Duration::from_millis(25);

/// Why a node could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory cannot be used.
    #[error("data directory {path}: {why}")]
    DataDir {
        /// The directory.
        path: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// A port is taken.
    #[error("cannot listen on {addr}: {source}. Stop whatever uses it or choose another port (--listen: shards use the next ports too; --resp-listen)")]
    Port {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A shard failed to start or stopped with an error.
    #[error("{0}")]
    Shard(String),
}

/// What the data directory was created with; a node refuses to run it differently.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
struct Meta {
    format_version: u32,
    /// Hex: TOML integers are signed 64-bit, and half of all random ids do not fit.
    node_id: String,
    shards: u16,
    partitions: u32,
}

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    handles: Vec<tessera_io::executor::ExecutorHandle<()>>,
    shutdown: Arc<AtomicBool>,
    topology: TopologyInfo,
    shards: Vec<ShardReady>,
    _lock: DirLock,
}

impl RunningNode {
    /// What clients learn about this node.
    pub fn topology(&self) -> &TopologyInfo {
        &self.topology
    }

    /// What each shard reported at start-up.
    pub fn shards(&self) -> &[ShardReady] {
        &self.shards
    }

    /// Asks every shard to stop.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// Waits until every shard has stopped.
    pub fn wait(self) -> Result<(), NodeError> {
        tessera_io::executor::join_all(self.handles).map_err(NodeError::Shard)
    }
}

/// Starts a node and returns once every shard serves.
pub fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    start_with_shutdown(config, Arc::new(AtomicBool::new(false)))
}

/// Like [`start`], with the stop flag supplied by the caller, so that a signal handler can be
/// installed before start-up (recovery can take a while): a flag set during start-up makes
/// every shard stop cleanly as soon as it has recovered.
pub fn start_with_shutdown(
    mut config: NodeConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<RunningNode, NodeError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| data_dir_error(&config.data_dir, e.to_string()))?;
    // Absolute from here on: glommio opens directories with `openat` on no directory fd, which
    // fails with EBADF for a relative path (and a relative path would also break if anything
    // changed the working directory).
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .map_err(|e| data_dir_error(&config.data_dir, e.to_string()))?;
    let data_dir = config.data_dir.clone();
    let lock = lock_dir(&data_dir).map_err(|e| data_dir_error(&data_dir, e.to_string()))?;
    let meta = load_or_create_meta(&config)?;
    let node_id = parse_node_id(&meta.node_id).map_err(|why| data_dir_error(&data_dir, why))?;
    check_ports_free(&config)?;
    let partitions = PartitionCount::new(meta.partitions)
        .map_err(|e| data_dir_error(&data_dir, e.to_string()))?;
    let shard_map = ShardMap::round_robin(partitions, meta.shards)
        .map_err(|e| data_dir_error(&data_dir, e.to_string()))?;
    let topology = TopologyInfo {
        node_id,
        partitions: meta.partitions,
        shards: (0..config.shards)
            .map(|shard| ShardEndpoint {
                shard,
                port: config.shard_port(shard),
            })
            .collect(),
        partition_shard: shard_map.table().iter().map(|s| s.0).collect(),
    };
    let config = Arc::new(config);
    let n = usize::from(config.shards);
    let forwards = Mesh::build(n, MESH_CHANNEL_CAPACITY);
    let replies = Mesh::build(n, MESH_CHANNEL_CAPACITY);
    let (ready_tx, ready_rx) = mpsc::channel();
    let exec = ExecutorConfig {
        name: "tessera-shard".into(),
        placement: config.placement.into(),
        preempt_timer: Duration::from_millis(config.preempt_timer_ms),
    };
    let mut handles = Vec::with_capacity(n);
    for (shard, (forwards, replies)) in (0u16..).zip(forwards.into_iter().zip(replies)) {
        let setup = ShardSetup {
            shard,
            config: config.clone(),
            node: NodeId(node_id),
            shard_map: shard_map.clone(),
            topology: topology.clone(),
            forwards,
            replies,
            ready: ready_tx.clone(),
            shutdown: shutdown.clone(),
        };
        match spawn_executor(shard, &exec, move || run_shard(setup)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                shutdown.store(true, Ordering::Release);
                return Err(NodeError::Shard(e.to_string()));
            }
        }
    }
    drop(ready_tx);
    let mut node = RunningNode {
        handles,
        shutdown,
        topology,
        shards: Vec::new(),
        _lock: lock,
    };
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(ready)) => node.shards.push(ready),
            Ok(Err(e)) => return Err(fail_start(node, e)),
            Err(_) => {
                return Err(fail_start(
                    node,
                    "a shard exited before it was ready".into(),
                ))
            }
        }
    }
    node.shards.sort_by_key(|s| s.shard);
    Ok(node)
}

fn fail_start(node: RunningNode, why: String) -> NodeError {
    node.stop();
    match node.wait() {
        Err(NodeError::Shard(detail)) => NodeError::Shard(format!("{why}: {detail}")),
        _ => NodeError::Shard(why),
    }
}

fn data_dir_error(dir: &Path, why: String) -> NodeError {
    NodeError::DataDir {
        path: dir.display().to_string(),
        why,
    }
}

fn load_or_create_meta(config: &NodeConfig) -> Result<Meta, NodeError> {
    let path = config.data_dir.join(META_FILE);
    let dir = &config.data_dir;
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).map_err(|e| data_dir_error(dir, e.to_string()))?;
        let meta: Meta = toml::from_str(&text)
            .map_err(|e| data_dir_error(dir, format!("{META_FILE} is unreadable: {e}")))?;
        if meta.format_version != META_FORMAT_VERSION {
            return Err(data_dir_error(dir, format!("layout version {} is not supported by this build (expects {META_FORMAT_VERSION})", meta.format_version)));
        }
        if meta.shards != config.shards {
            return Err(data_dir_error(dir, format!("it was created with {} shards; start with --shards {} (changing the shard count of existing data is not supported yet)", meta.shards, meta.shards)));
        }
        if meta.partitions != config.partitions {
            return Err(data_dir_error(
                dir,
                format!(
                    "it was created with {} partitions; set partitions = {}",
                    meta.partitions, meta.partitions
                ),
            ));
        }
        parse_node_id(&meta.node_id).map_err(|why| data_dir_error(dir, why))?;
        return Ok(meta);
    }
    // No meta but shard data: the data was laid out under settings we no longer know, and
    // guessing them could route keys to the wrong shard.
    let has_shard_data = std::fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("shard-")))
    });
    if has_shard_data {
        let why = format!(
            "it holds shard data but no {META_FILE}; restore {META_FILE} (it records the \
             shard and partition counts) or start from an empty directory"
        );
        return Err(data_dir_error(dir, why));
    }
    let meta = Meta {
        format_version: META_FORMAT_VERSION,
        node_id: format!("{:016x}", random_node_id()),
        shards: config.shards,
        partitions: config.partitions,
    };
    let text = toml::to_string(&meta).map_err(|e| data_dir_error(dir, e.to_string()))?;
    write_atomic_blocking(&path, text.as_bytes())
        .map_err(|e| data_dir_error(dir, e.to_string()))?;
    Ok(meta)
}

fn parse_node_id(hex: &str) -> Result<u64, String> {
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|&id| id != 0)
        .ok_or_else(|| format!("{META_FILE} holds an invalid node_id '{hex}'"))
}

/// A random, non-zero node id. `RandomState` is seeded by the OS, which is all we need here.
fn random_node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish().max(1)
}

/// Waits until no process listens on any of the node's ports, or fails with a clear error.
///
/// Why a connection attempt and not a bind: glommio binds with SO_REUSEPORT (every shard
/// shares the main port), so a bind would also succeed next to another live node. Why wait:
/// after a `kill -9`, io_uring tears the dead process's rings down asynchronously, and a
/// listening socket held by a pending accept stays in LISTEN for a moment after the process
/// is gone. Binding beside it would let the kernel hand new connections to that dead socket's
/// backlog, where nobody ever answers them.
fn check_ports_free(config: &NodeConfig) -> Result<(), NodeError> {
    let addrs = config.listen_addrs();
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    for addr in addrs {
        while someone_listens(addr) {
            if std::time::Instant::now() >= deadline {
                let source = std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process is listening there",
                );
                return Err(NodeError::Port { addr, source });
            }
            std::thread::sleep(PORT_PROBE_INTERVAL);
        }
    }
    Ok(())
}

/// Whether a connection to `addr` is anything but refused. A listener whose accept queue is
/// full (one that never accepts, or a dead process's) lets the attempt time out instead of
/// refusing it, so a timeout counts as listening too.
fn someone_listens(addr: SocketAddr) -> bool {
    match std::net::TcpStream::connect_timeout(&addr, PORT_PROBE_TIMEOUT) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::ConnectionRefused,
    }
}
