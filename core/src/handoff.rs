//! Hinted handoff bookkeeping (DESIGN §4, Dynamo §4.6).
//!
//! A fallback that accepted a write for an unhealthy owner keeps it as a *hint*: the object
//! and the owner it belongs to. [`HintBook`] is the in-memory index of a node's hints; the
//! driver persists every change it reports (the hint store is durable, so hints survive a
//! restart and are handed back with [`HintBook::restore`]).
//!
//! Delivery: [`HintBook::due`] picks hints whose owner is believed alive and that are not
//! already on their way; the owner merges the object durably and acknowledges; only then does
//! [`HintBook::on_delivered`] let the hint go. A hint that changed while its delivery was in
//! flight (another write for the same owner and key arrived) stays, and is delivered again
//! with the newer content. An unacknowledged delivery is retried after
//! [`HINT_RETRY_TICKS_DEFAULT`].
//!
//! Invariants: at most one hint per (owner, key), its object the merge of every write it
//! stands for; at most [`HINTS_MAX`] hints, so a fallback refuses new hints (the write is then
//! not acknowledged by it) rather than grow without bound.

use std::collections::BTreeMap;

use crate::ids::{NodeId, Token};
use crate::tick::Tick;
use crate::version::Object;

/// Most hints one node holds. A fallback at the bound stops acknowledging hinted writes.
pub const HINTS_MAX: usize = 1 << 20;

/// Ticks after which an unacknowledged delivery is sent again.
pub const HINT_RETRY_TICKS_DEFAULT: u64 = 1_000;

/// Most deliveries started per call to [`HintBook::due`]: hands hints back at a steady pace
/// instead of flooding a node that just came back.
pub const HINT_DELIVERIES_PER_ROUND_MAX: usize = 64;

/// One hint: a write kept for `owner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The node the write belongs to.
    pub owner: NodeId,
    /// The key's token.
    pub token: Token,
    /// The key (storage bytes).
    pub key: Vec<u8>,
    /// The merge of every write kept for this owner and key.
    pub object: Object,
}

/// A hint on its way to its owner; the owner's acknowledgement names `delivery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Names this attempt.
    pub delivery: u64,
    /// The hint as sent.
    pub hint: Hint,
}

#[derive(Debug)]
struct Entry {
    token: Token,
    object: Object,
    /// The attempt in flight: its id, when it was sent, and whether the object changed since.
    in_flight: Option<(u64, Tick)>,
    changed_in_flight: bool,
}

/// The hints a node holds.
#[derive(Debug, Default)]
pub struct HintBook {
    hints: BTreeMap<(NodeId, Vec<u8>), Entry>,
    /// Delivery id → hint, for the deliveries in flight.
    in_flight: BTreeMap<u64, (NodeId, Vec<u8>)>,
    next_delivery: u64,
    retry_ticks: u64,
}

impl HintBook {
    /// An empty book retrying deliveries after `retry_ticks`.
    pub fn new(retry_ticks: u64) -> HintBook {
        HintBook {
            retry_ticks,
            ..HintBook::default()
        }
    }

    /// Reloads the hints the driver persisted, after a restart.
    pub fn restore(&mut self, hints: impl IntoIterator<Item = Hint>) {
        for hint in hints {
            self.add(hint.owner, hint.token, hint.key, &hint.object);
        }
    }

    /// Whether a new hint for (`owner`, `key`) fits under [`HINTS_MAX`].
    pub fn can_accept(&self, owner: NodeId, key: &[u8]) -> bool {
        self.hints.len() < HINTS_MAX || self.hints.contains_key(&(owner, key.to_vec()))
    }

    /// Whether a hint for `key` is held, for any owner. One lookup per owner with hints.
    pub fn holds_key(&self, key: &[u8]) -> bool {
        let mut owner = self.hints.keys().next().map(|(o, _)| *o);
        while let Some(o) = owner {
            if self.hints.contains_key(&(o, key.to_vec())) {
                return true;
            }
            let Some(next) = o.0.checked_add(1) else {
                return false;
            };
            owner = self
                .hints
                .range((NodeId(next), Vec::new())..)
                .next()
                .map(|((o, _), _)| *o);
        }
        false
    }

    /// Keeps `object` for `owner`, merged with any hint already held for that key. Returns
    /// the hint's object as it must now be persisted.
    pub fn add(&mut self, owner: NodeId, token: Token, key: Vec<u8>, object: &Object) -> Object {
        let entry = self.hints.entry((owner, key)).or_insert_with(|| Entry {
            token,
            object: Object::new(),
            in_flight: None,
            changed_in_flight: false,
        });
        let before = entry.object.clone();
        entry.object.merge(object);
        if entry.in_flight.is_some() && entry.object != before {
            entry.changed_in_flight = true;
        }
        entry.object.clone()
    }

    /// Starts deliveries of hints whose owner is `alive`: those never sent, and those whose
    /// last attempt is older than the retry interval. At most
    /// [`HINT_DELIVERIES_PER_ROUND_MAX`] per call.
    pub fn due(&mut self, now: Tick, alive: impl Fn(NodeId) -> bool) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        for ((owner, key), entry) in self.hints.iter_mut() {
            if deliveries.len() >= HINT_DELIVERIES_PER_ROUND_MAX {
                break;
            }
            let waiting = entry
                .in_flight
                .is_some_and(|(_, sent)| now.since(sent) < self.retry_ticks);
            if waiting || !alive(*owner) {
                continue;
            }
            if let Some((old, _)) = entry.in_flight.take() {
                self.in_flight.remove(&old);
            }
            self.next_delivery += 1;
            let delivery = self.next_delivery;
            entry.in_flight = Some((delivery, now));
            entry.changed_in_flight = false;
            self.in_flight.insert(delivery, (*owner, key.clone()));
            deliveries.push(Delivery {
                delivery,
                hint: Hint {
                    owner: *owner,
                    token: entry.token,
                    key: key.clone(),
                    object: entry.object.clone(),
                },
            });
        }
        deliveries
    }

    /// The owner durably merged delivery `delivery`. Returns the hint the driver must now
    /// delete from its durable store, or `None` if the hint must stay (unknown or stale
    /// delivery, or the hint changed while the delivery was in flight).
    pub fn on_delivered(&mut self, delivery: u64) -> Option<(NodeId, Token, Vec<u8>)> {
        let id = self.in_flight.remove(&delivery)?;
        let entry = self.hints.get_mut(&id)?;
        entry.in_flight = None;
        if entry.changed_in_flight {
            entry.changed_in_flight = false;
            return None;
        }
        let token = entry.token;
        self.hints.remove(&id);
        Some((id.0, token, id.1))
    }

    /// How many hints the node holds.
    pub fn len(&self) -> usize {
        self.hints.len()
    }

    /// Whether the node holds no hint.
    pub fn is_empty(&self) -> bool {
        self.hints.is_empty()
    }

    /// Every hint held, by owner then key.
    pub fn hints(&self) -> impl Iterator<Item = Hint> + '_ {
        self.hints.iter().map(|((owner, key), e)| Hint {
            owner: *owner,
            token: e.token,
            key: key.clone(),
            object: e.object.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::VersionVector;

    fn written(by: u64, v: &[u8]) -> Object {
        let mut o = Object::new();
        o.update(&VersionVector::new(), NodeId(by), 0, Some(v.to_vec()))
            .expect("update");
        o
    }

    #[test]
    fn hints_wait_for_their_owner_and_go_only_when_acknowledged() {
        let mut book = HintBook::new(100);
        let a = written(1, b"a");
        book.add(NodeId(7), Token(1), b"k".to_vec(), &a);
        assert!(book.due(Tick(0), |_| false).is_empty(), "owner down");
        let sent = book.due(Tick(10), |n| n == NodeId(7));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].hint.object, a);
        assert!(book.due(Tick(20), |_| true).is_empty(), "in flight");
        assert_eq!(book.on_delivered(999), None, "unknown delivery");
        assert_eq!(book.len(), 1);
        assert_eq!(
            book.on_delivered(sent[0].delivery),
            Some((NodeId(7), Token(1), b"k".to_vec()))
        );
        assert!(book.is_empty());
    }

    #[test]
    fn an_unacknowledged_delivery_is_retried_and_the_old_ack_is_void() {
        let mut book = HintBook::new(100);
        book.add(NodeId(7), Token(1), b"k".to_vec(), &written(1, b"a"));
        let first = book.due(Tick(0), |_| true);
        let second = book.due(Tick(100), |_| true);
        assert_eq!(second.len(), 1);
        assert_ne!(first[0].delivery, second[0].delivery);
        assert_eq!(book.on_delivered(first[0].delivery), None);
        assert!(book.on_delivered(second[0].delivery).is_some());
    }

    #[test]
    fn a_hint_that_changed_in_flight_stays_and_is_sent_again_merged() {
        let mut book = HintBook::new(100);
        let a = written(1, b"a");
        let b = written(2, b"b");
        book.add(NodeId(7), Token(1), b"k".to_vec(), &a);
        let sent = book.due(Tick(0), |_| true);
        let merged = book.add(NodeId(7), Token(1), b"k".to_vec(), &b);
        assert_eq!(book.on_delivered(sent[0].delivery), None);
        let again = book.due(Tick(1), |_| true);
        assert_eq!(again[0].hint.object, merged);
        assert!(book.on_delivered(again[0].delivery).is_some());
    }

    #[test]
    fn restore_merges_and_rounds_are_bounded() {
        let mut book = HintBook::new(100);
        let hints = (0..200u32).map(|i| Hint {
            owner: NodeId(3),
            token: Token(u64::from(i)),
            key: i.to_le_bytes().to_vec(),
            object: written(1, b"x"),
        });
        book.restore(hints);
        assert_eq!(book.len(), 200);
        assert_eq!(
            book.due(Tick(0), |_| true).len(),
            HINT_DELIVERIES_PER_ROUND_MAX
        );
        assert!(book.can_accept(NodeId(3), &0u32.to_le_bytes()));
    }
}
