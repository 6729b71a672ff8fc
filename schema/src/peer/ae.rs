//! Anti-entropy (Merkle-tree exchange) on the peer wire.
//!
//! Every message carries its [`AeTag`] as an inline struct. A root reply's tree shape is rebuilt
//! with [`TreeShape::new`], so a shape core would refuse is refused here. Refusal reasons are
//! numbered in `fbs/peer.fbs`; the mapping lives below, writer beside reader, and zero is never
//! sent.
#![forbid(unsafe_code)]

use flatbuffers::WIPOffset;
use tessera_core::antientropy::{
    AeMessage, AeTag, ExchangeId, ListCursor, RefuseReason, SegmentEntry, TreeShape,
};
use tessera_core::{PartitionId, Token};

use super::{bytes_within, member, required, wire, DecodeError, Union, Writer};
use crate::decode::counted;
use crate::limits::{
    PEER_AE_BRANCH_HASHES_MAX, PEER_AE_SEGMENTS_MAX, PEER_AE_SEGMENT_ENTRIES_MAX,
    PEER_KEY_BYTES_MAX,
};

// ---- Writing ----

impl Writer<'_> {
    pub(super) fn ae(&mut self, message: &AeMessage) -> Union {
        use wire::PeerMessage as Tag;
        let tag = wire_tag(message.tag());
        let tag = Some(&tag);
        match message {
            AeMessage::RootRequest { .. } => {
                let args = wire::AeRootRequestArgs { tag };
                let request = wire::AeRootRequest::create(self.fbb, &args);
                (Tag::AeRootRequest, request.as_union_value())
            }
            AeMessage::RootReply { shape, root, .. } => {
                let args = wire::AeRootReplyArgs {
                    tag,
                    level_bits: shape.level_bits(),
                    levels: shape.levels(),
                    root: *root,
                };
                let reply = wire::AeRootReply::create(self.fbb, &args);
                (Tag::AeRootReply, reply.as_union_value())
            }
            AeMessage::BranchRequest { level, parents, .. } => {
                let parents = (!parents.is_empty()).then(|| self.fbb.create_vector(parents));
                let args = wire::AeBranchRequestArgs {
                    tag,
                    level: *level,
                    parents,
                };
                let request = wire::AeBranchRequest::create(self.fbb, &args);
                (Tag::AeBranchRequest, request.as_union_value())
            }
            AeMessage::BranchReply { level, hashes, .. } => {
                let hashes = (!hashes.is_empty()).then(|| self.fbb.create_vector(hashes));
                let args = wire::AeBranchReplyArgs {
                    tag,
                    level: *level,
                    hashes,
                };
                let reply = wire::AeBranchReply::create(self.fbb, &args);
                (Tag::AeBranchReply, reply.as_union_value())
            }
            AeMessage::SegmentRequest {
                segments, after, ..
            } => {
                let segments = (!segments.is_empty()).then(|| self.fbb.create_vector(segments));
                let after = after.as_ref().map(|cursor| self.list_cursor(cursor));
                let args = wire::AeSegmentRequestArgs {
                    tag,
                    segments,
                    after,
                };
                let request = wire::AeSegmentRequest::create(self.fbb, &args);
                (Tag::AeSegmentRequest, request.as_union_value())
            }
            AeMessage::SegmentReply { entries, more, .. } => {
                let start = self.tables.len();
                for entry in entries {
                    let args = wire::SegmentEntryArgs {
                        token: entry.token.0,
                        key: self.bytes(&entry.key),
                        version: entry.version,
                        weight: entry.weight,
                    };
                    let offset = wire::SegmentEntry::create(self.fbb, &args);
                    self.tables.push(offset.value());
                }
                let entries = self.tables_since(start);
                let args = wire::AeSegmentReplyArgs {
                    tag,
                    entries,
                    more: *more,
                };
                let reply = wire::AeSegmentReply::create(self.fbb, &args);
                (Tag::AeSegmentReply, reply.as_union_value())
            }
            AeMessage::Refused { reason, .. } => {
                let args = wire::AeRefusedArgs {
                    tag,
                    reason: refuse_reason_to_wire(*reason),
                };
                let refused = wire::AeRefused::create(self.fbb, &args);
                (Tag::AeRefused, refused.as_union_value())
            }
        }
    }

    fn list_cursor(&mut self, cursor: &ListCursor) -> WIPOffset<wire::ListCursor<'static>> {
        let args = wire::ListCursorArgs {
            token: cursor.token.0,
            key: self.bytes(&cursor.key),
        };
        wire::ListCursor::create(self.fbb, &args)
    }
}

fn wire_tag(tag: AeTag) -> wire::AeTag {
    wire::AeTag::new(tag.exchange.0, tag.partition.0, tag.round)
}

fn refuse_reason_to_wire(reason: RefuseReason) -> wire::AeRefuseReason {
    match reason {
        RefuseReason::NotOwned => wire::AeRefuseReason::NotOwned,
        RefuseReason::BadRequest => wire::AeRefuseReason::BadRequest,
        RefuseReason::Busy => wire::AeRefuseReason::Busy,
    }
}

// ---- Reading ----

fn refuse_reason_from_wire(reason: wire::AeRefuseReason) -> Result<RefuseReason, DecodeError> {
    match reason {
        wire::AeRefuseReason::NotOwned => Ok(RefuseReason::NotOwned),
        wire::AeRefuseReason::BadRequest => Ok(RefuseReason::BadRequest),
        wire::AeRefuseReason::Busy => Ok(RefuseReason::Busy),
        _ => Err(DecodeError::UnknownEnumValue {
            field: "AeRefused.reason",
            value: u32::from(reason.0),
        }),
    }
}

/// The anti-entropy message behind the frame's union tag.
pub(super) fn decode(frame: &wire::PeerFrame<'_>) -> Result<AeMessage, DecodeError> {
    use wire::PeerMessage as Tag;
    let tag = |tag: Option<&wire::AeTag>| -> Result<AeTag, DecodeError> {
        let tag = required(tag, "AeTag")?;
        Ok(AeTag {
            exchange: ExchangeId(tag.exchange()),
            partition: PartitionId(tag.partition()),
            round: tag.round(),
        })
    };
    Ok(match frame.message_type() {
        Tag::AeRootRequest => AeMessage::RootRequest {
            tag: tag(member(frame.message_as_ae_root_request())?.tag())?,
        },
        Tag::AeRootReply => {
            let reply = member(frame.message_as_ae_root_reply())?;
            AeMessage::RootReply {
                tag: tag(reply.tag())?,
                shape: TreeShape::new(reply.level_bits(), reply.levels())?,
                root: reply.root(),
            }
        }
        Tag::AeBranchRequest => {
            let request = member(frame.message_as_ae_branch_request())?;
            let parents = counted(request.parents(), PEER_AE_BRANCH_HASHES_MAX)?;
            AeMessage::BranchRequest {
                tag: tag(request.tag())?,
                level: request.level(),
                parents: parents.iter().collect(),
            }
        }
        Tag::AeBranchReply => {
            let reply = member(frame.message_as_ae_branch_reply())?;
            let hashes = counted(reply.hashes(), PEER_AE_BRANCH_HASHES_MAX)?;
            AeMessage::BranchReply {
                tag: tag(reply.tag())?,
                level: reply.level(),
                hashes: hashes.iter().collect(),
            }
        }
        Tag::AeSegmentRequest => {
            let request = member(frame.message_as_ae_segment_request())?;
            let segments = counted(request.segments(), PEER_AE_SEGMENTS_MAX)?;
            let after = match request.after() {
                Some(cursor) => Some(ListCursor {
                    token: Token(cursor.token()),
                    key: bytes_within(cursor.key(), PEER_KEY_BYTES_MAX, "ListCursor.key")?,
                }),
                None => None,
            };
            AeMessage::SegmentRequest {
                tag: tag(request.tag())?,
                segments: segments.iter().collect(),
                after,
            }
        }
        Tag::AeSegmentReply => {
            let reply = member(frame.message_as_ae_segment_reply())?;
            let entries = counted(reply.entries(), PEER_AE_SEGMENT_ENTRIES_MAX)?;
            let entries = entries
                .iter()
                .map(|entry| {
                    Ok(SegmentEntry {
                        token: Token(entry.token()),
                        key: bytes_within(entry.key(), PEER_KEY_BYTES_MAX, "SegmentEntry.key")?,
                        version: entry.version(),
                        weight: entry.weight(),
                    })
                })
                .collect::<Result<Vec<SegmentEntry>, DecodeError>>()?;
            AeMessage::SegmentReply {
                tag: tag(reply.tag())?,
                entries,
                more: reply.more(),
            }
        }
        Tag::AeRefused => {
            let refused = member(frame.message_as_ae_refused())?;
            AeMessage::Refused {
                tag: tag(refused.tag())?,
                reason: refuse_reason_from_wire(refused.reason())?,
            }
        }
        _ => return Err(DecodeError::UnknownMessage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers are a wire format: this test changes only when a reason is appended.
    #[test]
    fn refuse_reason_numbers_are_pinned() {
        let reasons = [
            (RefuseReason::NotOwned, 1),
            (RefuseReason::BadRequest, 2),
            (RefuseReason::Busy, 3),
        ];
        for (reason, number) in reasons {
            assert_eq!(refuse_reason_to_wire(reason).0, number);
            assert_eq!(
                refuse_reason_from_wire(wire::AeRefuseReason(number)),
                Ok(reason)
            );
        }
        for unknown in [0, 4, u8::MAX] {
            assert!(refuse_reason_from_wire(wire::AeRefuseReason(unknown)).is_err());
        }
    }
}
