//! Reads frame bodies back into [`Request`]s and [`Response`]s.
//!
//! Invariants:
//! - Every body passes the flatbuffers verifier, run with the limits of `limits.rs`, before any
//!   field is read. The generated accessors are sound only on verified buffers, so the
//!   `verify_*` functions here are the only way this crate (and its users) open a body.
//! - Every element count and bounded string length is checked against its bound before anything
//!   is allocated for it.
//! - No input makes these functions panic: bad bytes are a [`DecodeError`].
//! - Absent vectors and strings read as empty; an empty keyspace reads as [`DEFAULT_KEYSPACE`].
#![forbid(unsafe_code)]

use flatbuffers::{Vector, VerifierOptions};

use crate::error::DecodeError;
use crate::generated as wire;
use crate::limits::{
    BATCH_ITEMS_MAX, CLUSTER_LABEL_BYTES_MAX, CLUSTER_MEMBERS_MAX, CLUSTER_PARTITION_REPLICAS_MAX,
    CLUSTER_PARTITION_ROOTS_MAX, CLUSTER_TRANSFERS_MAX, CONSISTENCY_REPLICAS_MAX, GET_VALUES_MAX,
    NO_REPLICA, TOPOLOGY_PARTITIONS_MAX, TOPOLOGY_SHARDS_MAX, VERIFIER_AMPLIFICATION_MAX,
    VERIFIER_APPARENT_BYTES_MIN, VERIFIER_DEPTH_MAX, VERIFIER_TABLES_MAX,
};
use crate::message::{
    AckScope, BatchGetRequest, BatchPutRequest, ClusterMember, ClusterStatus, Consistency,
    DeleteRequest, Durability, ErrorCode, GetRequest, GetResponse, PutItem, PutRequest, QuorumMode,
    Request, Response, ShardEndpoint, TopologyInfo, TransferInfo, WireError, WriteResponse,
    DEFAULT_KEYSPACE,
};

/// Decodes a request frame body (the bytes after the length header) into its id and request.
pub fn decode_request(body: &[u8]) -> Result<(u64, Request), DecodeError> {
    let frame = verify_request(body)?;
    Ok((frame.id(), request_body(&frame)?))
}

/// Decodes a response frame body (the bytes after the length header) into its id and response.
pub fn decode_response(body: &[u8]) -> Result<(u64, Response), DecodeError> {
    let frame = verify_response(body)?;
    Ok((frame.id(), response_body(&frame)?))
}

/// The id of a request body that verifies, even if its contents do not decode, so that a server
/// can answer a bad request with [`DecodeError::to_wire_error`] instead of dropping it.
pub fn peek_request_id(body: &[u8]) -> Option<u64> {
    verify_request(body).ok().map(|frame| frame.id())
}

/// Verifies a request body and returns a zero-copy view of it, for readers that want to avoid
/// [`decode_request`]'s copies. Counts are not checked; check them as `decode.rs` does.
pub fn verify_request(body: &[u8]) -> Result<wire::RequestFrame<'_>, DecodeError> {
    let options = verifier_options(body.len(), VERIFIER_TABLES_MAX);
    Ok(flatbuffers::root_with_opts::<wire::RequestFrame<'_>>(
        &options, body,
    )?)
}

/// Verifies a response body and returns a zero-copy view of it. `ResponseFrame` is not the
/// schema's declared root type, so it is verified here as an explicit root table.
pub fn verify_response(body: &[u8]) -> Result<wire::ResponseFrame<'_>, DecodeError> {
    let options = verifier_options(body.len(), VERIFIER_TABLES_MAX);
    Ok(flatbuffers::root_with_opts::<wire::ResponseFrame<'_>>(
        &options, body,
    )?)
}

/// The verifier's budget for one body. The apparent-size budget scales with the body so that a
/// crafted buffer (offsets shared many times) costs work and decoded memory linear in its length.
pub(crate) fn verifier_options(body_len: usize, tables_max: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: VERIFIER_DEPTH_MAX,
        max_tables: tables_max,
        max_apparent_size: body_len
            .saturating_mul(VERIFIER_AMPLIFICATION_MAX)
            .max(VERIFIER_APPARENT_BYTES_MIN),
        ignore_missing_null_terminator: false,
    }
}

// ---- Requests ----

fn request_body(frame: &wire::RequestFrame<'_>) -> Result<Request, DecodeError> {
    Ok(match frame.body_type() {
        wire::RequestBody::NONE => return Err(missing_body()),
        wire::RequestBody::Get => Request::Get(get_request(union_member(frame.body_as_get())?)?),
        wire::RequestBody::Put => Request::Put(put_request(union_member(frame.body_as_put())?)?),
        wire::RequestBody::Delete => {
            Request::Delete(delete_request(union_member(frame.body_as_delete())?)?)
        }
        wire::RequestBody::BatchGet => {
            Request::BatchGet(batch_get_request(union_member(frame.body_as_batch_get())?)?)
        }
        wire::RequestBody::BatchPut => {
            Request::BatchPut(batch_put_request(union_member(frame.body_as_batch_put())?)?)
        }
        wire::RequestBody::Ping => {
            Request::Ping(bytes(union_member(frame.body_as_ping())?.payload()))
        }
        wire::RequestBody::TopologyRequest => {
            union_member(frame.body_as_topology_request())?;
            Request::Topology
        }
        wire::RequestBody::ClusterStatusRequest => {
            union_member(frame.body_as_cluster_status_request())?;
            Request::ClusterStatus
        }
        wire::RequestBody::LeaveRequest => {
            union_member(frame.body_as_leave_request())?;
            Request::Leave
        }
        wire::RequestBody::RemoveRequest => {
            let remove = union_member(frame.body_as_remove_request())?;
            Request::Remove {
                node: remove.node(),
            }
        }
        _ => return Err(DecodeError::UnknownMessage),
    })
}

fn get_request(get: wire::Get<'_>) -> Result<GetRequest, DecodeError> {
    Ok(GetRequest {
        keyspace: keyspace(get.keyspace()),
        key: bytes(get.key()),
        consistency: consistency(
            (get.replicas(), get.quorum(), get.scope()),
            ["Get.replicas", "Get.quorum", "Get.scope"],
        )?,
    })
}

fn put_request(put: wire::Put<'_>) -> Result<PutRequest, DecodeError> {
    Ok(PutRequest {
        keyspace: keyspace(put.keyspace()),
        key: bytes(put.key()),
        value: bytes(put.value()),
        context: bytes(put.context()),
        durability: durability(put.durability(), "Put.durability")?,
        overwrite: put.overwrite(),
        consistency: consistency(
            (put.replicas(), put.quorum(), put.scope()),
            ["Put.replicas", "Put.quorum", "Put.scope"],
        )?,
    })
}

fn delete_request(delete: wire::Delete<'_>) -> Result<DeleteRequest, DecodeError> {
    Ok(DeleteRequest {
        keyspace: keyspace(delete.keyspace()),
        key: bytes(delete.key()),
        context: bytes(delete.context()),
        durability: durability(delete.durability(), "Delete.durability")?,
        overwrite: delete.overwrite(),
        consistency: consistency(
            (delete.replicas(), delete.quorum(), delete.scope()),
            ["Delete.replicas", "Delete.quorum", "Delete.scope"],
        )?,
    })
}

fn batch_get_request(batch: wire::BatchGet<'_>) -> Result<BatchGetRequest, DecodeError> {
    let keys = counted(batch.keys(), BATCH_ITEMS_MAX)?;
    Ok(BatchGetRequest {
        keyspace: keyspace(batch.keyspace()),
        keys: keys.iter().map(|key| bytes(key.key())).collect(),
        consistency: consistency(
            (batch.replicas(), batch.quorum(), batch.scope()),
            ["BatchGet.replicas", "BatchGet.quorum", "BatchGet.scope"],
        )?,
    })
}

fn batch_put_request(batch: wire::BatchPut<'_>) -> Result<BatchPutRequest, DecodeError> {
    let items = counted(batch.items(), BATCH_ITEMS_MAX)?;
    Ok(BatchPutRequest {
        keyspace: keyspace(batch.keyspace()),
        items: items
            .iter()
            .map(|item| PutItem {
                key: bytes(item.key()),
                value: bytes(item.value()),
                context: bytes(item.context()),
            })
            .collect(),
        durability: durability(batch.durability(), "BatchPut.durability")?,
        overwrite: batch.overwrite(),
        consistency: consistency(
            (batch.replicas(), batch.quorum(), batch.scope()),
            ["BatchPut.replicas", "BatchPut.quorum", "BatchPut.scope"],
        )?,
    })
}

// ---- Responses ----

fn response_body(frame: &wire::ResponseFrame<'_>) -> Result<Response, DecodeError> {
    Ok(match frame.body_type() {
        wire::ResponseBody::NONE => return Err(missing_body()),
        wire::ResponseBody::GetResult => {
            Response::Get(get_response(union_member(frame.body_as_get_result())?)?)
        }
        wire::ResponseBody::PutResult => {
            Response::Put(write_response(union_member(frame.body_as_put_result())?))
        }
        wire::ResponseBody::DeleteResult => {
            Response::Delete(write_response(union_member(frame.body_as_delete_result())?))
        }
        wire::ResponseBody::BatchGetResult => Response::BatchGet(batch_get_response(
            union_member(frame.body_as_batch_get_result())?,
        )?),
        wire::ResponseBody::BatchWriteResult => Response::BatchPut(batch_write_response(
            union_member(frame.body_as_batch_write_result())?,
        )?),
        wire::ResponseBody::Pong => {
            Response::Pong(bytes(union_member(frame.body_as_pong())?.payload()))
        }
        wire::ResponseBody::Topology => {
            Response::Topology(topology_response(union_member(frame.body_as_topology())?)?)
        }
        wire::ResponseBody::Error => {
            Response::Error(wire_error(union_member(frame.body_as_error())?))
        }
        wire::ResponseBody::ClusterStatus => Response::ClusterStatus(Box::new(cluster_status(
            union_member(frame.body_as_cluster_status())?,
        )?)),
        _ => return Err(DecodeError::UnknownMessage),
    })
}

fn get_response(result: wire::GetResult<'_>) -> Result<GetResponse, DecodeError> {
    let values = counted(result.values(), GET_VALUES_MAX)?;
    Ok(GetResponse {
        values: values.iter().map(|blob| bytes(blob.data())).collect(),
        context: bytes(result.context()),
    })
}

fn write_response(result: wire::WriteResult<'_>) -> WriteResponse {
    WriteResponse {
        context: bytes(result.context()),
    }
}

fn batch_get_response(
    batch: wire::BatchGetResult<'_>,
) -> Result<Vec<Result<GetResponse, WireError>>, DecodeError> {
    let items = counted(batch.items(), BATCH_ITEMS_MAX)?;
    items
        .iter()
        .map(
            |item| match either(item.result(), item.error(), "BatchGetItem.result")? {
                Ok(result) => Ok(Ok(get_response(result)?)),
                Err(error) => Ok(Err(wire_error(error))),
            },
        )
        .collect()
}

fn batch_write_response(
    batch: wire::BatchWriteResult<'_>,
) -> Result<Vec<Result<WriteResponse, WireError>>, DecodeError> {
    let items = counted(batch.items(), BATCH_ITEMS_MAX)?;
    items
        .iter()
        .map(|item| {
            let outcome = either(item.result(), item.error(), "BatchWriteItem.result")?;
            Ok(outcome.map(write_response).map_err(wire_error))
        })
        .collect()
}

fn topology_response(topology: wire::Topology<'_>) -> Result<TopologyInfo, DecodeError> {
    let shards = counted(topology.shards(), TOPOLOGY_SHARDS_MAX)?;
    let partition_shard = counted(topology.partition_shard(), TOPOLOGY_PARTITIONS_MAX)?;
    // Clients index `partition_shard` by partition; a short table would send them out of bounds.
    if usize::try_from(topology.partitions()).ok() != Some(partition_shard.len()) {
        return Err(DecodeError::Malformed(
            "Topology.partition_shard must have exactly one entry per partition",
        ));
    }
    Ok(TopologyInfo {
        node_id: topology.node_id(),
        partitions: topology.partitions(),
        shards: shards
            .iter()
            .map(|endpoint| ShardEndpoint {
                shard: endpoint.shard(),
                port: endpoint.port(),
            })
            .collect(),
        partition_shard: partition_shard.iter().collect(),
    })
}

fn cluster_status(status: wire::ClusterStatus<'_>) -> Result<ClusterStatus, DecodeError> {
    let members = counted(status.members(), CLUSTER_MEMBERS_MAX)?;
    let transfers = counted(status.transfers(), CLUSTER_TRANSFERS_MAX)?;
    let partition_roots = counted(status.partition_roots(), CLUSTER_PARTITION_ROOTS_MAX)?;
    let replicas = counted(status.partition_replicas(), CLUSTER_PARTITION_REPLICAS_MAX)?;
    let partition_replicas: Vec<u16> = replicas.iter().collect();
    let stride = status.replicas() as usize;
    let named_member = |&i: &u16| i == NO_REPLICA || usize::from(i) < members.len();
    if !partition_replicas.is_empty()
        && (stride == 0
            || !partition_replicas.len().is_multiple_of(stride)
            || !partition_replicas.iter().all(named_member))
    {
        return Err(DecodeError::Malformed(
            "ClusterStatus.partition_replicas is not `replicas` member indexes per partition",
        ));
    }
    Ok(ClusterStatus {
        node_id: status.node_id(),
        status: label(status.status(), "ClusterStatus.status")?,
        ring_epoch: status.ring_epoch(),
        ring_phase: label(status.ring_phase(), "ClusterStatus.ring_phase")?,
        replicas: status.replicas(),
        read_quorum: status.read_quorum(),
        write_quorum: status.write_quorum(),
        members: members
            .iter()
            .map(cluster_member)
            .collect::<Result<_, _>>()?,
        transfers: transfers
            .iter()
            .map(transfer_info)
            .collect::<Result<_, _>>()?,
        moves_pending: status.moves_pending(),
        hints_held: status.hints_held(),
        partition_roots: partition_roots.iter().collect(),
        ae_exchanges: status.ae_exchanges(),
        ae_keys_repaired: status.ae_keys_repaired(),
        ae_bytes_sent: status.ae_bytes_sent(),
        read_repairs: status.read_repairs(),
        hints_delivered: status.hints_delivered(),
        partition_replicas,
        requests_coordinated: status.requests_coordinated(),
        requests_coordinated_off_replica: status.requests_coordinated_off_replica(),
        tombstones_reaped: status.tombstones_reaped(),
    })
}

fn cluster_member(member: wire::ClusterMember<'_>) -> Result<ClusterMember, DecodeError> {
    Ok(ClusterMember {
        id: member.id(),
        addr: label(member.addr(), "ClusterMember.addr")?,
        rack: label(member.rack(), "ClusterMember.rack")?,
        dc: label(member.dc(), "ClusterMember.dc")?,
        status: label(member.status(), "ClusterMember.status")?,
        alive: member.alive(),
        partitions: member.partitions(),
        next_partitions: member.next_partitions(),
        client_addr: label(member.client_addr(), "ClusterMember.client_addr")?,
    })
}

fn transfer_info(transfer: wire::TransferInfo<'_>) -> Result<TransferInfo, DecodeError> {
    Ok(TransferInfo {
        partition: transfer.partition(),
        peer: transfer.peer(),
        outgoing: transfer.outgoing(),
        state: label(transfer.state(), "TransferInfo.state")?,
        entries: transfer.entries(),
        bytes: transfer.bytes(),
    })
}

fn wire_error(error: wire::Error<'_>) -> WireError {
    WireError {
        code: ErrorCode::from_wire(error.code()),
        message: error.message().unwrap_or_default().to_owned(),
        answered: error.answered(),
        required: error.required(),
    }
}

// ---- Fields ----

fn missing_body() -> DecodeError {
    DecodeError::MissingField("body")
}

/// The table behind a union tag. The verifier already refuses a tag without a table, so `None`
/// is unreachable on verified input; it is still an error, not a panic.
fn union_member<T>(member: Option<T>) -> Result<T, DecodeError> {
    member.ok_or_else(missing_body)
}

/// A batch item's outcome: exactly one of `result` and `error` must be set.
fn either<R, E>(
    result: Option<R>,
    error: Option<E>,
    field: &'static str,
) -> Result<Result<R, E>, DecodeError> {
    match (result, error) {
        (Some(result), None) => Ok(Ok(result)),
        (None, Some(error)) => Ok(Err(error)),
        (None, None) => Err(DecodeError::MissingField(field)),
        (Some(_), Some(_)) => Err(DecodeError::Malformed(
            "batch item sets both result and error",
        )),
    }
}

/// A vector (absent reads as empty) whose length is within `max`, checked before the caller
/// allocates anything for its elements.
pub(crate) fn counted<'a, T: 'a>(
    vector: Option<Vector<'a, T>>,
    max: usize,
) -> Result<Vector<'a, T>, DecodeError> {
    let vector = vector.unwrap_or_default();
    if vector.len() > max {
        return Err(DecodeError::TooManyItems {
            count: vector.len(),
            max,
        });
    }
    Ok(vector)
}

fn bytes(vector: Option<Vector<'_, u8>>) -> Vec<u8> {
    vector
        .map(|vector| vector.bytes().to_vec())
        .unwrap_or_default()
}

/// A `ClusterStatus` text field (absent reads as empty), at most [`CLUSTER_LABEL_BYTES_MAX`]
/// bytes, checked before it is copied.
fn label(text: Option<&str>, field: &'static str) -> Result<String, DecodeError> {
    let text = text.unwrap_or_default();
    if text.len() > CLUSTER_LABEL_BYTES_MAX {
        return Err(DecodeError::TooLong {
            field,
            len: text.len(),
            max: CLUSTER_LABEL_BYTES_MAX,
        });
    }
    Ok(text.to_owned())
}

fn keyspace(name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => DEFAULT_KEYSPACE.to_owned(),
    }
}

fn durability(value: wire::Durability, field: &'static str) -> Result<Durability, DecodeError> {
    Durability::from_wire(value).ok_or(DecodeError::UnknownEnumValue {
        field,
        value: u32::from(value.0),
    })
}

/// A request's consistency fields (`fields` names them for errors): an unknown quorum mode or
/// scope is refused rather than guessed (a newer client's mode may promise more than this node
/// would deliver), and so are more replicas than any key can have.
fn consistency(
    (replicas, quorum, scope): (u8, wire::QuorumMode, wire::AckScope),
    fields: [&'static str; 3],
) -> Result<Consistency, DecodeError> {
    let [replicas_field, quorum_field, scope_field] = fields;
    if usize::from(replicas) > CONSISTENCY_REPLICAS_MAX {
        return Err(DecodeError::OutOfRange {
            field: replicas_field,
            value: u64::from(replicas),
            max: CONSISTENCY_REPLICAS_MAX as u64,
        });
    }
    let quorum = QuorumMode::from_wire(quorum).ok_or(DecodeError::UnknownEnumValue {
        field: quorum_field,
        value: u32::from(quorum.0),
    })?;
    let scope = AckScope::from_wire(scope).ok_or(DecodeError::UnknownEnumValue {
        field: scope_field,
        value: u32::from(scope.0),
    })?;
    Ok(Consistency {
        replicas,
        quorum,
        scope,
    })
}
