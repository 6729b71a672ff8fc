//! Correctness while measuring: every value the runner writes says which record and which
//! write it is, a ledger remembers which writes were acknowledged, and after the run every
//! record is read back and judged.
//!
//! Value layout (little endian): record number `u64`, write version `u32`, the run's random
//! nonce `u32`, then filler bytes that are a function of all three, so a value can be checked
//! byte for byte without storing it, and a value left by an earlier run never passes for one
//! of this run's. Versions count the writes to one record from 1, in the order they started.
//!
//! The judge is linearizability for one register per record, made cheap: let `best` be the
//! acknowledged write that started last. A final value is legal when it is `best`, a write
//! started after `best` (never acknowledged: it may have landed late), a write acknowledged
//! after `best` started (it overlapped `best`, so either order is allowed), or a write whose
//! outcome is unknown (it failed or timed out, and may still have been applied). Anything
//! else is *wrong* (stale, corrupt, another record's or never written), and no value at all
//! where a write was acknowledged is *lost*. Events are ordered by a per-record counter taken
//! under the record's lock, so "acknowledged after started" needs no clock.
//!
//! A read that returns several values (Tessera siblings) is legal when one of them is.

use crate::striped::StripedMap;

/// Bytes of the value header: record number, version and run nonce.
pub const VALUE_HEADER_BYTES: usize = 16;

/// Locks in the ledger; records hash onto them.
const LEDGER_STRIPES: usize = 1024;

/// Writes record `n`'s value for write `version` of the run `nonce` into `out` (cleared
/// first).
///
/// `size` is at least [`VALUE_HEADER_BYTES`] (checked when the run is configured).
pub fn make_value(n: u64, version: u32, nonce: u32, size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&nonce.to_le_bytes());
    let seed = filler_seed(n, version, nonce);
    out.extend((0..size.saturating_sub(VALUE_HEADER_BYTES)).map(|i| filler_byte(seed, i)));
}

/// The record number, version and run nonce a value claims, if its filler matches them.
pub fn parse_value(v: &[u8]) -> Option<(u64, u32, u32)> {
    let n = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let version = u32::from_le_bytes(v.get(8..12)?.try_into().ok()?);
    let nonce = u32::from_le_bytes(v.get(12..16)?.try_into().ok()?);
    let seed = filler_seed(n, version, nonce);
    v[VALUE_HEADER_BYTES..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == filler_byte(seed, i))
        .then_some((n, version, nonce))
}

fn filler_seed(n: u64, version: u32, nonce: u32) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ u64::from(version).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ u64::from(nonce).rotate_left(32)
}

fn filler_byte(seed: u64, i: usize) -> u8 {
    // Printable, so values stay readable in redis-cli; varies with position and seed.
    let x = seed.rotate_left((i % 64) as u32) ^ (i as u64).wrapping_mul(0x2545_f491);
    b'!' + (x % 94) as u8
}

/// What the judge says of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The value is one the history allows.
    Ok,
    /// Nothing acknowledged was ever written here, and nothing was found: fine.
    Absent,
    /// A write was acknowledged but the record is gone.
    Lost,
    /// The value is not one the history allows; why.
    Wrong(String),
}

/// One record's history.
#[derive(Debug, Default)]
struct History {
    next_version: u32,
    events: u64,
    /// Started and not yet answered: version → start event.
    open: Vec<(u32, u64)>,
    /// The acknowledged write that started last: (version, start event, ack event).
    best: Option<(u32, u64, u64)>,
    /// Other acknowledged writes still legal, with their ack event (`u64::MAX`: outcome
    /// unknown, legal for ever).
    legal: Vec<(u32, u64)>,
}

impl History {
    fn begin(&mut self) -> u32 {
        self.next_version += 1;
        self.events += 1;
        self.open.push((self.next_version, self.events));
        self.next_version
    }

    fn take_open(&mut self, version: u32) -> u64 {
        match self.open.iter().position(|&(v, _)| v == version) {
            Some(i) => self.open.swap_remove(i).1,
            None => 0,
        }
    }

    fn acked(&mut self, version: u32) {
        self.events += 1;
        let started = self.take_open(version);
        let ack = self.events;
        match self.best {
            // `best` was acknowledged, so it started before this ack: the two overlapped.
            Some((b, _, _)) if b > version => self.legal.push((version, ack)),
            previous => {
                if let Some((b, _, b_ack)) = previous {
                    self.legal.push((b, b_ack));
                }
                self.best = Some((version, started, ack));
                // Writes acknowledged before the new best started can no longer be final.
                self.legal.retain(|&(_, acked_at)| acked_at > started);
            }
        }
    }

    fn unknown(&mut self, version: u32) {
        self.events += 1;
        self.take_open(version);
        self.legal.push((version, u64::MAX));
    }

    fn judge_version(&self, version: u32) -> bool {
        match self.best {
            // Nothing acknowledged: any write this run started may have landed.
            None => (1..=self.next_version).contains(&version),
            Some((b, _, _)) => {
                version == b
                    || (version > b && version <= self.next_version)
                    || self.legal.iter().any(|&(v, _)| v == version)
            }
        }
    }
}

/// Every record's write history, shared by all connections.
#[derive(Debug)]
pub struct Ledger {
    histories: StripedMap<History>,
    nonce: u32,
    value_size: usize,
}

impl Ledger {
    /// An empty ledger for a run writing `value_size`-byte values marked with `nonce`.
    pub fn new(nonce: u32, value_size: usize) -> Self {
        Self {
            histories: StripedMap::new(LEDGER_STRIPES),
            nonce,
            value_size,
        }
    }

    /// The run's nonce, written into every value.
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    fn with<T>(&self, n: u64, f: impl FnOnce(&mut History) -> T) -> T {
        self.histories.with(n, f)
    }

    /// A write of record `n` is about to be sent; returns its version.
    pub fn begin(&self, n: u64) -> u32 {
        self.with(n, History::begin)
    }

    /// The write was acknowledged.
    pub fn acked(&self, n: u64, version: u32) {
        self.with(n, |h| h.acked(version));
    }

    /// The write failed or got no answer: it may or may not have been applied.
    pub fn unknown(&self, n: u64, version: u32) {
        self.with(n, |h| h.unknown(version));
    }

    /// Records with at least one write started, sorted.
    pub fn records(&self) -> Vec<u64> {
        self.histories.keys()
    }

    /// Judges what a final read of record `n` returned (no values: not found).
    pub fn judge(&self, n: u64, values: &[Vec<u8>]) -> Verdict {
        self.with(n, |h| {
            if values.is_empty() {
                return if h.best.is_some() {
                    Verdict::Lost
                } else {
                    Verdict::Absent
                };
            }
            let mut why = String::new();
            for v in values {
                match parse_value(v) {
                    _ if v.len() != self.value_size => {
                        why = format!(
                            "holds {} bytes, not the {} written",
                            v.len(),
                            self.value_size
                        );
                    }
                    Some((_, _, nonce)) if nonce != self.nonce => {
                        why = "holds a value from another run".into();
                    }
                    Some((m, _, _)) if m != n => why = format!("holds record {m}'s value"),
                    Some((_, version, _)) if h.judge_version(version) => return Verdict::Ok,
                    Some((_, version, _)) => {
                        why = format!(
                            "holds write {version}, older than acknowledged write {}",
                            h.best.map_or(0, |b| b.0)
                        );
                    }
                    None => why = format!("holds {} bytes the runner never wrote", v.len()),
                }
            }
            Verdict::Wrong(why)
        })
    }
}

/// Verdicts of a final read-back: counts, and the first few problems as examples.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyTally {
    /// Records read back.
    pub checked: u64,
    /// Records whose value the history allows.
    pub ok: u64,
    /// Records never acknowledged and not found (fine).
    pub absent: u64,
    /// Records acknowledged and not found.
    pub lost: u64,
    /// Records holding a value the history does not allow (or whose read failed).
    pub wrong: u64,
    /// Records never read back (every session of the check failed first).
    pub unchecked: u64,
    /// Up to [`VERIFY_EXAMPLES_MAX`] problems, as `record N: what`.
    pub examples: Vec<String>,
}

/// Problems kept as examples in a [`VerifyTally`].
pub const VERIFY_EXAMPLES_MAX: usize = 10;

impl VerifyTally {
    /// Counts the verdict on record `n`.
    pub fn count(&mut self, n: u64, verdict: Verdict) {
        self.checked += 1;
        let example = match verdict {
            Verdict::Ok => {
                self.ok += 1;
                None
            }
            Verdict::Absent => {
                self.absent += 1;
                None
            }
            Verdict::Lost => {
                self.lost += 1;
                Some(format!("record {n}: acknowledged write lost"))
            }
            Verdict::Wrong(why) => {
                self.wrong += 1;
                Some(format!("record {n}: {why}"))
            }
        };
        if let Some(e) = example {
            if self.examples.len() < VERIFY_EXAMPLES_MAX {
                self.examples.push(e);
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &VerifyTally) {
        self.checked += other.checked;
        self.ok += other.ok;
        self.absent += other.absent;
        self.lost += other.lost;
        self.wrong += other.wrong;
        self.unchecked += other.unchecked;
        let room = VERIFY_EXAMPLES_MAX.saturating_sub(self.examples.len());
        self.examples
            .extend(other.examples.iter().take(room).cloned());
    }

    /// Whether every record read back is allowed.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.wrong == 0 && self.unchecked == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: u32 = 77;

    fn value(n: u64, v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        make_value(n, v, NONCE, 100, &mut out);
        out
    }

    #[test]
    fn values_round_trip_and_corruption_is_caught() {
        let v = value(7, 3);
        assert_eq!(v.len(), 100);
        assert_eq!(parse_value(&v), Some((7, 3, NONCE)));
        let mut bad = v.clone();
        bad[50] ^= 1;
        assert_eq!(parse_value(&bad), None);
        assert_eq!(parse_value(&v[..5]), None);
        let mut header_only = Vec::new();
        make_value(1, 1, NONCE, VALUE_HEADER_BYTES, &mut header_only);
        assert_eq!(parse_value(&header_only), Some((1, 1, NONCE)));
        // Truncated and other-run values are refused by the judge.
        let l = Ledger::new(NONCE, 100);
        let w = l.begin(7);
        l.acked(7, w);
        assert!(matches!(
            l.judge(7, &[value(7, w)[..60].to_vec()]),
            Verdict::Wrong(_)
        ));
        let mut other_run = Vec::new();
        make_value(7, w, NONCE + 1, 100, &mut other_run);
        assert!(matches!(l.judge(7, &[other_run]), Verdict::Wrong(_)));
        assert_eq!(l.judge(7, &[value(7, w)]), Verdict::Ok);
    }

    #[test]
    fn sequential_writes_allow_only_the_last() {
        let l = Ledger::new(NONCE, 100);
        let v1 = l.begin(5);
        l.acked(5, v1);
        let v2 = l.begin(5);
        l.acked(5, v2);
        assert_eq!(l.judge(5, &[value(5, v2)]), Verdict::Ok);
        assert!(matches!(l.judge(5, &[value(5, v1)]), Verdict::Wrong(_)));
        assert_eq!(l.judge(5, &[]), Verdict::Lost);
        assert!(matches!(l.judge(5, &[value(6, v2)]), Verdict::Wrong(_)));
        assert_eq!(l.judge(9, &[]), Verdict::Absent);
        // Siblings: legal when one of them is.
        assert_eq!(l.judge(5, &[value(5, v1), value(5, v2)]), Verdict::Ok);
    }

    #[test]
    fn overlapping_writes_allow_either_order() {
        let l = Ledger::new(NONCE, 100);
        let a = l.begin(1);
        let b = l.begin(1);
        l.acked(1, b);
        l.acked(1, a); // acked after b started: concurrent with b
        assert_eq!(l.judge(1, &[value(1, a)]), Verdict::Ok);
        assert_eq!(l.judge(1, &[value(1, b)]), Verdict::Ok);
        // A later write, started after both were acknowledged, supersedes both.
        let c = l.begin(1);
        l.acked(1, c);
        assert!(matches!(l.judge(1, &[value(1, a)]), Verdict::Wrong(_)));
        assert!(matches!(l.judge(1, &[value(1, b)]), Verdict::Wrong(_)));
        assert_eq!(l.judge(1, &[value(1, c)]), Verdict::Ok);
    }

    #[test]
    fn unknown_outcomes_and_unacknowledged_later_writes_are_legal() {
        let l = Ledger::new(NONCE, 100);
        let a = l.begin(2);
        let b = l.begin(2);
        l.unknown(2, a);
        l.acked(2, b);
        let c = l.begin(2);
        l.unknown(2, c);
        assert_eq!(l.judge(2, &[value(2, a)]), Verdict::Ok);
        assert_eq!(l.judge(2, &[value(2, c)]), Verdict::Ok);
        assert!(matches!(l.judge(2, &[value(2, c + 1)]), Verdict::Wrong(_)));
        // Nothing acknowledged: only versions this run started pass.
        let e = l.begin(4);
        l.unknown(4, e);
        assert_eq!(l.judge(4, &[value(4, e)]), Verdict::Ok);
        assert!(matches!(l.judge(4, &[value(4, e + 1)]), Verdict::Wrong(_)));
        // Only failed writes: nothing found is not a loss.
        let d = l.begin(3);
        l.unknown(3, d);
        assert_eq!(l.judge(3, &[]), Verdict::Absent);
        assert_eq!(l.records(), vec![2, 3, 4]);
    }
}
