//! Reaping tombstones: a deleted key leaves every node once every member of the ring has shown
//! that no copy of it holds anything the tombstone does not supersede (DESIGN §6).
//!
//! A tombstone cannot simply age out on each replica: a replica that dropped it while another
//! still held an older value would take that value back from anti-entropy (the delete undone),
//! and one that dropped it while another still held the tombstone would ping-pong it forever.
//! So a key goes from every node in one round, or stays:
//!
//! 1. **Sweep.** Each node sweeps the partitions it is primary for (first of the read list),
//!    one page at a time, at most [`REAP_KEYS_MAX`] keys per `reap_interval_ticks` (a page
//!    of few keys is followed sooner, so small and empty partitions go by quickly). A key whose every sibling is a tombstone is noted with
//!    the tick the sweep first saw it (by its own monotonic clock, so no wall clock can make a
//!    tombstone look old); it is a candidate once a later sweep finds the same tombstone
//!    `tombstone_grace_ticks` after that.
//! 2. **Check.** The reaper sends [`PeerMessage::ReapCheck`] with the tombstones to every
//!    member of its stable ring. A member vetoes every entry if its ring differs or is not
//!    stable; else it reads each key and vetoes those whose copy is not exactly the tombstone
//!    (a newer write, a write the delete never saw, an older copy), those it holds a hint
//!    for (a hint is a copy in flight), and those whose copy became the tombstone less than
//!    a grace period ago (what it sent of the key before may still be in flight; a node that
//!    just started vetoes everything for a grace period, not knowing when its tombstones
//!    came). An older copy the tombstone supersedes takes the
//!    tombstone at once, so that a later round can succeed: this reaches stale copies on
//!    nodes that no longer replicate the key, which anti-entropy never visits, and which
//!    must not come back if the node regains the partition.
//!    Keys of a vetoed or timed-out round wait a whole grace period before the next try. A
//!    round id hashes the reaper's generation with a count, so a late vote for a round of an
//!    earlier incarnation is never counted.
//! 3. **Reap.** Once every member voted within [`REAP_ROUND_TICKS`], the reaper sends
//!    [`PeerMessage::Reap`] with the entries nobody vetoed to every member, and purges its
//!    own copies. Each node purges a key only if its copy is still exactly the tombstone
//!    ([`StorageOp::Purge`] checks and drops in one step), so a write that landed after its
//!    vote stays, and anti-entropy gives it to the others. A lost `Reap` leaves the
//!    tombstone itself on that node, never anything older: anti-entropy hands it back to the
//!    others and a later round reaps it.
//!
//! What makes this safe:
//! - when the key goes, every member holds exactly the tombstone or nothing, and no hint holds
//!   a copy; a round needs every member alive and answering;
//! - every member has held exactly the tombstone for a grace period (default an hour), so
//!   whatever older copy of the key any member sent went out at least that long ago; a
//!   message in flight that long is assumed not to exist (requests time out after seconds,
//!   hints are checked);
//! - dots minted after a reap exceed every dot minted before it ([`crate::version::dot_floor`]
//!   of the later of the minting node's and the coordinator's clocks), so a write to a
//!   reaped key is never taken for one a surviving copy already saw, unless that node's
//!   clock went back by more than the grace period;
//! - a purge only removes the tombstone itself, and the Merkle trees follow storage's
//!   before/after copies, so anti-entropy never sees a difference the reap did not make.
//!
//! Not covered: a node that left the ring and comes back with its old data directory still
//! holds whatever it held; its stale copies were not checked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

#[cfg(test)]
mod tests;

use super::{Action, Key, Node, PeerMessage, Pending, RingPhase, StorageOp, StorageResult};
use crate::antientropy::version_hash;
use crate::constants::REAP_KEYS_MAX;
use crate::ids::{NodeId, PartitionId};
use crate::tick::Tick;
use crate::version::Object;
use xxhash_rust::xxh3::xxh3_64;

/// Ticks a reaper waits for every member's vote before it gives the round up.
pub const REAP_ROUND_TICKS: u64 = 5_000;

/// Default ticks a node's sweep spends per [`REAP_KEYS_MAX`] keys read.
pub const REAP_INTERVAL_TICKS_DEFAULT: u64 = 1_000;

/// Default ticks between a sweep first seeing a tombstone and its round: far longer than any
/// request or message stays in flight.
pub const TOMBSTONE_GRACE_TICKS_DEFAULT: u64 = 3_600_000;

/// Most tombstones a node remembers having seen (key, first tick, version hash); past it new
/// ones wait for room, so memory stays bounded however many keys are deleted.
pub const REAP_SEEN_MAX: usize = 65_536;

/// A page is paced as if it held at least this many keys, so that an idle node's sweep over
/// empty partitions does not read storage every tick.
const REAP_PAGE_KEYS_MIN: usize = 4;

/// Soft byte limit of one sweep page.
const REAP_SCAN_BYTES_MAX: usize = 1 << 20;

/// What a node remembers of reaping storage work.
#[derive(Debug)]
pub(crate) enum ReapPending {
    /// A sweep page of `partition`, after `after`.
    Scan {
        partition: PartitionId,
        after: Option<Key>,
    },
    /// Copies read to vote on `to`'s round.
    Vote {
        to: NodeId,
        round: u64,
        tombstones: Vec<Object>,
    },
    /// A purge of reaped keys.
    Purge,
}

/// A round this node runs as reaper.
#[derive(Debug)]
struct Round {
    id: u64,
    ring: u64,
    entries: Vec<(Key, Object)>,
    waiting: BTreeSet<NodeId>,
    vetoed: BTreeSet<usize>,
    deadline: Tick,
}

/// A node's sweep position and its round in progress.
#[derive(Debug)]
pub(crate) struct ReapState {
    /// When the sweep may read its next page.
    next_page: Tick,
    /// The partition being swept and the last key read, if a sweep is under way.
    cursor: Option<(PartitionId, Key)>,
    turn: usize,
    scanning: bool,
    round: Option<Round>,
    /// This incarnation's generation and its rounds so far: a round id names both, so that
    /// a late vote for a round of an earlier incarnation is never counted.
    generation: u64,
    rounds: u64,
    /// The partitions this node heads, for the ring version named (computed once per ring).
    primaries: (u64, Vec<PartitionId>),
    /// Tombstones the sweep saw: the tick it first did, and the version it saw.
    seen: BTreeMap<Key, (Tick, u64)>,
    /// Keys whose copy here became a tombstone within the grace period, and when (in order):
    /// this node vetoes them, since what it sent of the key before may still be in flight.
    arrived: BTreeMap<Key, Tick>,
    arrivals: VecDeque<(Tick, Key)>,
    /// This node vetoes every key until then: it just started (it does not know when its
    /// tombstones arrived), or `arrived` overflowed.
    veto_until: Tick,
    grace: u64,
}

impl ReapState {
    pub(crate) fn new(now: Tick, generation: u64, grace: u64) -> ReapState {
        ReapState {
            next_page: now,
            cursor: None,
            turn: 0,
            scanning: false,
            round: None,
            generation,
            rounds: 0,
            primaries: (0, Vec::new()),
            seen: BTreeMap::new(),
            arrived: BTreeMap::new(),
            arrivals: VecDeque::new(),
            veto_until: now + grace,
            grace,
        }
    }

    /// This node's copy of `key` just became a tombstone.
    pub(crate) fn tombstone_arrived(&mut self, now: Tick, key: &Key) {
        self.forget_arrivals(now);
        if self.arrived.len() >= REAP_SEEN_MAX && !self.arrived.contains_key(key) {
            self.veto_until = now + self.grace;
            return;
        }
        self.arrived.insert(key.clone(), now);
        self.arrivals.push_back((now, key.clone()));
    }

    /// Forgets arrivals older than the grace period.
    fn forget_arrivals(&mut self, now: Tick) {
        while let Some((at, _)) = self.arrivals.front() {
            if now.since(*at) < self.grace {
                break;
            }
            if let Some((at, key)) = self.arrivals.pop_front() {
                if self.arrived.get(&key) == Some(&at) {
                    self.arrived.remove(&key);
                }
            }
        }
    }

    /// Whether this node must veto `key` for reasons of time alone (see `arrived`).
    fn too_recent(&mut self, now: Tick, key: &Key) -> bool {
        self.forget_arrivals(now);
        now < self.veto_until || self.arrived.contains_key(key)
    }

    /// A new round id: the generation and the round count, hashed.
    fn next_round_id(&mut self) -> u64 {
        self.rounds += 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.generation.to_le_bytes());
        bytes[8..].copy_from_slice(&self.rounds.to_le_bytes());
        xxh3_64(&bytes)
    }

    /// Keys a round could not reap wait a whole grace period again before the next try.
    fn back_off(&mut self, now: Tick, keys: impl IntoIterator<Item = (Key, u64)>) {
        for (key, hash) in keys {
            if let Some(entry) = self.seen.get_mut(&key) {
                *entry = (now, hash);
            }
        }
    }
}

impl ReapState {
    /// Notes the tombstones of a sweep page covering the keys of `span`, forgets keys of
    /// that span that are no tombstone any more, and returns those first seen at least `grace` ticks ago, unchanged since.
    fn note_page(
        &mut self,
        now: Tick,
        span: (Bound<Key>, Bound<Key>),
        entries: Vec<(Key, Object)>,
    ) -> Vec<(Key, Object)> {
        let tombstones: BTreeMap<Key, Object> = entries
            .into_iter()
            .filter(|(_, o)| !o.is_empty() && o.is_deleted())
            .collect();
        let gone: Vec<Key> = self
            .seen
            .range(span)
            .map(|(k, _)| k)
            .filter(|k| !tombstones.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.seen.remove(&key);
        }
        let mut due = Vec::new();
        for (key, object) in tombstones {
            let hash = version_hash(&object);
            // When this version was first seen; a changed tombstone starts again.
            let first = self.seen.get(&key).filter(|s| s.1 == hash).map(|s| s.0);
            let room = self.seen.len() < REAP_SEEN_MAX || self.seen.contains_key(&key);
            match first {
                Some(first) if now.since(first) >= self.grace => due.push((key, object)),
                Some(_) => {}
                None if room => {
                    self.seen.insert(key, (now, hash));
                }
                None => {}
            }
        }
        due
    }
}

impl Node {
    /// Gives up a round past its deadline; reads the next sweep page when due.
    pub(super) fn reap_tick(&mut self, now: Tick, out: &mut Vec<Action>) {
        if self.reap.round.as_ref().is_some_and(|r| now >= r.deadline) {
            if let Some(r) = self.reap.round.take() {
                let keys = r.entries.iter().map(|(k, o)| (k.clone(), version_hash(o)));
                self.reap.back_off(now, keys.collect::<Vec<_>>());
            }
        }
        if self.config.reap_interval_ticks == 0
            || self.reap.scanning
            || self.reap.round.is_some()
            || now < self.reap.next_page
            || !self.may_reap(now)
        {
            return;
        }
        let (partition, after) = match self.reap.cursor.take() {
            Some((p, key)) => (p, Some(key)),
            None => {
                let Some(p) = self.next_primary_partition() else {
                    return;
                };
                (p, None)
            }
        };
        let tokens = self.rings.current().partitions().token_range(partition);
        let op = StorageOp::ReadRange {
            partition,
            tokens,
            after: after.clone(),
            max_entries: REAP_KEYS_MAX,
            max_bytes: REAP_SCAN_BYTES_MAX,
        };
        let pending = Pending::Reap(ReapPending::Scan {
            partition,
            after: after.clone(),
        });
        self.reap.scanning = self.try_storage(op, false, pending, out);
        if !self.reap.scanning {
            // Dropped for overload: read the same page next time.
            self.reap.cursor = after.map(|key| (partition, key));
        }
    }

    /// A stable ring, no removal pending, and every member alive: a round can succeed.
    fn may_reap(&self, now: Tick) -> bool {
        self.rings.phase() == RingPhase::Stable
            && self.removals().next().is_none()
            && self
                .rings
                .current()
                .members()
                .iter()
                .all(|m| m.id == self.config.id || self.gossip.is_alive(m.id, now))
    }

    /// The next partition, in turn, whose read list this node heads.
    fn next_primary_partition(&mut self) -> Option<PartitionId> {
        if self.reap.primaries.0 != self.ring_version {
            let (me, rep) = (self.config.id, &self.config.replication);
            let mine = self
                .rings
                .read_ring()
                .replica_partitions(me, rep)
                .into_iter()
                .filter(|&p| self.rings.read_list(p, rep).first() == Some(&me))
                .collect();
            self.reap.primaries = (self.ring_version, mine);
        }
        let mine = &self.reap.primaries.1;
        if mine.is_empty() {
            return None;
        }
        if self.reap.turn.is_multiple_of(mine.len()) {
            // A new sweep: forget tombstones of partitions this node no longer heads.
            let partitions = self.rings.current().partitions();
            self.reap.seen.retain(|k, _| {
                mine.binary_search(&partitions.partition_of(k.token))
                    .is_ok()
            });
        }
        let p = mine[self.reap.turn % mine.len()];
        self.reap.turn = self.reap.turn.wrapping_add(1);
        Some(p)
    }

    /// Reaping storage work finished.
    pub(super) fn on_reap_storage(
        &mut self,
        now: Tick,
        pending: ReapPending,
        result: StorageResult,
        out: &mut Vec<Action>,
    ) {
        match (pending, result) {
            (ReapPending::Scan { partition, after }, StorageResult::Range { entries, end }) => {
                self.reap.scanning = false;
                // Paced by keys read: REAP_KEYS_MAX per interval.
                let interval = self.config.reap_interval_ticks;
                let read = entries.len().max(REAP_PAGE_KEYS_MIN) as u64;
                self.reap.next_page = now + interval.saturating_mul(read) / REAP_KEYS_MAX as u64;
                let (first, last) = self.rings.current().partitions().token_range(partition);
                let token_bound = |token: u64| Key {
                    token: crate::ids::Token(token),
                    bytes: Vec::new(),
                };
                // The span of keys the page covers: after the cursor (or from the partition's
                // start) up to its last key (or the partition's end).
                let lower = after.map_or(Bound::Included(token_bound(first)), Bound::Excluded);
                let upper = match entries.last() {
                    Some((key, _)) if !end => {
                        self.reap.cursor = Some((partition, key.clone()));
                        Bound::Included(key.clone())
                    }
                    _ => last
                        .checked_add(1)
                        .map_or(Bound::Unbounded, |t| Bound::Excluded(token_bound(t))),
                };
                let due = self.reap.note_page(now, (lower, upper), entries);
                if !due.is_empty() && self.may_reap(now) {
                    self.start_round(now, due, out);
                }
            }
            (ReapPending::Scan { .. }, _) => {
                self.reap.scanning = false;
                self.reap.next_page = now + self.config.reap_interval_ticks;
            }
            (
                ReapPending::Vote {
                    to,
                    round,
                    tombstones,
                },
                StorageResult::Objects(copies),
            ) => {
                let mut vetoed = Vec::new();
                for (i, (tomb, (key, copy))) in tombstones.into_iter().zip(copies).enumerate() {
                    let same = copy.is_empty() || copy == tomb;
                    if same && !self.hints.holds_key(&key.bytes) && !self.reap.too_recent(now, &key)
                    {
                        continue;
                    }
                    vetoed.push(i as u32);
                    if !same && tomb.supersedes(&copy) {
                        // An older copy: it takes the tombstone now, and goes in a later
                        // round (were it kept while the others purge, it would come back).
                        let lww = self.lww();
                        let merge = StorageOp::Merge {
                            key: key.clone(),
                            object: tomb,
                            lww,
                        };
                        let pending = Pending::Repair { key, from: None };
                        self.try_storage(merge, false, pending, out);
                    }
                }
                let vote = PeerMessage::ReapVote { round, vetoed };
                self.send(now, to, vote, out);
            }
            (ReapPending::Purge, StorageResult::ChangedMany(changed)) => {
                for (key, before, after) in changed {
                    self.track_change(now, &key, &before, &after);
                    self.reap.seen.remove(&key);
                    if !before.is_empty() && after.is_empty() {
                        self.stats.tombstones_reaped += 1;
                    }
                }
            }
            _ => {} // storage failed: a voter's silence fails the round; a purge comes round again
        }
    }

    fn start_round(&mut self, now: Tick, entries: Vec<(Key, Object)>, out: &mut Vec<Action>) {
        let id = self.reap.next_round_id();
        // Stable (see `may_reap`): the members of the one ring.
        let members = self.rings.all_members();
        let check = PeerMessage::ReapCheck {
            round: id,
            ring: self.ring_version,
            entries: entries.clone(),
        };
        self.reap.round = Some(Round {
            id,
            ring: self.ring_version,
            entries,
            waiting: members.iter().copied().collect(),
            vetoed: BTreeSet::new(),
            deadline: now + REAP_ROUND_TICKS,
        });
        // This node votes like every other member (`send` hands it its own check).
        for to in members {
            self.send(now, to, check.clone(), out);
        }
    }

    /// A reaper asks which of its tombstones must stay.
    pub(super) fn on_reap_check(
        &mut self,
        now: Tick,
        from: NodeId,
        round: u64,
        ring: u64,
        entries: Vec<(Key, Object)>,
        out: &mut Vec<Action>,
    ) {
        if entries.is_empty() || entries.len() > REAP_KEYS_MAX || !self.rings.has_member(from) {
            return; // more than any round checks, or not from a member: ignore
        }
        let count = entries.len() as u32;
        if ring != self.ring_version || self.rings.phase() != RingPhase::Stable {
            let vote = PeerMessage::ReapVote {
                round,
                vetoed: (0..count).collect(),
            };
            self.send(now, from, vote, out);
            return;
        }
        let (keys, tombstones): (Vec<Key>, Vec<Object>) = entries.into_iter().unzip();
        let pending = Pending::Reap(ReapPending::Vote {
            to: from,
            round,
            tombstones,
        });
        // Dropped under overload: the round times out.
        self.try_storage(StorageOp::ReadMany { keys }, false, pending, out);
    }

    /// A member's vote on this node's round.
    pub(super) fn on_reap_vote(
        &mut self,
        now: Tick,
        from: NodeId,
        round: u64,
        vetoed: Vec<u32>,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.reap.round.as_mut() else {
            return;
        };
        if r.id != round || !r.waiting.remove(&from) {
            return;
        }
        let count = r.entries.len();
        r.vetoed.extend(
            vetoed
                .into_iter()
                .map(|i| i as usize)
                .filter(|&i| i < count),
        );
        if !r.waiting.is_empty() {
            return;
        }
        if let Some(r) = self.reap.round.take() {
            self.finish_round(now, r, out);
        }
    }

    /// Every member voted: back off what was vetoed, and reap the rest everywhere.
    fn finish_round(&mut self, now: Tick, r: Round, out: &mut Vec<Action>) {
        let (entries, vetoed): (Vec<_>, Vec<_>) = r
            .entries
            .into_iter()
            .enumerate()
            .partition(|(i, _)| !r.vetoed.contains(i));
        let vetoed = vetoed.into_iter().map(|(_, (k, o))| (k, version_hash(&o)));
        self.reap.back_off(now, vetoed.collect::<Vec<_>>());
        let entries: Vec<(Key, Object)> = entries.into_iter().map(|(_, e)| e).collect();
        if entries.is_empty() || r.ring != self.ring_version || !self.may_reap(now) {
            return;
        }
        for to in self.rings.all_members() {
            let reap = PeerMessage::Reap {
                ring: r.ring,
                entries: entries.clone(),
            };
            self.send(now, to, reap, out);
        }
    }

    /// The reaper's verdict: purge what nobody vetoed.
    pub(super) fn on_reap(
        &mut self,
        from: NodeId,
        ring: u64,
        entries: Vec<(Key, Object)>,
        out: &mut Vec<Action>,
    ) {
        let count = entries.len();
        if ring != self.ring_version
            || count == 0
            || count > REAP_KEYS_MAX
            || !self.rings.has_member(from)
        {
            return;
        }
        let pending = Pending::Reap(ReapPending::Purge);
        self.try_storage(StorageOp::Purge { entries }, false, pending, out);
    }
}
