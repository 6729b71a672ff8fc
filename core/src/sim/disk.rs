//! A node's simulated storage: a durable layer and a volatile one.
//!
//! Every operation applies to the volatile view (volatile over durable). A durable operation
//! then syncs, which makes everything written so far durable, as an fsync of a commit log
//! does. A crash keeps a random subset of the volatile writes (some pages reached the disk,
//! others did not) and loses the rest, so only what a sync covered is certain to survive.
//!
//! Operations are applied when the simulator delivers their completion, in completion order,
//! so the before/after copies a completion reports are exactly what storage held.

use std::collections::BTreeMap;

use rand_core::RngCore;

use crate::antientropy::ListingBuilder;
use crate::handoff::Hint;
use crate::ids::{NodeId, Token};
use crate::node::{lww_resolve, Key, Recovered, RingState, StorageOp, StorageResult};
use crate::version::Object;

type DataKey = (Token, Vec<u8>);
type HintKey = (NodeId, Vec<u8>);

/// One layer: `None` records a removal (for hints) over the layer below.
#[derive(Clone, Debug, Default)]
struct Layer {
    data: BTreeMap<DataKey, Object>,
    hints: BTreeMap<HintKey, Option<(Token, Object)>>,
    ring: Option<Box<RingState>>,
}

/// A node's simulated disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    durable: Layer,
    volatile: Layer,
    /// The membership generation the node last started with (persisted durably at start).
    generation: u64,
}

impl SimDisk {
    /// The key's copy as the node sees it (empty if absent).
    pub fn object(&self, token: Token, key: &[u8]) -> Object {
        let k = (token, key.to_vec());
        self.volatile
            .data
            .get(&k)
            .or_else(|| self.durable.data.get(&k))
            .cloned()
            .unwrap_or_default()
    }

    /// Every stored key with its copy, in token order.
    pub fn objects(&self) -> Vec<(Key, Object)> {
        let mut all = self.durable.data.clone();
        for (k, v) in &self.volatile.data {
            all.insert(k.clone(), v.clone());
        }
        all.into_iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|((token, bytes), o)| (Key { token, bytes }, o))
            .collect()
    }

    /// Every hint held.
    pub fn hints(&self) -> Vec<Hint> {
        let mut all = self.durable.hints.clone();
        for (k, v) in &self.volatile.hints {
            all.insert(k.clone(), v.clone());
        }
        all.into_iter()
            .filter_map(|((owner, key), v)| {
                v.map(|(token, object)| Hint {
                    owner,
                    token,
                    key,
                    object,
                })
            })
            .collect()
    }

    /// Starts the node again: bumps and persists the generation, and returns it with what the
    /// node recovers.
    pub fn start(&mut self) -> (u64, Recovered) {
        self.generation += 1;
        let recovered = Recovered {
            hints: self.hints(),
            objects: self.objects(),
            ring: self
                .volatile
                .ring
                .as_ref()
                .or(self.durable.ring.as_ref())
                .map(|r| (**r).clone()),
        };
        (self.generation, recovered)
    }

    /// A crash: each unsynced write survives with probability one half.
    pub fn crash(&mut self, rng: &mut impl RngCore) {
        let volatile = std::mem::take(&mut self.volatile);
        for (k, v) in volatile.data {
            if rng.next_u32() & 1 == 0 {
                self.durable.data.insert(k, v);
            }
        }
        for (k, v) in volatile.hints {
            if rng.next_u32() & 1 == 0 {
                self.durable.hints.insert(k, v);
            }
        }
        if volatile.ring.is_some() && rng.next_u32() & 1 == 0 {
            self.durable.ring = volatile.ring;
        }
    }

    /// Merges `object` into `key`'s copy; returns the copy before and after.
    fn merge(&mut self, key: Key, object: &Object, lww: bool) -> (Key, Object, Object) {
        let before = self.object(key.token, &key.bytes);
        let mut after = before.clone();
        after.merge(object);
        if lww {
            after = lww_resolve(after);
        }
        if after != before {
            self.volatile
                .data
                .insert((key.token, key.bytes.clone()), after.clone());
        }
        (key, before, after)
    }

    /// Drops `key` if its copy is exactly `tombstone`; returns the copy before and after.
    fn purge(&mut self, key: Key, tombstone: &Object) -> (Key, Object, Object) {
        let before = self.object(key.token, &key.bytes);
        if before.is_empty() || before != *tombstone {
            return (key, before.clone(), before);
        }
        // An empty object is an absent key, and it shadows the durable copy until synced.
        self.volatile
            .data
            .insert((key.token, key.bytes.clone()), Object::new());
        (key, before, Object::new())
    }

    /// Applies `op` for node `me` and returns its result.
    pub fn apply(&mut self, me: NodeId, op: StorageOp, durable: bool) -> StorageResult {
        let result = match op {
            StorageOp::Update {
                key,
                context,
                value,
                timestamp_ms,
                dot_floor,
                lww,
            } => {
                let before = self.object(key.token, &key.bytes);
                let mut after = before.clone();
                let context = if lww {
                    // Last-write-wins: the write supersedes everything this replica has.
                    let mut all = before.clock().clone();
                    all.join(&context);
                    all
                } else {
                    context
                };
                match after.update_above(&context, me, dot_floor, timestamp_ms, value) {
                    Ok(_) => {
                        self.volatile
                            .data
                            .insert((key.token, key.bytes), after.clone());
                        StorageResult::Changed { before, after }
                    }
                    Err(e) => StorageResult::Refused(e),
                }
            }
            StorageOp::Merge { key, object, lww } => {
                let (_, before, after) = self.merge(key, &object, lww);
                StorageResult::Changed { before, after }
            }
            StorageOp::Purge { entries } => StorageResult::ChangedMany(
                entries
                    .into_iter()
                    .map(|(key, tombstone)| self.purge(key, &tombstone))
                    .collect(),
            ),
            StorageOp::MergeMany { entries, lww } => StorageResult::ChangedMany(
                entries
                    .into_iter()
                    .map(|(key, object)| self.merge(key, &object, lww))
                    .collect(),
            ),
            StorageOp::ReadRange {
                tokens: (first, last),
                after,
                max_entries,
                max_bytes,
                ..
            } => {
                let mut entries = Vec::new();
                let mut bytes = 0;
                let mut end = true;
                let candidates = self.objects().into_iter().filter(|(k, _)| {
                    k.token.0 >= first && k.token.0 <= last && after.as_ref().is_none_or(|a| k > a)
                });
                for (key, object) in candidates {
                    if entries.len() >= max_entries || (bytes >= max_bytes && !entries.is_empty()) {
                        end = false;
                        break;
                    }
                    bytes += key.wire_bytes() + object.encoded_len();
                    entries.push((key, object));
                }
                StorageResult::Range { entries, end }
            }
            StorageOp::SaveRing(state) => {
                self.volatile.ring = Some(state);
                StorageResult::Done
            }
            StorageOp::Read { key } => StorageResult::Read(self.object(key.token, &key.bytes)),
            StorageOp::PutHint { owner, key, object } => {
                self.volatile
                    .hints
                    .insert((owner, key.bytes), Some((key.token, object)));
                StorageResult::Done
            }
            StorageOp::DeleteHint { owner, key } => {
                self.volatile.hints.insert((owner, key.bytes), None);
                StorageResult::Done
            }
            StorageOp::List { request, ranges } => {
                let mut builder = ListingBuilder::new(&request);
                let objects = self.objects();
                'ranges: for (first, last) in ranges {
                    let in_range = objects
                        .iter()
                        .filter(|(k, _)| k.token.0 >= first && k.token.0 <= last);
                    for (k, o) in in_range {
                        if !builder.push_object(k.token, &k.bytes, o) {
                            break 'ranges;
                        }
                    }
                }
                StorageResult::Listed(builder.finish())
            }
            StorageOp::ReadMany { keys } => StorageResult::Objects(
                keys.into_iter()
                    .map(|k| {
                        let o = self.object(k.token, &k.bytes);
                        (k, o)
                    })
                    .collect(),
            ),
        };
        if durable {
            self.sync();
        }
        result
    }

    fn sync(&mut self) {
        let volatile = std::mem::take(&mut self.volatile);
        self.durable.data.extend(volatile.data);
        if volatile.ring.is_some() {
            self.durable.ring = volatile.ring;
        }
        for (k, v) in volatile.hints {
            match v {
                Some(h) => {
                    self.durable.hints.insert(k, Some(h));
                }
                None => {
                    self.durable.hints.remove(&k);
                }
            }
        }
    }
}
