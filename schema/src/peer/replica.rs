//! Replication, reads, repair and hinted handoff on the peer wire: the `PeerMessage` variants
//! that carry keys and objects between a coordinator and its replicas.
//!
//! Optional values map to flags, never to absence alone: an update's `None` value (a delete) is
//! `delete = true`, because an empty value is a real value; a replicate's `hint_for` is an
//! optional scalar.
#![forbid(unsafe_code)]

use tessera_core::node::{Key, PeerMessage};
use tessera_core::quorum::RequestId;
use tessera_core::NodeId;

use super::object::{error, key, object, version_vector};
use super::{bytes, member, wire, DecodeError, Union, Writer};
use crate::decode::counted;
use crate::limits::PEER_FETCH_KEYS_MAX;

// ---- Writing ----

impl Writer<'_> {
    /// The replication variants (`Writer::frame` sends the others to their own submodules).
    pub(super) fn replica(&mut self, message: &PeerMessage) -> Union {
        use wire::PeerMessage as Tag;
        match message {
            PeerMessage::Update {
                op,
                key,
                context,
                value,
                timestamp_ms,
                durable,
                ring,
            } => {
                let delete = value.is_none();
                let key = Some(self.key(key));
                let context = self.version_vector(context);
                let value = value.as_deref().and_then(|value| self.bytes(value));
                let args = wire::UpdateArgs {
                    op: op.0,
                    key,
                    context,
                    value,
                    delete,
                    timestamp_ms: *timestamp_ms,
                    durable: *durable,
                    ring: *ring,
                };
                (
                    Tag::Update,
                    wire::Update::create(self.fbb, &args).as_union_value(),
                )
            }
            PeerMessage::Updated { op, result } => {
                let (object, error) = match result {
                    Ok(updated) => (Some(self.object(updated)), None),
                    Err(refused) => (None, Some(self.error(refused))),
                };
                let args = wire::UpdatedArgs {
                    op: op.0,
                    object,
                    error,
                };
                (
                    Tag::Updated,
                    wire::Updated::create(self.fbb, &args).as_union_value(),
                )
            }
            PeerMessage::Replicate {
                op,
                key,
                object,
                hint_for,
                durable,
                ring,
            } => {
                let args = wire::ReplicateArgs {
                    op: op.0,
                    key: Some(self.key(key)),
                    object: Some(self.object(object)),
                    hint_for: hint_for.map(|owner| owner.0),
                    durable: *durable,
                    ring: *ring,
                };
                let replicate = wire::Replicate::create(self.fbb, &args);
                (Tag::Replicate, replicate.as_union_value())
            }
            PeerMessage::ReplicateAck { op } => {
                let args = wire::ReplicateAckArgs { op: op.0 };
                let ack = wire::ReplicateAck::create(self.fbb, &args);
                (Tag::ReplicateAck, ack.as_union_value())
            }
            PeerMessage::Read { op, key } => {
                let args = wire::ReadArgs {
                    op: op.0,
                    key: Some(self.key(key)),
                };
                (
                    Tag::Read,
                    wire::Read::create(self.fbb, &args).as_union_value(),
                )
            }
            PeerMessage::ReadReply { op, object } => {
                let args = wire::ReadReplyArgs {
                    op: op.0,
                    object: Some(self.object(object)),
                };
                let reply = wire::ReadReply::create(self.fbb, &args);
                (Tag::ReadReply, reply.as_union_value())
            }
            PeerMessage::Repair { key, object } => {
                let args = wire::RepairArgs {
                    key: Some(self.key(key)),
                    object: Some(self.object(object)),
                };
                (
                    Tag::Repair,
                    wire::Repair::create(self.fbb, &args).as_union_value(),
                )
            }
            PeerMessage::Fetch { keys } => {
                let start = self.tables.len();
                for key in keys {
                    let offset = self.key(key);
                    self.tables.push(offset.value());
                }
                let keys = self.tables_since::<wire::Key<'static>>(start);
                let fetch = wire::Fetch::create(self.fbb, &wire::FetchArgs { keys });
                (Tag::Fetch, fetch.as_union_value())
            }
            PeerMessage::HintDeliver {
                delivery,
                key,
                object,
            } => {
                let args = wire::HintDeliverArgs {
                    delivery: *delivery,
                    key: Some(self.key(key)),
                    object: Some(self.object(object)),
                };
                let deliver = wire::HintDeliver::create(self.fbb, &args);
                (Tag::HintDeliver, deliver.as_union_value())
            }
            PeerMessage::HintAck { delivery } => {
                let args = wire::HintAckArgs {
                    delivery: *delivery,
                };
                (
                    Tag::HintAck,
                    wire::HintAck::create(self.fbb, &args).as_union_value(),
                )
            }
            // A bug in `Writer::frame`, not bad input: it matches these to their own writers.
            PeerMessage::Gossip(_)
            | PeerMessage::Ae(_)
            | PeerMessage::Transfer(_)
            | PeerMessage::Ring(_)
            | PeerMessage::MovesDone { .. }
            | PeerMessage::Remove { .. }
            | PeerMessage::ReapCheck { .. }
            | PeerMessage::ReapVote { .. }
            | PeerMessage::Reap { .. } => {
                unreachable!("Writer::frame dispatches {message:?} to its own submodule")
            }
        }
    }
}

// ---- Reading ----

/// The replication message behind the frame's union tag (every tag not read elsewhere).
pub(super) fn decode(frame: &wire::PeerFrame<'_>) -> Result<PeerMessage, DecodeError> {
    use wire::PeerMessage as Tag;
    Ok(match frame.message_type() {
        Tag::Update => update(member(frame.message_as_update())?)?,
        Tag::Updated => {
            let updated = member(frame.message_as_updated())?;
            let result = match (updated.object(), updated.error()) {
                (Some(updated), None) => Ok(object(Some(updated), "Updated.object")?),
                (None, Some(refused)) => Err(error(refused)?),
                (None, None) => return Err(DecodeError::MissingField("Updated.object")),
                (Some(_), Some(_)) => {
                    return Err(DecodeError::Malformed("Updated sets both object and error"))
                }
            };
            PeerMessage::Updated {
                op: RequestId(updated.op()),
                result,
            }
        }
        Tag::Replicate => {
            let replicate = member(frame.message_as_replicate())?;
            PeerMessage::Replicate {
                op: RequestId(replicate.op()),
                key: key(replicate.key(), "Replicate.key")?,
                object: object(replicate.object(), "Replicate.object")?,
                hint_for: replicate.hint_for().map(NodeId),
                durable: replicate.durable(),
                ring: replicate.ring(),
            }
        }
        Tag::ReplicateAck => PeerMessage::ReplicateAck {
            op: RequestId(member(frame.message_as_replicate_ack())?.op()),
        },
        Tag::Read => {
            let read = member(frame.message_as_read())?;
            PeerMessage::Read {
                op: RequestId(read.op()),
                key: key(read.key(), "Read.key")?,
            }
        }
        Tag::ReadReply => {
            let reply = member(frame.message_as_read_reply())?;
            PeerMessage::ReadReply {
                op: RequestId(reply.op()),
                object: object(reply.object(), "ReadReply.object")?,
            }
        }
        Tag::Repair => {
            let repair = member(frame.message_as_repair())?;
            PeerMessage::Repair {
                key: key(repair.key(), "Repair.key")?,
                object: object(repair.object(), "Repair.object")?,
            }
        }
        Tag::Fetch => {
            let keys = counted(
                member(frame.message_as_fetch())?.keys(),
                PEER_FETCH_KEYS_MAX,
            )?;
            let keys = keys
                .iter()
                .map(|k| key(Some(k), "Fetch.keys"))
                .collect::<Result<Vec<Key>, DecodeError>>()?;
            PeerMessage::Fetch { keys }
        }
        Tag::HintDeliver => {
            let deliver = member(frame.message_as_hint_deliver())?;
            PeerMessage::HintDeliver {
                delivery: deliver.delivery(),
                key: key(deliver.key(), "HintDeliver.key")?,
                object: object(deliver.object(), "HintDeliver.object")?,
            }
        }
        Tag::HintAck => PeerMessage::HintAck {
            delivery: member(frame.message_as_hint_ack())?.delivery(),
        },
        _ => return Err(DecodeError::UnknownMessage),
    })
}

fn update(update: wire::Update<'_>) -> Result<PeerMessage, DecodeError> {
    let value = match (update.delete(), update.value()) {
        (false, value) => Some(bytes(value)),
        (true, None) => None,
        (true, Some(_)) => return Err(DecodeError::Malformed("a delete Update carries a value")),
    };
    Ok(PeerMessage::Update {
        op: RequestId(update.op()),
        key: key(update.key(), "Update.key")?,
        context: version_vector(update.context())?,
        value,
        timestamp_ms: update.timestamp_ms(),
        durable: update.durable(),
        ring: update.ring(),
    })
}
