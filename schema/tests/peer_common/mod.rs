//! Helpers shared by the peer-protocol test binaries (`peer_hostile.rs`, `peer_limits.rs`).
#![allow(dead_code)] // each binary uses a subset

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use tessera_core::antientropy::{AeTag, ExchangeId};
use tessera_core::membership::{MemberRecord, Status};
use tessera_core::node::{Key, PeerMessage};
use tessera_core::{NodeId, PartitionId, Token};
use tessera_schema::generated::peer as wire;
use tessera_schema::{DecodeError, Encoder, FRAME_HEADER_BYTES};

/// What `decode_peer` returns.
pub type Decoded = Result<(NodeId, PeerMessage), DecodeError>;

/// The body (without its length header) of `message` from node 7.
pub fn body(message: &PeerMessage) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode_peer(NodeId(7), message, &mut out);
    out.split_off(FRAME_HEADER_BYTES)
}

/// A key with a fixed token and these bytes.
pub fn key(bytes: &[u8]) -> Key {
    Key {
        token: Token(0x0102_0304_0506_0708),
        bytes: bytes.to_vec(),
    }
}

/// Records of `n` members `1..=n`.
pub fn records(n: usize) -> Vec<MemberRecord> {
    (1..=n as u64)
        .map(|id| MemberRecord {
            id: NodeId(id),
            addr: format!("10.0.0.{id}:7000"),
            client_addr: format!("10.0.0.{id}:9000"),
            rack: "r1".into(),
            dc: "dc1".into(),
            weight: 1,
            status: Status::Up,
            generation: 1,
            heartbeat: id,
            ring_version: 0,
        })
        .collect()
}

/// An anti-entropy tag.
pub fn tag() -> AeTag {
    AeTag {
        exchange: ExchangeId(3),
        partition: PartitionId(4),
        round: 5,
    }
}

/// Writes a `PeerFrame` around whatever `build` puts in it.
pub fn crafted(
    build: impl FnOnce(
        &mut FlatBufferBuilder<'static>,
    ) -> (wire::PeerMessage, WIPOffset<UnionWIPOffset>),
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let (message_type, message) = build(&mut fbb);
    let args = wire::PeerFrameArgs {
        from: 1,
        message_type,
        message: Some(message),
        to: 0,
    };
    let frame = wire::PeerFrame::create(&mut fbb, &args);
    fbb.finish_minimal(frame);
    fbb.finished_data().to_vec()
}
