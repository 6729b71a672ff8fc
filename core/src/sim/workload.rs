//! Workloads: what simulated clients do, what they record, and the checks on the record.
//!
//! - **Set**: clients add unique elements to a few keys by read-modify-write: read the key,
//!   take the union of every sibling's set, add one element, write it back with the read's
//!   context. Writes use a sloppy or a strict quorum and w = 1 or 2 at random. Invariant: **no acknowledged
//!   add is lost**: after the cluster heals, every replica's union holds every element whose
//!   write was acknowledged.
//! - **Register**: one writer per key writes 1, 2, 3... with a strict quorum (r + w > n,
//!   sloppy off); other clients read. Invariant: a read returns at least the latest value
//!   whose write was acknowledged before the read began. Some keys are cold: written only at
//!   the start, read throughout.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;

use crate::node::{ClientOp, Key};
use crate::quorum::{AckScope, QuorumError, QuorumOptions};
use crate::tick::Tick;
use crate::token::token_of;
use crate::version::{Object, VersionVector};

/// Which workload a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Read-modify-write adds to sets; checks that no acknowledged add is lost.
    Set,
    /// One writer per key, strict quorum; checks that reads see the latest acknowledged write.
    Register,
}

/// What a client is waiting for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Set: the read before an add.
    SetRead { key: usize },
    /// Set: the write of `element`.
    SetWrite {
        key: usize,
        element: u64,
        /// Counted per datacenter (local or each).
        scoped: bool,
    },
    /// Register: the writer's write of `value`.
    RegisterWrite { key: usize, value: u64 },
    /// Register: the writer re-reads after a failed write, for a fresh context.
    RegisterRefresh { key: usize },
    /// Register: a reader's read.
    RegisterRead { key: usize },
    /// Set: the write of `element` to churn key `key`.
    ChurnWrite { key: usize, element: u64 },
    /// Set: the delete of `element` from churn key `key`.
    ChurnDelete { key: usize, element: u64 },
}

/// A request a client wants to send.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// The operation.
    pub op: ClientOp,
    /// Its quorum options.
    pub options: QuorumOptions,
    /// What it is, for the reply.
    pub step: Step,
}

/// The clients' shared state and their record.
#[derive(Debug)]
pub struct Workload {
    kind: WorkloadKind,
    keys: Vec<Key>,
    /// Set: keys written and deleted at once (see the module docs).
    churn: Vec<Key>,
    /// Set: elements of each churn key whose delete was acknowledged.
    deleted: BTreeMap<usize, BTreeSet<u64>>,
    /// Register: each writer's context and next value; set: each client's element counter.
    contexts: BTreeMap<usize, VersionVector>,
    counters: BTreeMap<usize, u64>,
    /// Set: acknowledged elements per key.
    acked: BTreeMap<usize, BTreeSet<u64>>,
    /// Register: (value, acknowledged at) per key.
    writes: BTreeMap<usize, Vec<(u64, Tick)>>,
    /// Register: (key, began at, largest value read).
    reads: Vec<(usize, Tick, u64)>,
    /// Operations acknowledged and failed.
    pub acknowledged: u64,
    /// Operations that failed or timed out (indeterminate).
    pub failed: u64,
    /// Set operations may count acknowledgements per datacenter (see [`Workload::scoped`]).
    scoped: bool,
    /// Set operations sent at each scope: any, local datacenter, each datacenter.
    pub scopes_used: [u64; 3],
    /// Set writes acknowledged that counted per datacenter.
    pub scoped_writes_acked: u64,
}

impl Workload {
    /// A workload over `keys` keys.
    pub fn new(kind: WorkloadKind, keys: usize) -> Workload {
        let named = |name: String| {
            let bytes = name.into_bytes();
            Key {
                token: token_of(crate::constants::DEFAULT_KEYSPACE, &bytes),
                bytes,
            }
        };
        let churn = match kind {
            WorkloadKind::Set => CHURN_KEYS,
            WorkloadKind::Register => 0,
        };
        Workload {
            kind,
            keys: (0..keys).map(|i| named(format!("key-{i}"))).collect(),
            churn: (0..churn).map(|i| named(format!("gone-{i}"))).collect(),
            deleted: BTreeMap::new(),
            contexts: BTreeMap::new(),
            counters: BTreeMap::new(),
            acked: BTreeMap::new(),
            writes: BTreeMap::new(),
            reads: Vec::new(),
            acknowledged: 0,
            failed: 0,
            scoped: false,
            scopes_used: [0; 3],
            scoped_writes_acked: 0,
        }
    }

    /// With `scoped`, set reads and writes pick their scope at random: anywhere, in the
    /// coordinator's datacenter only (LOCAL_QUORUM), or in each datacenter (EACH_QUORUM).
    pub fn scoped(mut self, scoped: bool) -> Workload {
        self.scoped = scoped;
        self
    }

    /// Options of a set read or write: sloppy or strict, and a scope if the workload is
    /// scoped.
    fn set_options(&mut self, rng: &mut impl RngCore) -> QuorumOptions {
        let options = sloppy_or_strict(rng);
        let scope = match self.scoped {
            true => {
                [AckScope::Any, AckScope::LocalDc, AckScope::EachDc][(rng.next_u32() % 3) as usize]
            }
            false => AckScope::Any,
        };
        self.scopes_used[match scope {
            AckScope::Any => 0,
            AckScope::LocalDc => 1,
            AckScope::EachDc => 2,
        }] += 1;
        match scope {
            AckScope::Any => options,
            // Counted per datacenter: one answer in each, or (0) a majority of each's replicas.
            _ => QuorumOptions {
                r: options.w - 1,
                w: options.w - 1,
                scope,
                ..options
            },
        }
    }

    /// The keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The churn keys (set workload).
    pub fn churn_keys(&self) -> &[Key] {
        &self.churn
    }

    /// Deletes acknowledged in all (set workload).
    pub fn acked_deletes(&self) -> usize {
        self.deleted.values().map(BTreeSet::len).sum()
    }

    /// Checks one replica's final copy of churn key `key`: it holds no deleted value.
    pub fn check_churn_copy(&self, key: usize, replica: &str, copy: &Object) -> Vec<String> {
        let deleted = self.deleted.get(&key);
        let back: Vec<u64> = copy
            .live_values()
            .filter_map(decode_u64)
            .filter(|e| deleted.is_some_and(|d| d.contains(e)))
            .collect();
        if back.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "deleted values came back: {replica} holds {} value(s) of gone-{key} whose delete \
             was acknowledged (first: {:#x})",
            back.len(),
            back[0]
        )]
    }

    /// The next request of idle `client`.
    pub fn next(&mut self, client: usize, rng: &mut impl RngCore) -> ClientRequest {
        match self.kind {
            WorkloadKind::Set if !self.churn.is_empty() && rng.next_u32().is_multiple_of(4) => {
                let key = (rng.next_u64() % self.churn.len() as u64) as usize;
                let element = self.next_element(client);
                ClientRequest {
                    op: ClientOp::Put {
                        key: self.churn[key].clone(),
                        context: VersionVector::new(),
                        value: element.to_le_bytes().to_vec(),
                    },
                    options: sloppy_or_strict(rng),
                    step: Step::ChurnWrite { key, element },
                }
            }
            WorkloadKind::Set => {
                let key = (rng.next_u64() % self.keys.len() as u64) as usize;
                let options = self.set_options(rng);
                self.read(key, Step::SetRead { key }, options)
            }
            WorkloadKind::Register => {
                // Clients 0..keys are the writers, one per key; the rest read. Keys from
                // HOT_KEYS on are cold: written a few times at the start, then only read, so
                // that reads long after their writes depend on ring changes having moved them.
                let cold_done = client >= HOT_KEYS
                    && self.counters.get(&client).copied().unwrap_or(0) >= COLD_KEY_WRITES;
                if client < self.keys.len() && !cold_done {
                    let value = self.counters.entry(client).or_insert(0);
                    *value += 1;
                    let value = *value;
                    self.register_write(client, value)
                } else {
                    let key = (rng.next_u64() % self.keys.len() as u64) as usize;
                    self.read(key, Step::RegisterRead { key }, strict())
                }
            }
        }
    }

    /// Feeds a reply (`None`: the client gave up waiting) and returns a follow-up request
    /// to send at once, if the step has one.
    pub fn on_reply(
        &mut self,
        client: usize,
        step: Step,
        began: Tick,
        now: Tick,
        reply: Option<Result<Object, QuorumError>>,
        rng: &mut impl RngCore,
    ) -> Option<ClientRequest> {
        let ok = match reply {
            Some(Ok(o)) => {
                self.acknowledged += 1;
                Some(o)
            }
            _ => {
                self.failed += 1;
                None
            }
        };
        match (step, ok) {
            (Step::SetRead { key }, Some(object)) => {
                let element = self.next_element(client);
                let mut set = union_of(&object);
                set.insert(element);
                let options = self.set_options(rng);
                Some(ClientRequest {
                    op: ClientOp::Put {
                        key: self.keys[key].clone(),
                        context: object.clock().clone(),
                        value: encode_set(&set),
                    },
                    options,
                    step: Step::SetWrite {
                        key,
                        element,
                        scoped: options.scope != AckScope::Any,
                    },
                })
            }
            (
                Step::SetWrite {
                    key,
                    element,
                    scoped,
                },
                Some(_),
            ) => {
                self.scoped_writes_acked += u64::from(scoped);
                self.acked.entry(key).or_default().insert(element);
                None
            }
            (Step::ChurnWrite { key, element }, Some(object)) => Some(ClientRequest {
                op: ClientOp::Delete {
                    key: self.churn[key].clone(),
                    context: object.clock().clone(),
                },
                options: sloppy_or_strict(rng),
                step: Step::ChurnDelete { key, element },
            }),
            (Step::ChurnDelete { key, element }, Some(_)) => {
                self.deleted.entry(key).or_default().insert(element);
                None
            }
            (Step::RegisterWrite { key, value }, Some(object)) => {
                self.writes.entry(key).or_default().push((value, now));
                self.contexts.insert(key, object.clock().clone());
                None
            }
            (Step::RegisterWrite { key, .. }, None) => {
                Some(self.read(key, Step::RegisterRefresh { key }, strict()))
            }
            (Step::RegisterRefresh { key }, Some(object)) => {
                self.contexts.insert(key, object.clock().clone());
                None
            }
            (Step::RegisterRead { key }, Some(object)) => {
                let largest = object
                    .live_values()
                    .filter_map(decode_u64)
                    .max()
                    .unwrap_or(0);
                self.reads.push((key, began, largest));
                None
            }
            _ => None,
        }
    }

    /// Checks the register record: every read saw at least the latest write acknowledged
    /// before it began. Returns the violations.
    pub fn check_register(&self) -> Vec<String> {
        let mut violations = Vec::new();
        for &(key, began, seen) in &self.reads {
            let latest = self
                .writes
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|(_, acked)| *acked < began)
                .map(|(v, _)| *v)
                .max()
                .unwrap_or(0);
            if seen < latest {
                violations.push(format!(
                    "stale read: key-{key} read at {began} returned {seen}, but {latest} was \
                     acknowledged before the read began"
                ));
            }
        }
        violations
    }

    /// Checks one replica's final copy of key `key` against the acknowledged adds.
    pub fn check_set_copy(&self, key: usize, replica: &str, copy: &Object) -> Vec<String> {
        let have = union_of(copy);
        let lost: Vec<u64> = self
            .acked
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|e| !have.contains(e))
            .copied()
            .collect();
        if lost.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "lost acknowledged adds: {} of key-{key}'s acknowledged elements are missing on \
             {replica} (first: {:#x})",
            lost.len(),
            lost[0]
        )]
    }

    /// Checks one replica's final copy of key `key` against the acknowledged writes: every
    /// acknowledged add (set), or the latest acknowledged value or a newer one (register).
    pub fn check_copy(&self, key: usize, replica: &str, copy: &Object) -> Vec<String> {
        match self.kind {
            WorkloadKind::Set => self.check_set_copy(key, replica, copy),
            WorkloadKind::Register => {
                let latest = self
                    .writes
                    .get(&key)
                    .and_then(|w| w.iter().map(|(v, _)| *v).max())
                    .unwrap_or(0);
                let held = copy.live_values().filter_map(decode_u64).max().unwrap_or(0);
                if held >= latest {
                    return Vec::new();
                }
                vec![format!(
                    "lost acknowledged write: {replica} holds {held} for key-{key}, but {latest} \
                     was acknowledged"
                )]
            }
        }
    }

    /// Acknowledged adds in all (set workload).
    pub fn acked_adds(&self) -> usize {
        self.acked.values().map(BTreeSet::len).sum()
    }

    /// A set element no client used before: the client's number and its counter.
    fn next_element(&mut self, client: usize) -> u64 {
        let counter = self.counters.entry(client).or_insert(0);
        *counter += 1;
        ((client as u64) << 32) | *counter
    }

    fn read(&self, key: usize, step: Step, options: QuorumOptions) -> ClientRequest {
        ClientRequest {
            op: ClientOp::Get {
                key: self.keys[key].clone(),
            },
            options,
            step,
        }
    }

    fn register_write(&self, key: usize, value: u64) -> ClientRequest {
        ClientRequest {
            op: ClientOp::Put {
                key: self.keys[key].clone(),
                context: self.contexts.get(&key).cloned().unwrap_or_default(),
                value: value.to_le_bytes().to_vec(),
            },
            options: strict(),
            step: Step::RegisterWrite { key, value },
        }
    }
}

/// Churn keys of the set workload.
const CHURN_KEYS: usize = 16;

/// Keys of the register workload written throughout; the others are cold.
const HOT_KEYS: usize = 2;

/// Writes to each cold key of the register workload.
const COLD_KEY_WRITES: u64 = 3;

fn strict() -> QuorumOptions {
    QuorumOptions {
        r: 2,
        w: 2,
        sloppy: false,
        durable: true,
        scope: AckScope::Any,
    }
}

/// Set writes: sloppy or strict, w = 1 or 2, at random. A write with w = 1 is acknowledged
/// by a single replica, so that only ring changes that move every replica's data keep it.
fn sloppy_or_strict(rng: &mut impl RngCore) -> QuorumOptions {
    let draw = rng.next_u32();
    QuorumOptions {
        sloppy: draw & 1 == 0,
        w: if draw & 2 == 0 { 1 } else { 2 },
        ..strict()
    }
}

/// The union of the element sets of every live sibling.
pub fn union_of(object: &Object) -> BTreeSet<u64> {
    object
        .live_values()
        .flat_map(|v| v.chunks_exact(8).filter_map(decode_u64))
        .collect()
}

fn encode_set(set: &BTreeSet<u64>) -> Vec<u8> {
    set.iter().flat_map(|e| e.to_le_bytes()).collect()
}

fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}
