//! Tombstone reaping on the peer wire: a reaper's check, each member's vote and the reap itself
//! (`tessera_core::node::reap`).
//!
//! A check and a reap carry (key, tombstone) entries as `ReapEntry` tables, each a `Key` and an
//! `Object` read back through the shared key and object decoders and their bounds. A vote names
//! the check's entries by index. Entries and vetoed indices are each at most
//! [`PEER_REAP_KEYS_MAX`] (core's `REAP_KEYS_MAX`), and an index at or past that bound can name
//! no entry, so the decoder refuses all three here, where core would ignore the message.
#![forbid(unsafe_code)]

use flatbuffers::{ForwardsUOffset, Vector};
use tessera_core::node::{Key, PeerMessage};
use tessera_core::Object;

use super::object::{key, object};
use super::{member, wire, DecodeError, TableVector, Union, Writer};
use crate::decode::counted;
use crate::limits::PEER_REAP_KEYS_MAX;

// ---- Writing ----

impl Writer<'_> {
    pub(super) fn reap_check(&mut self, round: u64, ring: u64, entries: &[(Key, Object)]) -> Union {
        let entries = self.reap_entries(entries);
        let args = wire::ReapCheckArgs {
            round,
            ring,
            entries,
        };
        let check = wire::ReapCheck::create(self.fbb, &args);
        (wire::PeerMessage::ReapCheck, check.as_union_value())
    }

    pub(super) fn reap_vote(&mut self, round: u64, vetoed: &[u32]) -> Union {
        let vetoed = (!vetoed.is_empty()).then(|| self.fbb.create_vector(vetoed));
        let vote = wire::ReapVote::create(self.fbb, &wire::ReapVoteArgs { round, vetoed });
        (wire::PeerMessage::ReapVote, vote.as_union_value())
    }

    pub(super) fn reap(&mut self, ring: u64, entries: &[(Key, Object)]) -> Union {
        let entries = self.reap_entries(entries);
        let reap = wire::Reap::create(self.fbb, &wire::ReapArgs { ring, entries });
        (wire::PeerMessage::Reap, reap.as_union_value())
    }

    fn reap_entries(
        &mut self,
        entries: &[(Key, Object)],
    ) -> Option<TableVector<wire::ReapEntry<'static>>> {
        let start = self.tables.len();
        for (key, object) in entries {
            let args = wire::ReapEntryArgs {
                key: Some(self.key(key)),
                object: Some(self.object(object)),
            };
            let offset = wire::ReapEntry::create(self.fbb, &args);
            self.tables.push(offset.value());
        }
        self.tables_since(start)
    }
}

// ---- Reading ----

/// The reaping message behind the frame's union tag.
pub(super) fn decode(frame: &wire::PeerFrame<'_>) -> Result<PeerMessage, DecodeError> {
    use wire::PeerMessage as Tag;
    Ok(match frame.message_type() {
        Tag::ReapCheck => {
            let check = member(frame.message_as_reap_check())?;
            PeerMessage::ReapCheck {
                round: check.round(),
                ring: check.ring(),
                entries: entries(check.entries())?,
            }
        }
        Tag::ReapVote => {
            let vote = member(frame.message_as_reap_vote())?;
            let vetoed = counted(vote.vetoed(), PEER_REAP_KEYS_MAX)?;
            let vetoed = vetoed
                .iter()
                .map(|index| {
                    if index as usize >= PEER_REAP_KEYS_MAX {
                        return Err(DecodeError::OutOfRange {
                            field: "ReapVote.vetoed",
                            value: u64::from(index),
                            max: PEER_REAP_KEYS_MAX as u64 - 1,
                        });
                    }
                    Ok(index)
                })
                .collect::<Result<Vec<u32>, DecodeError>>()?;
            PeerMessage::ReapVote {
                round: vote.round(),
                vetoed,
            }
        }
        Tag::Reap => {
            let reap = member(frame.message_as_reap())?;
            PeerMessage::Reap {
                ring: reap.ring(),
                entries: entries(reap.entries())?,
            }
        }
        _ => return Err(DecodeError::UnknownMessage),
    })
}

/// A check's or a reap's entries: at most [`PEER_REAP_KEYS_MAX`], each a key and an object.
fn entries(
    entries: Option<Vector<'_, ForwardsUOffset<wire::ReapEntry<'_>>>>,
) -> Result<Vec<(Key, Object)>, DecodeError> {
    counted(entries, PEER_REAP_KEYS_MAX)?
        .iter()
        .map(|entry| {
            Ok((
                key(entry.key(), "ReapEntry.key")?,
                object(entry.object(), "ReapEntry.object")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reaping members were appended to the `PeerMessage` union after `RemoveMembers`, so
    /// every older tag keeps its number (`fbs/peer.fbs`: position is the wire tag).
    #[test]
    fn reap_tags_follow_the_older_ones() {
        use wire::PeerMessage as Tag;
        assert_eq!(Tag::RemoveMembers.0, 27);
        assert_eq!(Tag::ReapCheck.0, 28);
        assert_eq!(Tag::ReapVote.0, 29);
        assert_eq!(Tag::Reap.0, 30);
        assert_eq!(Tag::ENUM_MAX, Tag::Reap.0);
    }
}
