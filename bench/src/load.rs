//! The `load` workload: uniform random gets and puts through the Tessera client.
//!
//! Keys are `key-%08d` drawn uniformly from `0..keys`; values are `value_size` bytes. One
//! connection is one [`Client`], i.e. one TCP connection to every shard of the server.
//!
//! Writes carry a context by default: the [`ContextTable`] keeps, per key, the causal context
//! of the latest answer seen for it (any connection's get or put), and a put sends it, so it
//! supersedes what exists instead of adding a sibling. Blind writes (`--blind-writes`) pile
//! siblings up until the server refuses writes past its sibling bound.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_client::{Client, ClientConfig, Context, Durability, Pending};
use tessera_schema::Response;

use crate::constants::{KEYS_MAX, PREFILL_BATCH_KEYS, VALUE_BYTES_MAX};
use crate::error::{BenchError, OpError};
use crate::report::OpKind;
use crate::Op;

/// What `load` does, apart from how it is driven.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadConfig {
    /// Any address of the server (the client learns the shards' ports from it).
    pub server: String,
    /// Fraction of operations that are gets, in `[0, 1]`.
    pub read_ratio: f64,
    /// Distinct keys.
    pub keys: u64,
    /// Bytes of every value written.
    pub value_size: usize,
    /// Durability of every write.
    pub durability: Durability,
    /// Write every key once before the run so that reads find values.
    pub prefill: bool,
    /// Send puts without a context.
    pub blind_writes: bool,
    /// Seed of connection 0's choices; connection `i` uses `seed + i`.
    pub seed: u64,
}

impl LoadConfig {
    /// Checks every bound; the error names the flag to change.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::InvalidArgs(m));
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return bad(format!(
                "--read-ratio must be between 0 and 1, not {}",
                self.read_ratio
            ));
        }
        if !(1..=KEYS_MAX).contains(&self.keys) {
            return bad(format!(
                "--keys must be between 1 and {KEYS_MAX}, not {}",
                self.keys
            ));
        }
        if self.value_size > VALUE_BYTES_MAX {
            return bad(format!(
                "--value-size must be at most {VALUE_BYTES_MAX} (the server's default value limit), not {}",
                self.value_size
            ));
        }
        Ok(())
    }

    /// The client configuration every connection uses.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            durability: self.durability,
            ..ClientConfig::default()
        }
    }
}

/// Writes `key-%08d` for `index` into `out` (cleared first).
pub fn write_key(index: u64, out: &mut Vec<u8>) {
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "key-{index:08}");
}

/// The value every put writes: `size` bytes of a fixed, non-constant pattern.
pub fn make_value(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Per key, the causal context of the latest answer seen (shared by all connections).
///
/// Answers can complete out of order, so an older context may overwrite a newer one; the next
/// write then leaves one extra sibling, which the following answer's full context covers
/// again. Siblings therefore stay bounded by the writes in flight on one key.
#[derive(Debug)]
pub struct ContextTable {
    slots: Vec<Mutex<Context>>,
}

impl ContextTable {
    /// A table for keys `0..keys`, every context empty.
    pub fn new(keys: u64) -> Self {
        let len = usize::try_from(keys).expect("keys is bounded by KEYS_MAX");
        Self {
            slots: (0..len).map(|_| Mutex::new(Context::default())).collect(),
        }
    }

    /// The context to write `key` with (empty: a blind write).
    pub fn get(&self, key: u64) -> Context {
        self.slot(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers the context an answer about `key` carried.
    pub fn remember(&self, key: u64, context: Vec<u8>) {
        *self
            .slot(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Context::from_bytes(context);
    }

    fn slot(&self, key: u64) -> &Mutex<Context> {
        let index = usize::try_from(key).expect("keys is bounded by KEYS_MAX");
        &self.slots[index]
    }
}

/// Writes every key once (after reading it, so the write supersedes what a previous run left),
/// in batches, remembering each key's new context in `contexts`. Returns how long it took.
pub fn prefill(
    config: &LoadConfig,
    value: &[u8],
    contexts: Option<&ContextTable>,
) -> Result<Duration, BenchError> {
    let begin = Instant::now();
    let client = Client::connect(config.server.as_str(), config.client_config())
        .map_err(|e| BenchError::Prefill(e.to_string()))?;
    let fail = |what: &str, key: u64, e: &dyn std::fmt::Display| {
        BenchError::Prefill(format!("{what} of key {key}: {e}"))
    };
    let mut first = 0;
    while first < config.keys {
        let last = (first + PREFILL_BATCH_KEYS as u64).min(config.keys);
        let keys: Vec<Vec<u8>> = (first..last)
            .map(|i| {
                let mut k = Vec::new();
                write_key(i, &mut k);
                k
            })
            .collect();
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let read = client
            .get_many(&key_refs)
            .map_err(|e| fail("batch read", first, &e))?;
        let mut read_contexts = Vec::with_capacity(read.len());
        for (i, r) in (first..).zip(read) {
            read_contexts.push(r.map_err(|e| fail("read", i, &e))?.context);
        }
        let items: Vec<(&[u8], &[u8], Option<&Context>)> = key_refs
            .iter()
            .zip(&read_contexts)
            .map(|(k, c)| (*k, value, Some(c).filter(|c| !c.is_empty())))
            .collect();
        let written = client
            .put_many(&items)
            .map_err(|e| fail("batch write", first, &e))?;
        for (i, w) in (first..).zip(written) {
            let context = w.map_err(|e| fail("write", i, &e))?;
            if let Some(table) = contexts {
                table.remember(i, context.as_bytes().to_vec());
            }
        }
        first = last;
    }
    Ok(begin.elapsed())
}

/// One connection's `load` workload.
#[derive(Debug)]
pub struct LoadOp<'a> {
    client: Client,
    rng: StdRng,
    key: Vec<u8>,
    value: &'a [u8],
    read_ratio: f64,
    keys: u64,
    /// `None` for blind writes.
    contexts: Option<&'a ContextTable>,
}

/// A `load` operation in flight.
#[derive(Debug)]
pub struct LoadInFlight {
    key: u64,
    pending: Pending,
}

impl<'a> LoadOp<'a> {
    /// Connects connection `index` and opens its connection to every shard.
    pub fn open(
        config: &LoadConfig,
        index: usize,
        value: &'a [u8],
        contexts: Option<&'a ContextTable>,
    ) -> Result<Self, OpError> {
        let client = Client::connect(config.server.as_str(), config.client_config())?;
        client.ping()?; // opens the connection to every shard before timing starts
        Ok(Self {
            client,
            rng: StdRng::seed_from_u64(config.seed.wrapping_add(index as u64)),
            key: Vec::new(),
            value,
            read_ratio: config.read_ratio,
            keys: config.keys,
            contexts,
        })
    }
}

impl Op for LoadOp<'_> {
    type InFlight = LoadInFlight;

    fn start(&mut self) -> Result<(OpKind, LoadInFlight), OpError> {
        let key = self.rng.gen_range(0..self.keys);
        write_key(key, &mut self.key);
        let (kind, pending) = if self.rng.gen_bool(self.read_ratio) {
            (OpKind::Get, self.client.get_async(&self.key)?)
        } else {
            let context = self.contexts.map(|t| t.get(key));
            let context = context.as_ref().filter(|c| !c.is_empty());
            let pending = self.client.put_async(&self.key, self.value, context)?;
            (OpKind::Put, pending)
        };
        Ok((kind, LoadInFlight { key, pending }))
    }

    fn finish(&mut self, op: LoadInFlight) -> Result<(), OpError> {
        let context = match op.pending.wait()? {
            Response::Get(g) => g.context,
            Response::Put(w) => w.context,
            Response::Error(e) => return Err(OpError(format!("server error: {e}"))),
            other => return Err(OpError(format!("unexpected answer {other:?}"))),
        };
        if let Some(table) = self.contexts {
            if !context.is_empty() {
                table.remember(op.key, context);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadConfig {
        LoadConfig {
            server: "127.0.0.1:7400".into(),
            read_ratio: 0.5,
            keys: 100_000,
            value_size: 100,
            durability: Durability::Default,
            prefill: false,
            blind_writes: false,
            seed: 1,
        }
    }

    #[test]
    fn keys_are_fixed_width() {
        let mut k = b"garbage".to_vec();
        write_key(42, &mut k);
        assert_eq!(k, b"key-00000042");
        write_key(KEYS_MAX - 1, &mut k);
        assert_eq!(k, b"key-09999999");
    }

    #[test]
    fn values_have_the_requested_size() {
        assert_eq!(make_value(0), b"");
        assert_eq!(make_value(3), b"abc");
        assert_eq!(make_value(100).len(), 100);
    }

    #[test]
    fn validate_names_the_flag_out_of_range() {
        assert!(config().validate().is_ok());
        for (c, flag) in [
            (
                LoadConfig {
                    read_ratio: 1.5,
                    ..config()
                },
                "--read-ratio",
            ),
            (
                LoadConfig {
                    read_ratio: f64::NAN,
                    ..config()
                },
                "--read-ratio",
            ),
            (
                LoadConfig {
                    keys: 0,
                    ..config()
                },
                "--keys",
            ),
            (
                LoadConfig {
                    keys: KEYS_MAX + 1,
                    ..config()
                },
                "--keys",
            ),
            (
                LoadConfig {
                    value_size: VALUE_BYTES_MAX + 1,
                    ..config()
                },
                "--value-size",
            ),
        ] {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err} should name {flag}");
        }
    }

    #[test]
    fn context_table_remembers_the_latest_context() {
        let t = ContextTable::new(4);
        assert!(t.get(3).is_empty());
        t.remember(3, vec![1, 2]);
        t.remember(3, vec![1, 3]);
        assert_eq!(t.get(3).as_bytes(), [1, 3]);
        assert!(t.get(2).is_empty());
    }
}
