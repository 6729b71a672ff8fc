//! The responder side of an exchange: answers a peer's requests from its own tree.
//!
//! The responder keeps no state between requests, so a responder cannot be left waiting by a
//! vanished initiator and needs no timeout. Root and branch requests are answered at once from
//! the tree. A segment request needs storage, so it is answered in two steps:
//! [`respond`] returns [`Respond::List`] holding the [`ListingRequest`] for the driver and the
//! tag to reply with; the driver lists the keys (with [`super::ListingBuilder`]) and calls
//! [`reply_with_listing`], which builds the reply. The driver bounds how many listings it runs
//! at once and may answer [`RefuseReason::Busy`] past that bound.
//!
//! A malformed request is answered with [`AeMessage::Refused`] (so the initiator fails fast
//! rather than timing out), never a panic; a reply sent to the responder is ignored.

use crate::constants::{AE_BRANCH_HASHES_PER_MESSAGE_MAX, AE_SEGMENTS_PER_REQUEST_MAX};

use super::message::{AeMessage, AeTag, ListingRequest, RefuseReason, SegmentListing};
use super::tree::{TicTacTree, TreeShape};

/// What to do with one incoming message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Respond {
    /// Send this reply to the peer.
    Reply(AeMessage),
    /// List these keys from storage, then send `reply_with_listing(reply_to, listing)`.
    List {
        /// The tag the reply must carry.
        reply_to: AeTag,
        /// What to list.
        request: ListingRequest,
    },
    /// Not a request: drop it.
    Ignore,
}

/// Most parents a branch request may name for trees of `shape`.
pub fn parents_per_request_max(shape: TreeShape) -> usize {
    (AE_BRANCH_HASHES_PER_MESSAGE_MAX / shape.width() as usize).max(1)
}

/// Answers `message`, a request for `tree`'s partition. Pass a message for a partition the node
/// holds no tree for to [`refuse`] instead.
pub fn respond(tree: &TicTacTree, message: &AeMessage) -> Respond {
    let tag = message.tag();
    if !message.is_request() {
        return Respond::Ignore;
    }
    if tag.partition != tree.partition() {
        return refusal(message, RefuseReason::NotOwned);
    }
    match message {
        AeMessage::RootRequest { .. } => Respond::Reply(AeMessage::RootReply {
            tag,
            shape: tree.shape(),
            root: tree.root(),
        }),
        AeMessage::BranchRequest { level, parents, .. } => {
            if parents.is_empty()
                || parents.len() > parents_per_request_max(tree.shape())
                || !strictly_increasing(parents)
            {
                return refusal(message, RefuseReason::BadRequest);
            }
            let mut hashes = Vec::with_capacity(parents.len() * tree.shape().width() as usize);
            for parent in parents {
                match tree.children(*level, *parent) {
                    Some(children) => hashes.extend_from_slice(children),
                    None => return refusal(message, RefuseReason::BadRequest),
                }
            }
            Respond::Reply(AeMessage::BranchReply {
                tag,
                level: *level,
                hashes,
            })
        }
        AeMessage::SegmentRequest {
            segments, after, ..
        } => {
            let count = tree.shape().segment_count();
            let cursor_ok = after
                .as_ref()
                .is_none_or(|c| tree.partitions().partition_of(c.token) == tree.partition());
            if segments.is_empty()
                || segments.len() > AE_SEGMENTS_PER_REQUEST_MAX
                || !strictly_increasing(segments)
                || segments.last().is_some_and(|s| *s >= count)
                || !cursor_ok
            {
                return refusal(message, RefuseReason::BadRequest);
            }
            Respond::List {
                reply_to: tag,
                request: ListingRequest {
                    partition: tag.partition,
                    segments: segments.clone(),
                    after: after.clone(),
                },
            }
        }
        // Replies were filtered out above.
        _ => Respond::Ignore,
    }
}

/// The reply to a segment request once the driver has listed the keys.
pub fn reply_with_listing(reply_to: AeTag, listing: SegmentListing) -> AeMessage {
    AeMessage::SegmentReply {
        tag: reply_to,
        entries: listing.entries,
        more: listing.more,
    }
}

/// The refusal of a request (for a partition without a tree, or when busy); `None` for a reply,
/// which is never answered.
pub fn refuse(message: &AeMessage, reason: RefuseReason) -> Option<AeMessage> {
    message.is_request().then(|| AeMessage::Refused {
        tag: message.tag(),
        reason,
    })
}

fn refusal(message: &AeMessage, reason: RefuseReason) -> Respond {
    refuse(message, reason).map_or(Respond::Ignore, Respond::Reply)
}

fn strictly_increasing(values: &[u32]) -> bool {
    values.windows(2).all(|w| w[0] < w[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::antientropy::message::{ExchangeId, ListCursor};
    use crate::ids::{PartitionId, Token};
    use crate::ring::PartitionCount;

    fn tree() -> TicTacTree {
        TicTacTree::new(
            PartitionCount::new(8).unwrap(),
            PartitionId(3),
            TreeShape::DEFAULT,
        )
    }

    fn tag(p: u32) -> AeTag {
        AeTag {
            exchange: ExchangeId(9),
            partition: PartitionId(p),
            round: 4,
        }
    }

    fn refused(m: &AeMessage, reason: RefuseReason) -> Respond {
        Respond::Reply(AeMessage::Refused {
            tag: m.tag(),
            reason,
        })
    }

    #[test]
    fn answers_roots_and_branches_from_the_tree() {
        let t = tree();
        let root = AeMessage::RootRequest { tag: tag(3) };
        assert!(matches!(
            respond(&t, &root),
            Respond::Reply(AeMessage::RootReply { root: 0, .. })
        ));
        let branch = AeMessage::BranchRequest {
            tag: tag(3),
            level: 2,
            parents: vec![0, 63],
        };
        match respond(&t, &branch) {
            Respond::Reply(AeMessage::BranchReply { hashes, level, .. }) => {
                assert_eq!((hashes.len(), level), (128, 2));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn refuses_bad_requests_and_ignores_replies() {
        let t = tree();
        let other_partition = AeMessage::RootRequest { tag: tag(4) };
        assert_eq!(
            respond(&t, &other_partition),
            refused(&other_partition, RefuseReason::NotOwned)
        );
        let too_many = parents_per_request_max(t.shape()) as u32 + 1;
        for (level, parents) in [
            (2, vec![64]),
            (3, vec![0]),
            (0, vec![0]),
            (2, vec![]),
            (2, vec![5, 5]),
            (2, (0..too_many).collect()),
        ] {
            let m = AeMessage::BranchRequest {
                tag: tag(3),
                level,
                parents,
            };
            assert_eq!(respond(&t, &m), refused(&m, RefuseReason::BadRequest));
        }
        let foreign_cursor = Some(ListCursor {
            token: Token(0),
            key: vec![],
        });
        for (segments, after) in [
            (vec![4096], None),
            (vec![], None),
            (vec![2, 1], None),
            (vec![1], foreign_cursor),
            ((0..AE_SEGMENTS_PER_REQUEST_MAX as u32 + 1).collect(), None),
        ] {
            let m = AeMessage::SegmentRequest {
                tag: tag(3),
                segments,
                after,
            };
            assert_eq!(respond(&t, &m), refused(&m, RefuseReason::BadRequest));
        }
        let reply = AeMessage::RootReply {
            tag: tag(3),
            shape: t.shape(),
            root: 1,
        };
        assert_eq!(respond(&t, &reply), Respond::Ignore);
        assert_eq!(refuse(&reply, RefuseReason::Busy), None);
    }

    #[test]
    fn segment_requests_go_through_the_driver() {
        let t = tree();
        let m = AeMessage::SegmentRequest {
            tag: tag(3),
            segments: vec![1, 7],
            after: None,
        };
        let Respond::List { reply_to, request } = respond(&t, &m) else {
            panic!("a segment request must ask for a listing");
        };
        assert_eq!(reply_to, tag(3));
        assert_eq!(request.segments, vec![1, 7]);
        let reply = reply_with_listing(reply_to, SegmentListing::default());
        assert_eq!(reply.tag(), tag(3));
    }
}
