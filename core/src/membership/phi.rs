//! The phi-accrual failure detector (Hayashibara et al. 2004, as in Akka and Cassandra).
//!
//! Instead of a yes/no timeout, the detector keeps a sliding window of heartbeat inter-arrival
//! times and reports `phi = -log10(P(the next heartbeat is still to come | silence so far))`
//! under a normal model of those times. Phi 1 means a 10% chance the node is merely late, phi 8
//! one in 10^8. The caller picks the threshold.
//!
//! Two allowances keep a quiet but healthy node from being suspected: the standard deviation
//! never drops below `min_std_dev_ticks` (perfectly regular heartbeats would otherwise make the
//! first late one look fatal), and `acceptable_pause_ticks` is added to the mean (a paused
//! process, or gossip taking a few rounds to carry the heartbeat here).
//!
//! Invariants: the window holds between 2 and `window_samples` samples (it is seeded with two
//! samples around `first_interval_estimate_ticks`, as Akka does, so phi is defined from the
//! first heartbeat on); `sum` and `sum_squares` are the exact sums of the window, kept in
//! `u128` so they never drift; every sample is at most `interval_ticks_max`.

use std::collections::VecDeque;

use crate::constants::{
    GOSSIP_INTERVAL_TICKS_DEFAULT, PHI_ACCEPTABLE_PAUSE_TICKS_DEFAULT,
    PHI_INTERVAL_TICKS_MAX_DEFAULT, PHI_MIN_STD_DEV_TICKS_DEFAULT, PHI_WINDOW_SAMPLES_DEFAULT,
    PHI_WINDOW_SAMPLES_MAX,
};
use crate::tick::Tick;

/// Tuning of a [`PhiDetector`]. All durations in ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiConfig {
    /// Samples kept; clamped to `2..=PHI_WINDOW_SAMPLES_MAX`.
    pub window_samples: usize,
    /// Floor on the standard deviation; clamped to at least 1.
    pub min_std_dev_ticks: u64,
    /// Added to the mean interval before computing phi.
    pub acceptable_pause_ticks: u64,
    /// Expected interval before any sample exists (the gossip interval).
    pub first_interval_estimate_ticks: u64,
    /// Gaps longer than this are not recorded as samples (see the constant's doc).
    pub interval_ticks_max: u64,
}

impl Default for PhiConfig {
    fn default() -> Self {
        PhiConfig {
            window_samples: PHI_WINDOW_SAMPLES_DEFAULT,
            min_std_dev_ticks: PHI_MIN_STD_DEV_TICKS_DEFAULT,
            acceptable_pause_ticks: PHI_ACCEPTABLE_PAUSE_TICKS_DEFAULT,
            first_interval_estimate_ticks: GOSSIP_INTERVAL_TICKS_DEFAULT,
            interval_ticks_max: PHI_INTERVAL_TICKS_MAX_DEFAULT,
        }
    }
}

/// A phi-accrual failure detector for one monitored node.
#[derive(Clone, Debug)]
pub struct PhiDetector {
    config: PhiConfig,
    /// Inter-arrival samples, oldest first.
    samples: VecDeque<u64>,
    sum: u128,
    sum_squares: u128,
    last_arrival: Tick,
}

impl PhiDetector {
    /// A detector whose first heartbeat arrived at `now`. Out-of-range config values are
    /// clamped (see [`PhiConfig`]).
    pub fn new(config: PhiConfig, now: Tick) -> PhiDetector {
        let config = PhiConfig {
            window_samples: config.window_samples.clamp(2, PHI_WINDOW_SAMPLES_MAX),
            min_std_dev_ticks: config.min_std_dev_ticks.max(1),
            first_interval_estimate_ticks: config.first_interval_estimate_ticks.max(1),
            interval_ticks_max: config.interval_ticks_max.max(1),
            ..config
        };
        let mut detector = PhiDetector {
            config,
            samples: VecDeque::with_capacity(config.window_samples),
            sum: 0,
            sum_squares: 0,
            last_arrival: now,
        };
        // Seed with mean = estimate and deviation = estimate / 4 (Akka's bootstrap), so that
        // one heartbeat is enough to start judging.
        let estimate = config
            .first_interval_estimate_ticks
            .min(config.interval_ticks_max);
        let deviation = estimate / 4;
        detector.push(estimate - deviation);
        detector.push(estimate + deviation);
        detector
    }

    /// Records a heartbeat arriving at `now`. A `now` before the last arrival (the driver broke
    /// its monotonic promise) counts as a zero interval rather than wrapping.
    pub fn heartbeat(&mut self, now: Tick) {
        let interval = now.since(self.last_arrival);
        self.last_arrival = self.last_arrival.max(now);
        if interval <= self.config.interval_ticks_max {
            self.push(interval);
        }
    }

    fn push(&mut self, interval: u64) {
        if self.samples.len() >= self.config.window_samples {
            if let Some(old) = self.samples.pop_front() {
                self.sum -= u128::from(old);
                self.sum_squares -= u128::from(old) * u128::from(old);
            }
        }
        self.samples.push_back(interval);
        self.sum += u128::from(interval);
        self.sum_squares += u128::from(interval) * u128::from(interval);
    }

    /// When the last heartbeat arrived.
    pub fn last_arrival(&self) -> Tick {
        self.last_arrival
    }

    /// Number of samples in the window (including the two bootstrap samples until they age out).
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Mean inter-arrival time of the window, in ticks (without the pause allowance).
    pub fn mean_ticks(&self) -> f64 {
        let n = self.samples.len().max(1) as u128;
        self.sum as f64 / n as f64
    }

    /// Standard deviation of the window, in ticks, floored at `min_std_dev_ticks`.
    pub fn std_dev_ticks(&self) -> f64 {
        let n = self.samples.len().max(1) as u128;
        // n * Σx² - (Σx)² is exact in u128 and never negative (Cauchy-Schwarz).
        let scaled = (n * self.sum_squares).saturating_sub(self.sum * self.sum);
        let variance = scaled as f64 / (n as f64 * n as f64);
        variance.sqrt().max(self.config.min_std_dev_ticks as f64)
    }

    /// Suspicion that the node is down, given no heartbeat since the last arrival. Finite, at
    /// least 0, and non-decreasing in `now`.
    pub fn phi(&self, now: Tick) -> f64 {
        let silence = now.since(self.last_arrival) as f64;
        let mean = self.mean_ticks() + self.config.acceptable_pause_ticks as f64;
        let y = (silence - mean) / self.std_dev_ticks();
        // Logistic approximation of the normal tail used by Akka:
        // P(later) = 1 / (1 + e^z), z = y (1.5976 + 0.070566 y²), so phi = log10(1 + e^z).
        // z is strictly increasing in y, hence phi is monotonic in the silence.
        let z = y * (1.5976 + 0.070566 * y * y);
        let ln_one_plus_exp = if z > 0.0 {
            // Stable for large z: ln(1 + e^z) = z + ln(1 + e^-z); never overflows to infinity.
            z + (-z).exp().ln_1p()
        } else {
            z.exp().ln_1p()
        };
        ln_one_plus_exp / std::f64::consts::LN_10
    }

    /// Whether the node is considered up: `phi(now) < threshold`.
    pub fn is_available(&self, now: Tick, threshold: f64) -> bool {
        self.phi(now) < threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::PHI_THRESHOLD_DEFAULT;
    use proptest::prelude::*;
    use rand_core::{RngCore, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    const INTERVAL: u64 = GOSSIP_INTERVAL_TICKS_DEFAULT;

    /// A detector fed `count` heartbeats at exactly `interval`, returning it and the last time.
    fn steady(count: u64, interval: u64) -> (PhiDetector, Tick) {
        let mut d = PhiDetector::new(PhiConfig::default(), Tick(0));
        let mut now = Tick(0);
        for _ in 0..count {
            now = now + interval;
            d.heartbeat(now);
        }
        (d, now)
    }

    /// First tick after `last` at which phi reaches `threshold`, searching up to `limit`.
    fn detection_ticks(d: &PhiDetector, last: Tick, threshold: f64, limit: u64) -> Option<u64> {
        (0..=limit).find(|&t| !d.is_available(last + t, threshold))
    }

    #[test]
    fn steady_heartbeats_give_low_phi() {
        let (d, last) = steady(100, INTERVAL);
        // Right on schedule, and even a full interval late, phi stays near zero.
        assert!(d.phi(last) < 0.1, "phi at arrival {}", d.phi(last));
        assert!(d.phi(last + INTERVAL) < 0.5, "{}", d.phi(last + INTERVAL));
        assert!(
            d.phi(last + 2 * INTERVAL) < 1.0,
            "{}",
            d.phi(last + 2 * INTERVAL)
        );
        assert!(d.is_available(last + 4 * INTERVAL, PHI_THRESHOLD_DEFAULT));
    }

    #[test]
    fn phi_is_defined_from_the_first_heartbeat() {
        let d = PhiDetector::new(PhiConfig::default(), Tick(1000));
        assert!(d.is_available(Tick(1000), PHI_THRESHOLD_DEFAULT));
        assert!(!d.is_available(Tick(1000 + 60_000), PHI_THRESHOLD_DEFAULT));
        assert_eq!(d.sample_count(), 2);
    }

    #[test]
    fn phi_grows_monotonically_with_silence() {
        let (d, last) = steady(50, INTERVAL);
        let mut previous = d.phi(last);
        for t in (0..20_000).step_by(7) {
            let phi = d.phi(last + t);
            assert!(phi >= previous, "phi fell from {previous} to {phi} at +{t}");
            assert!(phi.is_finite() && phi >= 0.0);
            previous = phi;
        }
        // Past the mean it grows strictly, and far out it is huge but still finite.
        assert!(d.phi(last + 4000) > d.phi(last + 3000));
        assert!(d.phi(last + 10_000_000) > 1000.0 && d.phi(last + 10_000_000).is_finite());
        assert!(d.phi(Tick(u64::MAX)).is_finite());
    }

    #[test]
    fn crosses_default_threshold_within_bounded_time() {
        let (d, last) = steady(100, INTERVAL);
        let detected = detection_ticks(&d, last, PHI_THRESHOLD_DEFAULT, 10_000);
        // mean 250 + pause 2000 + ~5.6 sigma of 100: about 2.8 s; well under the 10 s budget,
        // and not before the acceptable pause has passed.
        let t = detected.expect("never crossed");
        assert!(t > PHI_ACCEPTABLE_PAUSE_TICKS_DEFAULT, "too eager: {t}");
        assert!(t < 3500, "too slow: {t}");
    }

    #[test]
    fn jittery_arrivals_are_tolerated() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut d = PhiDetector::new(PhiConfig::default(), Tick(0));
        let mut now = Tick(0);
        // Gossip-like arrivals: usually one interval apart, sometimes bunched, sometimes 3-4
        // intervals late. None of these gaps may look like a death.
        for i in 0..5000 {
            let gap = match rng.next_u64() % 10 {
                0 => rng.next_u64() % 50,
                1 => 3 * INTERVAL + rng.next_u64() % INTERVAL,
                _ => INTERVAL / 2 + rng.next_u64() % INTERVAL,
            };
            assert!(
                d.is_available(now + gap, PHI_THRESHOLD_DEFAULT),
                "false suspicion at arrival {i}: gap {gap}, phi {}",
                d.phi(now + gap)
            );
            now = now + gap;
            d.heartbeat(now);
        }
        assert_eq!(d.sample_count(), PHI_WINDOW_SAMPLES_DEFAULT);
        // And a real death is still caught within a few seconds.
        let t = detection_ticks(&d, now, PHI_THRESHOLD_DEFAULT, 10_000).expect("never crossed");
        assert!(t < 6000, "jitter made detection too slow: {t}");
    }

    #[test]
    fn outage_gaps_do_not_poison_the_window() {
        let (mut d, last) = steady(100, INTERVAL);
        let before = d.std_dev_ticks();
        // A node partitioned away for an hour, then back with regular heartbeats.
        let back = last + 3_600_000;
        d.heartbeat(back);
        assert!((d.std_dev_ticks() - before).abs() < 1e-9);
        let t = detection_ticks(&d, back, PHI_THRESHOLD_DEFAULT, 10_000).expect("never crossed");
        assert!(t < 3500);
    }

    #[test]
    fn window_is_bounded_and_sums_track_it() {
        let config = PhiConfig {
            window_samples: 10,
            ..PhiConfig::default()
        };
        let mut d = PhiDetector::new(config, Tick(0));
        for i in 1..=100 {
            d.heartbeat(Tick(i * 300));
        }
        assert_eq!(d.sample_count(), 10);
        assert!((d.mean_ticks() - 300.0).abs() < 1e-9);
        assert_eq!(d.std_dev_ticks(), PHI_MIN_STD_DEV_TICKS_DEFAULT as f64);
        // Absurd configs are clamped instead of breaking the math.
        let wild = PhiConfig {
            window_samples: usize::MAX,
            min_std_dev_ticks: 0,
            first_interval_estimate_ticks: 0,
            interval_ticks_max: 0,
            acceptable_pause_ticks: 0,
        };
        let d = PhiDetector::new(wild, Tick(5));
        assert!(d.phi(Tick(5)).is_finite() && d.phi(Tick(1 << 40)).is_finite());
    }

    proptest! {
        /// For any arrival history, phi is finite, non-negative and non-decreasing in silence,
        /// and the window's sums match a recomputation.
        #[test]
        fn phi_is_monotone_for_any_history(
            gaps in proptest::collection::vec(0u64..20_000, 0..300),
            probe in proptest::collection::vec(0u64..100_000, 1..20),
        ) {
            let mut d = PhiDetector::new(PhiConfig::default(), Tick(0));
            let mut now = Tick(0);
            for g in gaps {
                now = now + g;
                d.heartbeat(now);
            }
            let sum: u128 = d.samples.iter().map(|&s| u128::from(s)).sum();
            prop_assert_eq!(sum, d.sum);
            prop_assert!(d.samples.len() <= PHI_WINDOW_SAMPLES_DEFAULT);
            let mut probe = probe;
            probe.sort_unstable();
            let mut previous = 0.0;
            for t in probe {
                let phi = d.phi(now + t);
                prop_assert!(phi.is_finite() && phi >= previous);
                previous = phi;
            }
        }
    }
}
