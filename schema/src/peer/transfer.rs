//! Partition transfers on the peer wire: offers, chunks of (entry key, object), acks and aborts.
//!
//! Abort reasons use core's stable codes ([`AbortReason::code`], read back with
//! [`AbortReason::from_code`]); zero is never sent. A chunk over core's
//! `TRANSFER_CHUNK_ENTRIES_MAX` is refused here, where core would ignore it.
#![forbid(unsafe_code)]

use tessera_core::transfer::{AbortReason, Entry, TransferId, TransferMessage};
use tessera_core::PartitionId;

use super::object::object;
use super::{bytes_within, member, wire, DecodeError, Union, Writer};
use crate::decode::counted;
use crate::limits::{PEER_KEY_BYTES_MAX, PEER_TRANSFER_CHUNK_ENTRIES_MAX};

// ---- Writing ----

impl Writer<'_> {
    pub(super) fn transfer(&mut self, message: &TransferMessage) -> Union {
        use wire::PeerMessage as Tag;
        match message {
            TransferMessage::Offer { id, partition } => {
                let args = wire::TransferOfferArgs {
                    id: id.0,
                    partition: partition.0,
                };
                let offer = wire::TransferOffer::create(self.fbb, &args);
                (Tag::TransferOffer, offer.as_union_value())
            }
            TransferMessage::Chunk {
                id,
                partition,
                seq,
                entries,
                last,
            } => {
                let start = self.tables.len();
                for (key, object) in entries {
                    let args = wire::TransferEntryArgs {
                        key: self.bytes(key),
                        object: Some(self.object(object)),
                    };
                    let offset = wire::TransferEntry::create(self.fbb, &args);
                    self.tables.push(offset.value());
                }
                let entries = self.tables_since(start);
                let args = wire::TransferChunkArgs {
                    id: id.0,
                    partition: partition.0,
                    seq: *seq,
                    entries,
                    last: *last,
                };
                let chunk = wire::TransferChunk::create(self.fbb, &args);
                (Tag::TransferChunk, chunk.as_union_value())
            }
            TransferMessage::Ack { id, seq } => {
                let args = wire::TransferAckArgs {
                    id: id.0,
                    seq: *seq,
                };
                let ack = wire::TransferAck::create(self.fbb, &args);
                (Tag::TransferAck, ack.as_union_value())
            }
            TransferMessage::Abort { id, reason } => {
                let args = wire::TransferAbortArgs {
                    id: id.0,
                    reason: wire::AbortReason(reason.code()),
                };
                let abort = wire::TransferAbort::create(self.fbb, &args);
                (Tag::TransferAbort, abort.as_union_value())
            }
        }
    }
}

// ---- Reading ----

/// The transfer message behind the frame's union tag.
pub(super) fn decode(frame: &wire::PeerFrame<'_>) -> Result<TransferMessage, DecodeError> {
    use wire::PeerMessage as Tag;
    Ok(match frame.message_type() {
        Tag::TransferOffer => {
            let offer = member(frame.message_as_transfer_offer())?;
            TransferMessage::Offer {
                id: TransferId(offer.id()),
                partition: PartitionId(offer.partition()),
            }
        }
        Tag::TransferChunk => {
            let chunk = member(frame.message_as_transfer_chunk())?;
            let entries = counted(chunk.entries(), PEER_TRANSFER_CHUNK_ENTRIES_MAX)?;
            let entries = entries
                .iter()
                .map(|entry| {
                    let key = bytes_within(entry.key(), PEER_KEY_BYTES_MAX, "TransferEntry.key")?;
                    Ok((key, object(entry.object(), "TransferEntry.object")?))
                })
                .collect::<Result<Vec<Entry>, DecodeError>>()?;
            TransferMessage::Chunk {
                id: TransferId(chunk.id()),
                partition: PartitionId(chunk.partition()),
                seq: chunk.seq(),
                entries,
                last: chunk.last(),
            }
        }
        Tag::TransferAck => {
            let ack = member(frame.message_as_transfer_ack())?;
            TransferMessage::Ack {
                id: TransferId(ack.id()),
                seq: ack.seq(),
            }
        }
        Tag::TransferAbort => {
            let abort = member(frame.message_as_transfer_abort())?;
            let code = abort.reason().0;
            TransferMessage::Abort {
                id: TransferId(abort.id()),
                reason: AbortReason::from_code(code).ok_or(DecodeError::UnknownEnumValue {
                    field: "TransferAbort.reason",
                    value: u32::from(code),
                })?,
            }
        }
        _ => return Err(DecodeError::UnknownMessage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fbs/peer.fbs` names core's codes; both must keep agreeing.
    #[test]
    fn abort_reasons_match_the_schema() {
        let reasons = [
            (AbortReason::ReceiverBusy, wire::AbortReason::ReceiverBusy),
            (
                AbortReason::UnknownTransfer,
                wire::AbortReason::UnknownTransfer,
            ),
            (AbortReason::TimedOut, wire::AbortReason::TimedOut),
            (AbortReason::Cancelled, wire::AbortReason::Cancelled),
        ];
        for (reason, named) in reasons {
            assert_eq!(reason.code(), named.0);
            assert_eq!(AbortReason::from_code(named.0), Some(reason));
        }
        assert_eq!(AbortReason::from_code(wire::AbortReason::Unknown.0), None);
    }
}
