//! A map from record number to `V` behind many locks, so that driver threads working on
//! different records rarely wait for each other (the ledger and the context table).
//!
//! A record always hashes to the same stripe; a closure runs under that stripe's lock only.
//! A panic in another thread cannot leave an entry half-updated (the closures used here do
//! not panic), so a poisoned lock is taken over rather than propagated.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Record number → `V`, striped over `stripes` locks.
#[derive(Debug)]
pub struct StripedMap<V> {
    stripes: Box<[Mutex<HashMap<u64, V>>]>,
}

impl<V> StripedMap<V> {
    /// An empty map over `stripes` locks (at least one).
    pub fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn stripe(&self, n: u64) -> MutexGuard<'_, HashMap<u64, V>> {
        self.stripes[(n % self.stripes.len() as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on record `n`'s entry, if there is one.
    pub fn get_with<T>(&self, n: u64, f: impl FnOnce(Option<&V>) -> T) -> T {
        f(self.stripe(n).get(&n))
    }

    /// Sets record `n`'s entry.
    pub fn insert(&self, n: u64, value: V) {
        self.stripe(n).insert(n, value);
    }

    /// Every record with an entry, sorted.
    pub fn keys(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .stripes
            .iter()
            .flat_map(|s| {
                let map = s.lock().unwrap_or_else(PoisonError::into_inner);
                map.keys().copied().collect::<Vec<_>>()
            })
            .collect();
        all.sort_unstable();
        all
    }
}

impl<V: Default> StripedMap<V> {
    /// Runs `f` on record `n`'s entry, created empty first if missing.
    pub fn with<T>(&self, n: u64, f: impl FnOnce(&mut V) -> T) -> T {
        f(self.stripe(n).entry(n).or_default())
    }
}
