//! What an anti-entropy pass costs: two replicas of 1,000,000 keys (16-byte keys, 100-byte
//! values) differing in 1,000 keys, compared partition by partition with the tictac exchange.
//!
//! Setup as a real node would have it: Q = 1024 partitions, the default tree shape (2 levels of
//! width 64, 4096 segments per partition), one exchange per partition, replica A initiating.
//! Of the 1,000 differing keys a third are missing on A, a third missing on B, and a third
//! hold a newer version on B. Prints the exchange traffic (messages and bytes, both ways, by
//! `wire_bytes`), the bytes of the objects the repair moves, and both against the data size
//! (keys + values). Then applies the repairs and checks every partition's roots agree.
//!
//! Run: `cargo run --release -p tessera-core --example ae_repair_cost`

use std::collections::{BTreeMap, BTreeSet};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tessera_core::antientropy::{
    reply_with_listing, respond, version_hash, Exchange, ExchangeAction, ExchangeId, ExchangeInput,
    ExchangeStats, ListingBuilder, ListingRequest, Respond, SegmentListing, TicTacTree, TreeShape,
};
use tessera_core::{token_of, NodeId, Object, PartitionCount, Tick, Token};

const KEYS: u32 = 1_000_000;
const DIFFERING: usize = 1_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
const KEYSPACE: &str = "default";

fn key(i: u32) -> Vec<u8> {
    let k = format!("key:{i:012}").into_bytes();
    debug_assert_eq!(k.len(), KEY_BYTES);
    k
}

/// Key `i`'s object: written once by node 1, and `newer` adds a superseding write by node 2.
fn object(i: u32, newer: bool) -> Object {
    let mut obj = Object::new();
    let value = vec![i as u8; VALUE_BYTES];
    let ctx = obj.clock().clone();
    obj.update(&ctx, NodeId(1), 0, Some(value.clone()))
        .expect("a first write fits every bound");
    if newer {
        let ctx = obj.clock().clone();
        obj.update(&ctx, NodeId(2), 1, Some(value))
            .expect("a superseding write fits every bound");
    }
    obj
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    Base,
    Newer,
}

/// One replica's copy of one partition: versions by (token, key), and the tree.
struct Part {
    tree: TicTacTree,
    data: BTreeMap<(Token, Vec<u8>), (u32, u64)>,
}

impl Part {
    fn put(&mut self, i: u32, token: Token, state: State) {
        let k = key(i);
        let new = match state {
            State::Absent => None,
            State::Base => Some(version_hash(&object(i, false))),
            State::Newer => Some(version_hash(&object(i, true))),
        };
        let old = match new {
            Some(h) => self.data.insert((token, k.clone()), (i, h)),
            None => self.data.remove(&(token, k.clone())),
        };
        self.tree.update(token, &k, old.map(|(_, h)| h), new);
    }

    fn list(&self, request: &ListingRequest) -> SegmentListing {
        let mut builder = ListingBuilder::new(request);
        'ranges: for (first, last) in request.token_ranges(&self.tree) {
            for ((token, k), (_, h)) in self.data.range((Token(first), Vec::new())..) {
                if token.0 > last {
                    break;
                }
                if !builder.push(*token, k, *h) {
                    break 'ranges;
                }
            }
        }
        builder.finish()
    }
}

/// Runs one exchange of `a` with `b`; returns its stats and the keys to push and pull.
fn exchange(id: u64, a: &Part, b: &Part) -> (ExchangeStats, BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) {
    let now = Tick(0);
    let p = a.tree.partition();
    let (mut ex, mut pending) = Exchange::start(ExchangeId(id), p, NodeId(2), &a.tree, now);
    let (mut push, mut pull, mut stats) = (BTreeSet::new(), BTreeSet::new(), None);
    while !pending.is_empty() {
        let mut out = Vec::new();
        for action in pending {
            match action {
                ExchangeAction::Send(m) => {
                    let reply = match respond(&b.tree, &m) {
                        Respond::Reply(r) => r,
                        Respond::List { reply_to, request } => {
                            reply_with_listing(reply_to, b.list(&request))
                        }
                        Respond::Ignore => panic!("responder ignored a request"),
                    };
                    ex.step(now, ExchangeInput::Message(reply), &a.tree, &mut out);
                }
                ExchangeAction::ListLocalSegments(request) => {
                    let listing = ExchangeInput::LocalSegments(a.list(&request));
                    ex.step(now, listing, &a.tree, &mut out);
                }
                ExchangeAction::Repair { push: ps, pull: pl } => {
                    push.extend(ps.into_iter().map(|(_, k)| k));
                    pull.extend(pl.into_iter().map(|(_, k)| k));
                }
                ExchangeAction::Done(s) => stats = Some(s),
                ExchangeAction::Failed(f) => panic!("exchange of {p} failed: {f:?}"),
            }
        }
        pending = out;
    }
    (stats.expect("every exchange ends"), push, pull)
}

fn main() {
    let q = PartitionCount::new(1024).expect("1024 is a valid partition count");
    let shape = TreeShape::DEFAULT;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);

    // Which keys differ, and how: 0 = missing on A, 1 = missing on B, 2 = newer on B.
    let mut diffs: BTreeMap<u32, u8> = BTreeMap::new();
    while diffs.len() < DIFFERING {
        let i = (rng.next_u64() % u64::from(KEYS)) as u32;
        let kind = (diffs.len() % 3) as u8;
        diffs.entry(i).or_insert(kind);
    }

    let new_parts = || -> Vec<Part> {
        q.iter()
            .map(|p| Part {
                tree: TicTacTree::new(q, p, shape),
                data: BTreeMap::new(),
            })
            .collect()
    };
    let (mut a, mut b) = (new_parts(), new_parts());
    let mut tokens = Vec::with_capacity(KEYS as usize);
    for i in 0..KEYS {
        let token = token_of(KEYSPACE, &key(i));
        tokens.push(token);
        let p = q.partition_of(token).0 as usize;
        let (sa, sb) = match diffs.get(&i) {
            None => (State::Base, State::Base),
            Some(0) => (State::Absent, State::Base),
            Some(1) => (State::Base, State::Absent),
            Some(_) => (State::Base, State::Newer),
        };
        if sa != State::Absent {
            a[p].put(i, token, sa);
        }
        if sb != State::Absent {
            b[p].put(i, token, sb);
        }
    }

    let mut total = ExchangeStats::default();
    let (mut pushed, mut pulled) = (Vec::new(), Vec::new());
    let mut partitions_differing = 0;
    for p in 0..a.len() {
        let (s, push, pull) = exchange(p as u64, &a[p], &b[p]);
        partitions_differing += usize::from(s.messages_sent > 1);
        total.messages_sent += s.messages_sent;
        total.messages_received += s.messages_received;
        total.bytes_sent += s.bytes_sent;
        total.bytes_received += s.bytes_received;
        total.keys_pushed += s.keys_pushed;
        total.keys_pulled += s.keys_pulled;
        total.segments_compared += s.segments_compared;
        pushed.extend(push.into_iter().map(|k| (p, k)));
        pulled.extend(pull.into_iter().map(|k| (p, k)));
    }

    // Bytes of the objects the repair moves (key + encoded object), then apply the repair: the
    // merged state of each differing key is the newer object (absent sides take it whole).
    let index = |k: &[u8]| -> u32 {
        std::str::from_utf8(&k[4..])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("keys are key:<12 digits>")
    };
    let mut repaired_bytes = 0usize;
    for (p, k) in &pushed {
        let i = index(k);
        let (_, h) = a[*p].data[&(tokens[i as usize], k.clone())];
        let newer = h == version_hash(&object(i, true));
        repaired_bytes += k.len() + object(i, newer).encoded_len();
    }
    for (p, k) in &pulled {
        let i = index(k);
        let (_, h) = b[*p].data[&(tokens[i as usize], k.clone())];
        let newer = h == version_hash(&object(i, true));
        repaired_bytes += k.len() + object(i, newer).encoded_len();
    }
    for (&i, &kind) in &diffs {
        let token = tokens[i as usize];
        let p = q.partition_of(token).0 as usize;
        let merged = if kind == 2 { State::Newer } else { State::Base };
        a[p].put(i, token, merged);
        b[p].put(i, token, merged);
    }
    let converged = a
        .iter()
        .zip(&b)
        .all(|(x, y)| x.tree.root() == y.tree.root());

    let data_bytes = u64::from(KEYS) * (KEY_BYTES + VALUE_BYTES) as u64;
    let messages = total.messages_sent + total.messages_received;
    let traffic = total.bytes_sent + total.bytes_received;
    let pct = |x: u64| 100.0 * x as f64 / data_bytes as f64;
    println!("replicas: {KEYS} keys of {KEY_BYTES} + {VALUE_BYTES} bytes, {DIFFERING} differing");
    println!(
        "ring: Q={} partitions, tree {} levels x width {} = {} segments/partition",
        q.get(),
        shape.levels(),
        shape.width(),
        shape.segment_count()
    );
    println!("data size (keys + values): {data_bytes} bytes");
    println!(
        "partitions exchanged: {}, differing: {partitions_differing}, segments compared: {}",
        a.len(),
        total.segments_compared
    );
    println!(
        "exchange messages: {messages} ({} sent, {} received)",
        total.messages_sent, total.messages_received
    );
    println!(
        "exchange traffic: {traffic} bytes ({} sent, {} received) = {:.4}% of data",
        total.bytes_sent,
        total.bytes_received,
        pct(traffic)
    );
    println!(
        "keys pushed: {}, pulled: {} (distinct differing keys: {})",
        total.keys_pushed,
        total.keys_pulled,
        diffs.len()
    );
    println!(
        "repaired objects: {repaired_bytes} bytes = {:.4}% of data",
        pct(repaired_bytes as u64)
    );
    println!(
        "total (exchange + repair): {} bytes = {:.4}% of data (goal < 5%)",
        traffic + repaired_bytes as u64,
        pct(traffic + repaired_bytes as u64)
    );
    println!("replicas converged after repair: {converged}");
    assert!(converged, "roots still differ after the repair");
}
