//! Every request and response survives encode → frame → decode unchanged (up to the one
//! documented normalisation: an empty keyspace decodes as the default keyspace), including many
//! frames pipelined through one encoder and one frame buffer split at random points.

use proptest::collection::vec;
use proptest::prelude::*;
use tessera_schema::{
    decode_request, decode_response, AckScope, BatchGetRequest, BatchPutRequest, ClusterMember,
    ClusterStatus, Consistency, DeleteRequest, Durability, Encoder, ErrorCode, FrameBuffer,
    GetRequest, GetResponse, PutItem, PutRequest, QuorumMode, Request, Response, ShardEndpoint,
    TopologyInfo, TransferInfo, WireError, WriteResponse, CONSISTENCY_REPLICAS_MAX,
    DEFAULT_KEYSPACE, FRAME_HEADER_BYTES, NO_REPLICA,
};

const CASES: u32 = 256;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..48)
}

/// Includes the empty name and the default name, both of which the encoder leaves out.
fn keyspace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(DEFAULT_KEYSPACE.to_owned()),
        "[a-z_]{1,12}",
        "\\PC{0,8}"
    ]
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        Just(Durability::Default),
        Just(Durability::Durable),
        Just(Durability::Relaxed)
    ]
}

/// Every quorum mode and every replica count the decoder accepts (0, the node's default, to
/// `CONSISTENCY_REPLICAS_MAX`), weighted towards the default that the encoder leaves out.
fn consistency() -> impl Strategy<Value = Consistency> {
    let quorum = prop_oneof![
        Just(QuorumMode::Default),
        Just(QuorumMode::Sloppy),
        Just(QuorumMode::Strict)
    ];
    let scope = prop_oneof![
        Just(AckScope::Any),
        Just(AckScope::LocalDc),
        Just(AckScope::EachDc)
    ];
    let replicas = prop_oneof![Just(0u8), 0..=CONSISTENCY_REPLICAS_MAX as u8];
    prop_oneof![
        1 => Just(Consistency::default()),
        3 => (replicas, quorum, scope).prop_map(|(replicas, quorum, scope)| Consistency {
            replicas,
            quorum,
            scope
        }),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(vec![
        ErrorCode::Unknown,
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::NotFound,
        ErrorCode::Overloaded,
        ErrorCode::QuorumNotReached,
        ErrorCode::Unauthorized,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ])
}

fn wire_error() -> impl Strategy<Value = WireError> {
    (error_code(), "\\PC{0,24}", any::<u32>(), any::<u32>()).prop_map(
        |(code, message, answered, required)| WireError {
            code,
            message,
            answered,
            required,
        },
    )
}

fn put_item() -> impl Strategy<Value = PutItem> {
    (bytes(), bytes(), bytes()).prop_map(|(key, value, context)| PutItem {
        key,
        value,
        context,
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (keyspace(), bytes(), consistency()).prop_map(|(keyspace, key, consistency)| {
            Request::Get(GetRequest {
                keyspace,
                key,
                consistency,
            })
        }),
        (
            keyspace(),
            bytes(),
            bytes(),
            bytes(),
            durability(),
            any::<bool>(),
            consistency()
        )
            .prop_map(
                |(keyspace, key, value, context, durability, overwrite, consistency)| {
                    Request::Put(PutRequest {
                        keyspace,
                        key,
                        value,
                        context,
                        durability,
                        overwrite,
                        consistency,
                    })
                }
            ),
        (
            keyspace(),
            bytes(),
            bytes(),
            durability(),
            any::<bool>(),
            consistency()
        )
            .prop_map(
                |(keyspace, key, context, durability, overwrite, consistency)| {
                    Request::Delete(DeleteRequest {
                        keyspace,
                        key,
                        context,
                        durability,
                        overwrite,
                        consistency,
                    })
                }
            ),
        (keyspace(), vec(bytes(), 0..8), consistency()).prop_map(
            |(keyspace, keys, consistency)| {
                Request::BatchGet(BatchGetRequest {
                    keyspace,
                    keys,
                    consistency,
                })
            }
        ),
        (
            keyspace(),
            vec(put_item(), 0..8),
            durability(),
            any::<bool>(),
            consistency()
        )
            .prop_map(|(keyspace, items, durability, overwrite, consistency)| {
                Request::BatchPut(BatchPutRequest {
                    keyspace,
                    items,
                    durability,
                    overwrite,
                    consistency,
                })
            }),
        bytes().prop_map(Request::Ping),
        Just(Request::Topology),
        Just(Request::ClusterStatus),
        Just(Request::Leave),
        any::<u64>().prop_map(|node| Request::Remove { node }),
    ]
}

fn get_response() -> impl Strategy<Value = GetResponse> {
    (vec(bytes(), 0..5), bytes()).prop_map(|(values, context)| GetResponse { values, context })
}

fn write_response() -> impl Strategy<Value = WriteResponse> {
    bytes().prop_map(|context| WriteResponse { context })
}

fn topology() -> impl Strategy<Value = TopologyInfo> {
    let endpoint =
        (any::<u16>(), any::<u16>()).prop_map(|(shard, port)| ShardEndpoint { shard, port });
    (any::<u64>(), vec(endpoint, 0..8), vec(any::<u16>(), 0..64)).prop_map(
        |(node_id, shards, partition_shard)| TopologyInfo {
            node_id,
            partitions: u32::try_from(partition_shard.len()).expect("under 64 entries"),
            shards,
            partition_shard,
        },
    )
}

/// A `ClusterStatus` text field: empty (left out by the encoder), a typical name, or any text.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        prop::sample::select(vec![
            "Up", "Joining", "Leaving", "Left", "Stable", "Flipped"
        ])
        .prop_map(str::to_owned),
        "\\PC{0,24}"
    ]
}

fn cluster_member() -> impl Strategy<Value = ClusterMember> {
    (
        any::<u64>(),
        (label(), label(), label(), label(), label()),
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(id, (addr, client_addr, rack, dc, status), alive, partitions, next_partitions)| {
                ClusterMember {
                    id,
                    addr,
                    client_addr,
                    rack,
                    dc,
                    status,
                    alive,
                    partitions,
                    next_partitions,
                }
            },
        )
}

fn transfer_info() -> impl Strategy<Value = TransferInfo> {
    (
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
        label(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(partition, peer, outgoing, state, entries, bytes)| TransferInfo {
                partition,
                peer,
                outgoing,
                state,
                entries,
                bytes,
            },
        )
}

/// Members, transfers and partition roots are each empty about half the time.
fn cluster_status() -> impl Strategy<Value = ClusterStatus> {
    let lists = (
        prop_oneof![Just(Vec::new()), vec(cluster_member(), 1..8)],
        prop_oneof![Just(Vec::new()), vec(transfer_info(), 1..8)],
        prop_oneof![Just(Vec::new()), vec(any::<u64>(), 1..64)],
    );
    let repair_counters = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    );
    (
        (any::<u64>(), label(), any::<u32>(), label()),
        (any::<u32>(), any::<u32>(), any::<u32>()),
        lists,
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        repair_counters,
    )
        .prop_map(
            |(
                (node_id, status, ring_epoch, ring_phase),
                (replicas, read_quorum, write_quorum),
                (members, transfers, partition_roots),
                (
                    moves_pending,
                    hints_held,
                    requests_coordinated,
                    requests_coordinated_off_replica,
                    tombstones_reaped,
                ),
                (ae_exchanges, ae_keys_repaired, ae_bytes_sent, read_repairs, hints_delivered),
            )| ClusterStatus {
                node_id,
                status,
                ring_epoch,
                ring_phase,
                replicas,
                read_quorum,
                write_quorum,
                members,
                transfers,
                moves_pending,
                hints_held,
                partition_roots,
                ae_exchanges,
                ae_keys_repaired,
                ae_bytes_sent,
                read_repairs,
                hints_delivered,
                requests_coordinated,
                requests_coordinated_off_replica,
                tombstones_reaped,
                // Valid only against the members and n: its own test below.
                partition_replicas: Vec::new(),
            },
        )
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        get_response().prop_map(Response::Get),
        write_response().prop_map(Response::Put),
        write_response().prop_map(Response::Delete),
        vec(prop::result::maybe_ok(get_response(), wire_error()), 0..6)
            .prop_map(Response::BatchGet),
        vec(prop::result::maybe_ok(write_response(), wire_error()), 0..6)
            .prop_map(Response::BatchPut),
        bytes().prop_map(Response::Pong),
        topology().prop_map(Response::Topology),
        wire_error().prop_map(Response::Error),
        cluster_status().prop_map(|s| Response::ClusterStatus(Box::new(s))),
    ]
}

/// What a request decodes to: the same, with an empty keyspace named.
fn normalized(mut request: Request) -> Request {
    let keyspace = match &mut request {
        Request::Get(r) => &mut r.keyspace,
        Request::Put(r) => &mut r.keyspace,
        Request::Delete(r) => &mut r.keyspace,
        Request::BatchGet(r) => &mut r.keyspace,
        Request::BatchPut(r) => &mut r.keyspace,
        Request::Ping(_)
        | Request::Topology
        | Request::ClusterStatus
        | Request::Leave
        | Request::Remove { .. } => return request,
    };
    if keyspace.is_empty() {
        *keyspace = DEFAULT_KEYSPACE.to_owned();
    }
    request
}

/// Strips and checks the length header of the single frame in `wire`.
fn body_of(wire: &[u8]) -> &[u8] {
    let (header, body) = wire.split_at(FRAME_HEADER_BYTES);
    assert_eq!(
        u32::from_le_bytes(header.try_into().expect("4-byte header")) as usize,
        body.len()
    );
    body
}

/// `response` encoded as frame `id` and decoded back.
fn through_wire(
    id: u64,
    response: &Response,
) -> Result<(u64, Response), tessera_schema::DecodeError> {
    let mut wire = Vec::new();
    Encoder::new().encode_response(id, response, &mut wire);
    decode_response(body_of(&wire))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn request_round_trips(id: u64, request in request()) {
        let mut wire = Vec::new();
        Encoder::new().encode_request(id, &request, &mut wire);
        prop_assert_eq!(decode_request(body_of(&wire)), Ok((id, normalized(request))));
    }

    #[test]
    fn cluster_status_round_trips(id: u64, status in cluster_status()) {
        let response = Response::ClusterStatus(Box::new(status));
        prop_assert_eq!(through_wire(id, &response), Ok((id, response)));
    }

    #[test]
    fn response_round_trips(id: u64, response in response()) {
        prop_assert_eq!(through_wire(id, &response), Ok((id, response)));
    }

    /// One encoder appending many frames to one buffer, read back through a `FrameBuffer` fed in
    /// random-sized pieces: the pipelined path of a real connection.
    #[test]
    fn pipelined_frames_survive_arbitrary_splits(
        requests in vec(request(), 1..12),
        responses in vec(response(), 1..12),
        cuts in vec(1usize..64, 1..64),
    ) {
        let mut encoder = Encoder::new();
        let mut wire = b"earlier bytes are kept".to_vec();
        let prefix_len = wire.len();
        for (id, request) in (0u64..).zip(&requests) {
            encoder.encode_request(id, request, &mut wire);
        }
        for (id, response) in (1000u64..).zip(&responses) {
            encoder.encode_response(id, response, &mut wire);
        }
        prop_assert_eq!(&wire[..prefix_len], b"earlier bytes are kept");

        let mut frames = FrameBuffer::default();
        let mut bodies = Vec::new();
        let mut rest = &wire[prefix_len..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*cut).min(rest.len()));
            frames.extend(piece);
            rest = tail;
            while let Some(body) = frames.next_frame().unwrap() {
                bodies.push(body);
            }
        }
        prop_assert!(frames.is_empty());
        prop_assert_eq!(bodies.len(), requests.len() + responses.len());
        let (request_bodies, response_bodies) = bodies.split_at(requests.len());
        for ((id, request), body) in (0u64..).zip(&requests).zip(request_bodies) {
            prop_assert_eq!(decode_request(body), Ok((id, normalized(request.clone()))));
        }
        for ((id, response), body) in (1000u64..).zip(&responses).zip(response_bodies) {
            prop_assert_eq!(decode_response(body), Ok((id, response.clone())));
        }
    }

    /// A reused encoder produces the same bytes as a fresh one: no state leaks between messages.
    #[test]
    fn encoder_reuse_is_deterministic(first in response(), second in response()) {
        let mut reused = Encoder::new();
        let mut discard = Vec::new();
        reused.encode_response(1, &first, &mut discard);
        let mut from_reused = Vec::new();
        reused.encode_response(2, &second, &mut from_reused);
        let mut from_fresh = Vec::new();
        Encoder::new().encode_response(2, &second, &mut from_fresh);
        prop_assert_eq!(from_reused, from_fresh);
    }
}

#[test]
fn empty_keyspace_decodes_as_default() {
    let mut wire = Vec::new();
    let request = Request::Get(GetRequest {
        keyspace: String::new(),
        key: b"k".to_vec(),
        consistency: Consistency::default(),
    });
    Encoder::new().encode_request(3, &request, &mut wire);
    let expected = Request::Get(GetRequest {
        keyspace: "default".to_owned(),
        key: b"k".to_vec(),
        consistency: Consistency::default(),
    });
    assert_eq!(decode_request(body_of(&wire)), Ok((3, expected)));
}

#[test]
fn put_and_delete_answers_stay_distinct() {
    let write = WriteResponse {
        context: vec![1, 2],
    };
    for response in [Response::Put(write.clone()), Response::Delete(write)] {
        assert_eq!(through_wire(9, &response), Ok((9, response)));
    }
}

#[test]
fn cluster_requests_stay_distinct() {
    for request in [Request::ClusterStatus, Request::Leave, Request::Topology] {
        let mut wire = Vec::new();
        Encoder::new().encode_request(4, &request, &mut wire);
        assert_eq!(decode_request(body_of(&wire)), Ok((4, request)));
    }
}

/// An all-default status (every list and text empty, so the encoder leaves them all out) and
/// one with a member and a transfer whose text fields are empty and a single zero partition root
/// (kept: a zero root means "holds nothing", not "absent").
#[test]
fn sparse_cluster_status_round_trips() {
    let sparse = ClusterStatus {
        members: vec![ClusterMember::default()],
        transfers: vec![TransferInfo::default()],
        partition_roots: vec![0],
        ..ClusterStatus::default()
    };
    for status in [ClusterStatus::default(), sparse] {
        let response = Response::ClusterStatus(Box::new(status));
        assert_eq!(through_wire(6, &response), Ok((6, response)));
    }
}

/// Preference lists (member indexes, n per partition, `NO_REPLICA` padding) come back exactly.
#[test]
fn cluster_status_partition_replicas_round_trip() {
    let status = ClusterStatus {
        replicas: 2,
        members: vec![ClusterMember::default(), ClusterMember::default()],
        partition_replicas: vec![0, 1, 1, 0, 1, NO_REPLICA],
        ..ClusterStatus::default()
    };
    let response = Response::ClusterStatus(Box::new(status));
    assert_eq!(through_wire(9, &response), Ok((9, response)));
}

/// The anti-entropy fields (appended to the table after `hints_held`) come back exactly, each
/// set to a distinct value so a swapped pair would show.
#[test]
fn cluster_status_anti_entropy_fields_round_trip() {
    let status = ClusterStatus {
        hints_held: 1,
        partition_roots: vec![u64::MAX, 0, 0xFEED_F00D, 0],
        ae_exchanges: 2,
        ae_keys_repaired: 3,
        ae_bytes_sent: 4,
        read_repairs: 5,
        hints_delivered: 6,
        ..ClusterStatus::default()
    };
    let response = Response::ClusterStatus(Box::new(status));
    let Ok((8, Response::ClusterStatus(decoded))) = through_wire(8, &response) else {
        panic!("a ClusterStatus response must decode");
    };
    assert_eq!(decoded.hints_held, 1);
    assert_eq!(decoded.partition_roots, vec![u64::MAX, 0, 0xFEED_F00D, 0]);
    assert_eq!(decoded.ae_exchanges, 2);
    assert_eq!(decoded.ae_keys_repaired, 3);
    assert_eq!(decoded.ae_bytes_sent, 4);
    assert_eq!(decoded.read_repairs, 5);
    assert_eq!(decoded.hints_delivered, 6);
}

/// `tombstones_reaped`, appended last, comes back exactly beside its neighbours; a status that
/// leaves it out (zero, as from an older node) reads back as zero.
#[test]
fn cluster_status_tombstones_reaped_round_trips() {
    let status = ClusterStatus {
        requests_coordinated: 7,
        requests_coordinated_off_replica: 8,
        tombstones_reaped: 9,
        ..ClusterStatus::default()
    };
    let response = Response::ClusterStatus(Box::new(status));
    let Ok((5, Response::ClusterStatus(decoded))) = through_wire(5, &response) else {
        panic!("a ClusterStatus response must decode");
    };
    assert_eq!(decoded.requests_coordinated, 7);
    assert_eq!(decoded.requests_coordinated_off_replica, 8);
    assert_eq!(decoded.tombstones_reaped, 9);

    let older = Response::ClusterStatus(Box::new(ClusterStatus {
        hints_delivered: 1,
        ..ClusterStatus::default()
    }));
    let Ok((5, Response::ClusterStatus(decoded))) = through_wire(5, &older) else {
        panic!("a ClusterStatus response must decode");
    };
    assert_eq!(decoded.tombstones_reaped, 0);
}

#[test]
fn empty_sibling_values_are_kept() {
    let response = Response::Get(GetResponse {
        values: vec![vec![], vec![7], vec![]],
        context: vec![],
    });
    assert_eq!(through_wire(1, &response), Ok((1, response)));
}

/// Messages cross shards by channel and encoders live in per-core tasks.
#[test]
fn public_types_can_move_between_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Request>();
    send_sync::<Response>();
    send_sync::<Encoder>();
    send_sync::<FrameBuffer>();
    send_sync::<tessera_schema::DecodeError>();
    send_sync::<tessera_schema::FrameError>();
}
