//! The initiator side of an exchange: one partition compared with one peer.
//!
//! Phases, one outstanding request to the peer at a time:
//! 1. **Root**: ask for the peer's root and shape. Equal roots end the exchange at once.
//! 2. **Branches**: level by level, ask for the children of the parents that differ, at most
//!    [`parents_per_request_max`] parents per request, and keep the children whose hash
//!    differs from the local tree's. The last level yields the differing segments.
//! 3. **Segments**: in batches of at most `AE_SEGMENTS_PER_REQUEST_MAX` segments, page through
//!    the peer's `(key, version hash)` listing of the batch and, at the same time, the local
//!    listing from the driver ([`ExchangeAction::ListLocalSegments`]). Two pages of different
//!    lengths are compared up to the smaller of their last entries (each page is complete up
//!    to its own last entry); the next round of the batch starts after that position. Each
//!    round ends in an [`ExchangeAction::Repair`] naming the keys to push (only here, or
//!    different) and to pull (only there, or different).
//!
//! The local tree is read afresh at every step, so writes during an exchange are tolerated: at
//! worst a key written meanwhile is repaired needlessly, which merge makes harmless.
//!
//! Invariants: after `Done` or `Failed` no further action is emitted; a reply is accepted only
//! if its tag matches the one outstanding request; every peer reply is checked against its
//! bounds before use, and a bad one fails the exchange.

mod compare;
mod types;

pub use types::{ExchangeAction, ExchangeConfig, ExchangeFailure, ExchangeInput, ExchangeStats};

use crate::constants::AE_SEGMENTS_PER_REQUEST_MAX;
use crate::ids::{NodeId, PartitionId};
use crate::tick::Tick;

use super::message::{
    check_page, AeMessage, AeTag, ExchangeId, ListCursor, ListingRequest, SegmentListing,
};
use super::responder::parents_per_request_max;
use super::tree::TicTacTree;
use compare::{diff_pages, page_bound, Bound};

#[derive(Debug)]
enum Phase {
    Root,
    Branches {
        level: u8,
        /// The differing parents at `level - 1`, increasing.
        parents: Vec<u32>,
        /// Parents before this index have been asked about.
        next: usize,
        /// How many parents the outstanding request names (from `next`).
        in_flight: usize,
        /// The differing children found so far at `level`, increasing.
        differing: Vec<u32>,
    },
    Segments {
        /// Every differing segment, increasing.
        segments: Vec<u32>,
        /// The current batch is `segments[start..end]`.
        start: usize,
        end: usize,
        /// Everything up to this position of the batch has been compared.
        after: Option<ListCursor>,
        remote: Option<SegmentListing>,
        local: Option<SegmentListing>,
    },
    Finished,
}

/// One exchange with one peer for one partition. See the module docs.
#[derive(Debug)]
pub struct Exchange {
    id: ExchangeId,
    partition: PartitionId,
    peer: NodeId,
    config: ExchangeConfig,
    /// The round of the outstanding request.
    round: u32,
    /// When the outstanding request times out; `None` when no reply is awaited.
    deadline: Option<Tick>,
    phase: Phase,
    stats: ExchangeStats,
}

impl Exchange {
    /// Starts an exchange with the default [`ExchangeConfig`].
    pub fn start(
        id: ExchangeId,
        partition: PartitionId,
        peer: NodeId,
        local_tree: &TicTacTree,
        now: Tick,
    ) -> (Exchange, Vec<ExchangeAction>) {
        Self::start_with(
            ExchangeConfig::default(),
            id,
            partition,
            peer,
            local_tree,
            now,
        )
    }

    /// Starts an exchange: returns it with its first actions (the root request).
    pub fn start_with(
        config: ExchangeConfig,
        id: ExchangeId,
        partition: PartitionId,
        peer: NodeId,
        local_tree: &TicTacTree,
        now: Tick,
    ) -> (Exchange, Vec<ExchangeAction>) {
        let mut exchange = Exchange {
            id,
            partition,
            peer,
            config,
            round: 0,
            deadline: None,
            phase: Phase::Root,
            stats: ExchangeStats::default(),
        };
        let mut out = Vec::new();
        if local_tree.partition() == partition {
            let tag = exchange.next_tag();
            exchange.send(now, AeMessage::RootRequest { tag }, &mut out);
        } else {
            exchange.fail(ExchangeFailure::WrongTree, &mut out);
        }
        (exchange, out)
    }

    /// Advances the exchange by one input; `local_tree` is this partition's current tree.
    pub fn step(
        &mut self,
        now: Tick,
        input: ExchangeInput,
        local_tree: &TicTacTree,
        out: &mut Vec<ExchangeAction>,
    ) {
        if matches!(self.phase, Phase::Finished) {
            return;
        }
        if local_tree.partition() != self.partition {
            return self.fail(ExchangeFailure::WrongTree, out);
        }
        match input {
            ExchangeInput::Timeout => {
                if self.deadline.is_some_and(|d| now >= d) {
                    self.fail(ExchangeFailure::Timeout, out);
                }
            }
            ExchangeInput::Message(message) => self.on_message(now, message, local_tree, out),
            ExchangeInput::LocalSegments(listing) => self.on_local(now, listing, local_tree, out),
        }
    }

    /// When the outstanding request times out, if a reply is awaited.
    pub fn deadline(&self) -> Option<Tick> {
        self.deadline
    }

    /// Whether `Done` or `Failed` has been emitted.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// The exchange's id.
    pub fn id(&self) -> ExchangeId {
        self.id
    }

    /// The partition compared.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The peer compared with.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// Cost and findings so far.
    pub fn stats(&self) -> ExchangeStats {
        self.stats
    }

    fn on_message(
        &mut self,
        now: Tick,
        message: AeMessage,
        tree: &TicTacTree,
        out: &mut Vec<ExchangeAction>,
    ) {
        let expected = AeTag {
            exchange: self.id,
            partition: self.partition,
            round: self.round,
        };
        // A late or duplicated reply to an earlier round, or a stray message: drop it.
        if self.deadline.is_none() || message.tag() != expected || message.is_request() {
            return;
        }
        self.deadline = None;
        self.stats.messages_received += 1;
        self.stats.bytes_received += message.wire_bytes() as u64;
        match (&mut self.phase, message) {
            (_, AeMessage::Refused { reason, .. }) => {
                self.fail(ExchangeFailure::Refused(reason), out)
            }
            (Phase::Root, AeMessage::RootReply { shape, root, .. }) => {
                if shape != tree.shape() {
                    let local = tree.shape();
                    self.fail(
                        ExchangeFailure::ShapeMismatch {
                            local,
                            remote: shape,
                        },
                        out,
                    );
                } else if root == tree.root() {
                    self.finish(true, out);
                } else {
                    self.phase = Phase::Branches {
                        level: 1,
                        parents: vec![0],
                        next: 0,
                        in_flight: 0,
                        differing: Vec::new(),
                    };
                    self.advance_branches(now, tree, out);
                }
            }
            (
                Phase::Branches {
                    level,
                    parents,
                    next,
                    in_flight,
                    differing,
                },
                AeMessage::BranchReply {
                    level: reply_level,
                    hashes,
                    ..
                },
            ) => {
                let width = tree.shape().width() as usize;
                if reply_level != *level || hashes.len() != *in_flight * width {
                    return self.fail(ExchangeFailure::BadReply("branch reply of wrong size"), out);
                }
                for (parent, theirs) in parents[*next..*next + *in_flight]
                    .iter()
                    .zip(hashes.chunks(width))
                {
                    // The local shape equals the peer's (checked at the root), so the parent
                    // exists locally; an empty slice would only skip it.
                    let ours = tree.children(*level, *parent).unwrap_or(&[]);
                    for (j, (a, b)) in ours.iter().zip(theirs).enumerate() {
                        if a != b {
                            differing.push(parent * width as u32 + j as u32);
                        }
                    }
                }
                *next += *in_flight;
                *in_flight = 0;
                self.advance_branches(now, tree, out);
            }
            (Phase::Segments { remote, .. }, AeMessage::SegmentReply { entries, more, .. }) => {
                *remote = Some(SegmentListing { entries, more });
                self.compare_round(now, tree, out);
            }
            _ => self.fail(
                ExchangeFailure::BadReply("reply does not fit the phase"),
                out,
            ),
        }
    }

    fn on_local(
        &mut self,
        now: Tick,
        listing: SegmentListing,
        tree: &TicTacTree,
        out: &mut Vec<ExchangeAction>,
    ) {
        if let Phase::Segments {
            local: local @ None,
            ..
        } = &mut self.phase
        {
            *local = Some(listing);
            self.compare_round(now, tree, out);
        }
    }

    /// Sends the next branch request of the level, or moves down a level, or to the segments.
    fn advance_branches(&mut self, now: Tick, tree: &TicTacTree, out: &mut Vec<ExchangeAction>) {
        let Phase::Branches {
            level,
            parents,
            next,
            in_flight,
            differing,
        } = &mut self.phase
        else {
            return;
        };
        if *next < parents.len() {
            let count = parents_per_request_max(tree.shape()).min(parents.len() - *next);
            *in_flight = count;
            let level = *level;
            let parents = parents[*next..*next + count].to_vec();
            let message = AeMessage::BranchRequest {
                tag: self.tag_for_next_round(),
                level,
                parents,
            };
            return self.send(now, message, out);
        }
        let differing = std::mem::take(differing);
        if differing.is_empty() {
            // The trees converged since the root compared (writes or repairs meanwhile).
            return self.finish(true, out);
        }
        if *level < tree.shape().levels() {
            *level += 1;
            *parents = differing;
            *next = 0;
            return self.advance_branches(now, tree, out);
        }
        self.phase = Phase::Segments {
            segments: differing,
            start: 0,
            end: 0,
            after: None,
            remote: None,
            local: None,
        };
        self.next_batch(now, out);
    }

    /// Starts the next batch of segments, or finishes when none is left.
    fn next_batch(&mut self, now: Tick, out: &mut Vec<ExchangeAction>) {
        let Phase::Segments {
            segments,
            start,
            end,
            after,
            ..
        } = &mut self.phase
        else {
            return;
        };
        if *end >= segments.len() {
            return self.finish(true, out);
        }
        *start = *end;
        *end = (*start + AE_SEGMENTS_PER_REQUEST_MAX).min(segments.len());
        *after = None;
        self.request_page(now, out);
    }

    /// Asks the peer and the driver for the next page of the current batch.
    fn request_page(&mut self, now: Tick, out: &mut Vec<ExchangeAction>) {
        let tag = self.tag_for_next_round();
        let Phase::Segments {
            segments,
            start,
            end,
            after,
            remote,
            local,
        } = &mut self.phase
        else {
            return;
        };
        *remote = None;
        *local = None;
        let batch = segments[*start..*end].to_vec();
        out.push(ExchangeAction::ListLocalSegments(ListingRequest {
            partition: self.partition,
            segments: batch.clone(),
            after: after.clone(),
        }));
        let message = AeMessage::SegmentRequest {
            tag,
            segments: batch,
            after: after.clone(),
        };
        self.send(now, message, out);
    }

    /// Compares the two pages of a round once both are in.
    fn compare_round(&mut self, now: Tick, tree: &TicTacTree, out: &mut Vec<ExchangeAction>) {
        let budget = self
            .config
            .repair_keys_max
            .saturating_sub((self.stats.keys_pushed + self.stats.keys_pulled) as usize);
        let Phase::Segments {
            segments,
            start,
            end,
            after,
            remote: Some(remote),
            local: Some(local),
        } = &mut self.phase
        else {
            return;
        };
        let batch = &segments[*start..*end];
        if let Err(what) = check_page(tree, batch, after.as_ref(), remote) {
            return self.fail(ExchangeFailure::BadReply(what), out);
        }
        if let Err(what) = check_page(tree, batch, after.as_ref(), local) {
            return self.fail(ExchangeFailure::BadLocalListing(what), out);
        }
        let bound = page_bound(local).min(page_bound(remote));
        let diff = diff_pages(local, remote, &bound, budget);
        let batch_len = batch.len() as u64;
        self.stats.keys_pushed += diff.push.len() as u64;
        self.stats.keys_pulled += diff.pull.len() as u64;
        if !diff.push.is_empty() || !diff.pull.is_empty() {
            out.push(ExchangeAction::Repair {
                push: diff.push,
                pull: diff.pull,
            });
        }
        if diff.out_of_budget {
            return self.finish(false, out);
        }
        match bound {
            Bound::At(token, key) => {
                *after = Some(ListCursor { token, key });
                self.request_page(now, out);
            }
            Bound::End => {
                self.stats.segments_compared += batch_len;
                self.next_batch(now, out);
            }
        }
    }

    fn tag_for_next_round(&mut self) -> AeTag {
        self.round = self.round.wrapping_add(1);
        self.next_tag()
    }

    fn next_tag(&self) -> AeTag {
        AeTag {
            exchange: self.id,
            partition: self.partition,
            round: self.round,
        }
    }

    fn send(&mut self, now: Tick, message: AeMessage, out: &mut Vec<ExchangeAction>) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += message.wire_bytes() as u64;
        self.deadline = Some(now + self.config.reply_timeout_ticks);
        out.push(ExchangeAction::Send(message));
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<ExchangeAction>) {
        self.stats.complete = complete;
        self.phase = Phase::Finished;
        self.deadline = None;
        out.push(ExchangeAction::Done(self.stats));
    }

    fn fail(&mut self, failure: ExchangeFailure, out: &mut Vec<ExchangeAction>) {
        self.phase = Phase::Finished;
        self.deadline = None;
        out.push(ExchangeAction::Failed(failure));
    }
}
