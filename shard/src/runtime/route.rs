//! Routing: a request goes to the shard that owns its key's partition. Requests for this
//! shard run here; others cross the mesh as a [`Forward`] and come back as a [`Reply`].
//! A batch is split by owning shard, its parts run concurrently, and the answers are put back
//! in the caller's order.
//!
//! Order: requests that a shard starts in some order reach their owner in that order (local
//! ones run at once on their first poll; forwards to one shard leave in the order they were
//! made, see `turns.rs`, and the owner starts them in arrival order). The RESP front door
//! relies on this to keep a connection's pipelined writes of one key in command order.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::join_all;
use tessera_core::ring::group_by_owner;
use tessera_core::ShardMap;
use tessera_io::mesh::ConnectedMesh;
use tessera_schema::{
    BatchGetRequest, BatchPutRequest, Request, Response, TopologyInfo, WireError,
};

use super::turns::Turns;
use crate::error::ShardError;
use crate::service::{answer_value_bytes, check_answer_size, get_response, Service};

/// The answer to a cluster request on a node that is not a cluster member.
fn not_a_member() -> WireError {
    WireError::bad_request(
        "this node is not a cluster member (it was started without --peer-listen or --seeds)",
    )
}

/// A request crossing to its owning shard.
#[derive(Debug)]
pub struct Forward {
    /// Shard to answer.
    pub from: u16,
    /// Caller's slot for the answer.
    pub slot: u64,
    /// The request (all its keys belong to the receiver).
    pub request: Request,
}

/// The answer to a [`Forward`].
#[derive(Debug)]
pub struct Reply {
    /// Slot named by the forward.
    pub slot: u64,
    /// The answer.
    pub response: Response,
}

/// Everything a shard's tasks share.
#[derive(Debug)]
pub struct ShardCtx {
    /// This shard.
    pub shard: u16,
    /// Partition → shard.
    pub shard_map: ShardMap,
    /// Answer to topology requests.
    pub topology: TopologyInfo,
    /// Local execution.
    pub service: Service,
    /// Requests to other shards.
    pub forwards: ConnectedMesh<Forward>,
    /// Answers to other shards.
    pub replies: ConnectedMesh<Reply>,
    /// Forwards waiting for their answer, by slot.
    pub waiting: RefCell<HashMap<u64, oneshot::Sender<Response>>>,
    /// Next forward slot.
    pub next_slot: Cell<u64>,
    /// Turns to send to each shard, so forwards leave in the order they were made.
    pub send_turns: Vec<Turns>,
    /// The cluster node, when this node is a cluster member: requests then go through it.
    pub cluster: Option<crate::cluster::driver::Driver>,
}

impl ShardCtx {
    /// Executes `request` wherever its keys live.
    pub async fn execute(self: &Rc<Self>, request: Request) -> Response {
        if self.cluster.is_some() {
            return self.execute_clustered(request).await;
        }
        match request {
            Request::Get(ref r) => {
                self.on_owner(self.owner(&r.keyspace, &r.key), request)
                    .await
            }
            Request::Put(ref r) => {
                self.on_owner(self.owner(&r.keyspace, &r.key), request)
                    .await
            }
            Request::Delete(ref r) => {
                self.on_owner(self.owner(&r.keyspace, &r.key), request)
                    .await
            }
            Request::BatchGet(r) => self.batch_get(r).await,
            Request::BatchPut(r) => self.batch_put(r).await,
            Request::Ping(payload) => Response::Pong(payload),
            Request::Topology => Response::Topology(self.topology.clone()),
            Request::ClusterStatus | Request::Leave | Request::Remove { .. } => {
                Response::Error(not_a_member())
            }
        }
    }

    /// The answer if `request` can be answered without waiting (a local get answered from
    /// memory, or a ping).
    pub fn execute_now(&self, request: &Request) -> Option<Response> {
        match request {
            Request::Get(r) if self.cluster.is_none() && self.owns(&r.keyspace, &r.key) => Some(
                self.service
                    .read_now(&r.keyspace, &r.key, get_response)?
                    .map_or_else(|e| Response::Error(e.to_wire()), Response::Get),
            ),
            Request::Ping(payload) => Some(Response::Pong(payload.clone())),
            Request::Topology => Some(Response::Topology(self.topology.clone())),
            _ => None,
        }
    }

    /// Whether this shard owns `key` (so a read of it can be answered here, without waiting).
    pub fn owns(&self, keyspace: &str, key: &[u8]) -> bool {
        self.owner(keyspace, key) == self.shard
    }

    fn owner(&self, keyspace: &str, key: &[u8]) -> u16 {
        self.shard_map.shard_of_key(keyspace, key).0
    }

    async fn on_owner(self: &Rc<Self>, owner: u16, request: Request) -> Response {
        if owner == self.shard {
            self.service.execute(request).await
        } else {
            self.forward(owner, request).await
        }
    }

    /// Sends `request` to shard `to` and waits for its answer.
    async fn forward(self: &Rc<Self>, to: u16, request: Request) -> Response {
        let slot = self.next_slot.get();
        self.next_slot.set(slot + 1);
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(slot, tx);
        let msg = Forward {
            from: self.shard,
            slot,
            request,
        };
        let sent = {
            // The turn is taken on this future's first poll, before anything can wait, and
            // held only while sending: forwards made in one order leave in that order even
            // when the channel is full (see `turns.rs`).
            let _turn = match self.send_turns.get(usize::from(to)) {
                Some(turns) => Some(turns.take().await),
                None => None,
            };
            self.forwards.send_to(usize::from(to), msg).await
        };
        if sent.is_err() {
            self.waiting.borrow_mut().remove(&slot);
            return Response::Error(ShardError::ShardUnavailable(to).to_wire());
        }
        rx.await
            .unwrap_or_else(|_| Response::Error(ShardError::ShardUnavailable(to).to_wire()))
    }

    /// Delivers an answer from another shard to the forward waiting for it.
    pub fn deliver(&self, reply: Reply) {
        if let Some(tx) = self.waiting.borrow_mut().remove(&reply.slot) {
            // The requester may have gone away (connection closed); nothing to do then.
            let _ = tx.send(reply.response);
        }
    }

    async fn batch_get(self: &Rc<Self>, r: BatchGetRequest) -> Response {
        let owners = r.keys.iter().map(|k| self.owner(&r.keyspace, k));
        let part = |indexes: &[usize]| {
            Request::BatchGet(BatchGetRequest {
                keyspace: r.keyspace.clone(),
                keys: indexes.iter().map(|&i| r.keys[i].clone()).collect(),
                consistency: r.consistency,
            })
        };
        let items = self
            .scatter(owners, part, |answer| match answer {
                Response::BatchGet(items) => Ok(items),
                other => Err(other),
            })
            .await;
        // Each shard checked its part; the parts together must fit one answer too.
        match check_answer_size(answer_value_bytes(&items)) {
            Ok(()) => Response::BatchGet(items),
            Err(e) => Response::Error(e.to_wire()),
        }
    }

    async fn batch_put(self: &Rc<Self>, r: BatchPutRequest) -> Response {
        let owners = r.items.iter().map(|it| self.owner(&r.keyspace, &it.key));
        let part = |indexes: &[usize]| {
            Request::BatchPut(BatchPutRequest {
                keyspace: r.keyspace.clone(),
                items: indexes.iter().map(|&i| r.items[i].clone()).collect(),
                durability: r.durability,
                overwrite: r.overwrite,
                consistency: r.consistency,
            })
        };
        let items = self
            .scatter(owners, part, |answer| match answer {
                Response::BatchPut(items) => Ok(items),
                other => Err(other),
            })
            .await;
        Response::BatchPut(items)
    }

    /// Splits a batch by owning shard, runs the parts concurrently (locally or by mesh), and
    /// puts the items back in the caller's order. A part answered with an error (or with the
    /// wrong message or count) gives that error to each of its items.
    async fn scatter<T>(
        self: &Rc<Self>,
        owners: impl Iterator<Item = u16>,
        part: impl Fn(&[usize]) -> Request,
        items_of: impl Fn(Response) -> Result<Vec<Result<T, WireError>>, Response>,
    ) -> Vec<Result<T, WireError>> {
        let groups = group_by_owner(owners);
        let count = groups.iter().map(|(_, indexes)| indexes.len()).sum();
        let answers = join_all(
            groups
                .iter()
                .map(|(shard, indexes)| self.on_owner(*shard, part(indexes))),
        )
        .await;
        let mut out: Vec<Option<Result<T, WireError>>> = (0..count).map(|_| None).collect();
        for ((_, indexes), answer) in groups.iter().zip(answers) {
            match items_of(answer) {
                Ok(items) if items.len() == indexes.len() => {
                    for (&i, item) in indexes.iter().zip(items) {
                        out[i] = Some(item);
                    }
                }
                other => {
                    let err = match other {
                        Err(Response::Error(e)) => e,
                        _ => WireError::internal(
                            "a shard answered a batch part with the wrong message",
                        ),
                    };
                    for &i in indexes {
                        out[i] = Some(Err(err.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|item| {
                item.unwrap_or_else(|| Err(WireError::internal("batch item left unanswered")))
            })
            .collect()
    }
}
