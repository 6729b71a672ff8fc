//! Starting and stopping one shard on its executor.
//!
//! Order matters: the engine recovers its log before any listener opens, so no request ever
//! sees a partially recovered shard; the shard reports ready (or its error) to the node only
//! after its listeners are bound; on shutdown it stops accepting, then closes the log so
//! every buffered record is durable before the executor ends.
//!
//! Listeners: the node's main port and the RESP port (if configured) are bound by every shard
//! (glommio binds with SO_REUSEPORT, so the kernel spreads connections over shards); each
//! shard's own port only by that shard. Connections of every kind count against one
//! per-shard limit.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use glommio::net::TcpListener;
use tessera_core::node::PeerMessage;
use tessera_core::{NodeId, ShardMap};
use tessera_io::fs::RealFs;
use tessera_io::log_writer::LogConfig;
use tessera_io::MeshEndpoint;
use tessera_schema::TopologyInfo;

use super::conn::{serve, ConnLimits};
use super::resp::{self, RespShared};
use super::route::{Forward, Reply, ShardCtx};
use super::turns::Turns;
use crate::cluster::driver::{self, Driver};
use crate::cluster::peers::serve_peers;
use crate::config::NodeConfig;
use crate::constants::{CONNECTION_WRITE_TIMEOUT_SECS, SHUTDOWN_POLL_MS};
use crate::engine::{Engine, EngineLimits};
use crate::lsm::LsmOptions;
use crate::service::{RequestLimits, Service};

/// What a shard needs to start; built on the main thread and moved into the executor.
#[derive(Debug)]
pub struct ShardSetup {
    /// This shard.
    pub shard: u16,
    /// The node's configuration.
    pub config: Arc<NodeConfig>,
    /// The node's id (the actor in version vectors).
    pub node: NodeId,
    /// Partition → shard.
    pub shard_map: ShardMap,
    /// Answer to topology requests.
    pub topology: TopologyInfo,
    /// This shard's end of the request mesh.
    pub forwards: MeshEndpoint<Forward>,
    /// This shard's end of the reply mesh.
    pub replies: MeshEndpoint<Reply>,
    /// Where to report readiness.
    pub ready: Sender<Result<ShardReady, String>>,
    /// Set by the node to stop every shard.
    pub shutdown: Arc<AtomicBool>,
}

/// What a shard reports once it serves.
#[derive(Clone, Debug)]
pub struct ShardReady {
    /// The shard.
    pub shard: u16,
    /// Records replayed from its log.
    pub recovered_records: u64,
    /// Bytes of torn tail dropped, if any.
    pub torn_tail_bytes: Option<usize>,
}

/// Runs a shard until the node shuts down. Errors before readiness are reported on `ready`.
pub async fn run_shard(mut setup: ShardSetup) {
    // The sender is dropped as soon as readiness is reported, so that a node waiting for its
    // shards sees a disconnect (not a hang) if a shard dies before reporting.
    let (placeholder, _) = std::sync::mpsc::channel();
    let mut ready = Some(std::mem::replace(&mut setup.ready, placeholder));
    let shard = setup.shard;
    if let Err(e) = run(setup, &mut ready).await {
        tracing::error!(shard, error = %e, "shard stopped");
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(format!("shard {shard}: {e}")));
        }
    }
}

async fn run(
    setup: ShardSetup,
    ready: &mut Option<Sender<Result<ShardReady, String>>>,
) -> Result<(), String> {
    let config = setup.config.clone();
    let shard_dir = config.data_dir.join(format!("shard-{}", setup.shard));
    let budget = config.shard_budget();
    let limits = EngineLimits {
        // The memtable share holds the active memtable and the one being flushed.
        memtable_bytes_max: usize::try_from(budget.memtable_bytes / 2).unwrap_or(usize::MAX),
        memory_budget_bytes: budget.memtable_bytes + budget.cache_bytes,
        log: LogConfig {
            segment_bytes: config.log_segment_bytes,
            pending_bytes_max: config.log_pending_bytes_max,
        },
        lsm: LsmOptions {
            cache_bytes: budget.cache_bytes,
            ..LsmOptions::default()
        },
    };
    let (engine, report) = Engine::open(Rc::new(RealFs), &shard_dir, setup.node, limits)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        shard = setup.shard,
        records = report.records,
        segments = report.segments.len(),
        "recovered commit log"
    );
    let cluster = match &config.cluster {
        Some(settings) => {
            let partitions =
                tessera_core::PartitionCount::new(config.partitions).map_err(|e| e.to_string())?;
            // Clients reach the node on its main port; a wildcard listen address is advertised
            // with the peer address's host, which peers (and so clients) can reach.
            let client_addr = match config.listen.ip().is_unspecified() {
                true => std::net::SocketAddr::new(settings.peer_listen.ip(), config.listen.port()),
                false => config.listen,
            };
            let driver = Driver::open(
                &engine,
                setup.node,
                partitions,
                settings.clone(),
                client_addr,
            )
            .await
            .map_err(|e| format!("cannot recover the cluster node's state: {e}"))?;
            Some(driver)
        }
        None => None,
    };
    let service = Service::new(
        engine,
        RequestLimits {
            key_bytes_max: config.key_bytes_max,
            value_bytes_max: config.value_bytes_max,
            durable_by_default: config.durable_writes,
        },
    );
    tracing::debug!(shard = setup.shard, "connecting the shard mesh");
    let (forwards, replies) = match futures::join!(
        setup.forwards.connect(&setup.shutdown),
        setup.replies.connect(&setup.shutdown)
    ) {
        (Ok(forwards), Ok(replies)) => (forwards, replies),
        (Err(abandoned), _) | (_, Err(abandoned)) => {
            // Nothing was served: close the log so every recovered record stays durable.
            service.engine().close().await.map_err(|e| e.to_string())?;
            return Err(abandoned.to_string());
        }
    };
    tracing::debug!(shard = setup.shard, "shard mesh connected");
    let ctx = Rc::new(ShardCtx {
        shard: setup.shard,
        shard_map: setup.shard_map,
        topology: setup.topology,
        service,
        forwards,
        replies,
        waiting: RefCell::new(HashMap::new()),
        next_slot: Cell::new(0),
        send_turns: (0..config.shards).map(|_| Turns::default()).collect(),
        cluster,
    });
    let main = TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let own_addr = std::net::SocketAddr::new(config.listen.ip(), config.shard_port(setup.shard));
    let own =
        TcpListener::bind(own_addr).map_err(|e| format!("cannot listen on {own_addr}: {e}"))?;
    let native = Front::Native(ConnLimits {
        frame_bytes_max: config.frame_bytes_max,
        inflight_max: config.inflight_per_connection_max,
    });
    let mut listeners = vec![(main, native.clone()), (own, native)];
    if let Some(resp_addr) = config.resp_listen {
        let resp = TcpListener::bind(resp_addr)
            .map_err(|e| format!("cannot listen on {resp_addr} (RESP): {e}"))?;
        let shared = RespShared::new(&config, setup.shard, resp_addr.port());
        listeners.push((resp, Front::Resp(Rc::new(shared))));
    }
    let connections = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    for (listener, front) in listeners {
        let accept = accept_loop(
            listener,
            ctx.clone(),
            front,
            connections.clone(),
            config.connections_per_shard_max,
        );
        tasks.push(glommio::spawn_local(accept).detach());
    }
    spawn_mesh_tasks(&ctx);
    if let Some(settings) = &config.cluster {
        tasks.extend(start_cluster(&ctx, settings.peer_listen)?);
    }
    tracing::debug!(shard = setup.shard, "listening");
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(ShardReady {
            shard: setup.shard,
            recovered_records: report.records,
            torn_tail_bytes: report.torn_tail.map(|t| t.dropped_bytes),
        }));
    }
    while !setup.shutdown.load(Ordering::Acquire) {
        glommio::timer::sleep(Duration::from_millis(SHUTDOWN_POLL_MS)).await;
    }
    for task in &tasks {
        task.cancel();
    }
    ctx.service
        .engine()
        .close()
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(shard = setup.shard, "shard stopped cleanly");
    Ok(())
}

/// Starts the cluster node's work: its peer listener and its clock.
fn start_cluster(
    ctx: &Rc<ShardCtx>,
    peer_listen: std::net::SocketAddr,
) -> Result<Vec<glommio::task::JoinHandle<()>>, String> {
    let listener = TcpListener::bind(peer_listen)
        .map_err(|e| format!("cannot listen for peers on {peer_listen}: {e}"))?;
    let host = ctx.clone();
    let deliver: Rc<dyn Fn(NodeId, PeerMessage)> =
        Rc::new(move |from, message| driver::deliver(&host, from, message));
    let me = ctx.cluster.as_ref().map_or(NodeId(0), |d| d.id());
    let serve = glommio::spawn_local(serve_peers(listener, me, deliver)).detach();
    let clock = glommio::spawn_local(driver::run(ctx.clone())).detach();
    tracing::info!(node = %ctx.cluster.as_ref().map_or(0, |d| d.id().0), %peer_listen, "cluster node started");
    Ok(vec![serve, clock])
}

/// The protocol a listener speaks.
#[derive(Clone, Debug)]
enum Front {
    /// Tessera's framed flatbuffers protocol.
    Native(ConnLimits),
    /// Redis's RESP2, with this shard's RESP state.
    Resp(Rc<RespShared>),
}

impl Front {
    async fn serve(&self, stream: glommio::net::TcpStream, ctx: Rc<ShardCtx>) {
        match self {
            Front::Native(limits) => serve(stream, ctx, *limits).await,
            Front::Resp(shared) => {
                shared.clients.set(shared.clients.get() + 1);
                resp::serve(stream, ctx, shared.clone()).await;
                shared.clients.set(shared.clients.get() - 1);
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Rc<ShardCtx>,
    front: Front,
    connections: Rc<Cell<usize>>,
    connections_max: usize,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if connections.get() >= connections_max {
            tracing::warn!(
                connections_max,
                "connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(CONNECTION_WRITE_TIMEOUT_SECS)));
        connections.set(connections.get() + 1);
        let (ctx, connections, front) = (ctx.clone(), connections.clone(), front.clone());
        glommio::spawn_local(async move {
            front.serve(stream, ctx).await;
            connections.set(connections.get() - 1);
        })
        .detach();
    }
}

/// Receives forwarded requests (executing each in its own task) and replies to our forwards.
fn spawn_mesh_tasks(ctx: &Rc<ShardCtx>) {
    for (_, receiver) in ctx.forwards.take_receivers() {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let mut receiver = receiver;
            while let Some(fwd) = receiver.next().await {
                let ctx = ctx.clone();
                glommio::spawn_local(async move {
                    let response = ctx.service.execute(fwd.request).await;
                    let reply = Reply {
                        slot: fwd.slot,
                        response,
                    };
                    if ctx
                        .replies
                        .send_to(usize::from(fwd.from), reply)
                        .await
                        .is_err()
                    {
                        tracing::debug!(to = fwd.from, "requesting shard is gone; reply dropped");
                    }
                })
                .detach();
            }
        })
        .detach();
    }
    for (_, receiver) in ctx.replies.take_receivers() {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let mut receiver = receiver;
            while let Some(reply) = receiver.next().await {
                ctx.deliver(reply);
            }
        })
        .detach();
    }
}
