//! Node configuration: a TOML file, overridden by command-line flags, validated once at start.
//!
//! Defaults are the safe ones: writes are durable (fsynced before acknowledgement), shards are
//! pinned to cores, and every size has a bound.
//!
//! Memory: one node budget (`memory_budget`) covers the memtables and block caches of every
//! shard; [`NodeConfig::shard_budget`] shares it out (see there for the split and why).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tessera_core::constants::{
    KEY_BYTES_MAX_DEFAULT, PARTITION_COUNT_DEFAULT, SHARD_COUNT_MAX, VALUE_BYTES_MAX_DEFAULT,
};
use tessera_core::error::CoreError;
use tessera_core::placement::Replication;
use tessera_io::ShardPlacement;

use crate::constants::*;

pub mod size;

/// Default node memory budget, unless the shards need more (see
/// [`MEMORY_BUDGET_BYTES_PER_SHARD_DEFAULT`]). A fixed figure rather than a fraction of the
/// machine's memory: the same on every machine (tests, docs, shared hosts), and safe on a
/// small VM, since the node also needs memory outside the budget (connection and log
/// buffers, the page cache). Production sets it, e.g. to half of RAM.
pub const MEMORY_BUDGET_BYTES_DEFAULT: u64 = 1 << 30;
/// The default budget gives each shard at least this much, so that a machine with many CPUs
/// (default: one shard each) still gets a valid default.
pub const MEMORY_BUDGET_BYTES_PER_SHARD_DEFAULT: u64 = 64 << 20;
/// Least budget per shard: a 4 MiB memtable share (smaller memtables flush into tiny tables)
/// and 12 MiB of block cache.
pub const MEMORY_BUDGET_BYTES_PER_SHARD_MIN: u64 = 16 << 20;
/// A shard's memtables get `1 / MEMTABLE_BUDGET_DIVISOR` of its budget, the block cache the
/// rest (see [`NodeConfig::shard_budget`]).
pub const MEMTABLE_BUDGET_DIVISOR: u64 = 4;

/// Default [`ClusterSettings::tombstone_grace_secs`]: core's default grace (a cluster node's
/// ticks are milliseconds).
pub const TOMBSTONE_GRACE_SECS_DEFAULT: u64 =
    tessera_core::node::TOMBSTONE_GRACE_TICKS_DEFAULT / 1_000;

/// Everything a node needs to start.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its data; one sub-directory per shard.
    pub data_dir: PathBuf,
    /// The node's main address; shard `i` listens on the same host at `port + 1 + i`.
    pub listen: SocketAddr,
    /// Shards (one executor thread each). Defaults to the number of CPUs.
    pub shards: u16,
    /// Partitions of the ring (a power of two). Fixed when the data directory is created.
    pub partitions: u32,
    /// `pinned` (one shard per CPU, production) or `unbound` (tests, shared machines).
    pub placement: PlacementSetting,
    /// How often (ms) glommio lets other task queues run; low values favour latency.
    pub preempt_timer_ms: u64,
    /// Acknowledge writes only once their log record is fsynced (the default). Requests may
    /// ask for either behaviour explicitly.
    pub durable_writes: bool,
    /// Largest key, in bytes.
    pub key_bytes_max: usize,
    /// Largest value, in bytes.
    pub value_bytes_max: usize,
    /// Largest request frame, in bytes.
    pub frame_bytes_max: usize,
    /// Connections one shard serves at once.
    pub connections_per_shard_max: usize,
    /// Requests one connection may have in flight.
    pub inflight_per_connection_max: usize,
    /// Commit-log segment size, in bytes.
    pub log_segment_bytes: u64,
    /// Log bytes that may wait for the next group commit.
    pub log_pending_bytes_max: usize,
    /// Memory one shard's memtables may use, in bytes: it caps the memtable share of the
    /// memory budget (half for the active memtable, half for the one being flushed); a
    /// smaller value leaves the rest of the shard's budget to its block cache.
    pub memtable_bytes_max: usize,
    /// Memory for all memtables and block caches of the node, in bytes. In TOML
    /// `memory_budget`, a size such as `"64MiB"`, `"1GiB"`, `"512MB"` or an integer of bytes.
    #[serde(rename = "memory_budget", deserialize_with = "size::deserialize")]
    pub memory_budget_bytes: u64,
    /// Where the Redis (RESP2) front door listens, if anywhere. Every shard accepts on it
    /// (SO_REUSEPORT), and routes each command to the owning shard like the main port does.
    pub resp_listen: Option<SocketAddr>,
    /// Cluster membership; `None` runs a single node that keeps one copy of every pair.
    pub cluster: Option<ClusterSettings>,
}

/// How a node takes part in a cluster (TOML table `[cluster]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// Where this node listens for its peers; peers learn the address through gossip, so it
    /// must be one they can reach (not 0.0.0.0).
    pub peer_listen: SocketAddr,
    /// Peer addresses of nodes already in the cluster. Empty: this node starts a new
    /// cluster (or, restarting, waits for its peers to contact it).
    pub seeds: Vec<SocketAddr>,
    /// Rack label: replicas of a key are spread over racks.
    pub rack: String,
    /// Datacenter label.
    pub dc: String,
    /// Relative capacity: the node claims partitions in proportion to it.
    pub weight: u32,
    /// Replicas of every key (n), wherever they are; ignored when `replicas_per_dc` is set.
    pub replicas: usize,
    /// Replicas of every key per datacenter (TOML table `[cluster.replicas_per_dc]`, e.g.
    /// `east = 2`); n is their sum. Empty: `replicas` anywhere. Every node of a cluster must
    /// be given the same replication.
    pub replicas_per_dc: BTreeMap<String, usize>,
    /// Replicas that must answer a read unless a request asks otherwise (r).
    pub read_quorum: usize,
    /// Replicas that must acknowledge a write unless a request asks otherwise (w).
    pub write_quorum: usize,
    /// How concurrent writes to a key resolve.
    pub conflict: ConflictSetting,
    /// How old a tombstone must be, in seconds (from when the node's sweep first saw it), before
    /// the cluster may purge it. Must exceed the longest time a write can stay in flight (a
    /// slow request, a message queued for a peer): a write older than a purged tombstone that
    /// arrives after it would bring the deleted value back.
    pub tombstone_grace_secs: u64,
}

/// How concurrent writes to a key resolve (TOML `conflict = "siblings" | "lww"`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConflictSetting {
    /// Concurrent writes are kept as siblings that the next writer reconciles: nothing
    /// acknowledged is lost (the default).
    #[default]
    Siblings,
    /// The newest timestamp wins and concurrent writes are silently dropped: only for data
    /// where losing a concurrent update is acceptable.
    Lww,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            peer_listen: SocketAddr::from(([127, 0, 0, 1], 7900)),
            seeds: Vec::new(),
            rack: "rack-1".into(),
            dc: "dc-1".into(),
            weight: 1,
            replicas: 3,
            replicas_per_dc: BTreeMap::new(),
            read_quorum: 2,
            write_quorum: 2,
            conflict: ConflictSetting::Siblings,
            tombstone_grace_secs: TOMBSTONE_GRACE_SECS_DEFAULT,
        }
    }
}

impl ClusterSettings {
    fn validate(&self, shards: u16, resp: bool) -> Result<(), ConfigError> {
        let invalid = |field, why: String| Err(ConfigError::Invalid { field, why });
        if shards != 1 {
            return invalid(
                "shards",
                "a cluster node runs one shard for now (start it with --shards 1)".into(),
            );
        }
        if resp {
            return invalid(
                "resp_listen",
                "the Redis front door does not route through the cluster yet; leave it off".into(),
            );
        }
        if self.peer_listen.ip().is_unspecified() || self.peer_listen.port() == 0 {
            return invalid(
                "peer_listen",
                "needs a fixed port and an address peers can reach (not 0.0.0.0)".into(),
            );
        }
        if self.weight == 0 || self.weight > tessera_core::constants::MEMBER_WEIGHT_MAX {
            let max = tessera_core::constants::MEMBER_WEIGHT_MAX;
            return invalid("weight", format!("must be 1..={max}"));
        }
        if self.replicas == 0 || self.replicas > 9 {
            return invalid("replicas", "must be 1..=9".into());
        }
        if let Err(e) = self.replication() {
            return invalid("replicas_per_dc", e.to_string());
        }
        if self.tombstone_grace_secs == 0 {
            return invalid(
                "tombstone_grace_secs",
                "must be at least 1 (and longer than any write stays in flight)".into(),
            );
        }
        let n = self.n();
        for (field, q) in [
            ("read_quorum", self.read_quorum),
            ("write_quorum", self.write_quorum),
        ] {
            if q == 0 || q > n {
                return invalid(field, format!("must be 1..={n} (the replicas)"));
            }
        }
        Ok(())
    }

    /// How many replicas each key has, and where: `replicas_per_dc` if set, else `replicas`
    /// anywhere.
    pub fn replication(&self) -> Result<Replication, CoreError> {
        if self.replicas_per_dc.is_empty() {
            return Ok(Replication::uniform(self.replicas));
        }
        let per_dc = self.replicas_per_dc.iter().map(|(dc, n)| (dc.clone(), *n));
        Replication::per_dc(per_dc.collect())
    }

    /// Replicas per key, all datacenters together.
    pub fn n(&self) -> usize {
        self.replication().map_or(self.replicas, |r| r.total())
    }
}

/// Where shard threads run.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlacementSetting {
    /// One shard per CPU.
    Pinned,
    /// Anywhere.
    Unbound,
}

impl From<PlacementSetting> for ShardPlacement {
    fn from(p: PlacementSetting) -> Self {
        match p {
            PlacementSetting::Pinned => ShardPlacement::Pinned,
            PlacementSetting::Unbound => ShardPlacement::Unbound,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = u16::try_from(cpus)
            .unwrap_or(SHARD_COUNT_MAX)
            .min(SHARD_COUNT_MAX);
        Self {
            data_dir: PathBuf::from("tessera-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            shards,
            partitions: PARTITION_COUNT_DEFAULT,
            placement: PlacementSetting::Pinned,
            preempt_timer_ms: tessera_io::constants::PREEMPT_TIMER_MS_DEFAULT,
            durable_writes: true,
            key_bytes_max: KEY_BYTES_MAX_DEFAULT,
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX_DEFAULT,
            inflight_per_connection_max: INFLIGHT_PER_CONNECTION_MAX_DEFAULT,
            log_segment_bytes: LOG_SEGMENT_BYTES_DEFAULT,
            log_pending_bytes_max: LOG_PENDING_BYTES_MAX_DEFAULT,
            memtable_bytes_max: MEMTABLE_BYTES_MAX_DEFAULT,
            memory_budget_bytes: MEMORY_BUDGET_BYTES_DEFAULT
                .max(u64::from(shards) * MEMORY_BUDGET_BYTES_PER_SHARD_DEFAULT),
            resp_listen: None,
            cluster: None,
        }
    }
}

/// One shard's share of the node memory budget, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardBudget {
    /// For its memtables (the active one and any being flushed).
    pub memtable_bytes: u64,
    /// For its block cache.
    pub cache_bytes: u64,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {} is invalid: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value out of range or inconsistent with another.
    #[error("invalid setting `{field}`: {why}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong and what would work.
        why: String,
    },
}

impl NodeConfig {
    /// Reads a TOML config file; unset fields keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Port of shard `shard`.
    pub fn shard_port(&self, shard: u16) -> u16 {
        self.listen.port() + 1 + shard
    }

    /// Every address the node listens on: the main port, each shard's port, and the RESP
    /// port if configured.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.listen];
        addrs.extend(
            (0..self.shards).map(|s| SocketAddr::new(self.listen.ip(), self.shard_port(s))),
        );
        addrs.extend(self.resp_listen);
        addrs.extend(self.cluster.as_ref().map(|c| c.peer_listen));
        addrs
    }

    /// One shard's share of `memory_budget_bytes`: the budget split evenly across shards, then
    /// a quarter to memtables (capped by `memtable_bytes_max`) and the rest to the block cache.
    ///
    /// Why a quarter: the memtable only has to absorb writes while the previous one flushes
    /// and make SSTables large enough to keep compaction cheap; every read that misses it is
    /// served by the cache, so the cache earns the larger share (RocksDB's defaults lean the
    /// same way). Why capped: `memtable_bytes_max` is the operator's explicit bound on the
    /// memtable, and memory it leaves unused is better spent on cache than idle.
    pub fn shard_budget(&self) -> ShardBudget {
        let per_shard = self.memory_budget_bytes / u64::from(self.shards.max(1));
        let memtable_max = u64::try_from(self.memtable_bytes_max).unwrap_or(u64::MAX);
        let memtable_bytes = (per_shard / MEMTABLE_BUDGET_DIVISOR).min(memtable_max);
        ShardBudget {
            memtable_bytes,
            cache_bytes: per_shard - memtable_bytes,
        }
    }

    /// Checks every bound; the message says what would work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, why: String| Err(ConfigError::Invalid { field, why });
        if self.shards == 0 || self.shards > SHARD_COUNT_MAX {
            return invalid("shards", format!("must be 1..={SHARD_COUNT_MAX}"));
        }
        if u32::from(self.listen.port()) + 1 + u32::from(self.shards) > u32::from(u16::MAX) {
            return invalid("listen", "port + 1 + shards must stay below 65536".into());
        }
        if self.listen.port() == 0 {
            return invalid(
                "listen",
                "a fixed port is needed (shard ports follow it)".into(),
            );
        }
        if !self.partitions.is_power_of_two() || self.partitions < u32::from(self.shards) {
            return invalid(
                "partitions",
                "must be a power of two and at least `shards`".into(),
            );
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate(self.shards, self.resp_listen.is_some())?;
        }
        if self.key_bytes_max == 0 || self.key_bytes_max > (1 << 20) {
            return invalid("key_bytes_max", "must be 1..=1048576".into());
        }
        if self.value_bytes_max > (64 << 20) {
            return invalid("value_bytes_max", "must be at most 64 MiB".into());
        }
        let one_put = self.key_bytes_max + self.value_bytes_max + 4096;
        if self.frame_bytes_max < one_put || self.frame_bytes_max > tessera_schema::FRAME_BYTES_MAX
        {
            let max = tessera_schema::FRAME_BYTES_MAX;
            return invalid(
                "frame_bytes_max",
                format!("must fit one put ({one_put}) and be at most {max}"),
            );
        }
        if self.log_pending_bytes_max < OBJECT_BYTES_MAX + self.key_bytes_max + 512 {
            return invalid(
                "log_pending_bytes_max",
                format!("must exceed the largest object ({OBJECT_BYTES_MAX}) plus a key"),
            );
        }
        // A retry after a full disk can carry a few times this much in one batch, and a batch
        // length must fit the format's u32 field.
        if self.log_pending_bytes_max > LOG_PENDING_BYTES_MAX_LIMIT {
            return invalid(
                "log_pending_bytes_max",
                format!("must be at most {LOG_PENDING_BYTES_MAX_LIMIT}"),
            );
        }
        if self.log_segment_bytes < 2 * self.log_pending_bytes_max as u64 {
            return invalid(
                "log_segment_bytes",
                "must be at least twice log_pending_bytes_max".into(),
            );
        }
        if self.log_segment_bytes > LOG_SEGMENT_BYTES_LIMIT {
            return invalid(
                "log_segment_bytes",
                format!("must be at most {LOG_SEGMENT_BYTES_LIMIT}"),
            );
        }
        if self.connections_per_shard_max == 0 || self.inflight_per_connection_max == 0 {
            return invalid(
                "connections_per_shard_max",
                "limits must be at least 1".into(),
            );
        }
        if !(1..=100).contains(&self.preempt_timer_ms) {
            return invalid(
                "preempt_timer_ms",
                "must be 1..=100 (1-5 suits latency)".into(),
            );
        }
        let budget_min = MEMORY_BUDGET_BYTES_PER_SHARD_MIN * u64::from(self.shards);
        if self.memory_budget_bytes < budget_min {
            return invalid(
                "memory_budget",
                format!(
                    "{} is too small: at least {} per shard ({} for {} shards)",
                    size::format_size(self.memory_budget_bytes),
                    size::format_size(MEMORY_BUDGET_BYTES_PER_SHARD_MIN),
                    size::format_size(budget_min),
                    self.shards
                ),
            );
        }
        if let Some(resp) = self.resp_listen {
            self.validate_resp_listen(resp)
                .or_else(|why| invalid("resp_listen", why))?;
        }
        Ok(())
    }

    /// The RESP port needs a fixed port (every shard binds it) that none of the native
    /// ports uses on an overlapping address.
    fn validate_resp_listen(&self, resp: SocketAddr) -> Result<(), String> {
        if resp.port() == 0 {
            return Err("a fixed port is needed (every shard binds it)".into());
        }
        let overlaps = resp.ip() == self.listen.ip()
            || resp.ip().is_unspecified()
            || self.listen.ip().is_unspecified();
        let native = self.listen.port()..=self.shard_port(self.shards - 1);
        if overlaps && native.contains(&resp.port()) {
            return Err(format!(
                "port {} is taken by the native protocol (ports {}-{}: listen and one per \
                 shard); choose another, e.g. 6379",
                resp.port(),
                native.start(),
                native.end()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_durable() {
        let c = NodeConfig::default();
        c.validate().unwrap();
        assert!(c.durable_writes, "durable writes must be the default");
        assert_eq!(c.shard_port(0), c.listen.port() + 1);
    }

    #[test]
    fn file_settings_override_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "listen = \"127.0.0.9:9000\"\nshards = 3\ndurable_writes = false\nplacement = \"unbound\"\n").unwrap();
        let c = NodeConfig::from_file(&path).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.9:9000");
        assert_eq!(c.shards, 3);
        assert!(!c.durable_writes);
        assert_eq!(c.placement, PlacementSetting::Unbound);
        assert_eq!(
            c.key_bytes_max, KEY_BYTES_MAX_DEFAULT,
            "unset keys keep defaults"
        );
        assert_eq!(c.resp_listen, None, "the RESP port is off unless asked for");
        std::fs::write(&path, "resp_listen = \"127.0.0.9:6380\"\n").unwrap();
        let c = NodeConfig::from_file(&path).unwrap();
        assert_eq!(c.resp_listen, Some("127.0.0.9:6380".parse().unwrap()));
        c.validate().unwrap();
        assert_eq!(c.listen_addrs().last(), c.resp_listen.as_ref());
        std::fs::write(&path, "shardz = 3\n").unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("shardz"),
            "error should name the bad key: {err}"
        );
    }

    #[test]
    fn invalid_settings_name_the_field() {
        type Breaker = fn(&mut NodeConfig);
        let cases: [(&str, Breaker); 9] = [
            ("shards", |c| c.shards = 0),
            ("partitions", |c| c.partitions = 1000),
            ("frame_bytes_max", |c| c.frame_bytes_max = 1024),
            ("log_segment_bytes", |c| c.log_segment_bytes = 1 << 20),
            ("log_segment_bytes", |c| c.log_segment_bytes = 2 << 30),
            ("preempt_timer_ms", |c| c.preempt_timer_ms = 0),
            ("resp_listen", |c| {
                c.resp_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            }),
            ("resp_listen", |c| c.resp_listen = Some(c.listen)),
            ("resp_listen", |c| {
                let last_shard = c.shard_port(c.shards - 1);
                c.resp_listen = Some(SocketAddr::from(([0, 0, 0, 0], last_shard)));
            }),
        ];
        for (field, break_it) in cases {
            let mut c = NodeConfig::default();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { field: f, .. } if f == field),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn replicas_per_datacenter_come_from_the_file_and_set_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        let file = "shards = 1\n[cluster]\npeer_listen = \"127.0.0.9:7900\"\ndc = \"east\"\n\
                    write_quorum = 3\n[cluster.replicas_per_dc]\neast = 2\nwest = 1\n";
        std::fs::write(&path, file).unwrap();
        let c = NodeConfig::from_file(&path).unwrap();
        c.validate().unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.n(), 3);
        let replication = cluster.replication().unwrap();
        let counts = replication.per_dc_counts().unwrap();
        assert_eq!(counts, &[("east".to_string(), 2), ("west".to_string(), 1)]);
        assert_eq!(cluster.tombstone_grace_secs, 3_600, "unset: core's default");

        type Breaker = fn(&mut ClusterSettings);
        let cases: [(&str, Breaker); 4] = [
            ("replicas_per_dc", |s| {
                s.replicas_per_dc = [("east".to_string(), 0)].into();
            }),
            ("replicas_per_dc", |s| {
                s.replicas_per_dc = [("east".to_string(), 40)].into();
            }),
            ("write_quorum", |s| s.write_quorum = 4),
            ("tombstone_grace_secs", |s| s.tombstone_grace_secs = 0),
        ];
        for (field, break_it) in cases {
            let mut c = c.clone();
            break_it(c.cluster.as_mut().unwrap());
            let err = c.validate().unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { field: f, .. } if f == field),
                "{field}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod budget_tests;
