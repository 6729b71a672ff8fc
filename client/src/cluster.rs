//! The cluster-aware client: learns the whole cluster (members, their client addresses and
//! every partition's replicas) from any node, sends each request straight to a node that holds
//! a replica of its key, which then coordinates it without an extra hop, and follows ring and
//! membership changes.
//!
//! Routing: a key's partition is `token_of(keyspace, key)` over the ring's partition count, as
//! the nodes compute it; its replicas come from the ring the nodes read from. A request goes to
//! the first replica believed up (preferring [`ClusterConfig::prefer_dc`]), then to the other
//! replicas, then to any member: any member can coordinate, a replica just saves a hop.
//!
//! Following changes: the routes are fetched again every [`ClusterConfig::refresh_every`], and
//! at once when a node refuses to coordinate (it left or is joining) or cannot be reached. A
//! node that cannot be reached is skipped until the next refresh says it is up.
//!
//! Retries: a read goes on to the next candidate after any failure to reach a node; a write
//! does so only when nothing was sent (the connection could not be made) or the node refused
//! it before applying anything, since a write lost in flight may have been applied.
//!
//! Invariants: the routes are replaced whole, never edited in place; at most one thread
//! refreshes at a time, the others keep using the routes they have.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use tessera_core::{token_of, PartitionCount};
use tessera_schema::{ClusterStatus, Consistency, ErrorCode, NO_REPLICA};

use crate::client::{Client, ClientConfig, Context, Versions};
use crate::error::ClientError;

/// How a [`ClusterClient`] behaves.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Every request's settings, as for a [`Client`].
    pub client: ClientConfig,
    /// Prefer replicas in this datacenter (for local-datacenter quorums, and latency).
    pub prefer_dc: Option<String>,
    /// How often the routes are fetched again.
    pub refresh_every: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            client: ClientConfig::default(),
            prefer_dc: None,
            refresh_every: Duration::from_secs(2),
        }
    }
}

/// What the client knows of the cluster, fetched whole from one node.
#[derive(Debug)]
struct Routes {
    /// The ring version the routes came from.
    epoch: u32,
    partitions: PartitionCount,
    /// Each partition's replicas (member ids), in preference-list order.
    lists: Vec<Vec<u64>>,
    members: HashMap<u64, Member>,
    /// Member ids, in id order: the last resort for any key.
    order: Vec<u64>,
    fetched: Instant,
}

#[derive(Debug)]
struct Member {
    addr: SocketAddr,
    alive: bool,
    dc: String,
}

/// A client of a whole cluster. `Send + Sync`: share it between threads.
#[derive(Debug)]
pub struct ClusterClient {
    config: ClusterConfig,
    seeds: Vec<SocketAddr>,
    routes: RwLock<Arc<Routes>>,
    /// One client per node, connected on first use.
    nodes: Mutex<HashMap<SocketAddr, Arc<Client>>>,
    /// Nodes that could not be reached since the last refresh.
    unreachable: Mutex<Vec<SocketAddr>>,
    refreshing: Mutex<()>,
}

impl ClusterClient {
    /// Connects to any of `seeds` (nodes of the cluster), and learns the cluster from it.
    ///
    /// Errors: the last seed's error if none answers; `Protocol` if the node is not a cluster
    /// member or publishes no routes.
    pub fn connect(seeds: &[SocketAddr], config: ClusterConfig) -> Result<Self, ClientError> {
        let mut last = ClientError::InvalidArgument("no seed addresses given".into());
        for &seed in seeds {
            match fetch_routes(seed, &config.client) {
                Ok(routes) => {
                    return Ok(ClusterClient {
                        config,
                        seeds: seeds.to_vec(),
                        routes: RwLock::new(Arc::new(routes)),
                        nodes: Mutex::new(HashMap::new()),
                        unreachable: Mutex::new(Vec::new()),
                        refreshing: Mutex::new(()),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The ring version the current routes came from.
    pub fn ring_epoch(&self) -> u32 {
        self.routes().epoch
    }

    /// Where a request for `key` goes first: a node holding a replica, believed up.
    pub fn route_of(&self, key: &[u8]) -> Option<SocketAddr> {
        self.candidates(key).first().copied()
    }

    /// Fetches the routes again now, from any member that answers (or a seed).
    pub fn refresh(&self) -> Result<(), ClientError> {
        self.cluster_status().map(drop)
    }

    /// Refreshes unless another thread already is; a failure keeps the old routes.
    fn refresh_in_passing(&self) {
        let _one = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        // Errors are not the request's: it goes on with the routes it has.
        let _ = self.refresh_holding_lock();
    }

    /// The refresh itself, returning the status the routes came from; the caller holds
    /// `refreshing`.
    fn refresh_holding_lock(&self) -> Result<ClusterStatus, ClientError> {
        let routes = self.routes();
        let mut sources: Vec<SocketAddr> = routes
            .order
            .iter()
            .filter_map(|id| routes.members.get(id))
            .filter(|m| m.alive)
            .map(|m| m.addr)
            .collect();
        sources.extend(&self.seeds);
        let mut last = ClientError::InvalidArgument("no node to ask".into());
        for addr in sources {
            match self.node(addr).and_then(|c| c.cluster_status()) {
                Ok(status) => {
                    let fresh = routes_of(&status)?;
                    *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                    lock(&self.unreachable).clear();
                    return Ok(status);
                }
                Err(e) => {
                    self.mark_unreachable(addr);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Reads `key` with the configured consistency.
    pub fn get(&self, key: &[u8]) -> Result<Versions, ClientError> {
        self.get_with(key, self.config.client.consistency)
    }

    /// Reads `key` waiting for the replicas `consistency` asks for (see [`Client::get_with`]).
    pub fn get_with(&self, key: &[u8], consistency: Consistency) -> Result<Versions, ClientError> {
        self.run(key, true, |c| c.get_with(key, consistency))
    }

    /// Writes `value` under `key`, superseding what `context` saw (see [`Client::put`]).
    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
    ) -> Result<Context, ClientError> {
        self.put_with(key, value, context, self.config.client.consistency)
    }

    /// [`ClusterClient::put`] with its own consistency.
    pub fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
        consistency: Consistency,
    ) -> Result<Context, ClientError> {
        self.run(key, false, |c| c.put_with(key, value, context, consistency))
    }

    /// Deletes `key`, superseding what `context` saw.
    pub fn delete(&self, key: &[u8], context: Option<&Context>) -> Result<Context, ClientError> {
        self.delete_with(key, context, self.config.client.consistency)
    }

    /// [`ClusterClient::delete`] with its own consistency.
    pub fn delete_with(
        &self,
        key: &[u8],
        context: Option<&Context>,
        consistency: Consistency,
    ) -> Result<Context, ClientError> {
        self.run(key, false, |c| c.delete_with(key, context, consistency))
    }

    /// The cluster as the first reachable member reports it; the routes are refreshed from
    /// the same answer.
    pub fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        let _one = lock(&self.refreshing);
        self.refresh_holding_lock()
    }

    /// Runs `call` on the key's candidates in order until one answers. A read moves on after
    /// any failure to reach a node; a write only when nothing can have been applied.
    fn run<T>(
        &self,
        key: &[u8],
        idempotent: bool,
        call: impl Fn(&Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if self.routes().fetched.elapsed() >= self.config.refresh_every {
            self.refresh_in_passing();
        }
        let mut last = None;
        for addr in self.candidates(key) {
            let result = self.node(addr).and_then(|c| call(&c));
            match result {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    let unreached = matches!(e, ClientError::Connect { .. })
                        || (idempotent && e.is_retryable() && e.code().is_none());
                    let refused = e.code() == Some(ErrorCode::Unavailable);
                    if unreached {
                        self.mark_unreachable(addr);
                    }
                    if refused {
                        self.refresh_in_passing();
                    }
                    if !(unreached || refused) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("the cluster has no members".into())))
    }

    /// The nodes to try for `key`, best first: its replicas believed up (preferred datacenter
    /// first), the other members believed up, then everyone else.
    fn candidates(&self, key: &[u8]) -> Vec<SocketAddr> {
        let routes = self.routes();
        let unreachable = lock(&self.unreachable).clone();
        let p = routes
            .partitions
            .partition_of(token_of(&self.config.client.keyspace, key));
        let replicas = routes
            .lists
            .get(p.0 as usize)
            .map_or(&[][..], Vec::as_slice);
        let up = |m: &Member| m.alive && !unreachable.contains(&m.addr);
        let local = |m: &Member| {
            self.config
                .prefer_dc
                .as_deref()
                .is_some_and(|dc| m.dc == dc)
        };
        let mut ranked: Vec<(u8, usize, SocketAddr)> = Vec::new();
        let members = replicas
            .iter()
            .chain(routes.order.iter().filter(|id| !replicas.contains(id)));
        for (i, id) in members.enumerate() {
            let Some(m) = routes.members.get(id) else {
                continue;
            };
            let replica = replicas.contains(id);
            let rank = match (up(m), replica, local(m)) {
                (true, true, true) => 0,
                (true, true, false) => 1,
                (true, false, _) => 2,
                (false, true, _) => 3,
                (false, false, _) => 4,
            };
            if !ranked.iter().any(|&(_, _, a)| a == m.addr) {
                ranked.push((rank, i, m.addr));
            }
        }
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, _, addr)| addr).collect()
    }

    fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn mark_unreachable(&self, addr: SocketAddr) {
        let mut unreachable = lock(&self.unreachable);
        if !unreachable.contains(&addr) {
            unreachable.push(addr);
        }
        lock(&self.nodes).remove(&addr);
    }

    /// The client of the node at `addr`, connecting it first if needed.
    fn node(&self, addr: SocketAddr) -> Result<Arc<Client>, ClientError> {
        if let Some(client) = lock(&self.nodes).get(&addr) {
            return Ok(client.clone());
        }
        let client = Arc::new(Client::connect(addr, self.config.client.clone())?);
        lock(&self.nodes).insert(addr, client.clone());
        Ok(client)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn fetch_routes(seed: SocketAddr, config: &ClientConfig) -> Result<Routes, ClientError> {
    routes_of(&Client::connect(seed, config.clone())?.cluster_status()?)
}

/// The routes a node's status describes. Members without a client address (not yet gossiped)
/// are left out; so are partitions' slots the ring leaves empty.
fn routes_of(status: &ClusterStatus) -> Result<Routes, ClientError> {
    let bad = |why: &str| ClientError::Protocol(format!("cannot route by this node: {why}"));
    let n = status.replicas as usize;
    if n == 0 || status.partition_replicas.is_empty() {
        return Err(bad(
            "it reports no partition replicas (is it a cluster member?)",
        ));
    }
    let count = u32::try_from(status.partition_replicas.len() / n).map_err(|_| bad("size"))?;
    let partitions = PartitionCount::new(count).map_err(|e| bad(&e.to_string()))?;
    let lists = status
        .partition_replicas
        .chunks(n)
        .map(|list| {
            list.iter()
                .filter(|&&i| i != NO_REPLICA)
                .filter_map(|&i| status.members.get(usize::from(i)).map(|m| m.id))
                .collect()
        })
        .collect();
    let mut members = HashMap::new();
    for m in &status.members {
        if let Ok(addr) = m.client_addr.parse::<SocketAddr>() {
            let alive = m.alive;
            let dc = m.dc.clone();
            members.insert(m.id, Member { addr, alive, dc });
        }
    }
    let mut order: Vec<u64> = members.keys().copied().collect();
    order.sort_unstable();
    Ok(Routes {
        epoch: status.ring_epoch,
        partitions,
        lists,
        members,
        order,
        fetched: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_schema::ClusterMember;

    fn status() -> ClusterStatus {
        let member = |id: u64, alive: bool, dc: &str| ClusterMember {
            id,
            client_addr: format!("127.0.0.{id}:7000"),
            alive,
            dc: dc.into(),
            ..ClusterMember::default()
        };
        ClusterStatus {
            replicas: 2,
            ring_epoch: 4,
            members: vec![
                member(1, true, "a"),
                member(2, false, "b"),
                member(3, true, "b"),
            ],
            // 2 partitions: [1, 2] and [2, 3] as member indexes [0, 1] and [1, 2].
            partition_replicas: vec![0, 1, 1, 2],
            ..ClusterStatus::default()
        }
    }

    #[test]
    fn routes_follow_the_status() {
        let routes = routes_of(&status()).unwrap();
        assert_eq!(routes.epoch, 4);
        assert_eq!(routes.partitions.get(), 2);
        assert_eq!(routes.lists, vec![vec![1, 2], vec![2, 3]]);
        assert_eq!(routes.order, vec![1, 2, 3]);
        let no_lists = ClusterStatus {
            partition_replicas: Vec::new(),
            ..status()
        };
        assert!(matches!(
            routes_of(&no_lists),
            Err(ClientError::Protocol(_))
        ));
    }

    /// Replicas believed up first (the preferred datacenter's before the others), then other
    /// members, then replicas believed down; an unreachable node is ranked as down.
    #[test]
    fn candidates_rank_live_replicas_first() {
        let client = |prefer_dc: Option<&str>| ClusterClient {
            config: ClusterConfig {
                prefer_dc: prefer_dc.map(str::to_owned),
                ..ClusterConfig::default()
            },
            seeds: Vec::new(),
            routes: RwLock::new(Arc::new(routes_of(&status()).unwrap())),
            nodes: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(Vec::new()),
            refreshing: Mutex::new(()),
        };
        let addr = |id: u64| SocketAddr::from(([127, 0, 0, id as u8], 7000));
        let c = client(None);
        let keyspace = &c.config.client.keyspace;
        let in_partition = |p: u32| {
            (0u32..)
                .map(|i| format!("k{i}").into_bytes())
                .find(|k| c.routes().partitions.partition_of(token_of(keyspace, k)).0 == p)
                .unwrap()
        };
        let (first, second) = (in_partition(0), in_partition(1));
        // Partition 0 is [1, 2] with 2 down; partition 1 is [2, 3].
        assert_eq!(c.candidates(&first), vec![addr(1), addr(3), addr(2)]);
        assert_eq!(c.candidates(&second), vec![addr(3), addr(1), addr(2)]);
        c.mark_unreachable(addr(3));
        assert_eq!(c.candidates(&second), vec![addr(1), addr(2), addr(3)]);
        let b = client(Some("b"));
        let both_up = ClusterStatus {
            members: status()
                .members
                .into_iter()
                .map(|m| ClusterMember { alive: true, ..m })
                .collect(),
            ..status()
        };
        *b.routes.write().unwrap() = Arc::new(routes_of(&both_up).unwrap());
        assert_eq!(b.candidates(&first), vec![addr(2), addr(1), addr(3)]);
        assert_eq!(client(Some("a")).route_of(&first), Some(addr(1)));
    }
}
