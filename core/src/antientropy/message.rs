//! The anti-entropy wire messages and the segment listings the driver reads from storage.
//!
//! Messages are plain data (a later issue maps them to flatbuffers). Every message carries an
//! [`AeTag`]: the exchange it belongs to, the partition, and the initiator's round number, so a
//! late or duplicated reply is recognised and dropped. Every variable-length field is bounded by
//! a named constant, checked by whoever receives it.
//!
//! A listing is one page of a partition's keys in `(token, key)` order, restricted to some
//! segments and starting strictly after a cursor. Both sides page the same order, which is what
//! lets the initiator compare two pages of different lengths (see `exchange`).

use crate::constants::{AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX, AE_SEGMENT_REPLY_BYTES_MAX};
use crate::ids::{PartitionId, Token};

use super::tree::{TicTacTree, TreeShape};
use super::{version_hash, version_weight};
use crate::version::Object;

/// Names one exchange; chosen by the initiator's driver, unique among its open exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeId(pub u64);

/// What every anti-entropy message is tagged with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AeTag {
    /// The exchange.
    pub exchange: ExchangeId,
    /// The partition being compared.
    pub partition: PartitionId,
    /// The initiator's request number within the exchange; a reply echoes its request's.
    pub round: u32,
}

/// Bytes of an [`AeTag`] on the wire, plus one byte for the message kind.
const TAG_WIRE_BYTES: usize = 8 + 4 + 4 + 1;
/// Bytes of a length prefix on the wire.
const LEN_WIRE_BYTES: usize = 4;

/// A position in the `(token, key)` order of a partition's keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListCursor {
    /// The key's token.
    pub token: Token,
    /// The storage key.
    pub key: Vec<u8>,
}

impl ListCursor {
    fn wire_bytes(&self) -> usize {
        8 + LEN_WIRE_BYTES + self.key.len()
    }
}

/// One key of a segment listing and the hash of its version ([`super::version_hash`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SegmentEntry {
    /// The key's token.
    pub token: Token,
    /// The storage key.
    pub key: Vec<u8>,
    /// The version hash of the key's object on the listing replica.
    pub version: u64,
    /// The version's causal weight ([`super::version_weight`]): larger for a version that
    /// supersedes another, so that the replica holding it sends it instead of being asked
    /// for the stale one. Only a hint: a wrong guess costs one more message, never
    /// correctness.
    pub weight: u64,
}

impl SegmentEntry {
    /// Bytes on the wire: token, length-prefixed key, version hash, weight.
    pub fn wire_bytes(&self) -> usize {
        8 + LEN_WIRE_BYTES + self.key.len() + 8 + 8
    }

    /// The entry's place in the listing order.
    pub fn position(&self) -> (Token, &[u8]) {
        (self.token, &self.key)
    }
}

/// Why a responder refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The responder holds no tree for this partition (it does not own it, or is rebuilding).
    NotOwned,
    /// The request broke a bound or named something outside the tree.
    BadRequest,
    /// The responder is at its limit of exchanges; try later.
    Busy,
}

/// Requests (initiator to responder) and replies (back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AeMessage {
    /// Asks for the responder's root.
    RootRequest {
        /// Exchange, partition, round.
        tag: AeTag,
    },
    /// The responder's root and shape.
    RootReply {
        /// Echoes the request's.
        tag: AeTag,
        /// The responder's tree shape; comparing trees of different shapes is meaningless.
        shape: TreeShape,
        /// The responder's root hash.
        root: u64,
    },
    /// Asks for the children (at `level`) of `parents` (at `level - 1`).
    BranchRequest {
        /// Exchange, partition, round.
        tag: AeTag,
        /// The level of the hashes asked for, `1..=levels`.
        level: u8,
        /// Parent indexes, strictly increasing, at most
        /// `max(1, AE_BRANCH_HASHES_PER_MESSAGE_MAX / width)` of them.
        parents: Vec<u32>,
    },
    /// The children of the requested parents, `width` hashes per parent in request order.
    BranchReply {
        /// Echoes the request's.
        tag: AeTag,
        /// Echoes the request's.
        level: u8,
        /// `parents.len() * width` hashes.
        hashes: Vec<u64>,
    },
    /// Asks for one page of the keys of `segments`, strictly after `after`.
    SegmentRequest {
        /// Exchange, partition, round.
        tag: AeTag,
        /// Segment indexes, strictly increasing, at most `AE_SEGMENTS_PER_REQUEST_MAX`.
        segments: Vec<u32>,
        /// Where the previous page ended, `None` for the first page.
        after: Option<ListCursor>,
    },
    /// One page of the responder's keys.
    SegmentReply {
        /// Echoes the request's.
        tag: AeTag,
        /// In `(token, key)` order, within the requested segments, after the cursor; at most
        /// `AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX` entries.
        entries: Vec<SegmentEntry>,
        /// Whether entries remain after the last one (then `entries` is not empty).
        more: bool,
    },
    /// The responder will not answer this exchange.
    Refused {
        /// Echoes the request's.
        tag: AeTag,
        /// Why.
        reason: RefuseReason,
    },
}

impl AeMessage {
    /// The message's tag.
    pub fn tag(&self) -> AeTag {
        match self {
            AeMessage::RootRequest { tag }
            | AeMessage::RootReply { tag, .. }
            | AeMessage::BranchRequest { tag, .. }
            | AeMessage::BranchReply { tag, .. }
            | AeMessage::SegmentRequest { tag, .. }
            | AeMessage::SegmentReply { tag, .. }
            | AeMessage::Refused { tag, .. } => *tag,
        }
    }

    /// Whether this message is a request (a responder answers it).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            AeMessage::RootRequest { .. }
                | AeMessage::BranchRequest { .. }
                | AeMessage::SegmentRequest { .. }
        )
    }

    /// Estimated bytes on the wire: fixed-width fields at their size, vectors length-prefixed.
    pub fn wire_bytes(&self) -> usize {
        TAG_WIRE_BYTES
            + match self {
                AeMessage::RootRequest { .. } => 0,
                AeMessage::RootReply { .. } => 2 + 8,
                AeMessage::BranchRequest { parents, .. } => 1 + LEN_WIRE_BYTES + 4 * parents.len(),
                AeMessage::BranchReply { hashes, .. } => 1 + LEN_WIRE_BYTES + 8 * hashes.len(),
                AeMessage::SegmentRequest {
                    segments, after, ..
                } => {
                    LEN_WIRE_BYTES
                        + 4 * segments.len()
                        + 1
                        + after.as_ref().map_or(0, ListCursor::wire_bytes)
                }
                AeMessage::SegmentReply { entries, .. } => {
                    LEN_WIRE_BYTES + entries.iter().map(SegmentEntry::wire_bytes).sum::<usize>() + 1
                }
                AeMessage::Refused { .. } => 1,
            }
    }
}

/// A request to the driver: list one page of a partition's keys from storage.
///
/// The page holds every stored key whose token lies in one of `segments` (see
/// [`TicTacTree::segment_token_range`]), in `(token, key)` order, strictly after `after`, with
/// the version hash of its object; build it with [`ListingBuilder`], which applies the cursor
/// and the bounds. A key that storage holds as absent (never written) is not listed; a
/// tombstoned key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingRequest {
    /// The partition.
    pub partition: PartitionId,
    /// Segment indexes, strictly increasing.
    pub segments: Vec<u32>,
    /// List strictly after this position; `None` from the start.
    pub after: Option<ListCursor>,
}

impl ListingRequest {
    /// The token ranges (inclusive) to read, in order: one per segment, skipping segments wholly
    /// before the cursor. Entries at the cursor's token but not after it are dropped by the
    /// builder.
    pub fn token_ranges<'a>(
        &'a self,
        tree: &'a TicTacTree,
    ) -> impl Iterator<Item = (u64, u64)> + 'a {
        let from = self.after.as_ref().map_or(0, |c| c.token.0);
        self.segments
            .iter()
            .map(|s| tree.segment_token_range(*s))
            .filter(move |(_, last)| *last >= from)
            .map(move |(first, last)| (first.max(from), last))
    }
}

/// One page of a partition's keys, as listed by storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentListing {
    /// In `(token, key)` order.
    pub entries: Vec<SegmentEntry>,
    /// Whether entries remain after the last one.
    pub more: bool,
}

/// Builds a [`SegmentListing`] within the bounds: feed it every key of the request's token
/// ranges in order; stop when [`ListingBuilder::push`] returns `false`.
#[derive(Debug)]
pub struct ListingBuilder {
    after: Option<ListCursor>,
    entries: Vec<SegmentEntry>,
    bytes: usize,
    more: bool,
}

impl ListingBuilder {
    /// A builder for `request`'s page.
    pub fn new(request: &ListingRequest) -> ListingBuilder {
        ListingBuilder {
            after: request.after.clone(),
            entries: Vec::new(),
            bytes: 0,
            more: false,
        }
    }

    /// Offers the next key in `(token, key)` order. Keys at or before the cursor are skipped
    /// (returns `true`). Returns `false` once the page is full: the key was not taken, the
    /// listing is marked as having more, and the caller stops.
    pub fn push(&mut self, token: Token, key: &[u8], version: u64) -> bool {
        self.push_weighted(token, key, version, 0)
    }

    /// Offers the next key with its stored object (see [`ListingBuilder::push`]).
    pub fn push_object(&mut self, token: Token, key: &[u8], object: &Object) -> bool {
        self.push_weighted(token, key, version_hash(object), version_weight(object))
    }

    fn push_weighted(&mut self, token: Token, key: &[u8], version: u64, weight: u64) -> bool {
        if self.more {
            return false;
        }
        if let Some(after) = &self.after {
            if (token, key) <= (after.token, after.key.as_slice()) {
                return true;
            }
        }
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|last| last.position() < (token, key)),
            "listing fed out of (token, key) order"
        );
        let entry = SegmentEntry {
            token,
            key: key.to_vec(),
            version,
            weight,
        };
        let bytes = entry.wire_bytes();
        // At least one entry per page whatever its size, so paging always advances.
        if self.entries.len() >= AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX
            || (!self.entries.is_empty() && self.bytes + bytes > AE_SEGMENT_REPLY_BYTES_MAX)
        {
            self.more = true;
            return false;
        }
        self.bytes += bytes;
        self.entries.push(entry);
        true
    }

    /// The page.
    pub fn finish(self) -> SegmentListing {
        SegmentListing {
            entries: self.entries,
            more: self.more,
        }
    }
}

/// Checks a page (a peer's reply or the driver's listing) against the request it answers.
/// Returns what is wrong, if anything.
pub(crate) fn check_page(
    tree: &TicTacTree,
    segments: &[u32],
    after: Option<&ListCursor>,
    page: &SegmentListing,
) -> Result<(), &'static str> {
    if page.entries.len() > AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX {
        return Err("too many entries in a segment page");
    }
    if page.more && page.entries.is_empty() {
        return Err("an empty segment page that claims more");
    }
    let mut prev: Option<(Token, &[u8])> = after.map(|c| (c.token, c.key.as_slice()));
    for entry in &page.entries {
        if prev.is_some_and(|p| p >= entry.position()) {
            return Err("segment page out of order or not after the cursor");
        }
        if tree.partitions().partition_of(entry.token) != tree.partition()
            || segments
                .binary_search(&tree.segment_of(entry.token))
                .is_err()
        {
            return Err("segment page entry outside the requested segments");
        }
        prev = Some(entry.position());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::PartitionCount;

    fn tree() -> TicTacTree {
        TicTacTree::new(
            PartitionCount::new(4).unwrap(),
            PartitionId(1),
            TreeShape::new(2, 1).unwrap(),
        )
    }

    #[test]
    fn builder_skips_the_cursor_and_pages() {
        let t = tree();
        let (first, _) = t.segment_token_range(2);
        let request = ListingRequest {
            partition: PartitionId(1),
            segments: vec![2],
            after: Some(ListCursor {
                token: Token(first + 1),
                key: b"b".to_vec(),
            }),
        };
        let mut b = ListingBuilder::new(&request);
        assert!(b.push(Token(first), b"z", 1));
        assert!(b.push(Token(first + 1), b"a", 1));
        assert!(b.push(Token(first + 1), b"b", 1));
        for i in 0..AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX as u64 {
            assert!(b.push(Token(first + 2 + i), b"k", i));
        }
        assert!(!b.push(Token(first + 1_000_000), b"k", 0));
        let page = b.finish();
        assert!(page.more);
        assert_eq!(page.entries.len(), AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX);
        assert_eq!(page.entries[0].token, Token(first + 2));
        assert_eq!(
            check_page(&t, &request.segments, request.after.as_ref(), &page),
            Ok(())
        );
    }

    #[test]
    fn check_page_rejects_bad_pages() {
        let t = tree();
        let (a, _) = t.segment_token_range(1);
        let (b, _) = t.segment_token_range(2);
        let entry = |tok: u64, key: &[u8]| SegmentEntry {
            token: Token(tok),
            key: key.to_vec(),
            version: 0,
            weight: 0,
        };
        let page = |entries: Vec<SegmentEntry>, more: bool| SegmentListing { entries, more };
        assert!(check_page(&t, &[1], None, &page(vec![], true)).is_err());
        assert!(check_page(&t, &[1], None, &page(vec![entry(b, b"k")], false)).is_err());
        assert!(check_page(&t, &[1], None, &page(vec![entry(0, b"k")], false)).is_err());
        let unordered = vec![entry(a, b"k"), entry(a, b"j")];
        assert!(check_page(&t, &[1], None, &page(unordered, false)).is_err());
        let cursor = ListCursor {
            token: Token(a),
            key: b"k".to_vec(),
        };
        let at_cursor = vec![entry(a, b"k")];
        assert!(check_page(&t, &[1], Some(&cursor), &page(at_cursor, false)).is_err());
        let good = vec![entry(a, b"k"), entry(a, b"l"), entry(b, b"a")];
        assert_eq!(check_page(&t, &[1, 2], None, &page(good, false)), Ok(()));
    }

    #[test]
    fn wire_bytes_counts_fields() {
        let tag = AeTag {
            exchange: ExchangeId(1),
            partition: PartitionId(2),
            round: 3,
        };
        assert_eq!(AeMessage::RootRequest { tag }.wire_bytes(), 17);
        let reply = AeMessage::BranchReply {
            tag,
            level: 1,
            hashes: vec![0; 64],
        };
        assert_eq!(reply.wire_bytes(), 17 + 1 + 4 + 512);
        let entries = AeMessage::SegmentReply {
            tag,
            entries: vec![SegmentEntry {
                token: Token(0),
                key: vec![0; 16],
                version: 0,
                weight: 0,
            }],
            more: false,
        };
        assert_eq!(entries.wire_bytes(), 17 + 4 + (8 + 4 + 16 + 8 + 8) + 1);
    }
}
