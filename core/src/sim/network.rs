//! The simulated network: delays, drops, duplicates, reordering and partitions.
//!
//! Every message gets an independent delay in `delay_min..=delay_max` ticks, so messages
//! between the same two nodes overtake each other (reordering). A partition blocks chosen
//! directions between chosen nodes (a one-way partition blocks only one direction). Drops and
//! duplicates are per message, in parts per thousand.

use std::collections::BTreeSet;

use rand_core::RngCore;

/// How the network misbehaves while faults are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetFaults {
    /// Messages dropped, per thousand.
    pub drop_per_mille: u32,
    /// Messages delivered twice, per thousand.
    pub duplicate_per_mille: u32,
    /// Shortest delay, ticks.
    pub delay_min_ticks: u64,
    /// Longest delay, ticks.
    pub delay_max_ticks: u64,
}

impl NetFaults {
    /// A network that only delays (1 to 5 ticks): how the checking phases run.
    pub const CALM: NetFaults = NetFaults {
        drop_per_mille: 0,
        duplicate_per_mille: 0,
        delay_min_ticks: 1,
        delay_max_ticks: 5,
    };
}

/// The network between `nodes` nodes.
#[derive(Clone, Debug)]
pub struct Network {
    faults: NetFaults,
    /// Blocked directions `(from, to)`.
    blocked: BTreeSet<(usize, usize)>,
}

impl Network {
    /// A network with `faults` and no partition.
    pub fn new(faults: NetFaults) -> Network {
        Network {
            faults,
            blocked: BTreeSet::new(),
        }
    }

    /// Sets how the network misbehaves.
    pub fn set_faults(&mut self, faults: NetFaults) {
        self.faults = faults;
    }

    /// The delays of the copies of one message from `from` to `to`: none if it is dropped or
    /// blocked, two if it is duplicated.
    pub fn route(&self, from: usize, to: usize, rng: &mut impl RngCore) -> Vec<u64> {
        if self.blocked.contains(&(from, to)) || per_mille(rng, self.faults.drop_per_mille) {
            return Vec::new();
        }
        let mut delays = vec![self.delay(rng)];
        if per_mille(rng, self.faults.duplicate_per_mille) {
            delays.push(self.delay(rng));
        }
        delays
    }

    /// Blocks every direction between `side` and the rest of `0..nodes`; with `one_way`, only
    /// from `side` to the rest.
    pub fn partition(&mut self, side: &[usize], nodes: usize, one_way: bool) {
        for a in side.iter().copied() {
            for b in (0..nodes).filter(|b| !side.contains(b)) {
                self.blocked.insert((a, b));
                if !one_way {
                    self.blocked.insert((b, a));
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Whether any partition is in place.
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    fn delay(&self, rng: &mut impl RngCore) -> u64 {
        let span = self
            .faults
            .delay_max_ticks
            .saturating_sub(self.faults.delay_min_ticks)
            + 1;
        self.faults.delay_min_ticks + rng.next_u64() % span
    }
}

/// True with probability `per_mille / 1000`.
pub fn per_mille(rng: &mut impl RngCore, per_mille: u32) -> bool {
    rng.next_u32() % 1000 < per_mille
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn partitions_block_the_chosen_directions_and_heal() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut net = Network::new(NetFaults::CALM);
        net.partition(&[0], 3, true);
        assert!(net.route(0, 1, &mut rng).is_empty());
        assert_eq!(net.route(1, 0, &mut rng).len(), 1, "one way only");
        net.partition(&[2], 3, false);
        assert!(net.route(1, 2, &mut rng).is_empty());
        assert!(net.route(2, 1, &mut rng).is_empty());
        net.heal();
        assert!(!net.is_partitioned());
        for _ in 0..100 {
            let d = net.route(0, 1, &mut rng);
            assert_eq!(d.len(), 1);
            assert!((1..=5).contains(&d[0]));
        }
    }

    #[test]
    fn drops_and_duplicates_happen_at_about_their_rates() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let net = Network::new(NetFaults {
            drop_per_mille: 100,
            duplicate_per_mille: 100,
            ..NetFaults::CALM
        });
        let copies: Vec<usize> = (0..10_000)
            .map(|_| net.route(0, 1, &mut rng).len())
            .collect();
        let dropped = copies.iter().filter(|&&c| c == 0).count();
        let doubled = copies.iter().filter(|&&c| c == 2).count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        assert!((700..1100).contains(&doubled), "{doubled}");
    }
}
