//! Bytes from the network cannot make the decoder panic, over-allocate or accept more than the
//! limits allow: random bytes, mutated valid frames, over-limit batches, crafted buffers whose
//! offsets share one big table, unknown tags and enum values.

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use proptest::collection::vec;
use proptest::prelude::*;
use tessera_schema::generated as wire;
use tessera_schema::{
    decode_request, decode_response, frame_body_len, peek_request_id, BatchGetRequest,
    BatchPutRequest, ClusterMember, ClusterStatus, Consistency, DecodeError, DeleteRequest,
    Encoder, ErrorCode, FrameBuffer, FrameError, GetRequest, GetResponse, PutItem, PutRequest,
    Request, Response, ShardEndpoint, TopologyInfo, TransferInfo, WireError, WriteResponse,
    BATCH_ITEMS_MAX, CLUSTER_LABEL_BYTES_MAX, CLUSTER_MEMBERS_MAX, CLUSTER_PARTITION_ROOTS_MAX,
    CLUSTER_TRANSFERS_MAX, CONSISTENCY_REPLICAS_MAX, FRAME_BYTES_MAX, FRAME_HEADER_BYTES,
    GET_VALUES_MAX, NO_REPLICA,
};

const CASES: u32 = 512;

fn request_body(id: u64, request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode_request(id, request, &mut out);
    out.split_off(FRAME_HEADER_BYTES)
}

fn response_body(id: u64, response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode_response(id, response, &mut out);
    out.split_off(FRAME_HEADER_BYTES)
}

/// A small but complete `ClusterStatus`: every field set, two members, two transfers, four
/// partition roots.
fn sample_cluster_status() -> ClusterStatus {
    let member = |id: u64, status: &str| ClusterMember {
        id,
        addr: format!("10.0.0.{id}:7900"),
        client_addr: format!("10.0.0.{id}:7000"),
        rack: format!("r{id}"),
        dc: "dc1".into(),
        status: status.into(),
        alive: id % 2 == 1,
        partitions: 512,
        next_partitions: 340,
    };
    let transfer = |partition: u32, outgoing: bool| TransferInfo {
        partition,
        peer: 2,
        outgoing,
        state: "Streaming".into(),
        entries: 1000,
        bytes: 1 << 20,
    };
    ClusterStatus {
        node_id: 1,
        status: "Leaving".into(),
        ring_epoch: 7,
        ring_phase: "Pending".into(),
        replicas: 3,
        read_quorum: 2,
        write_quorum: 2,
        members: vec![member(1, "Leaving"), member(2, "Up")],
        transfers: vec![transfer(3, true), transfer(9, false)],
        moves_pending: 12,
        hints_held: 40,
        partition_roots: vec![0x1234_5678_9ABC_DEF0, 0, u64::MAX, 7],
        ae_exchanges: 90,
        ae_keys_repaired: 15,
        ae_bytes_sent: 3 << 20,
        read_repairs: 6,
        hints_delivered: 33,
        partition_replicas: vec![0, 1, NO_REPLICA, 1, 0, NO_REPLICA],
        requests_coordinated: 1000,
        requests_coordinated_off_replica: 10,
        tombstones_reaped: 21,
    }
}

/// One valid body of every message type, as seeds for mutation.
fn sample_bodies() -> Vec<Vec<u8>> {
    let put = PutRequest {
        keyspace: "users".into(),
        key: b"ada".to_vec(),
        value: b"lovelace".to_vec(),
        context: vec![1, 2, 3],
        durability: tessera_schema::Durability::Durable,
        overwrite: true,
        consistency: Consistency::replicas(3).strict().each_dc(),
    };
    let items = vec![
        PutItem {
            key: vec![1],
            value: vec![2],
            context: vec![]
        };
        3
    ];
    let requests = [
        Request::Get(GetRequest {
            keyspace: "users".into(),
            key: b"ada".to_vec(),
            consistency: Consistency::default(),
        }),
        Request::Put(put),
        Request::Delete(DeleteRequest {
            keyspace: "users".into(),
            key: b"ada".to_vec(),
            context: vec![4],
            durability: tessera_schema::Durability::Default,
            overwrite: false,
            consistency: Consistency::replicas(1).sloppy().local_dc(),
        }),
        Request::BatchGet(BatchGetRequest {
            keyspace: String::new(),
            keys: vec![vec![1], vec![]],
            consistency: Consistency::replicas(2).strict(),
        }),
        Request::BatchPut(BatchPutRequest {
            keyspace: "x".into(),
            items,
            durability: tessera_schema::Durability::Relaxed,
            overwrite: true,
            consistency: Consistency::default(),
        }),
        Request::Ping(vec![9; 5]),
        Request::Topology,
        Request::ClusterStatus,
        Request::Leave,
        Request::Remove { node: 7 },
    ];
    let get = GetResponse {
        values: vec![vec![1; 4], vec![]],
        context: vec![5; 6],
    };
    let responses = [
        Response::Get(get.clone()),
        Response::Delete(WriteResponse { context: vec![1] }),
        Response::BatchGet(vec![Ok(get), Err(WireError::quorum_not_reached(1, 2))]),
        Response::BatchPut(vec![
            Ok(WriteResponse::default()),
            Err(WireError::bad_request("k")),
        ]),
        Response::Topology(TopologyInfo {
            node_id: 4,
            partitions: 3,
            shards: vec![ShardEndpoint {
                shard: 0,
                port: 7000,
            }],
            partition_shard: vec![0, 0, 0],
        }),
        Response::Error(WireError::new(ErrorCode::Overloaded, "busy")),
        Response::ClusterStatus(Box::new(sample_cluster_status())),
        Response::ClusterStatus(Box::default()),
    ];
    let mut bodies: Vec<Vec<u8>> = requests.iter().map(|r| request_body(1, r)).collect();
    bodies.extend(responses.iter().map(|r| response_body(2, r)));
    bodies
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn random_bytes_are_refused_without_panic(body in vec(any::<u8>(), 0..512)) {
        prop_assert!(decode_request(&body).is_err());
        prop_assert!(decode_response(&body).is_err());
    }

    /// Flipped bytes and truncations of valid frames may decode to something else, but never
    /// panic.
    #[test]
    fn mutated_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in any::<prop::sample::Index>(),
        do_truncate: bool,
    ) {
        let mut bodies = sample_bodies();
        let mut body = bodies.swap_remove(seed.index(bodies.len()));
        for (at, byte) in flips {
            let at = at.index(body.len());
            body[at] ^= byte;
        }
        if do_truncate {
            body.truncate(truncate.index(body.len()));
        }
        let _ = decode_request(&body);
        let _ = decode_response(&body);
        let _ = peek_request_id(&body);
    }

    /// Random bytes through a `FrameBuffer` either come out as frames within the limit or stop
    /// at a framing error; the buffer never grows past one header plus the limit.
    #[test]
    fn frame_buffer_bounds_memory_on_random_streams(
        stream in vec(any::<u8>(), 0..2048),
        limit in 1usize..256,
    ) {
        let mut frames = FrameBuffer::new(limit);
        let mut reader = &stream[..];
        loop {
            match frames.read_from(&mut reader) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            prop_assert!(frames.allocated_bytes() <= FRAME_HEADER_BYTES + limit);
            match frames.next_frame() {
                Ok(Some(body)) => prop_assert!(!body.is_empty() && body.len() <= limit),
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}

#[test]
fn header_over_the_limit_is_refused() {
    let len = u32::try_from(FRAME_BYTES_MAX + 1).unwrap();
    assert_eq!(
        frame_body_len(len.to_le_bytes(), usize::MAX),
        Err(FrameError::TooLarge {
            len: FRAME_BYTES_MAX + 1,
            limit: FRAME_BYTES_MAX
        })
    );
    assert_eq!(
        frame_body_len(1025u32.to_le_bytes(), 1024),
        Err(FrameError::TooLarge {
            len: 1025,
            limit: 1024
        })
    );
    assert_eq!(frame_body_len(1024u32.to_le_bytes(), 1024), Ok(1024));
    assert_eq!(frame_body_len([0; 4], 1024), Err(FrameError::Empty));
}

#[test]
fn frame_buffer_never_reserves_past_its_limit() {
    let limit = 4096;
    let mut frames = FrameBuffer::new(limit);
    // A header announcing 4 GiB followed by an endless supply of bytes.
    let mut stream = u32::MAX.to_le_bytes().to_vec();
    stream.resize(1 << 20, 0xEE);
    let mut reader = &stream[..];
    while frames.read_from(&mut reader).is_ok_and(|read| read > 0) {}
    assert!(frames.allocated_bytes() <= FRAME_HEADER_BYTES + limit);
    assert!(matches!(
        frames.next_frame(),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn batches_over_the_limit_are_refused() {
    let over = BATCH_ITEMS_MAX + 1;
    let too_many = DecodeError::TooManyItems {
        count: over,
        max: BATCH_ITEMS_MAX,
    };

    let batch_get = Request::BatchGet(BatchGetRequest {
        keyspace: "k".into(),
        keys: vec![vec![1]; over],
        consistency: Consistency::default(),
    });
    let body = request_body(11, &batch_get);
    assert_eq!(decode_request(&body), Err(too_many.clone()));
    // The server can still answer this request by id, with a typed error.
    assert_eq!(peek_request_id(&body), Some(11));
    assert_eq!(too_many.to_wire_error().code, ErrorCode::TooLarge);

    let items = vec![
        PutItem {
            key: vec![1],
            value: vec![],
            context: vec![]
        };
        over
    ];
    let batch_put = Request::BatchPut(BatchPutRequest {
        keyspace: "k".into(),
        items,
        durability: tessera_schema::Durability::Default,
        overwrite: false,
        consistency: Consistency::default(),
    });
    assert_eq!(
        decode_request(&request_body(1, &batch_put)),
        Err(too_many.clone())
    );

    let answers = Response::BatchGet(vec![Ok(GetResponse::default()); over]);
    assert_eq!(
        decode_response(&response_body(1, &answers)),
        Err(too_many.clone())
    );
    let answers = Response::BatchPut(vec![Ok(WriteResponse::default()); over]);
    assert_eq!(decode_response(&response_body(1, &answers)), Err(too_many));

    let siblings = Response::Get(GetResponse {
        values: vec![vec![1]; GET_VALUES_MAX + 1],
        context: vec![],
    });
    assert_eq!(
        decode_response(&response_body(1, &siblings)),
        Err(DecodeError::TooManyItems {
            count: GET_VALUES_MAX + 1,
            max: GET_VALUES_MAX
        })
    );
}

/// Every truncation of an encoded `ClusterStatus`, and every single-byte flip of it, is refused
/// or decodes to something; none panics.
#[test]
fn cluster_status_truncations_and_flips_never_panic() {
    let body = response_body(
        3,
        &Response::ClusterStatus(Box::new(sample_cluster_status())),
    );
    for len in 0..body.len() {
        let _ = decode_response(&body[..len]);
        let _ = decode_request(&body[..len]);
    }
    for at in 0..body.len() {
        for flip in [0x01, 0x80, 0xFF] {
            let mut mutated = body.clone();
            mutated[at] ^= flip;
            let _ = decode_response(&mutated);
            let _ = decode_request(&mutated);
        }
    }
}

#[test]
fn cluster_status_over_the_limits_is_refused() {
    let decode = |status: ClusterStatus| {
        decode_response(&response_body(
            1,
            &Response::ClusterStatus(Box::new(status)),
        ))
    };

    let members = ClusterStatus {
        members: vec![ClusterMember::default(); CLUSTER_MEMBERS_MAX + 1],
        ..ClusterStatus::default()
    };
    let too_many = DecodeError::TooManyItems {
        count: CLUSTER_MEMBERS_MAX + 1,
        max: CLUSTER_MEMBERS_MAX,
    };
    assert_eq!(decode(members), Err(too_many.clone()));
    assert_eq!(too_many.to_wire_error().code, ErrorCode::TooLarge);

    let transfers = ClusterStatus {
        transfers: vec![TransferInfo::default(); CLUSTER_TRANSFERS_MAX + 1],
        ..ClusterStatus::default()
    };
    assert_eq!(
        decode(transfers),
        Err(DecodeError::TooManyItems {
            count: CLUSTER_TRANSFERS_MAX + 1,
            max: CLUSTER_TRANSFERS_MAX,
        })
    );

    let roots = ClusterStatus {
        partition_roots: vec![0; CLUSTER_PARTITION_ROOTS_MAX + 1],
        ..ClusterStatus::default()
    };
    let too_many_roots = DecodeError::TooManyItems {
        count: CLUSTER_PARTITION_ROOTS_MAX + 1,
        max: CLUSTER_PARTITION_ROOTS_MAX,
    };
    assert_eq!(decode(roots), Err(too_many_roots.clone()));
    assert_eq!(too_many_roots.to_wire_error().code, ErrorCode::TooLarge);

    // Preference lists must be `replicas` indexes of listed members per partition.
    for bad in [vec![0, 1], vec![0, 1, 2]] {
        let status = ClusterStatus {
            partition_replicas: bad,
            ..sample_cluster_status()
        };
        assert!(
            matches!(decode(status), Err(DecodeError::Malformed(_))),
            "a preference list of the wrong length or naming no member decoded"
        );
    }

    // Each text field one byte over its bound, the others at most at it.
    let long = "x".repeat(CLUSTER_LABEL_BYTES_MAX + 1);
    type Lengthen = fn(&mut ClusterStatus, String);
    let fields: [(&str, Lengthen); 7] = [
        ("ClusterStatus.status", |s, text| s.status = text),
        ("ClusterStatus.ring_phase", |s, text| s.ring_phase = text),
        ("ClusterMember.addr", |s, text| s.members[1].addr = text),
        ("ClusterMember.rack", |s, text| s.members[1].rack = text),
        ("ClusterMember.dc", |s, text| s.members[1].dc = text),
        ("ClusterMember.status", |s, text| s.members[1].status = text),
        ("TransferInfo.state", |s, text| s.transfers[1].state = text),
    ];
    for (field, lengthen) in fields {
        let mut status = sample_cluster_status();
        lengthen(&mut status, long.clone());
        let refused = DecodeError::TooLong {
            field,
            len: CLUSTER_LABEL_BYTES_MAX + 1,
            max: CLUSTER_LABEL_BYTES_MAX,
        };
        assert_eq!(decode(status), Err(refused.clone()), "{field}");
        assert_eq!(refused.to_wire_error().code, ErrorCode::TooLarge);

        let mut status = sample_cluster_status();
        lengthen(&mut status, long[1..].to_owned());
        assert_eq!(
            decode(status.clone()),
            Ok((1, Response::ClusterStatus(Box::new(status)))),
            "{field} at its bound"
        );
    }
}

/// The largest legal messages, in the shapes with the most verifier work per byte, still pass the
/// verifier's budgets.
#[test]
fn largest_legal_messages_decode() {
    let errors = Response::BatchGet(vec![Err(WireError::default()); BATCH_ITEMS_MAX]);
    assert!(decode_response(&response_body(1, &errors)).is_ok());
    let writes = Response::BatchPut(vec![Ok(WriteResponse::default()); BATCH_ITEMS_MAX]);
    assert!(decode_response(&response_body(1, &writes)).is_ok());
    let keys = Request::BatchGet(BatchGetRequest {
        keyspace: String::new(),
        keys: vec![vec![]; BATCH_ITEMS_MAX],
        consistency: Consistency::default(),
    });
    assert!(decode_request(&request_body(1, &keys)).is_ok());
    let siblings = GetResponse {
        values: vec![vec![]; GET_VALUES_MAX],
        context: vec![],
    };
    let many = Response::BatchGet(vec![Ok(siblings); 64]);
    assert!(decode_response(&response_body(1, &many)).is_ok());

    // A full member list, transfer list and partition root list, with empty text (the most
    // tables per byte) and with realistic labels.
    let sparse = ClusterStatus {
        members: vec![ClusterMember::default(); CLUSTER_MEMBERS_MAX],
        transfers: vec![TransferInfo::default(); CLUSTER_TRANSFERS_MAX],
        partition_roots: vec![0; CLUSTER_PARTITION_ROOTS_MAX],
        ..ClusterStatus::default()
    };
    assert!(decode_response(&response_body(
        1,
        &Response::ClusterStatus(Box::new(sparse))
    ))
    .is_ok());
    let mut full = sample_cluster_status();
    full.members = vec![full.members[0].clone(); CLUSTER_MEMBERS_MAX];
    full.transfers = vec![full.transfers[0].clone(); CLUSTER_TRANSFERS_MAX];
    full.partition_roots = (0..CLUSTER_PARTITION_ROOTS_MAX as u64)
        .map(|p| p.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let full = Response::ClusterStatus(Box::new(full));
    let body = response_body(1, &full);
    assert!(body.len() <= FRAME_BYTES_MAX);
    assert_eq!(decode_response(&body), Ok((1, full)));
}

/// A small buffer whose batch items all point at one table holding a large value would decode
/// into gigabytes; the verifier's apparent-size budget refuses it first.
#[test]
fn shared_offsets_cannot_amplify_memory() {
    let mut fbb = FlatBufferBuilder::new();
    let data = fbb.create_vector(&vec![0xAB_u8; 64 << 10]);
    let blob = wire::Blob::create(&mut fbb, &wire::BlobArgs { data: Some(data) });
    let values = fbb.create_vector(&[blob]);
    let result = wire::GetResult::create(
        &mut fbb,
        &wire::GetResultArgs {
            values: Some(values),
            context: None,
        },
    );
    let item = wire::BatchGetItem::create(
        &mut fbb,
        &wire::BatchGetItemArgs {
            result: Some(result),
            error: None,
        },
    );
    let items = fbb.create_vector(&vec![item; BATCH_ITEMS_MAX]);
    let batch =
        wire::BatchGetResult::create(&mut fbb, &wire::BatchGetResultArgs { items: Some(items) });
    let frame = wire::ResponseFrame::create(
        &mut fbb,
        &wire::ResponseFrameArgs {
            id: 1,
            body_type: wire::ResponseBody::BatchGetResult,
            body: Some(batch.as_union_value()),
        },
    );
    fbb.finish_minimal(frame);
    let body = fbb.finished_data();
    assert!(
        body.len() < 128 << 10,
        "the crafted buffer is small: {}",
        body.len()
    );
    assert!(matches!(
        decode_response(body),
        Err(DecodeError::Invalid(
            flatbuffers::InvalidFlatbuffer::ApparentSizeTooLarge
        ))
    ));
}

fn finished_request(
    build: impl FnOnce(
        &mut FlatBufferBuilder<'static>,
    ) -> (wire::RequestBody, WIPOffset<flatbuffers::UnionWIPOffset>),
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let (body_type, body) = build(&mut fbb);
    let frame = wire::RequestFrame::create(
        &mut fbb,
        &wire::RequestFrameArgs {
            id: 5,
            body_type,
            body: Some(body),
        },
    );
    fbb.finish_minimal(frame);
    fbb.finished_data().to_vec()
}

#[test]
fn unknown_message_type_is_refused() {
    let body = finished_request(|fbb| {
        let ping = wire::Ping::create(fbb, &wire::PingArgs { payload: None });
        (wire::RequestBody(200), ping.as_union_value())
    });
    assert_eq!(decode_request(&body), Err(DecodeError::UnknownMessage));
    assert_eq!(peek_request_id(&body), Some(5));
}

#[test]
fn missing_body_is_refused() {
    let mut fbb = FlatBufferBuilder::new();
    let frame = wire::RequestFrame::create(
        &mut fbb,
        &wire::RequestFrameArgs {
            id: 5,
            ..Default::default()
        },
    );
    fbb.finish_minimal(frame);
    assert_eq!(
        decode_request(fbb.finished_data()),
        Err(DecodeError::MissingField("body"))
    );
}

#[test]
fn unknown_durability_is_refused_not_weakened() {
    let body = finished_request(|fbb| {
        let put = wire::Put::create(
            fbb,
            &wire::PutArgs {
                durability: wire::Durability(9),
                ..Default::default()
            },
        );
        (wire::RequestBody::Put, put.as_union_value())
    });
    assert_eq!(
        decode_request(&body),
        Err(DecodeError::UnknownEnumValue {
            field: "Put.durability",
            value: 9
        })
    );
}

/// A request of each consistency-carrying kind with raw `replicas`, `quorum` and `scope`
/// fields, built by hand so that values the encoder cannot produce (an unknown mode) reach the
/// decoder.
fn consistency_requests(
    replicas: u8,
    quorum: wire::QuorumMode,
    scope: wire::AckScope,
) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "Get",
            finished_request(|fbb| {
                let args = wire::GetArgs {
                    replicas,
                    quorum,
                    scope,
                    ..Default::default()
                };
                let get = wire::Get::create(fbb, &args);
                (wire::RequestBody::Get, get.as_union_value())
            }),
        ),
        (
            "Put",
            finished_request(|fbb| {
                let args = wire::PutArgs {
                    replicas,
                    quorum,
                    scope,
                    ..Default::default()
                };
                let put = wire::Put::create(fbb, &args);
                (wire::RequestBody::Put, put.as_union_value())
            }),
        ),
        (
            "Delete",
            finished_request(|fbb| {
                let args = wire::DeleteArgs {
                    replicas,
                    quorum,
                    scope,
                    ..Default::default()
                };
                let delete = wire::Delete::create(fbb, &args);
                (wire::RequestBody::Delete, delete.as_union_value())
            }),
        ),
        (
            "BatchGet",
            finished_request(|fbb| {
                let args = wire::BatchGetArgs {
                    replicas,
                    quorum,
                    scope,
                    ..Default::default()
                };
                let batch = wire::BatchGet::create(fbb, &args);
                (wire::RequestBody::BatchGet, batch.as_union_value())
            }),
        ),
        (
            "BatchPut",
            finished_request(|fbb| {
                let args = wire::BatchPutArgs {
                    replicas,
                    quorum,
                    scope,
                    ..Default::default()
                };
                let batch = wire::BatchPut::create(fbb, &args);
                (wire::RequestBody::BatchPut, batch.as_union_value())
            }),
        ),
    ]
}

/// A quorum mode from a newer client is refused, not read as sloppy: the client may have asked
/// for something stronger than this node would deliver.
#[test]
fn unknown_quorum_mode_is_refused_not_guessed() {
    for value in [3u8, 9, u8::MAX] {
        for (table, body) in consistency_requests(0, wire::QuorumMode(value), wire::AckScope::Any) {
            let error = decode_request(&body).unwrap_err();
            assert!(
                matches!(
                    &error,
                    DecodeError::UnknownEnumValue { field, value: v }
                        if *field == format!("{table}.quorum") && *v == u32::from(value)
                ),
                "{table} with quorum mode {value}: {error:?}"
            );
            // Answerable by id, as a bad request.
            assert_eq!(peek_request_id(&body), Some(5));
            assert_eq!(error.to_wire_error().code, ErrorCode::BadRequest);
        }
    }
    // The known modes still decode, in every table.
    for mode in [wire::QuorumMode::Sloppy, wire::QuorumMode::Strict] {
        for (table, body) in consistency_requests(2, mode, wire::AckScope::Any) {
            assert!(decode_request(&body).is_ok(), "{table} with {mode:?}");
        }
    }
}

/// A scope from a newer client is refused too: it may count answers somewhere this node does
/// not know of.
#[test]
fn unknown_ack_scope_is_refused_not_guessed() {
    for value in [3u8, u8::MAX] {
        let scope = wire::AckScope(value);
        for (table, body) in consistency_requests(0, wire::QuorumMode::Default, scope) {
            let error = decode_request(&body).unwrap_err();
            assert!(
                matches!(
                    &error,
                    DecodeError::UnknownEnumValue { field, value: v }
                        if *field == format!("{table}.scope") && *v == u32::from(value)
                ),
                "{table} with scope {value}: {error:?}"
            );
            assert_eq!(error.to_wire_error().code, ErrorCode::BadRequest);
        }
    }
    for scope in [wire::AckScope::LocalDc, wire::AckScope::EachDc] {
        for (table, body) in consistency_requests(2, wire::QuorumMode::Strict, scope) {
            assert!(decode_request(&body).is_ok(), "{table} with {scope:?}");
        }
    }
}

/// More replicas than any key can have is refused with the field, the value and the bound;
/// exactly the bound decodes (a node with a smaller `n` answers that with its own error).
#[test]
fn replicas_over_the_limit_are_refused() {
    let max = CONSISTENCY_REPLICAS_MAX as u8;
    for over in [max + 1, u8::MAX] {
        for (table, body) in
            consistency_requests(over, wire::QuorumMode::Strict, wire::AckScope::Any)
        {
            let error = decode_request(&body).unwrap_err();
            assert!(
                matches!(
                    &error,
                    DecodeError::OutOfRange { field, value, max: m }
                        if *field == format!("{table}.replicas")
                            && *value == u64::from(over)
                            && *m == CONSISTENCY_REPLICAS_MAX as u64
                ),
                "{table} asking {over} replicas: {error:?}"
            );
            assert_eq!(error.to_wire_error().code, ErrorCode::BadRequest);
            assert!(
                error.to_wire_error().message.contains("at most 16"),
                "{error}"
            );
        }
    }
    for (table, body) in consistency_requests(max, wire::QuorumMode::Default, wire::AckScope::Any) {
        assert!(
            decode_request(&body).is_ok(),
            "{table} asking {max} replicas"
        );
    }
    // The encoder does not enforce the bound (the receiver does), so an over-asking client
    // learns it from the node's answer, not from a panic.
    let get = Request::Get(GetRequest {
        keyspace: String::new(),
        key: b"k".to_vec(),
        consistency: Consistency::replicas(max + 1),
    });
    assert!(matches!(
        decode_request(&request_body(1, &get)),
        Err(DecodeError::OutOfRange { .. })
    ));
}

#[test]
fn unknown_error_code_reads_as_unknown() {
    let mut fbb = FlatBufferBuilder::new();
    let error = wire::Error::create(
        &mut fbb,
        &wire::ErrorArgs {
            code: wire::ErrorCode(999),
            ..Default::default()
        },
    );
    let frame = wire::ResponseFrame::create(
        &mut fbb,
        &wire::ResponseFrameArgs {
            id: 1,
            body_type: wire::ResponseBody::Error,
            body: Some(error.as_union_value()),
        },
    );
    fbb.finish_minimal(frame);
    let Ok((1, Response::Error(error))) = decode_response(fbb.finished_data()) else {
        panic!("an unknown code is still an error response");
    };
    assert_eq!(error.code, ErrorCode::Unknown);
}

#[test]
fn batch_item_must_be_result_or_error() {
    for (with_result, with_error) in [(false, false), (true, true)] {
        let mut fbb = FlatBufferBuilder::new();
        let result = with_result
            .then(|| wire::WriteResult::create(&mut fbb, &wire::WriteResultArgs::default()));
        let error = with_error.then(|| wire::Error::create(&mut fbb, &wire::ErrorArgs::default()));
        let item =
            wire::BatchWriteItem::create(&mut fbb, &wire::BatchWriteItemArgs { result, error });
        let items = fbb.create_vector(&[item]);
        let batch = wire::BatchWriteResult::create(
            &mut fbb,
            &wire::BatchWriteResultArgs { items: Some(items) },
        );
        let frame = wire::ResponseFrame::create(
            &mut fbb,
            &wire::ResponseFrameArgs {
                id: 1,
                body_type: wire::ResponseBody::BatchWriteResult,
                body: Some(batch.as_union_value()),
            },
        );
        fbb.finish_minimal(frame);
        assert!(
            decode_response(fbb.finished_data()).is_err(),
            "result {with_result}, error {with_error}"
        );
    }
}

#[test]
fn topology_must_map_every_partition() {
    let short = Response::Topology(TopologyInfo {
        node_id: 1,
        partitions: 4,
        shards: vec![ShardEndpoint { shard: 0, port: 1 }],
        partition_shard: vec![0, 0],
    });
    assert!(matches!(
        decode_response(&response_body(1, &short)),
        Err(DecodeError::Malformed(_))
    ));
}
