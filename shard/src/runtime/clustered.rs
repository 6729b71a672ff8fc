//! Client requests on a cluster node: each key's operation is coordinated by core's node
//! (quorums over the key's replicas), not answered from this shard's engine alone.
//!
//! An overwrite (a put or delete without a context, as `tessera put` and Redis `SET` send)
//! supersedes what a quorum read returns just before it; a concurrent write that read missed
//! survives as a sibling, as any Dynamo-style store keeps it.
//!
//! A request's [`Consistency`] sets its quorum: `replicas` is r for a read and w for a write (0
//! keeps the node's default), and a strict quorum counts only the key's preference list. The
//! read an overwrite starts with uses the node's r and the write's quorum mode: `replicas` is
//! the write's w, not a read quorum.

use std::rc::Rc;

use futures::future::join_all;
use tessera_core::node::ClientOp;
use tessera_core::quorum::{QuorumError, QuorumOptions};
use tessera_core::{NodeId, Object, VersionVector};
use tessera_schema::{
    BatchGetRequest, BatchPutRequest, Consistency, Durability, ErrorCode, GetResponse, Request,
    Response, WireError, WriteResponse,
};

use super::route::ShardCtx;
use crate::cluster::driver::{self, Access, Host};
use crate::cluster::storage::cluster_key;
use crate::engine::Engine;
use crate::error::ShardError;
use crate::service::get_response;

impl Host for ShardCtx {
    fn engine(&self) -> &Engine {
        self.service.engine()
    }

    fn driver(&self) -> &driver::Driver {
        // Invariant: the driver is only reached through a node started in cluster mode.
        self.cluster
            .as_ref()
            .expect("cluster work on a node started without a cluster")
    }
}

/// A write as the cluster path sees it.
struct Write<'a> {
    keyspace: &'a str,
    key: &'a [u8],
    value: Option<Vec<u8>>,
    context: &'a [u8],
    overwrite: bool,
    durability: Durability,
    consistency: Consistency,
}

impl ShardCtx {
    /// Executes `request` through the cluster.
    pub(super) async fn execute_clustered(self: &Rc<Self>, request: Request) -> Response {
        let result = match request {
            Request::Get(r) => self
                .cluster_get(&r.keyspace, &r.key, r.consistency)
                .await
                .map(Response::Get),
            Request::Put(r) => {
                let write = Write {
                    keyspace: &r.keyspace,
                    key: &r.key,
                    value: Some(r.value.clone()),
                    context: &r.context,
                    overwrite: r.overwrite,
                    durability: r.durability,
                    consistency: r.consistency,
                };
                self.cluster_write(write).await.map(Response::Put)
            }
            Request::Delete(r) => {
                let write = Write {
                    keyspace: &r.keyspace,
                    key: &r.key,
                    value: None,
                    context: &r.context,
                    overwrite: r.overwrite,
                    durability: r.durability,
                    consistency: r.consistency,
                };
                self.cluster_write(write).await.map(Response::Delete)
            }
            Request::BatchGet(r) => Ok(Response::BatchGet(self.cluster_batch_get(&r).await)),
            Request::BatchPut(r) => Ok(Response::BatchPut(self.cluster_batch_put(&r).await)),
            Request::Ping(payload) => Ok(Response::Pong(payload)),
            Request::Topology => Ok(Response::Topology(self.topology.clone())),
            Request::ClusterStatus => Ok(Response::ClusterStatus(Box::new(self.driver().status()))),
            Request::Leave => {
                tracing::info!("asked to leave the cluster: handing partitions off");
                self.driver().leave();
                Ok(Response::ClusterStatus(Box::new(self.driver().status())))
            }
            Request::Remove { node } => match self.driver().remove(NodeId(node)) {
                Ok(()) => {
                    tracing::info!(node = %NodeId(node), "asked to remove a dead member");
                    Ok(Response::ClusterStatus(Box::new(self.driver().status())))
                }
                Err(e) => Err(WireError::bad_request(e.to_string())),
            },
        };
        result.unwrap_or_else(Response::Error)
    }

    async fn cluster_get(
        self: &Rc<Self>,
        keyspace: &str,
        key: &[u8],
        consistency: Consistency,
    ) -> Result<GetResponse, WireError> {
        let object = self
            .read_object(keyspace, key, Durability::Default, consistency)
            .await?;
        Ok(get_response(Some(&object)))
    }

    async fn read_object(
        self: &Rc<Self>,
        keyspace: &str,
        key: &[u8],
        durability: Durability,
        consistency: Consistency,
    ) -> Result<Object, WireError> {
        self.check(keyspace, key)?;
        let op = ClientOp::Get {
            key: cluster_key(keyspace, key),
        };
        let options = self.options(durability, consistency, Access::Read);
        driver::client(self, op, options)
            .await
            .map_err(|e| quorum_error(&e))
    }

    async fn cluster_write(self: &Rc<Self>, write: Write<'_>) -> Result<WriteResponse, WireError> {
        self.check(write.keyspace, write.key)?;
        if let Some(value) = &write.value {
            self.service.check_value(value).map_err(|e| e.to_wire())?;
        }
        let context = if write.overwrite {
            let read_consistency = write.consistency.read_before_write();
            let read = self
                .read_object(
                    write.keyspace,
                    write.key,
                    write.durability,
                    read_consistency,
                )
                .await?;
            read.clock().clone()
        } else {
            VersionVector::decode(write.context).map_err(|e| {
                ShardError::BadRequest(format!(
                    "the causal context is not one this store issued ({e}); pass back the \
                     context a get returned"
                ))
                .to_wire()
            })?
        };
        let key = cluster_key(write.keyspace, write.key);
        let op = match write.value {
            Some(value) => ClientOp::Put {
                key,
                context,
                value,
            },
            None => ClientOp::Delete { key, context },
        };
        let options = self.options(write.durability, write.consistency, Access::Write);
        let object = driver::client(self, op, options)
            .await
            .map_err(|e| quorum_error(&e))?;
        Ok(WriteResponse {
            context: object.clock().to_bytes(),
        })
    }

    async fn cluster_batch_get(
        self: &Rc<Self>,
        r: &BatchGetRequest,
    ) -> Vec<Result<GetResponse, WireError>> {
        join_all(
            r.keys
                .iter()
                .map(|key| self.cluster_get(&r.keyspace, key, r.consistency)),
        )
        .await
    }

    async fn cluster_batch_put(
        self: &Rc<Self>,
        r: &BatchPutRequest,
    ) -> Vec<Result<WriteResponse, WireError>> {
        join_all(r.items.iter().map(|item| {
            self.cluster_write(Write {
                keyspace: &r.keyspace,
                key: &item.key,
                value: Some(item.value.clone()),
                context: &item.context,
                overwrite: r.overwrite,
                durability: r.durability,
                consistency: r.consistency,
            })
        }))
        .await
    }

    fn check(&self, keyspace: &str, key: &[u8]) -> Result<(), WireError> {
        self.service
            .check_keyspace(keyspace)
            .and_then(|()| self.service.check_key(key))
            .map_err(|e| e.to_wire())
    }

    fn options(
        &self,
        durability: Durability,
        consistency: Consistency,
        access: Access,
    ) -> QuorumOptions {
        let durable = self.service.durable(durability);
        self.driver().options(durable, consistency, access)
    }
}

/// A quorum failure as the client sees it: how many replicas answered of how many needed,
/// and what to do about it.
fn quorum_error(e: &QuorumError) -> WireError {
    let counted = |answered: usize, needed: usize| {
        let mut wire = WireError::quorum_not_reached(
            u32::try_from(answered).unwrap_or(u32::MAX),
            u32::try_from(needed).unwrap_or(u32::MAX),
        );
        wire.message = e.to_string();
        wire
    };
    match e {
        QuorumError::Unavailable { reachable, needed } => counted(*reachable, *needed),
        QuorumError::Timeout { answered, needed } => counted(*answered, *needed),
        QuorumError::NotAMember { .. } => WireError::new(ErrorCode::Unavailable, e.to_string()),
        // More replicas asked than keys have (the message names n), or a refused write: asking
        // again unchanged cannot succeed.
        QuorumError::TooManyAsked { .. }
        | QuorumError::NoReplicasInDc { .. }
        | QuorumError::Rejected(_) => WireError::new(ErrorCode::BadRequest, e.to_string()),
        _ => WireError::new(ErrorCode::BadRequest, e.to_string()),
    }
}
