//! The YCSB core workloads: which operation comes next and which key it touches.
//!
//! A workload is a mix of operations (read, update, insert, read-modify-write) and a key
//! distribution, as in YCSB's `workloads/workload[a-f]`:
//!
//! | workload | mix | keys |
//! |---|---|---|
//! | A | 50% read, 50% update | zipfian |
//! | B | 95% read, 5% update | zipfian |
//! | C | 100% read | zipfian |
//! | D | 95% read, 5% insert | latest |
//! | F | 50% read, 50% read-modify-write | zipfian |
//!
//! Workload E (short range scans) is refused: Tessera places keys by hash on a ring, so there
//! is no key order to scan, and faking a scan with many point reads would measure something
//! else.
//!
//! Records are numbered `0..records`; inserts (workload D) take the next numbers from a shared
//! counter. Key `n` is a prefix (`user` by default) followed by `n` in 12 digits. Zipfian picks a popularity
//! rank with exponent 0.99 (YCSB's constant) and scrambles it with a hash, so popular keys are
//! spread over the key space (YCSB's `ScrambledZipfianGenerator`); latest favours the most
//! recently acknowledged inserts (YCSB's `SkewedLatestGenerator`).

use std::io::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Zipf};

/// YCSB's zipfian constant.
pub const ZIPFIAN_EXPONENT: f64 = 0.99;

/// A YCSB core workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadName {
    /// Update heavy: 50% read, 50% update.
    A,
    /// Read mostly: 95% read, 5% update.
    B,
    /// Read only.
    C,
    /// Read latest: 95% read, 5% insert.
    D,
    /// Read-modify-write: 50% read, 50% read-modify-write.
    F,
}

impl FromStr for WorkloadName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "A" => Ok(Self::A),
            "B" => Ok(Self::B),
            "C" => Ok(Self::C),
            "D" => Ok(Self::D),
            "F" => Ok(Self::F),
            "E" => Err(
                "workload E needs short range scans, which a Dynamo-style store does not \
                 offer: Tessera places keys by their hash, so there is no key order to scan. \
                 Use A, B, C, D or F"
                    .into(),
            ),
            _ => Err(format!("unknown workload {s:?}; use A, B, C, D or F")),
        }
    }
}

impl WorkloadName {
    /// The operation mix.
    pub fn mix(self) -> Mix {
        let m = |read, update, insert, rmw| Mix {
            read,
            update,
            insert,
            rmw,
        };
        match self {
            Self::A => m(0.5, 0.5, 0.0, 0.0),
            Self::B => m(0.95, 0.05, 0.0, 0.0),
            Self::C => m(1.0, 0.0, 0.0, 0.0),
            Self::D => m(0.95, 0.0, 0.05, 0.0),
            Self::F => m(0.5, 0.0, 0.0, 0.5),
        }
    }

    /// The key distribution YCSB uses for this workload.
    pub fn distribution(self) -> KeyDistribution {
        match self {
            Self::D => KeyDistribution::Latest,
            _ => KeyDistribution::Zipfian,
        }
    }

    /// The workload's letter.
    pub fn letter(self) -> char {
        match self {
            Self::A => 'A',
            Self::B => 'B',
            Self::C => 'C',
            Self::D => 'D',
            Self::F => 'F',
        }
    }
}

/// Proportions of each operation; they sum to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Reads.
    pub read: f64,
    /// Updates of existing records.
    pub update: f64,
    /// Inserts of new records.
    pub insert: f64,
    /// Read-modify-writes of existing records.
    pub rmw: f64,
}

/// How keys are picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyDistribution {
    /// Every record equally likely.
    Uniform,
    /// A few records hot (exponent 0.99), spread over the key space.
    Zipfian,
    /// The most recently inserted records hot.
    Latest,
}

/// An operation the workload asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read a record.
    Read,
    /// Overwrite a record.
    Update,
    /// Write a new record.
    Insert,
    /// Read a record, then write it.
    ReadModifyWrite,
}

/// What every connection shares: the record counts.
#[derive(Debug)]
pub struct Records {
    next_insert: AtomicU64,
    /// One past the highest record known acknowledged (inserts may complete out of order, so
    /// records below it may still be in flight; a read of one is a miss, not an error).
    acked_end: AtomicU64,
    limit: u64,
}

impl Records {
    /// `loaded` records exist before the run; inserts stop at `limit` records in all.
    pub fn new(loaded: u64, limit: u64) -> Self {
        Self {
            next_insert: AtomicU64::new(loaded),
            acked_end: AtomicU64::new(loaded),
            limit: limit.max(loaded),
        }
    }

    /// A number for a new record, or `None` once `limit` records exist.
    fn take_insert(&self) -> Option<u64> {
        let n = self.next_insert.fetch_add(1, Ordering::Relaxed);
        (n < self.limit).then_some(n)
    }

    /// Records that an insert of record `n` was acknowledged.
    pub fn insert_acked(&self, n: u64) {
        self.acked_end.fetch_max(n + 1, Ordering::Relaxed);
    }

    fn acked_end(&self) -> u64 {
        self.acked_end.load(Ordering::Relaxed)
    }
}

/// One connection's source of operations.
#[derive(Debug)]
pub struct Chooser {
    rng: StdRng,
    mix: Mix,
    distribution: KeyDistribution,
    /// Zipf over `1..=zipf_n`, rebuilt when `zipf_n` changes (latest) — construction is O(1).
    zipf: Option<(u64, Zipf<f64>)>,
}

impl Chooser {
    /// A chooser with its own seed.
    pub fn new(mix: Mix, distribution: KeyDistribution, seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            mix,
            distribution,
            zipf: None,
        }
    }

    /// The next operation and its record number. An insert past the record limit becomes a
    /// read, so a run never grows beyond what its ledger was sized for.
    pub fn next(&mut self, records: &Records) -> (Action, u64) {
        let action = self.action();
        if action == Action::Insert {
            if let Some(n) = records.take_insert() {
                return (Action::Insert, n);
            }
            return (Action::Read, self.existing(records));
        }
        (action, self.existing(records))
    }

    fn action(&mut self) -> Action {
        let x: f64 = self.rng.gen();
        let Mix {
            read, update, rmw, ..
        } = self.mix;
        if x < read {
            Action::Read
        } else if x < read + update {
            Action::Update
        } else if x < read + update + rmw {
            Action::ReadModifyWrite
        } else {
            Action::Insert
        }
    }

    /// A record that exists (loaded or acknowledged insert), by the distribution.
    fn existing(&mut self, records: &Records) -> u64 {
        let n = records.acked_end().max(1);
        match self.distribution {
            KeyDistribution::Uniform => self.rng.gen_range(0..n),
            KeyDistribution::Zipfian => scramble(self.zipf_rank(n), n),
            KeyDistribution::Latest => n - 1 - self.zipf_rank(n),
        }
    }

    /// A popularity rank in `0..n`, 0 the most popular.
    fn zipf_rank(&mut self, n: u64) -> u64 {
        let zipf = match &self.zipf {
            Some((m, z)) if *m == n => z,
            _ => {
                // n ≥ 1 and the exponent is positive, the only two conditions Zipf::new checks.
                let z = Zipf::new(n, ZIPFIAN_EXPONENT).unwrap_or_else(|_| unreachable!());
                &self.zipf.insert((n, z)).1
            }
        };
        // Samples lie in [1, n]; the float-to-int cast saturates.
        (zipf.sample(&mut self.rng) as u64).clamp(1, n) - 1
    }
}

/// Spreads popularity ranks over the key space (FNV-1a of the rank, as YCSB does).
fn scramble(rank: u64, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rank.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % n
}

/// Writes record `n`'s key, `prefix` then `n` in 12 digits, into `out` (cleared first).
pub fn key_of(prefix: &str, n: u64, out: &mut Vec<u8>) {
    out.clear();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{prefix}{n:012}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(w: WorkloadName, dist: KeyDistribution, draws: usize) -> ([usize; 4], Vec<u64>) {
        let records = Records::new(1000, 2000);
        let mut c = Chooser::new(w.mix(), dist, 7);
        let mut by_action = [0usize; 4];
        let mut keys = Vec::new();
        for _ in 0..draws {
            let (a, n) = c.next(&records);
            by_action[a as usize] += 1;
            if a == Action::Insert {
                records.insert_acked(n);
            }
            keys.push(n);
        }
        (by_action, keys)
    }

    #[test]
    fn mixes_follow_the_ycsb_proportions() {
        let (a, _) = counts(WorkloadName::A, KeyDistribution::Uniform, 20_000);
        assert!(
            (9_000..11_000).contains(&a[0]) && a[0] + a[1] == 20_000,
            "{a:?}"
        );
        let (c, _) = counts(WorkloadName::C, KeyDistribution::Uniform, 1_000);
        assert_eq!(c, [1_000, 0, 0, 0]);
        let (d, keys) = counts(WorkloadName::D, KeyDistribution::Latest, 10_000);
        assert!((400..600).contains(&d[2]), "inserts {d:?}");
        assert!(keys.iter().all(|&k| k < 1000 + d[2] as u64));
        let (f, _) = counts(WorkloadName::F, KeyDistribution::Zipfian, 10_000);
        assert!((4_500..5_500).contains(&f[3]), "rmw {f:?}");
    }

    #[test]
    fn zipfian_is_skewed_and_spread_uniform_is_not_skewed() {
        let hot = |keys: &[u64]| {
            let mut freq = std::collections::HashMap::<u64, usize>::new();
            for k in keys {
                *freq.entry(*k).or_default() += 1;
            }
            *freq.values().max().unwrap_or(&0)
        };
        let (_, z) = counts(WorkloadName::C, KeyDistribution::Zipfian, 20_000);
        let (_, u) = counts(WorkloadName::C, KeyDistribution::Uniform, 20_000);
        assert!(
            hot(&z) > 10 * hot(&u),
            "zipf {} uniform {}",
            hot(&z),
            hot(&u)
        );
        // The hottest zipfian key is not simply record 0: ranks are scrambled.
        assert!(z.iter().all(|&k| k < 1000));
    }

    #[test]
    fn latest_favours_recent_inserts() {
        let records = Records::new(1000, 1000);
        let mut c = Chooser::new(WorkloadName::D.mix(), KeyDistribution::Latest, 1);
        let recent = (0..5_000)
            .map(|_| c.next(&records).1)
            .filter(|&k| k >= 900)
            .count();
        assert!(recent > 2_500, "{recent}");
    }

    #[test]
    fn inserts_stop_at_the_limit_and_become_reads() {
        let records = Records::new(10, 12);
        let mut c = Chooser::new(
            Mix {
                read: 0.0,
                update: 0.0,
                insert: 1.0,
                rmw: 0.0,
            },
            KeyDistribution::Uniform,
            3,
        );
        let got: Vec<_> = (0..4).map(|_| c.next(&records)).collect();
        assert_eq!(got[0], (Action::Insert, 10));
        assert_eq!(got[1], (Action::Insert, 11));
        assert_eq!(got[2].0, Action::Read);
    }

    #[test]
    fn keys_round_trip_and_e_is_refused() {
        let mut k = Vec::new();
        key_of("user", 42, &mut k);
        assert_eq!(k, b"user000000000042");
        let e = "e".parse::<WorkloadName>().unwrap_err();
        assert!(e.contains("range scans"), "{e}");
        assert_eq!("f".parse::<WorkloadName>(), Ok(WorkloadName::F));
    }
}
