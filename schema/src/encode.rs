//! Writes [`Request`]s, [`Response`]s and peer messages ([`PeerMessage`]) as frames:
//! `[u32 LE body length][flatbuffer]`.
//!
//! This is the hot path (one call per get or put), so an [`Encoder`] keeps one flatbuffers
//! builder and its scratch vectors for its whole life and resets them per message; bytes are
//! copied from the message straight into the builder, with no intermediate vectors.
//!
//! Invariants:
//! - Each call appends exactly one frame to `out` and leaves earlier bytes of `out` untouched.
//! - The output decodes (`decode.rs`, `peer/`) to the same message, except that an empty keyspace
//!   decodes as [`DEFAULT_KEYSPACE`] and a peer's `CoreError::Malformed` text as
//!   [`MALFORMED_FROM_PEER`](crate::MALFORMED_FROM_PEER). Empty vectors and strings, and the
//!   default keyspace's name, are left out of the buffer: the decoder reads an absent field as
//!   empty / default.
//! - The encoder does not enforce the limits of `limits.rs`; the receiver does. A caller that
//!   wants to fail early checks batch sizes and `out.len()` itself.
#![forbid(unsafe_code)]

use std::fmt;

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UOffsetT, Vector, WIPOffset};

use tessera_core::constants::CLOCK_ENTRIES_MAX;
use tessera_core::node::PeerMessage;
use tessera_core::NodeId;

use crate::frame::frame_header;
use crate::generated as wire;
use crate::limits::{BATCH_ITEMS_MAX, ENCODER_RETAINED_BYTES_MAX, FRAME_HEADER_BYTES};
use crate::message::{
    BatchGetRequest, BatchPutRequest, ClusterStatus, DeleteRequest, GetRequest, GetResponse,
    PutRequest, Request, Response, TopologyInfo, WireError, WriteResponse, DEFAULT_KEYSPACE,
};

type Builder = FlatBufferBuilder<'static>;
type Bytes = WIPOffset<Vector<'static, u8>>;
type TableVector<T> = WIPOffset<Vector<'static, ForwardsUOffset<T>>>;

/// A reusable message encoder. Keep one per connection (or per thread) and call it for every
/// message; it allocates only when a message is larger than any before it.
#[derive(Default)]
pub struct Encoder {
    builder: Builder,
    /// Offsets of the tables of the outer vector being built (batch keys or items). Child tables
    /// must be finished before their vector starts, so their offsets wait here.
    item_offsets: Vec<UOffsetT>,
    /// Offsets of one `GetResult`'s blobs; separate because they are built inside a batch item
    /// while `item_offsets` is being filled.
    blob_offsets: Vec<UOffsetT>,
    /// One version vector's entries on their way into a peer message.
    peer_dots: Vec<wire::peer::Dot>,
}

// Manual because flatbuffers' default allocator has no `Debug`; the interesting state is how
// much memory the encoder holds on to.
impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("item_offsets_capacity", &self.item_offsets.capacity())
            .field("blob_offsets_capacity", &self.blob_offsets.capacity())
            .field("peer_dots_capacity", &self.peer_dots.capacity())
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder with no memory allocated yet.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Appends one request frame with id `id` to `out`.
    pub fn encode_request(&mut self, id: u64, request: &Request, out: &mut Vec<u8>) {
        self.builder.reset();
        let fbb = &mut self.builder;
        let (body_type, body) = match request {
            Request::Get(get) => (
                wire::RequestBody::Get,
                get_request(fbb, get).as_union_value(),
            ),
            Request::Put(put) => (
                wire::RequestBody::Put,
                put_request(fbb, put).as_union_value(),
            ),
            Request::Delete(delete) => (
                wire::RequestBody::Delete,
                delete_request(fbb, delete).as_union_value(),
            ),
            Request::BatchGet(batch) => {
                let batch = batch_get_request(fbb, &mut self.item_offsets, batch);
                (wire::RequestBody::BatchGet, batch.as_union_value())
            }
            Request::BatchPut(batch) => {
                let batch = batch_put_request(fbb, &mut self.item_offsets, batch);
                (wire::RequestBody::BatchPut, batch.as_union_value())
            }
            Request::Ping(payload) => {
                let payload = bytes(fbb, payload);
                let ping = wire::Ping::create(fbb, &wire::PingArgs { payload });
                (wire::RequestBody::Ping, ping.as_union_value())
            }
            Request::Topology => {
                let topology =
                    wire::TopologyRequest::create(fbb, &wire::TopologyRequestArgs::default());
                (
                    wire::RequestBody::TopologyRequest,
                    topology.as_union_value(),
                )
            }
            Request::ClusterStatus => {
                let status = wire::ClusterStatusRequest::create(
                    fbb,
                    &wire::ClusterStatusRequestArgs::default(),
                );
                (
                    wire::RequestBody::ClusterStatusRequest,
                    status.as_union_value(),
                )
            }
            Request::Leave => {
                let leave = wire::LeaveRequest::create(fbb, &wire::LeaveRequestArgs::default());
                (wire::RequestBody::LeaveRequest, leave.as_union_value())
            }
            Request::Remove { node } => {
                let args = wire::RemoveRequestArgs { node: *node };
                let remove = wire::RemoveRequest::create(fbb, &args);
                (wire::RequestBody::RemoveRequest, remove.as_union_value())
            }
        };
        let args = wire::RequestFrameArgs {
            id,
            body_type,
            body: Some(body),
        };
        let root = wire::RequestFrame::create(fbb, &args);
        fbb.finish_minimal(root);
        self.append_frame(out);
    }

    /// Appends one response frame answering request `id` to `out`.
    pub fn encode_response(&mut self, id: u64, response: &Response, out: &mut Vec<u8>) {
        self.builder.reset();
        let fbb = &mut self.builder;
        let (body_type, body) = match response {
            Response::Get(get) => {
                let result = get_result(fbb, &mut self.blob_offsets, get);
                (wire::ResponseBody::GetResult, result.as_union_value())
            }
            Response::Put(write) => (
                wire::ResponseBody::PutResult,
                write_result(fbb, write).as_union_value(),
            ),
            Response::Delete(write) => (
                wire::ResponseBody::DeleteResult,
                write_result(fbb, write).as_union_value(),
            ),
            Response::BatchGet(items) => {
                let result =
                    batch_get_result(fbb, &mut self.item_offsets, &mut self.blob_offsets, items);
                (wire::ResponseBody::BatchGetResult, result.as_union_value())
            }
            Response::BatchPut(items) => {
                let result = batch_write_result(fbb, &mut self.item_offsets, items);
                (
                    wire::ResponseBody::BatchWriteResult,
                    result.as_union_value(),
                )
            }
            Response::Pong(payload) => {
                let payload = bytes(fbb, payload);
                let pong = wire::Pong::create(fbb, &wire::PongArgs { payload });
                (wire::ResponseBody::Pong, pong.as_union_value())
            }
            Response::Topology(topology) => (
                wire::ResponseBody::Topology,
                topology_result(fbb, topology).as_union_value(),
            ),
            Response::Error(error) => (
                wire::ResponseBody::Error,
                wire_error(fbb, error).as_union_value(),
            ),
            Response::ClusterStatus(status) => {
                let status = cluster_status(fbb, &mut self.item_offsets, status);
                (wire::ResponseBody::ClusterStatus, status.as_union_value())
            }
        };
        let args = wire::ResponseFrameArgs {
            id,
            body_type,
            body: Some(body),
        };
        let root = wire::ResponseFrame::create(fbb, &args);
        fbb.finish_minimal(root);
        self.append_frame(out);
    }

    /// Appends one unaddressed peer (node-to-node) frame from node `from` to `out`: for gossip
    /// to an address whose node is not known yet, and for ring states kept on disk. See
    /// [`Encoder::encode_peer_to`].
    pub fn encode_peer(&mut self, from: NodeId, message: &PeerMessage, out: &mut Vec<u8>) {
        self.encode_peer_frame(from, None, message, out);
    }

    /// Appends one peer frame from node `from` for node `to` to `out`; see [`crate::peer`].
    /// Read it with a [`FrameBuffer::for_peers`](crate::FrameBuffer::for_peers) and
    /// [`decode_peer_addressed`](crate::decode_peer_addressed).
    pub fn encode_peer_to(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: &PeerMessage,
        out: &mut Vec<u8>,
    ) {
        self.encode_peer_frame(from, Some(to), message, out);
    }

    fn encode_peer_frame(
        &mut self,
        from: NodeId,
        to: Option<NodeId>,
        message: &PeerMessage,
        out: &mut Vec<u8>,
    ) {
        self.builder.reset();
        // `item_offsets` serves as the writer's table stack (see `peer::Writer`).
        self.item_offsets.clear();
        crate::peer::Writer::new(
            &mut self.builder,
            &mut self.item_offsets,
            &mut self.peer_dots,
        )
        .frame(from, to, message);
        self.append_frame(out);
    }

    /// Copies the finished buffer into `out` behind its length header, then drops memory that
    /// an unusually large message made the encoder grow.
    fn append_frame(&mut self, out: &mut Vec<u8>) {
        let body = self.builder.finished_data();
        let body_len = body.len();
        out.reserve(FRAME_HEADER_BYTES + body_len);
        out.extend_from_slice(&frame_header(body_len));
        out.extend_from_slice(body);
        if body_len > ENCODER_RETAINED_BYTES_MAX {
            self.builder = Builder::new();
        }
        self.item_offsets.clear();
        self.item_offsets.shrink_to(BATCH_ITEMS_MAX);
        self.blob_offsets.clear();
        self.peer_dots.clear();
        self.peer_dots.shrink_to(CLOCK_ENTRIES_MAX);
    }
}

// ---- Requests ----

fn get_request(fbb: &mut Builder, get: &GetRequest) -> WIPOffset<wire::Get<'static>> {
    let args = wire::GetArgs {
        keyspace: keyspace(fbb, &get.keyspace),
        key: bytes(fbb, &get.key),
        replicas: get.consistency.replicas,
        quorum: get.consistency.quorum.to_wire(),
        scope: get.consistency.scope.to_wire(),
    };
    wire::Get::create(fbb, &args)
}

fn put_request(fbb: &mut Builder, put: &PutRequest) -> WIPOffset<wire::Put<'static>> {
    let args = wire::PutArgs {
        keyspace: keyspace(fbb, &put.keyspace),
        key: bytes(fbb, &put.key),
        value: bytes(fbb, &put.value),
        context: bytes(fbb, &put.context),
        durability: put.durability.to_wire(),
        overwrite: put.overwrite,
        replicas: put.consistency.replicas,
        quorum: put.consistency.quorum.to_wire(),
        scope: put.consistency.scope.to_wire(),
    };
    wire::Put::create(fbb, &args)
}

fn delete_request(fbb: &mut Builder, delete: &DeleteRequest) -> WIPOffset<wire::Delete<'static>> {
    let args = wire::DeleteArgs {
        keyspace: keyspace(fbb, &delete.keyspace),
        key: bytes(fbb, &delete.key),
        context: bytes(fbb, &delete.context),
        durability: delete.durability.to_wire(),
        overwrite: delete.overwrite,
        replicas: delete.consistency.replicas,
        quorum: delete.consistency.quorum.to_wire(),
        scope: delete.consistency.scope.to_wire(),
    };
    wire::Delete::create(fbb, &args)
}

fn batch_get_request(
    fbb: &mut Builder,
    offsets: &mut Vec<UOffsetT>,
    batch: &BatchGetRequest,
) -> WIPOffset<wire::BatchGet<'static>> {
    let keyspace = keyspace(fbb, &batch.keyspace);
    offsets.clear();
    for key in &batch.keys {
        let key = bytes(fbb, key);
        offsets.push(wire::Key::create(fbb, &wire::KeyArgs { key }).value());
    }
    let keys = table_vector::<wire::Key<'static>>(fbb, offsets);
    let args = wire::BatchGetArgs {
        keyspace,
        keys,
        replicas: batch.consistency.replicas,
        quorum: batch.consistency.quorum.to_wire(),
        scope: batch.consistency.scope.to_wire(),
    };
    wire::BatchGet::create(fbb, &args)
}

fn batch_put_request(
    fbb: &mut Builder,
    offsets: &mut Vec<UOffsetT>,
    batch: &BatchPutRequest,
) -> WIPOffset<wire::BatchPut<'static>> {
    let keyspace = keyspace(fbb, &batch.keyspace);
    offsets.clear();
    for item in &batch.items {
        let args = wire::PutItemArgs {
            key: bytes(fbb, &item.key),
            value: bytes(fbb, &item.value),
            context: bytes(fbb, &item.context),
        };
        offsets.push(wire::PutItem::create(fbb, &args).value());
    }
    let items = table_vector::<wire::PutItem<'static>>(fbb, offsets);
    let args = wire::BatchPutArgs {
        keyspace,
        items,
        durability: batch.durability.to_wire(),
        overwrite: batch.overwrite,
        replicas: batch.consistency.replicas,
        quorum: batch.consistency.quorum.to_wire(),
        scope: batch.consistency.scope.to_wire(),
    };
    wire::BatchPut::create(fbb, &args)
}

// ---- Responses ----

fn get_result(
    fbb: &mut Builder,
    blob_offsets: &mut Vec<UOffsetT>,
    get: &GetResponse,
) -> WIPOffset<wire::GetResult<'static>> {
    blob_offsets.clear();
    for value in &get.values {
        // An empty sibling value is still a sibling: the Blob table is always written, only its
        // empty data vector is left out.
        let data = bytes(fbb, value);
        blob_offsets.push(wire::Blob::create(fbb, &wire::BlobArgs { data }).value());
    }
    let values = table_vector::<wire::Blob<'static>>(fbb, blob_offsets);
    let context = bytes(fbb, &get.context);
    wire::GetResult::create(fbb, &wire::GetResultArgs { values, context })
}

fn write_result(fbb: &mut Builder, write: &WriteResponse) -> WIPOffset<wire::WriteResult<'static>> {
    let context = bytes(fbb, &write.context);
    wire::WriteResult::create(fbb, &wire::WriteResultArgs { context })
}

fn batch_get_result(
    fbb: &mut Builder,
    item_offsets: &mut Vec<UOffsetT>,
    blob_offsets: &mut Vec<UOffsetT>,
    items: &[Result<GetResponse, WireError>],
) -> WIPOffset<wire::BatchGetResult<'static>> {
    item_offsets.clear();
    for item in items {
        let args = match item {
            Ok(get) => wire::BatchGetItemArgs {
                result: Some(get_result(fbb, blob_offsets, get)),
                error: None,
            },
            Err(error) => wire::BatchGetItemArgs {
                result: None,
                error: Some(wire_error(fbb, error)),
            },
        };
        item_offsets.push(wire::BatchGetItem::create(fbb, &args).value());
    }
    let items = table_vector::<wire::BatchGetItem<'static>>(fbb, item_offsets);
    wire::BatchGetResult::create(fbb, &wire::BatchGetResultArgs { items })
}

fn batch_write_result(
    fbb: &mut Builder,
    item_offsets: &mut Vec<UOffsetT>,
    items: &[Result<WriteResponse, WireError>],
) -> WIPOffset<wire::BatchWriteResult<'static>> {
    item_offsets.clear();
    for item in items {
        let args = match item {
            Ok(write) => wire::BatchWriteItemArgs {
                result: Some(write_result(fbb, write)),
                error: None,
            },
            Err(error) => wire::BatchWriteItemArgs {
                result: None,
                error: Some(wire_error(fbb, error)),
            },
        };
        item_offsets.push(wire::BatchWriteItem::create(fbb, &args).value());
    }
    let items = table_vector::<wire::BatchWriteItem<'static>>(fbb, item_offsets);
    wire::BatchWriteResult::create(fbb, &wire::BatchWriteResultArgs { items })
}

fn topology_result(
    fbb: &mut Builder,
    topology: &TopologyInfo,
) -> WIPOffset<wire::Topology<'static>> {
    let shards = (!topology.shards.is_empty()).then(|| {
        let endpoints = topology
            .shards
            .iter()
            .map(|e| wire::ShardEndpoint::new(e.shard, e.port));
        fbb.create_vector_from_iter(endpoints)
    });
    let partition_shard = (!topology.partition_shard.is_empty())
        .then(|| fbb.create_vector(&topology.partition_shard));
    let args = wire::TopologyArgs {
        node_id: topology.node_id,
        partitions: topology.partitions,
        shards,
        partition_shard,
    };
    wire::Topology::create(fbb, &args)
}

/// Members and transfers are vectors of tables; both go through `offsets`, one after the other
/// (a vector's tables must all be finished before the vector starts). Partition roots are
/// scalars, left out when empty.
fn cluster_status(
    fbb: &mut Builder,
    offsets: &mut Vec<UOffsetT>,
    status: &ClusterStatus,
) -> WIPOffset<wire::ClusterStatus<'static>> {
    offsets.clear();
    for member in &status.members {
        let args = wire::ClusterMemberArgs {
            id: member.id,
            addr: text(fbb, &member.addr),
            rack: text(fbb, &member.rack),
            dc: text(fbb, &member.dc),
            status: text(fbb, &member.status),
            alive: member.alive,
            partitions: member.partitions,
            next_partitions: member.next_partitions,
            client_addr: text(fbb, &member.client_addr),
        };
        offsets.push(wire::ClusterMember::create(fbb, &args).value());
    }
    let members = table_vector::<wire::ClusterMember<'static>>(fbb, offsets);
    offsets.clear();
    for transfer in &status.transfers {
        let args = wire::TransferInfoArgs {
            partition: transfer.partition,
            peer: transfer.peer,
            outgoing: transfer.outgoing,
            state: text(fbb, &transfer.state),
            entries: transfer.entries,
            bytes: transfer.bytes,
        };
        offsets.push(wire::TransferInfo::create(fbb, &args).value());
    }
    let transfers = table_vector::<wire::TransferInfo<'static>>(fbb, offsets);
    let partition_roots =
        (!status.partition_roots.is_empty()).then(|| fbb.create_vector(&status.partition_roots));
    let partition_replicas = (!status.partition_replicas.is_empty())
        .then(|| fbb.create_vector(&status.partition_replicas));
    let args = wire::ClusterStatusArgs {
        node_id: status.node_id,
        status: text(fbb, &status.status),
        ring_epoch: status.ring_epoch,
        ring_phase: text(fbb, &status.ring_phase),
        replicas: status.replicas,
        read_quorum: status.read_quorum,
        write_quorum: status.write_quorum,
        members,
        transfers,
        moves_pending: status.moves_pending,
        hints_held: status.hints_held,
        partition_roots,
        ae_exchanges: status.ae_exchanges,
        ae_keys_repaired: status.ae_keys_repaired,
        ae_bytes_sent: status.ae_bytes_sent,
        read_repairs: status.read_repairs,
        hints_delivered: status.hints_delivered,
        partition_replicas,
        requests_coordinated: status.requests_coordinated,
        requests_coordinated_off_replica: status.requests_coordinated_off_replica,
        tombstones_reaped: status.tombstones_reaped,
    };
    wire::ClusterStatus::create(fbb, &args)
}

fn wire_error(fbb: &mut Builder, error: &WireError) -> WIPOffset<wire::Error<'static>> {
    let message = text(fbb, &error.message);
    let args = wire::ErrorArgs {
        code: error.code.to_wire(),
        message,
        answered: error.answered,
        required: error.required,
    };
    wire::Error::create(fbb, &args)
}

// ---- Fields ----

/// A byte vector, or nothing for an empty one (absent reads back as empty).
fn bytes(fbb: &mut Builder, data: &[u8]) -> Option<Bytes> {
    (!data.is_empty()).then(|| fbb.create_vector(data))
}

/// A string, or nothing for an empty one (absent reads back as empty).
fn text(fbb: &mut Builder, text: &str) -> Option<WIPOffset<&'static str>> {
    (!text.is_empty()).then(|| fbb.create_string(text))
}

/// The keyspace name, or nothing for the default keyspace (absent reads back as the default),
/// which saves the name's bytes on most requests.
fn keyspace(fbb: &mut Builder, name: &str) -> Option<WIPOffset<&'static str>> {
    (!name.is_empty() && name != DEFAULT_KEYSPACE).then(|| fbb.create_string(name))
}

/// A vector of already-built tables, or nothing if there are none.
fn table_vector<T>(fbb: &mut Builder, offsets: &[UOffsetT]) -> Option<TableVector<T>> {
    (!offsets.is_empty())
        .then(|| fbb.create_vector_from_iter(offsets.iter().map(|&offset| WIPOffset::new(offset))))
}
