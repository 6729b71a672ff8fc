//! The client: topology, routing, request helpers, pipelining and batches.

use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tessera_core::ring::group_by_owner;
use tessera_core::{PartitionCount, ShardId, ShardMap};
use tessera_schema::{
    BatchGetRequest, BatchPutRequest, ClusterStatus, Consistency, DeleteRequest, Durability,
    GetRequest, GetResponse, PutItem, PutRequest, Request, Response, TopologyInfo, WriteResponse,
    BATCH_ITEMS_MAX, CONSISTENCY_REPLICAS_MAX,
};

use crate::connection::{Connection, Wake};
use crate::error::ClientError;

/// Batch requests of one `get_many`/`put_many` call outstanding at once.
const BATCHES_IN_FLIGHT_MAX: usize = 4;
/// Bytes of keys, values and contexts in one batch request: well under the server's default
/// frame limit (4 MiB), so no batch is refused for size.
const BATCH_REQUEST_BYTES_MAX: usize = 1 << 20;
/// Bytes counted per batch item on top of its keys and values (framing, lengths).
const BATCH_ITEM_OVERHEAD_BYTES: usize = 32;

/// Keys in one batch get: its answer (every key's values) must fit the server's answer budget
/// (12 MiB), which 512 keys of the mission's values (under 10 KiB) do.
const GET_BATCH_KEYS_MAX: usize = 512;

/// Splits `indexes` into runs of at most `max_items` items and about `BATCH_REQUEST_BYTES_MAX`
/// bytes (an item larger than that travels alone).
fn chunk_by_size(
    indexes: &[usize],
    max_items: usize,
    size: impl Fn(usize) -> usize,
) -> impl Iterator<Item = &[usize]> {
    let mut rest = indexes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && n < max_items {
            let item = size(rest[n]) + BATCH_ITEM_OVERHEAD_BYTES;
            if n > 0 && bytes + item > BATCH_REQUEST_BYTES_MAX {
                break;
            }
            bytes += item;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// A connection unused for this long is checked for a server that closed it before reuse.
const IDLE_BEFORE_PEEK: Duration = Duration::from_millis(5);

/// How a client behaves.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Keyspace of every request.
    pub keyspace: String,
    /// Whether writes wait for fsync on the server (`Default` follows the server's setting).
    pub durability: Durability,
    /// Replicas every request waits for (`r` for reads, `w` for writes) and whether fallback
    /// nodes may stand in for owners that are down. The default asks for the node's own
    /// settings (its `r` and `w`, sloppy quorum); [`Client::get_with`], [`Client::put_with`]
    /// and [`Client::delete_with`] override it per call. A single node (not in a cluster)
    /// ignores it.
    pub consistency: Consistency,
    /// How long one request may wait for its answer.
    pub request_timeout: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Requests one connection may have in flight.
    pub inflight_per_connection_max: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            keyspace: tessera_core::constants::DEFAULT_KEYSPACE.into(),
            durability: Durability::Default,
            consistency: Consistency::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            inflight_per_connection_max: 4096,
        }
    }
}

/// The opaque causal context of a read: pass it back with a write to supersede what was read.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Context(Vec<u8>);

impl Context {
    /// The context as bytes (to store or send elsewhere).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A context from bytes a read returned earlier.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Whether this is the empty context (a blind write).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The context as lowercase hex, for people and shells.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Context::to_hex`] output.
    pub fn from_hex(hex: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::InvalidArgument(format!("'{hex}' is not a hex context"));
        if !hex.len().is_multiple_of(2) {
            return Err(bad());
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
            .collect::<Result<Vec<u8>, _>>()
            .map(Self)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Context({})", self.to_hex())
    }
}

/// What a read found: every sibling's value (none if the key does not exist or was deleted)
/// and the context to write with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// Live sibling values; more than one means concurrent writes to reconcile.
    pub values: Vec<Vec<u8>>,
    /// Causal context covering every version read.
    pub context: Context,
}

impl Versions {
    /// Whether the key has no live value.
    pub fn is_not_found(&self) -> bool {
        self.values.is_empty()
    }
}

/// An answer still on its way (pipelining): send many, then wait for each.
#[derive(Debug)]
pub struct Pending {
    conn: Arc<Connection>,
    id: u64,
    rx: Receiver<Wake>,
    deadline: Instant,
    timeout: Duration,
}

impl Pending {
    /// Waits for the answer until the request timeout.
    pub fn wait(self) -> Result<Response, ClientError> {
        self.conn
            .wait(self.id, &self.rx, self.deadline, self.timeout)
    }
}

impl Drop for Pending {
    /// A request nobody will wait for stops counting as waiting (answered ones already do).
    fn drop(&mut self) {
        self.conn.abandon(self.id);
    }
}

/// One shard's address and its current connection, replaced when it dies.
#[derive(Debug)]
struct ShardLink {
    addr: SocketAddr,
    conn: Mutex<Option<Arc<Connection>>>,
}

/// A connection to one Tessera node. `Send + Sync`: share it between threads, or give each
/// thread its own for more connections.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    topology: TopologyInfo,
    shard_map: ShardMap,
    links: Vec<ShardLink>,
}

impl Client {
    /// Connects to a node at `addr`, learns its topology and opens one connection per shard
    /// lazily.
    pub fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Self, ClientError> {
        check_consistency(config.consistency)?;
        let addr = resolve(addr)?;
        let bootstrap = Connection::open(
            addr,
            config.connect_timeout,
            config.request_timeout,
            config.inflight_per_connection_max,
        )?;
        let topology = match call(&bootstrap, &Request::Topology, config.request_timeout)? {
            Response::Topology(t) => t,
            other => return Err(unexpected("topology", &other)),
        };
        let shard_map = shard_map_of(&topology)?;
        let links = topology
            .shards
            .iter()
            .map(|s| ShardLink {
                addr: SocketAddr::new(addr.ip(), s.port),
                conn: Mutex::new(None),
            })
            .collect();
        Ok(Self {
            config,
            topology,
            shard_map,
            links,
        })
    }

    /// What the node told us about itself.
    pub fn topology(&self) -> &TopologyInfo {
        &self.topology
    }

    /// The node's partition → shard table, as learned at connect.
    pub fn shard_map(&self) -> &ShardMap {
        &self.shard_map
    }

    /// The shard that owns `key`.
    pub fn shard_of(&self, key: &[u8]) -> u16 {
        self.shard_map.shard_of_key(&self.config.keyspace, key).0
    }

    /// Reads `key`: all sibling values and the context, with the configured
    /// [`ClientConfig::consistency`].
    pub fn get(&self, key: &[u8]) -> Result<Versions, ClientError> {
        self.get_with(key, self.config.consistency)
    }

    /// Reads `key` waiting for the replicas `consistency` asks for (its `replicas` is `r`; 0
    /// means the node's default). The answer merges every replica that answered.
    ///
    /// For example, with `n = 3`, `Consistency::replicas(3).strict()` waits for every replica
    /// of the key's preference list: the answer merges every version any of them holds, and
    /// fails with [`ErrorCode::QuorumNotReached`](crate::ErrorCode) while one of them is down.
    /// `Consistency::replicas(1)` answers from the first replica that answers (fastest, may
    /// be stale). Asking more replicas than the key has fails with `BadRequest`, saying how
    /// many there are.
    pub fn get_with(&self, key: &[u8], consistency: Consistency) -> Result<Versions, ClientError> {
        check_consistency(consistency)?;
        let request = self.get_request(key, consistency);
        match self.request_idempotent(self.shard_of(key), &request)? {
            Response::Get(g) => Ok(versions(g)),
            other => Err(answer_error("get", other)),
        }
    }

    /// Writes `value`; with `context` it supersedes what that read saw, without it is a blind
    /// write that becomes a sibling of existing values. Returns the key's new context. Uses
    /// the configured [`ClientConfig::consistency`].
    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
    ) -> Result<Context, ClientError> {
        self.put_with(key, value, context, self.config.consistency)
    }

    /// Like [`Client::put`], acknowledged once the replicas `consistency` asks for have the
    /// write (its `replicas` is `w`; 0 means the node's default).
    ///
    /// For example, with `n = 3`, `Consistency::replicas(3).strict()` returns only once all
    /// three owners of the key hold the write, and fails with
    /// [`ErrorCode::QuorumNotReached`](crate::ErrorCode) while one of them is down (the write
    /// may still have reached the others). `Consistency::replicas(3).sloppy()` succeeds then
    /// too: a fallback node holds the down owner's copy as a hint and hands it over when the
    /// owner is back. Asking more replicas than the key has fails with `BadRequest`.
    pub fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
        consistency: Consistency,
    ) -> Result<Context, ClientError> {
        check_consistency(consistency)?;
        let request = self.put_request(key, value, context, consistency);
        match self.send_to(self.shard_of(key), &request)?.wait()? {
            Response::Put(w) => Ok(Context(w.context)),
            other => Err(answer_error("put", other)),
        }
    }

    /// Deletes `key` (writes a tombstone superseding what `context` saw), with the configured
    /// [`ClientConfig::consistency`].
    pub fn delete(&self, key: &[u8], context: Option<&Context>) -> Result<Context, ClientError> {
        self.delete_with(key, context, self.config.consistency)
    }

    /// Like [`Client::delete`], acknowledged once the replicas `consistency` asks for hold the
    /// tombstone (its `replicas` is `w`; 0 means the node's default), as for
    /// [`Client::put_with`].
    pub fn delete_with(
        &self,
        key: &[u8],
        context: Option<&Context>,
        consistency: Consistency,
    ) -> Result<Context, ClientError> {
        check_consistency(consistency)?;
        let request = Request::Delete(DeleteRequest {
            keyspace: self.config.keyspace.clone(),
            key: key.to_vec(),
            context: context.map(|c| c.0.clone()).unwrap_or_default(),
            durability: self.config.durability,
            overwrite: false,
            consistency,
        });
        match self.send_to(self.shard_of(key), &request)?.wait()? {
            Response::Delete(w) => Ok(Context(w.context)),
            other => Err(answer_error("delete", other)),
        }
    }

    /// Checks that every shard answers; returns the slowest round trip.
    pub fn ping(&self) -> Result<Duration, ClientError> {
        let mut slowest = Duration::ZERO;
        for shard in 0..self.links.len() {
            let start = Instant::now();
            match self.request_idempotent(shard as u16, &Request::Ping(Vec::new()))? {
                Response::Pong(_) => slowest = slowest.max(start.elapsed()),
                other => return Err(unexpected("pong", &other)),
            }
        }
        Ok(slowest)
    }

    /// The cluster as the node this client connected to sees it: members, their health and
    /// ownership, and partition transfers in progress. A node that is not a cluster member
    /// answers with an error that says so.
    pub fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        match self.request_idempotent(0, &Request::ClusterStatus)? {
            Response::ClusterStatus(status) => Ok(*status),
            other => Err(answer_error("cluster status", other)),
        }
    }

    /// Asks the node this client connected to to leave the cluster: it hands its partitions
    /// to the nodes that take them over, then shows `Left`. Returns its status right after.
    /// Asking twice is harmless.
    pub fn leave(&self) -> Result<ClusterStatus, ClientError> {
        match self.request_idempotent(0, &Request::Leave)? {
            Response::ClusterStatus(status) => Ok(*status),
            other => Err(answer_error("cluster status", other)),
        }
    }

    /// Asks the cluster, through the node this client connected to, to remove member `node`:
    /// a node gone for good (a lost machine, or one whose data directory was wiped, which
    /// comes back under a new id). Its partitions are copied again from the surviving
    /// replicas. Refused with [`ErrorCode::BadRequest`](crate::ErrorCode::BadRequest) for a
    /// node that is alive or not a member. Returns the node's status right after; asking
    /// twice is harmless.
    pub fn remove_node(&self, node: u64) -> Result<ClusterStatus, ClientError> {
        match self.request_idempotent(0, &Request::Remove { node })? {
            Response::ClusterStatus(status) => Ok(*status),
            other => Err(answer_error("cluster status", other)),
        }
    }

    /// Starts a get without waiting (pipelining).
    pub fn get_async(&self, key: &[u8]) -> Result<Pending, ClientError> {
        let request = self.get_request(key, self.config.consistency);
        self.send_to(self.shard_of(key), &request)
    }

    /// Starts a put without waiting (pipelining).
    pub fn put_async(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
    ) -> Result<Pending, ClientError> {
        let request = self.put_request(key, value, context, self.config.consistency);
        self.send_to(self.shard_of(key), &request)
    }

    /// Reads many keys at once: batches per owning shard, a few in flight at a time. Answers
    /// come back in the order of `keys`, each on its own.
    pub fn get_many(
        &self,
        keys: &[&[u8]],
    ) -> Result<Vec<Result<Versions, ClientError>>, ClientError> {
        let groups = group_by_owner(keys.iter().map(|k| self.shard_of(k)));
        let batches = groups.iter().flat_map(|(shard, indexes)| {
            chunk_by_size(indexes, GET_BATCH_KEYS_MAX, |i| keys[i].len()).map(|chunk| {
                let request = Request::BatchGet(BatchGetRequest {
                    keyspace: self.config.keyspace.clone(),
                    keys: chunk.iter().map(|&i| keys[i].to_vec()).collect(),
                    consistency: self.config.consistency,
                });
                (*shard, chunk, request)
            })
        });
        let mut out: Vec<Option<Result<Versions, ClientError>>> = vec![None; keys.len()];
        self.run_batches(batches, |chunk, response| match response {
            Response::BatchGet(items) if items.len() == chunk.len() => {
                for (&i, item) in chunk.iter().zip(items) {
                    out[i] = Some(item.map(versions).map_err(ClientError::Server));
                }
                Ok(())
            }
            other => Err(answer_error("batch get", other)),
        })?;
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(missing())))
            .collect())
    }

    /// Writes many pairs at once (each with its optional context): batches per owning
    /// shard, a few in flight at a time. Answers come back in the order of `items`.
    pub fn put_many(
        &self,
        items: &[(&[u8], &[u8], Option<&Context>)],
    ) -> Result<Vec<Result<Context, ClientError>>, ClientError> {
        let groups = group_by_owner(items.iter().map(|(k, _, _)| self.shard_of(k)));
        let item_bytes = |i: usize| {
            let (key, value, context) = items[i];
            key.len() + value.len() + context.map_or(0, |c| c.0.len())
        };
        let batches = groups.iter().flat_map(|(shard, indexes)| {
            chunk_by_size(indexes, BATCH_ITEMS_MAX, item_bytes).map(|chunk| {
                let request = Request::BatchPut(BatchPutRequest {
                    keyspace: self.config.keyspace.clone(),
                    items: chunk
                        .iter()
                        .map(|&i| PutItem {
                            key: items[i].0.to_vec(),
                            value: items[i].1.to_vec(),
                            context: items[i].2.map(|c| c.0.clone()).unwrap_or_default(),
                        })
                        .collect(),
                    durability: self.config.durability,
                    overwrite: false,
                    consistency: self.config.consistency,
                });
                (*shard, chunk, request)
            })
        });
        let mut out: Vec<Option<Result<Context, ClientError>>> = vec![None; items.len()];
        self.run_batches(batches, |chunk, response| match response {
            Response::BatchPut(results) if results.len() == chunk.len() => {
                for (&i, r) in chunk.iter().zip(results) {
                    out[i] = Some(
                        r.map(|w: WriteResponse| Context(w.context))
                            .map_err(ClientError::Server),
                    );
                }
                Ok(())
            }
            other => Err(answer_error("batch put", other)),
        })?;
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(missing())))
            .collect())
    }

    /// Sends batch requests keeping at most `BATCHES_IN_FLIGHT_MAX` outstanding, handing each
    /// answer to `take` in order. Bounding them matters with no reader thread: a caller that
    /// only sends reads nothing, and a server whose answers go unread stops reading requests.
    fn run_batches<'a>(
        &self,
        batches: impl Iterator<Item = (u16, &'a [usize], Request)>,
        mut take: impl FnMut(&'a [usize], Response) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let mut in_flight: VecDeque<(&'a [usize], Pending)> = VecDeque::new();
        for (shard, chunk, request) in batches {
            if in_flight.len() >= BATCHES_IN_FLIGHT_MAX {
                if let Some((done, pending)) = in_flight.pop_front() {
                    take(done, pending.wait()?)?;
                }
            }
            in_flight.push_back((chunk, self.send_to(shard, &request)?));
        }
        while let Some((done, pending)) = in_flight.pop_front() {
            take(done, pending.wait()?)?;
        }
        Ok(())
    }

    /// Sends any request to a shard without waiting for the answer.
    pub fn send_to(&self, shard: u16, request: &Request) -> Result<Pending, ClientError> {
        let link = self
            .links
            .get(usize::from(shard))
            .ok_or_else(|| ClientError::InvalidArgument(format!("no shard {shard}")))?;
        let conn = self.connection(link)?;
        let (id, rx) = conn.send(request)?;
        Ok(Pending {
            conn,
            id,
            rx,
            deadline: Instant::now() + self.config.request_timeout,
            timeout: self.config.request_timeout,
        })
    }

    /// Reads may be retried once on a fresh connection when the old one broke.
    fn request_idempotent(&self, shard: u16, request: &Request) -> Result<Response, ClientError> {
        match self.send_to(shard, request).and_then(Pending::wait) {
            Err(ClientError::ConnectionLost { .. }) => self.send_to(shard, request)?.wait(),
            other => other,
        }
    }

    /// The shard's live connection, reconnecting if the last one died.
    fn connection(&self, link: &ShardLink) -> Result<Arc<Connection>, ClientError> {
        let mut slot = link
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An idle connection may have been closed by a server that restarted meanwhile (with
        // requests in flight, their reader finds out by itself).
        let usable = |c: &&Arc<Connection>| {
            c.is_alive() && !(c.is_idle_for(IDLE_BEFORE_PEEK) && c.peer_closed())
        };
        if let Some(conn) = slot.as_ref().filter(usable) {
            return Ok(conn.clone());
        }
        let conn = Connection::open(
            link.addr,
            self.config.connect_timeout,
            self.config.request_timeout,
            self.config.inflight_per_connection_max,
        )?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    fn get_request(&self, key: &[u8], consistency: Consistency) -> Request {
        Request::Get(GetRequest {
            keyspace: self.config.keyspace.clone(),
            key: key.to_vec(),
            consistency,
        })
    }

    fn put_request(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
        consistency: Consistency,
    ) -> Request {
        Request::Put(PutRequest {
            keyspace: self.config.keyspace.clone(),
            key: key.to_vec(),
            value: value.to_vec(),
            context: context.map(|c| c.0.clone()).unwrap_or_default(),
            durability: self.config.durability,
            overwrite: false,
            consistency,
        })
    }
}

/// Refuses, before anything is sent, more replicas than any key can have: the node would refuse
/// the request's frame and close the connection, failing every other request on it.
fn check_consistency(consistency: Consistency) -> Result<(), ClientError> {
    if usize::from(consistency.replicas) > CONSISTENCY_REPLICAS_MAX {
        return Err(ClientError::InvalidArgument(format!(
            "{} replicas asked for, but no key has more than {CONSISTENCY_REPLICAS_MAX}",
            consistency.replicas
        )));
    }
    Ok(())
}

fn resolve(addr: impl ToSocketAddrs) -> Result<SocketAddr, ClientError> {
    let mut addrs = addr
        .to_socket_addrs()
        .map_err(|e| ClientError::InvalidArgument(format!("bad address: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| ClientError::InvalidArgument("the address resolves to nothing".into()))
}

fn call(
    conn: &Arc<Connection>,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let (id, rx) = conn.send(request)?;
    let pending = Pending {
        conn: conn.clone(),
        id,
        rx,
        deadline: Instant::now() + timeout,
        timeout,
    };
    pending.wait()
}

fn shard_map_of(t: &TopologyInfo) -> Result<ShardMap, ClientError> {
    let bad = |e: tessera_core::CoreError| {
        ClientError::Protocol(format!("server published an invalid topology: {e}"))
    };
    let partitions = PartitionCount::new(t.partitions).map_err(bad)?;
    let shards = u16::try_from(t.shards.len())
        .map_err(|_| ClientError::Protocol("too many shards".into()))?;
    let table = t.partition_shard.iter().map(|&s| ShardId(s)).collect();
    ShardMap::from_table(partitions, shards, table).map_err(bad)
}

fn versions(g: GetResponse) -> Versions {
    Versions {
        values: g.values,
        context: Context(g.context),
    }
}

fn answer_error(what: &str, response: Response) -> ClientError {
    match response {
        Response::Error(e) => ClientError::Server(e),
        other => unexpected(what, &other),
    }
}

fn unexpected(what: &str, response: &Response) -> ClientError {
    ClientError::Protocol(format!("expected a {what} answer, got {response:?}"))
}

fn missing() -> ClientError {
    ClientError::Protocol("the server left a batch item unanswered".into())
}
