//! Exchanges between two in-memory replicas, driven by a little in-test driver.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use super::*;
use crate::ids::{NodeId, PartitionId, Token};
use crate::ring::PartitionCount;
use crate::tick::Tick;
use crate::version::{Object, VersionVector};

const Q: u32 = 4;
const P: PartitionId = PartitionId(2);

/// A key's token, forced into partition `P` (keys are opaque bytes with their token).
fn token(key: &[u8]) -> Token {
    Token((u64::from(P.0) << 62) | (xxh3_64(key) >> 2))
}

fn key(i: u32) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

/// One replica of partition `P`: storage in `(token, key)` order, and its tree.
#[derive(Clone, Debug)]
struct Replica {
    tree: TicTacTree,
    data: BTreeMap<(Token, Vec<u8>), Object>,
}

impl Replica {
    fn new(shape: TreeShape) -> Replica {
        Replica {
            tree: TicTacTree::new(PartitionCount::new(Q).unwrap(), P, shape),
            data: BTreeMap::new(),
        }
    }

    /// Stores `obj` under `key`, keeping the tree in step as a real store does.
    fn store(&mut self, key: &[u8], obj: Object) {
        let tok = token(key);
        let new = version_hash(&obj);
        let old = self
            .data
            .insert((tok, key.to_vec()), obj)
            .map(|o| version_hash(&o));
        self.tree.update(tok, key, old, Some(new));
    }

    /// A write coordinated by `node` over whatever this replica holds.
    fn write(&mut self, key: &[u8], node: u64) {
        let mut obj = self.get(key).unwrap_or_default();
        let context = obj.clock().clone();
        obj.update(&context, NodeId(node), 0, Some(b"v".to_vec()))
            .unwrap();
        self.store(key, obj);
    }

    fn remove(&mut self, key: &[u8]) {
        let tok = token(key);
        if let Some(old) = self.data.remove(&(tok, key.to_vec())) {
            self.tree.update(tok, key, Some(version_hash(&old)), None);
        }
    }

    fn get(&self, key: &[u8]) -> Option<Object> {
        self.data.get(&(token(key), key.to_vec())).cloned()
    }

    fn merge_in(&mut self, key: &[u8], other: Option<Object>) {
        if let Some(other) = other {
            let mut obj = self.get(key).unwrap_or_default();
            obj.merge(&other);
            self.store(key, obj);
        }
    }

    /// What a storage engine does for `ListLocalSegments`: range reads fed to the builder.
    fn list(&self, request: &ListingRequest) -> SegmentListing {
        let mut builder = ListingBuilder::new(request);
        'ranges: for (first, last) in request.token_ranges(&self.tree) {
            for ((tok, k), obj) in self.data.range((Token(first), Vec::new())..) {
                if tok.0 > last {
                    break;
                }
                if !builder.push_object(*tok, k, obj) {
                    break 'ranges;
                }
            }
        }
        builder.finish()
    }
}

#[derive(Debug, Default)]
struct Outcome {
    push: BTreeSet<Vec<u8>>,
    pull: BTreeSet<Vec<u8>>,
    stats: ExchangeStats,
    failure: Option<ExchangeFailure>,
    repairs: usize,
}

/// Runs one exchange of `a` (initiator) with `b`, delivering every message at once.
fn run(a: &Replica, b: &Replica, config: ExchangeConfig) -> Outcome {
    let now = Tick(100);
    let (mut exchange, mut pending) =
        Exchange::start_with(config, ExchangeId(7), P, NodeId(2), &a.tree, now);
    let mut outcome = Outcome::default();
    let mut steps = 0;
    while !pending.is_empty() {
        steps += 1;
        assert!(steps < 100_000, "exchange does not terminate");
        let mut out = Vec::new();
        for action in pending {
            assert!(outcome.failure.is_none(), "action after Failed: {action:?}");
            match action {
                ExchangeAction::Send(message) => {
                    let reply = match respond(&b.tree, &message) {
                        Respond::Reply(reply) => reply,
                        Respond::List { reply_to, request } => {
                            reply_with_listing(reply_to, b.list(&request))
                        }
                        Respond::Ignore => panic!("responder ignored a request"),
                    };
                    exchange.step(now, ExchangeInput::Message(reply), &a.tree, &mut out);
                }
                ExchangeAction::ListLocalSegments(request) => {
                    let listing = a.list(&request);
                    exchange.step(
                        now,
                        ExchangeInput::LocalSegments(listing),
                        &a.tree,
                        &mut out,
                    );
                }
                ExchangeAction::Repair { push, pull } => {
                    outcome.repairs += 1;
                    for (_, k) in push {
                        assert!(outcome.push.insert(k), "key pushed twice");
                    }
                    for (_, k) in pull {
                        assert!(outcome.pull.insert(k), "key pulled twice");
                    }
                }
                ExchangeAction::Done(stats) => {
                    assert!(exchange.is_finished());
                    outcome.stats = stats;
                }
                ExchangeAction::Failed(failure) => outcome.failure = Some(failure),
            }
        }
        pending = out;
    }
    assert!(exchange.is_finished(), "exchange stalled");
    outcome
}

/// Applies an outcome's repairs as nodes do: the receiver of a repair merges it and sends its
/// merge back when that differs from what it received.
fn apply(a: &mut Replica, b: &mut Replica, outcome: &Outcome) {
    fn repair(from: &mut Replica, to: &mut Replica, k: &[u8]) {
        let received = from.get(k);
        to.merge_in(k, received.clone());
        let merged = to.get(k);
        if merged.as_ref().map(version_hash) != received.as_ref().map(version_hash) {
            from.merge_in(k, merged);
        }
    }
    for k in &outcome.push {
        repair(a, b, k);
    }
    for k in &outcome.pull {
        repair(b, a, k);
    }
}

/// The keys `a` should push and pull, computed straight from the data.
fn expected(a: &Replica, b: &Replica) -> (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) {
    // A key only one side holds goes from it; a key both hold in different versions goes
    // from the heavier copy (pulled when the weights tie).
    let mut push = BTreeSet::new();
    let mut pull = BTreeSet::new();
    let keys: BTreeSet<_> = a.data.keys().chain(b.data.keys()).collect();
    for k in keys {
        match (a.data.get(k), b.data.get(k)) {
            (Some(x), Some(y)) if version_hash(x) == version_hash(y) => {}
            (Some(x), Some(y)) if version_weight(x) > version_weight(y) => {
                push.insert(k.1.clone());
            }
            (Some(_), None) => {
                push.insert(k.1.clone());
            }
            _ => {
                pull.insert(k.1.clone());
            }
        }
    }
    (push, pull)
}

/// Two replicas sharing `common` keys, then diverging as `changes` say.
fn replicas(shape: TreeShape, common: u32, changes: &BTreeMap<u32, u8>) -> (Replica, Replica) {
    let mut a = Replica::new(shape);
    for i in 0..common {
        a.write(&key(i), 1);
    }
    let mut b = a.clone();
    for (&i, &kind) in changes {
        let k = key(i);
        match kind {
            0 => a.remove(&k),
            1 => b.remove(&k),
            2 => b.write(&k, 2),
            3 => a.write(&k, 3),
            _ => {
                a.write(&k, 3);
                b.write(&k, 2);
            }
        }
    }
    (a, b)
}

fn exchange_converges(shape: TreeShape, common: u32, changes: &BTreeMap<u32, u8>) -> Outcome {
    let (mut a, mut b) = replicas(shape, common, changes);
    let outcome = run(&a, &b, ExchangeConfig::default());
    assert_eq!(outcome.failure, None);
    assert!(outcome.stats.complete);
    let (push, pull) = expected(&a, &b);
    assert_eq!(outcome.push, push, "wrong keys pushed");
    assert_eq!(outcome.pull, pull, "wrong keys pulled");
    assert_eq!(outcome.stats.keys_pushed, push.len() as u64);
    assert_eq!(outcome.stats.keys_pulled, pull.len() as u64);
    apply(&mut a, &mut b, &outcome);
    assert_eq!(a.tree.root(), b.tree.root());
    assert_eq!(a.data, b.data, "replicas did not converge");
    let again = run(&a, &b, ExchangeConfig::default());
    assert_eq!((again.stats.messages_sent, again.repairs), (1, 0));
    outcome
}

#[test]
fn version_hash_is_pinned_and_ignores_values() {
    let mut x = Object::new();
    x.update(&VersionVector::new(), NodeId(1), 5, Some(b"a".to_vec()))
        .unwrap();
    let mut y = Object::new();
    y.update(&VersionVector::new(), NodeId(1), 9, Some(b"b".to_vec()))
        .unwrap();
    assert_eq!(version_hash(&x), version_hash(&y));
    let mut z = x.clone();
    z.update(&VersionVector::new(), NodeId(2), 0, None).unwrap();
    assert_ne!(version_hash(&x), version_hash(&z));
    assert_ne!(version_hash(&Object::new()), version_hash(&x));
    // Stable across releases: replicas of different versions compare these.
    assert_eq!(version_hash(&Object::new()), PINNED_EMPTY_OBJECT);
    // The definition written out: clock count, (node, counter)s, sibling count, dots.
    let words: [u64; 6] = [1, 1, 1, 1, 1, 1];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(version_hash(&x), xxh3_64(&bytes));
    assert_eq!(PINNED_EMPTY_OBJECT, xxh3_64(&[0u8; 16]));
}

const PINNED_EMPTY_OBJECT: u64 = 0xd0a6_6a65_c752_8968;

#[test]
fn equal_replicas_cost_one_round_trip() {
    let (a, b) = replicas(TreeShape::DEFAULT, 500, &BTreeMap::new());
    assert_eq!(a.tree, b.tree);
    let outcome = run(&a, &b, ExchangeConfig::default());
    assert_eq!(outcome.failure, None);
    let s = outcome.stats;
    assert_eq!(
        (s.messages_sent, s.messages_received, outcome.repairs),
        (1, 1, 0)
    );
    assert_eq!(s.bytes_sent, 17);
    assert_eq!(s.bytes_received, 17 + 10);
    assert!(s.complete);
}

#[test]
fn empty_replica_pulls_everything() {
    let a = Replica::new(TreeShape::DEFAULT);
    let (b, _) = replicas(TreeShape::DEFAULT, 300, &BTreeMap::new());
    let outcome = exchange_converges_from(a, b);
    assert_eq!((outcome.push.len(), outcome.pull.len()), (0, 300));
}

fn exchange_converges_from(mut a: Replica, mut b: Replica) -> Outcome {
    let outcome = run(&a, &b, ExchangeConfig::default());
    assert_eq!(outcome.failure, None);
    apply(&mut a, &mut b, &outcome);
    assert_eq!(a.data, b.data);
    outcome
}

#[test]
fn pages_through_large_segments() {
    // Two segments of ~5000 keys each: pages of AE_SEGMENT_ENTRIES_PER_MESSAGE_MAX, and the
    // two sides' pages end at different keys because each side is missing different keys.
    let changes: BTreeMap<u32, u8> = (0..10_000).step_by(7).map(|i| (i, (i % 5) as u8)).collect();
    let outcome = exchange_converges(TreeShape::new(1, 1).unwrap(), 10_000, &changes);
    assert!(
        outcome.repairs >= 3,
        "expected several pages, got {}",
        outcome.repairs
    );
}

#[test]
fn batches_many_segments_and_branch_requests() {
    // Width 16, 4 levels: the last branch level has up to 4096 differing parents, more than
    // one request carries, and differing segments exceed AE_SEGMENTS_PER_REQUEST_MAX.
    let changes: BTreeMap<u32, u8> = (0..6000).step_by(3).map(|i| (i, (i % 5) as u8)).collect();
    let outcome = exchange_converges(TreeShape::new(4, 4).unwrap(), 6000, &changes);
    assert!(outcome.stats.segments_compared > 256);
}

#[test]
fn repair_budget_stops_the_exchange_early() {
    let changes: BTreeMap<u32, u8> = (0..200).map(|i| (i, 2)).collect();
    let (mut a, mut b) = replicas(TreeShape::new(2, 1).unwrap(), 200, &changes);
    let config = ExchangeConfig {
        repair_keys_max: 10,
        ..ExchangeConfig::default()
    };
    let mut rounds = 0;
    loop {
        let outcome = run(&a, &b, config);
        assert_eq!(outcome.failure, None);
        assert!(outcome.stats.keys_pushed + outcome.stats.keys_pulled <= 11);
        apply(&mut a, &mut b, &outcome);
        rounds += 1;
        if outcome.stats.complete {
            break;
        }
        assert!(rounds < 100);
    }
    assert!(
        rounds >= 10,
        "a budget of 10 keys repaired 400 in {rounds} exchanges"
    );
    assert_eq!(a.data, b.data);
}

#[test]
fn a_vanished_peer_times_out() {
    let (a, _) = replicas(TreeShape::DEFAULT, 10, &BTreeMap::new());
    let (mut ex, actions) = Exchange::start(ExchangeId(1), P, NodeId(2), &a.tree, Tick(1000));
    assert!(matches!(
        actions.as_slice(),
        [ExchangeAction::Send(AeMessage::RootRequest { .. })]
    ));
    let deadline = ex.deadline().unwrap();
    assert_eq!(deadline, Tick(1000) + AE_TIMEOUT);
    let mut out = Vec::new();
    ex.step(
        Tick(deadline.0 - 1),
        ExchangeInput::Timeout,
        &a.tree,
        &mut out,
    );
    assert!(out.is_empty());
    ex.step(deadline, ExchangeInput::Timeout, &a.tree, &mut out);
    assert_eq!(out, vec![ExchangeAction::Failed(ExchangeFailure::Timeout)]);
    ex.step(deadline + 1, ExchangeInput::Timeout, &a.tree, &mut out);
    assert_eq!(out.len(), 1, "no action after Failed");
}

const AE_TIMEOUT: u64 = crate::constants::AE_REPLY_TIMEOUT_TICKS_DEFAULT;

#[test]
fn stale_bad_and_refused_replies() {
    let (a, b) = replicas(TreeShape::DEFAULT, 10, &BTreeMap::from([(3, 2)]));
    let (mut ex, actions) = Exchange::start(ExchangeId(1), P, NodeId(2), &a.tree, Tick(0));
    let [ExchangeAction::Send(request)] = actions.as_slice() else {
        panic!("expected a root request");
    };
    let Respond::Reply(AeMessage::RootReply { tag, shape, root }) = respond(&b.tree, request)
    else {
        panic!("expected a root reply");
    };
    let mut out = Vec::new();
    // A reply from another round or exchange is dropped.
    for stale in [
        AeTag {
            round: tag.round + 1,
            ..tag
        },
        AeTag {
            exchange: ExchangeId(2),
            ..tag
        },
    ] {
        let m = AeMessage::RootReply {
            tag: stale,
            shape,
            root,
        };
        ex.step(Tick(1), ExchangeInput::Message(m), &a.tree, &mut out);
    }
    assert!(out.is_empty());
    ex.step(
        Tick(1),
        ExchangeInput::Message(AeMessage::RootReply { tag, shape, root }),
        &a.tree,
        &mut out,
    );
    let Some(ExchangeAction::Send(AeMessage::BranchRequest { tag, level: 1, .. })) = out.pop()
    else {
        panic!("expected a branch request");
    };
    // A branch reply of the wrong size fails the exchange.
    let mut bad = ex_clone_at_branch(&a, &b);
    let short = AeMessage::BranchReply {
        tag: bad.1,
        level: 1,
        hashes: vec![0; 3],
    };
    bad.0
        .step(Tick(2), ExchangeInput::Message(short), &a.tree, &mut out);
    assert!(matches!(
        out.pop(),
        Some(ExchangeAction::Failed(ExchangeFailure::BadReply(_)))
    ));
    // A refusal fails it too.
    let refused = AeMessage::Refused {
        tag,
        reason: RefuseReason::Busy,
    };
    ex.step(Tick(2), ExchangeInput::Message(refused), &a.tree, &mut out);
    assert_eq!(
        out,
        vec![ExchangeAction::Failed(ExchangeFailure::Refused(
            RefuseReason::Busy
        ))]
    );
}

/// An exchange of `a` with `b` that has just sent its first branch request, and that request's tag.
fn ex_clone_at_branch(a: &Replica, b: &Replica) -> (Exchange, AeTag) {
    let (mut ex, actions) = Exchange::start(ExchangeId(5), P, NodeId(2), &a.tree, Tick(0));
    let [ExchangeAction::Send(request)] = actions.as_slice() else {
        panic!("expected a root request");
    };
    let Respond::Reply(reply) = respond(&b.tree, request) else {
        panic!("expected a reply");
    };
    let mut out = Vec::new();
    ex.step(Tick(1), ExchangeInput::Message(reply), &a.tree, &mut out);
    let Some(ExchangeAction::Send(m)) = out.pop() else {
        panic!("expected a branch request");
    };
    (ex, m.tag())
}

#[test]
fn different_shapes_do_not_compare() {
    let (a, _) = replicas(TreeShape::DEFAULT, 10, &BTreeMap::new());
    let (b, _) = replicas(TreeShape::new(4, 2).unwrap(), 10, &BTreeMap::new());
    let outcome = run(&a, &b, ExchangeConfig::default());
    assert!(matches!(
        outcome.failure,
        Some(ExchangeFailure::ShapeMismatch { .. })
    ));
}

#[test]
fn the_wrong_tree_fails_at_once() {
    let other = TicTacTree::new(
        PartitionCount::new(Q).unwrap(),
        PartitionId(1),
        TreeShape::DEFAULT,
    );
    let (ex, actions) = Exchange::start(ExchangeId(1), P, NodeId(2), &other, Tick(0));
    assert_eq!(
        actions,
        vec![ExchangeAction::Failed(ExchangeFailure::WrongTree)]
    );
    assert!(ex.is_finished());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exchange_finds_exactly_the_differing_keys(
        common in 0u32..400,
        changes in proptest::collection::btree_map(0u32..450, 0u8..5, 0..60),
        level_bits in 1u8..5,
        levels in 1u8..3,
    ) {
        let shape = TreeShape::new(level_bits, levels).unwrap();
        exchange_converges(shape, common, &changes);
    }

    #[test]
    fn equal_data_gives_equal_roots(
        keys in proptest::collection::btree_set(0u32..10_000, 0..200),
    ) {
        let mut a = Replica::new(TreeShape::DEFAULT);
        let mut b = Replica::new(TreeShape::DEFAULT);
        for k in &keys {
            a.write(&key(*k), 1);
        }
        for k in keys.iter().rev() {
            b.write(&key(*k), 1);
        }
        prop_assert_eq!(&a.tree, &b.tree);
        prop_assert_eq!(a.tree.root() == 0, keys.is_empty());
    }
}
