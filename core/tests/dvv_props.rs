//! Property tests for dotted version vectors with sibling sets.
//!
//! Objects are never generated field by field: they come from random *histories* of puts,
//! deletes, reads and merges across 2 to 4 replicas (replica `i` coordinates as node `i + 1`),
//! so every object is one a cluster could reach and "one dot names one value" holds. Each
//! history records every write with its dot, value and context, which is the ground truth the
//! checks compare against.

use proptest::prelude::*;
use proptest::sample::Index;
use tessera_core::constants::SIBLINGS_MAX;
use tessera_core::{CoreError, Dot, NodeId, Object, VersionVector};

const REPLICAS_MIN: usize = 2;
const REPLICAS_MAX: usize = 4;
const OPS_MAX: usize = 48;
const CASES: u32 = 256;

#[derive(Clone, Debug)]
enum Op {
    /// A client reads a replica and keeps its context for a later write.
    Read { replica: Index },
    /// A put (or delete) coordinated by a replica, blind or with a saved context.
    Write {
        replica: Index,
        context: Option<Index>,
        delete: bool,
    },
    /// Replica `to` receives replica `from`'s state (replication, read repair, anti-entropy).
    Merge { from: Index, to: Index },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<Index>().prop_map(|replica| Op::Read { replica }),
        4 => (any::<Index>(), proptest::option::weighted(0.7, any::<Index>()), proptest::bool::weighted(0.2))
            .prop_map(|(replica, context, delete)| Op::Write { replica, context, delete }),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(from, to)| Op::Merge { from, to }),
    ]
}

fn history() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (
        REPLICAS_MIN..=REPLICAS_MAX,
        proptest::collection::vec(op(), 0..OPS_MAX),
    )
}

/// One acknowledged write.
#[derive(Clone, Debug)]
struct Write {
    dot: Dot,
    value: Option<Vec<u8>>,
}

/// The outcome of running a history, with everything the checks need.
#[derive(Debug, Default)]
struct Run {
    replicas: Vec<Object>,
    /// Contexts saved by reads, in order.
    snapshots: Vec<VersionVector>,
    /// Every acknowledged write.
    writes: Vec<Write>,
    /// The context of every acknowledged write.
    contexts: Vec<VersionVector>,
    /// Every state any replica went through (the empty object included).
    states: Vec<Object>,
}

fn node_of(replica: usize) -> NodeId {
    NodeId(replica as u64 + 1)
}

fn run(replica_count: usize, ops: &[Op]) -> Run {
    let mut r = Run {
        replicas: vec![Object::new(); replica_count],
        states: vec![Object::new()],
        ..Run::default()
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Read { replica } => {
                let i = replica.index(replica_count);
                r.snapshots.push(r.replicas[i].clock().clone());
            }
            Op::Write {
                replica,
                context,
                delete,
            } => {
                let i = replica.index(replica_count);
                let context = match context {
                    Some(c) if !r.snapshots.is_empty() => {
                        r.snapshots[c.index(r.snapshots.len())].clone()
                    }
                    _ => VersionVector::new(),
                };
                // Unique values, so a value identifies its write.
                let value = (!delete).then(|| format!("w{}", r.writes.len()).into_bytes());
                let before = r.replicas[i].clone();
                match r.replicas[i].update(&context, node_of(i), step as u64, value.clone()) {
                    Ok(dot) => {
                        check_update(&before, &context, &r.replicas[i], dot, &value);
                        r.writes.push(Write { dot, value });
                        r.contexts.push(context);
                    }
                    Err(CoreError::TooManySiblings { .. }) => {
                        assert_eq!(r.replicas[i], before, "a refused write changed the object");
                    }
                    Err(e) => panic!("unexpected write error: {e}"),
                }
                r.states.push(r.replicas[i].clone());
            }
            Op::Merge { from, to } => {
                let (from, to) = (from.index(replica_count), to.index(replica_count));
                let source = r.replicas[from].clone();
                r.replicas[to].merge(&source);
                r.states.push(r.replicas[to].clone());
            }
        }
    }
    for o in &r.states {
        check_well_formed(o);
    }
    r
}

/// The contract of `update`: drop exactly the siblings the context covers, add one new sibling
/// whose dot is fresh, join the context into the clock.
fn check_update(
    before: &Object,
    context: &VersionVector,
    after: &Object,
    dot: Dot,
    value: &Option<Vec<u8>>,
) {
    let mut expected: Vec<Dot> = before
        .siblings()
        .iter()
        .map(|s| s.dot)
        .filter(|d| !context.covers(*d))
        .collect();
    assert!(!before.clock().covers(dot), "dot {dot} was not fresh");
    expected.push(dot);
    expected.sort();
    let actual: Vec<Dot> = after.siblings().iter().map(|s| s.dot).collect();
    assert_eq!(actual, expected);
    let new = after.siblings().iter().find(|s| s.dot == dot);
    assert_eq!(new.map(|s| &s.value), Some(value));
    let mut clock = before.clock().clone();
    clock.join(context);
    clock.add(dot);
    assert_eq!(after.clock(), &clock);
}

/// The public view of the object invariants.
fn check_well_formed(o: &Object) {
    let dots: Vec<Dot> = o.siblings().iter().map(|s| s.dot).collect();
    assert!(
        dots.windows(2).all(|w| w[0] < w[1]),
        "siblings unsorted: {dots:?}"
    );
    assert!(dots.iter().all(|d| d.counter >= 1 && o.clock().covers(*d)));
    assert_eq!(o.is_deleted(), o.live_values().next().is_none());
}

fn merge_all(objects: &[Object]) -> Object {
    let mut merged = Object::new();
    for o in objects {
        merged.merge(o);
    }
    merged
}

fn merged(a: &Object, b: &Object) -> Object {
    let mut m = a.clone();
    m.merge(b);
    m
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_is_commutative_associative_idempotent(
        (replica_count, ops) in history(),
        a in any::<Index>(),
        b in any::<Index>(),
        c in any::<Index>(),
    ) {
        let r = run(replica_count, &ops);
        let pick = |i: &Index| &r.states[i.index(r.states.len())];
        let (a, b, c) = (pick(&a), pick(&b), pick(&c));
        prop_assert_eq!(merged(a, b), merged(b, a));
        prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
        prop_assert_eq!(&merged(a, a), a);
        prop_assert_eq!(&merged(a, &Object::new()), a);
        let ab = merged(a, b);
        prop_assert!(ab.clock().descends(a.clock()) && ab.clock().descends(b.clock()));
        check_well_formed(&ab);
    }

    /// No acknowledged write is dropped unless a later write's context covered it, and nothing
    /// is kept that such a context covered.
    #[test]
    fn survivors_are_exactly_the_uncovered_writes((replica_count, ops) in history()) {
        let r = run(replica_count, &ops);
        let last = merge_all(&r.replicas);
        for w in &r.writes {
            prop_assert!(last.clock().covers(w.dot), "final clock misses {}", w.dot);
        }
        let mut expected: Vec<(Dot, Option<Vec<u8>>)> = r
            .writes
            .iter()
            .filter(|w| !r.contexts.iter().any(|c| c.covers(w.dot)))
            .map(|w| (w.dot, w.value.clone()))
            .collect();
        expected.sort_by_key(|(dot, _)| *dot);
        let actual: Vec<(Dot, Option<Vec<u8>>)> = last
            .siblings()
            .iter()
            .map(|s| (s.dot, s.value.clone()))
            .collect();
        prop_assert_eq!(actual, expected);
        // Every replica, at every step, holds only siblings that were written, with their value.
        for state in &r.states {
            for s in state.siblings() {
                let w = r.writes.iter().find(|w| w.dot == s.dot);
                prop_assert_eq!(w.map(|w| &w.value), Some(&s.value));
            }
        }
    }

    /// Two writers who read the same state and write through different replicas both survive,
    /// and together supersede exactly what the read saw.
    #[test]
    fn concurrent_writes_with_one_context_become_siblings(
        (replica_count, ops) in history(),
        reader in any::<Index>(),
        first in any::<Index>(),
        second in any::<Index>(),
        target in any::<Index>(),
    ) {
        let mut r = run(replica_count, &ops);
        let reader = reader.index(replica_count);
        let first = first.index(replica_count);
        // A different replica, so a different coordinating node.
        let second = (first + 1 + second.index(replica_count - 1)) % replica_count;
        let target = target.index(replica_count);
        let read = r.replicas[reader].clock().clone();
        let x = r.replicas[first].update(&read, node_of(first), 0, Some(b"x".to_vec()));
        let y = r.replicas[second].update(&read, node_of(second), 0, Some(b"y".to_vec()));
        let (Ok(x), Ok(y)) = (x, y) else {
            // Refused for too many siblings: not acknowledged, nothing to check.
            return Ok(());
        };
        prop_assert_ne!(x, y);
        let (a, b) = (r.replicas[first].clone(), r.replicas[second].clone());
        let t = &mut r.replicas[target];
        t.merge(&a);
        t.merge(&b);
        let dots: Vec<Dot> = t.siblings().iter().map(|s| s.dot).collect();
        prop_assert!(dots.contains(&x) && dots.contains(&y));
        prop_assert!(dots.iter().all(|d| !read.covers(*d)), "a sibling the read saw survived");
    }

    #[test]
    fn objects_and_contexts_round_trip((replica_count, ops) in history()) {
        let r = run(replica_count, &ops);
        for o in &r.states {
            let mut bytes = Vec::new();
            o.encode(&mut bytes);
            prop_assert_eq!(bytes.len(), o.encoded_len());
            prop_assert_eq!(&Object::decode(&bytes)?, o);
            let bytes = o.clock().to_bytes();
            prop_assert_eq!(&VersionVector::decode(&bytes)?, o.clock());
        }
    }

    #[test]
    fn every_truncation_is_malformed((replica_count, ops) in history(), which in any::<Index>()) {
        let r = run(replica_count, &ops);
        let o = &r.states[which.index(r.states.len())];
        let mut bytes = Vec::new();
        o.encode(&mut bytes);
        for len in 0..bytes.len() {
            let is_malformed = matches!(Object::decode(&bytes[..len]), Err(CoreError::Malformed { .. }));
            prop_assert!(is_malformed, "object truncated to {} bytes decoded", len);
        }
        let context = o.clock().to_bytes();
        // Zero bytes is the empty context, by design; every other prefix is malformed.
        for len in 1..context.len() {
            let is_malformed =
                matches!(VersionVector::decode(&context[..len]), Err(CoreError::Malformed { .. }));
            prop_assert!(is_malformed, "context truncated to {} bytes decoded", len);
        }
    }

    /// Decoding arbitrary bytes never panics, and whatever decodes re-encodes to the same
    /// bytes (the encoding is canonical, so a decoder cannot accept two spellings of a value).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_decoders(&bytes)?;
        // Give the decoders a real chance to get past the tag.
        for tag in [1u8, 2] {
            let mut tagged = bytes.clone();
            tagged.insert(0, tag);
            check_decoders(&tagged)?;
        }
    }

    /// Corrupting one byte of a valid encoding never panics either.
    #[test]
    fn corrupted_encodings_never_panic(
        (replica_count, ops) in history(),
        which in any::<Index>(),
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let r = run(replica_count, &ops);
        let o = &r.states[which.index(r.states.len())];
        for mut bytes in [{ let mut b = Vec::new(); o.encode(&mut b); b }, o.clock().to_bytes()] {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            check_decoders(&bytes)?;
        }
    }
}

fn check_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(o) = Object::decode(bytes) {
        check_well_formed(&o);
        let mut again = Vec::new();
        o.encode(&mut again);
        prop_assert_eq!(again.as_slice(), bytes);
    }
    if let Ok(vv) = VersionVector::decode(bytes) {
        if !bytes.is_empty() {
            prop_assert_eq!(vv.to_bytes(), bytes.to_vec());
        }
    }
    Ok(())
}

#[test]
fn delete_then_put_through_a_fresh_read() {
    let (a, b) = (NodeId(1), NodeId(2));
    let mut replica_a = Object::new();
    replica_a
        .update(&VersionVector::new(), a, 1, Some(b"v1".to_vec()))
        .unwrap();
    let mut replica_b = replica_a.clone();

    // Delete with the context of a read: a tombstone, reported as not found.
    let read = replica_a.clock().clone();
    let tomb = replica_a.update(&read, a, 2, None).unwrap();
    assert!(replica_a.is_deleted());
    assert_eq!(replica_a.siblings().len(), 1);
    assert!(replica_a.clock().covers(tomb));

    // The tombstone replicates and wins over the value it superseded.
    replica_b.merge(&replica_a);
    assert!(replica_b.is_deleted());

    // A later put with the post-delete context replaces the tombstone.
    let read = replica_b.clock().clone();
    replica_b.update(&read, b, 3, Some(b"v2".to_vec())).unwrap();
    replica_a.merge(&replica_b);
    assert_eq!(
        replica_a.live_values().collect::<Vec<_>>(),
        vec![b"v2".as_slice()]
    );
    assert_eq!(replica_a, replica_b);
}

#[test]
fn a_stale_write_does_not_resurrect_or_drop_anything() {
    let node = NodeId(1);
    let mut o = Object::new();
    o.update(&VersionVector::new(), node, 0, Some(b"a".to_vec()))
        .unwrap();
    let stale = o.clock().clone();
    o.update(&stale, node, 0, Some(b"b".to_vec())).unwrap();
    // A second writer with the same (now stale) context: "b" was not seen, so it stays.
    o.update(&stale, node, 0, Some(b"c".to_vec())).unwrap();
    assert_eq!(
        o.live_values().collect::<Vec<_>>(),
        vec![b"b".as_slice(), b"c".as_slice()]
    );
}

#[test]
fn blind_writes_stop_at_the_sibling_bound() {
    let mut o = Object::new();
    for i in 0..SIBLINGS_MAX {
        o.update(&VersionVector::new(), NodeId(1), i as u64, Some(vec![0]))
            .unwrap();
    }
    assert!(matches!(
        o.update(&VersionVector::new(), NodeId(1), 0, Some(vec![0])),
        Err(CoreError::TooManySiblings { .. })
    ));
}
