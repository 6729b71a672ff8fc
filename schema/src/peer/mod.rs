//! The peer (node-to-node) protocol: [`PeerMessage`]s to and from `fbs/peer.fbs` frames.
//!
//! A peer frame is framed like a client frame (a little-endian `u32` body length, then one
//! flatbuffer) under its own ceiling, [`PEER_FRAME_BYTES_MAX`](crate::PEER_FRAME_BYTES_MAX):
//! read peer connections with [`FrameBuffer::for_peers`](crate::FrameBuffer::for_peers). The
//! root is a `PeerFrame`: the sending node, the node it is for, and one message. Write frames
//! with [`Encoder::encode_peer_to`](crate::Encoder::encode_peer_to) (or
//! [`Encoder::encode_peer`](crate::Encoder::encode_peer) for gossip to an address whose node is
//! not known yet), read bodies with [`decode_peer_addressed`] (or [`decode_peer`]).
//!
//! Each submodule maps one part of core's message tree, its writer beside its reader:
//! [`replica`] (updates, replication, reads, repair, hints), [`object`] (keys, version vectors,
//! objects, core errors), [`gossip`], [`ae`] (anti-entropy), [`transfer`], [`ring`] (ring
//! states and completed moves) and [`reap`] (tombstone reaping).
//!
//! Invariants:
//! - Every body passes the flatbuffers verifier (limits of `limits.rs`, with
//!   [`PEER_VERIFIER_TABLES_MAX`]) before any field is read.
//! - Every count and every key or text length is checked against its `PEER_*` bound before
//!   anything is allocated for it; values are bounded by the frame itself. Decoded parts are
//!   assembled through core's checking constructors (`VersionVector::from_sorted_entries`,
//!   `Object::from_parts`, `Ring::from_parts`, `TreeShape::new`, ...), so a decoded message
//!   holds only values core could have built. No input makes a decoder panic.
//! - `decode_peer(encode_peer(m)) == m` for every message within the bounds, with one
//!   documented exception: a [`CoreError::Malformed`](tessera_core::CoreError::Malformed) comes
//!   back with [`MALFORMED_FROM_PEER`] as its `what` (see [`object`]).
//! - A [`DecodeError`] on a peer frame means "drop this message": peer messages are one-way and
//!   every protocol above them tolerates loss (timeouts, resends, the next gossip round). The
//!   stream is still in sync; only a [`FrameError`](crate::FrameError) closes the connection.
#![forbid(unsafe_code)]

pub mod ae;
pub mod gossip;
pub mod object;
pub mod reap;
pub mod replica;
pub mod ring;
pub mod transfer;

use flatbuffers::{
    FlatBufferBuilder, ForwardsUOffset, UOffsetT, UnionWIPOffset, Vector, WIPOffset,
};
use tessera_core::node::PeerMessage;
use tessera_core::NodeId;

use crate::decode::verifier_options;
use crate::error::DecodeError;
use crate::generated::peer as wire;
use crate::limits::PEER_VERIFIER_TABLES_MAX;

pub use object::MALFORMED_FROM_PEER;

type Builder = FlatBufferBuilder<'static>;
type Bytes = WIPOffset<Vector<'static, u8>>;
type TableVector<T> = WIPOffset<Vector<'static, ForwardsUOffset<T>>>;
type Union = (wire::PeerMessage, WIPOffset<UnionWIPOffset>);

/// Decodes a peer frame body (the bytes after the length header) into its sender and message.
pub fn decode_peer(body: &[u8]) -> Result<(NodeId, PeerMessage), DecodeError> {
    decode_peer_addressed(body).map(|(from, _, message)| (from, message))
}

/// Decodes a peer frame body into its sender, the node it is for (`None` if unaddressed) and
/// its message.
pub fn decode_peer_addressed(
    body: &[u8],
) -> Result<(NodeId, Option<NodeId>, PeerMessage), DecodeError> {
    let frame = verify_peer(body)?;
    let to = (frame.to() != 0).then(|| NodeId(frame.to()));
    Ok((NodeId(frame.from()), to, message(&frame)?))
}

/// Verifies a peer frame body and returns a zero-copy view of it. Counts and lengths are not
/// checked; check them as this module does before allocating from them.
pub fn verify_peer(body: &[u8]) -> Result<wire::PeerFrame<'_>, DecodeError> {
    let options = verifier_options(body.len(), PEER_VERIFIER_TABLES_MAX);
    Ok(flatbuffers::root_with_opts::<wire::PeerFrame<'_>>(
        &options, body,
    )?)
}

/// The encoder's state while it writes one peer message: the builder and its scratch vectors,
/// borrowed from an [`Encoder`](crate::Encoder) so that they are reused across messages.
pub(crate) struct Writer<'e> {
    fbb: &'e mut Builder,
    /// Offsets of finished child tables waiting for their vector, used as a stack: a vector's
    /// children are pushed above the length it found, and popped once the vector is written, so
    /// nested vectors (chunk entries, then each entry's siblings) share one allocation.
    tables: &'e mut Vec<UOffsetT>,
    /// One version vector's entries on their way into the builder (which writes vectors back to
    /// front, and core's vector iterator only runs forwards).
    dots: &'e mut Vec<wire::Dot>,
}

impl<'e> Writer<'e> {
    pub(crate) fn new(
        fbb: &'e mut Builder,
        tables: &'e mut Vec<UOffsetT>,
        dots: &'e mut Vec<wire::Dot>,
    ) -> Self {
        Writer { fbb, tables, dots }
    }

    /// Writes a whole `PeerFrame` from `from` for `to` (unaddressed if `None`) and finishes
    /// the buffer.
    pub(crate) fn frame(&mut self, from: NodeId, to: Option<NodeId>, message: &PeerMessage) {
        let (message_type, message) = match message {
            PeerMessage::Gossip(gossip) => self.gossip(gossip),
            PeerMessage::Ae(ae) => self.ae(ae),
            PeerMessage::Transfer(transfer) => self.transfer(transfer),
            PeerMessage::Ring(state) => self.ring_state_message(state),
            PeerMessage::MovesDone { ring, moves } => self.moves_done(*ring, moves),
            PeerMessage::Remove { nodes } => self.remove_members(nodes),
            PeerMessage::ReapCheck {
                round,
                ring,
                entries,
            } => self.reap_check(*round, *ring, entries),
            PeerMessage::ReapVote { round, vetoed } => self.reap_vote(*round, vetoed),
            PeerMessage::Reap { ring, entries } => self.reap(*ring, entries),
            PeerMessage::Update { .. }
            | PeerMessage::Updated { .. }
            | PeerMessage::Replicate { .. }
            | PeerMessage::ReplicateAck { .. }
            | PeerMessage::Read { .. }
            | PeerMessage::ReadReply { .. }
            | PeerMessage::Repair { .. }
            | PeerMessage::Fetch { .. }
            | PeerMessage::HintDeliver { .. }
            | PeerMessage::HintAck { .. } => self.replica(message),
        };
        let args = wire::PeerFrameArgs {
            from: from.0,
            message_type,
            message: Some(message),
            to: to.map_or(0, |n| n.0),
        };
        let root = wire::PeerFrame::create(self.fbb, &args);
        self.fbb.finish_minimal(root);
    }

    /// A byte vector, or nothing for an empty one (absent reads back as empty).
    fn bytes(&mut self, data: &[u8]) -> Option<Bytes> {
        (!data.is_empty()).then(|| self.fbb.create_vector(data))
    }

    /// A string, or nothing for an empty one.
    fn text(&mut self, text: &str) -> Option<WIPOffset<&'static str>> {
        (!text.is_empty()).then(|| self.fbb.create_string(text))
    }

    /// The vector of the child tables pushed on the stack since it had `start` entries, or
    /// nothing if there are none; pops them.
    fn tables_since<T>(&mut self, start: usize) -> Option<TableVector<T>> {
        let children = &self.tables[start..];
        let vector = (!children.is_empty()).then(|| {
            let offsets = children.iter().map(|&offset| WIPOffset::new(offset));
            self.fbb.create_vector_from_iter(offsets)
        });
        self.tables.truncate(start);
        vector
    }
}

/// The message behind the frame's union tag.
fn message(frame: &wire::PeerFrame<'_>) -> Result<PeerMessage, DecodeError> {
    use wire::PeerMessage as Tag;
    let tag = frame.message_type();
    Ok(match tag {
        Tag::NONE => return Err(DecodeError::MissingField("PeerFrame.message")),
        Tag::GossipSyn | Tag::GossipAck | Tag::GossipAck2 => {
            PeerMessage::Gossip(gossip::decode(frame)?)
        }
        Tag::AeRootRequest
        | Tag::AeRootReply
        | Tag::AeBranchRequest
        | Tag::AeBranchReply
        | Tag::AeSegmentRequest
        | Tag::AeSegmentReply
        | Tag::AeRefused => PeerMessage::Ae(ae::decode(frame)?),
        Tag::TransferOffer | Tag::TransferChunk | Tag::TransferAck | Tag::TransferAbort => {
            PeerMessage::Transfer(transfer::decode(frame)?)
        }
        Tag::RingState => {
            let state = member(frame.message_as_ring_state())?;
            PeerMessage::Ring(Box::new(ring::ring_state(state)?))
        }
        Tag::MovesDone => ring::moves_done(member(frame.message_as_moves_done())?)?,
        Tag::RemoveMembers => ring::remove_members(member(frame.message_as_remove_members())?)?,
        Tag::ReapCheck | Tag::ReapVote | Tag::Reap => reap::decode(frame)?,
        _ => replica::decode(frame)?,
    })
}

// ---- Reading fields; shared by the submodules ----

/// The table behind a union tag. The verifier already refuses a tag without a table, so `None`
/// is unreachable on verified input; it is still an error, not a panic.
fn member<T>(table: Option<T>) -> Result<T, DecodeError> {
    table.ok_or(DecodeError::MissingField("PeerFrame.message"))
}

/// A field the message cannot do without.
fn required<T>(field: Option<T>, name: &'static str) -> Result<T, DecodeError> {
    field.ok_or(DecodeError::MissingField(name))
}

/// A byte vector (absent reads as empty), unbounded but for the frame: values.
fn bytes(vector: Option<Vector<'_, u8>>) -> Vec<u8> {
    vector
        .map(|vector| vector.bytes().to_vec())
        .unwrap_or_default()
}

/// A byte vector (absent reads as empty) of at most `max` bytes, checked before it is copied.
fn bytes_within(
    vector: Option<Vector<'_, u8>>,
    max: usize,
    field: &'static str,
) -> Result<Vec<u8>, DecodeError> {
    let data = vector.map(|vector| vector.bytes()).unwrap_or_default();
    check_len(data.len(), max, field)?;
    Ok(data.to_vec())
}

/// A string (absent reads as empty) of at most `max` bytes, checked before it is copied.
fn text_within(text: Option<&str>, max: usize, field: &'static str) -> Result<String, DecodeError> {
    let text = text.unwrap_or_default();
    check_len(text.len(), max, field)?;
    Ok(text.to_owned())
}

fn check_len(len: usize, max: usize, field: &'static str) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::TooLong { field, len, max });
    }
    Ok(())
}

/// A wire `ulong` that core holds as a `usize`.
fn to_usize(value: u64, field: &'static str) -> Result<usize, DecodeError> {
    usize::try_from(value).map_err(|_| DecodeError::Malformed(field))
}
