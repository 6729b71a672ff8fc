//! Time as an input.
//!
//! `core/` never reads a clock. Every state machine is handed `now` by its driver: the shard
//! runtime passes a monotonic millisecond count, the simulator its virtual clock. A [`Tick`] is
//! one millisecond of that count; every timeout and interval in `core/` is a number of ticks
//! (`*_ticks`), so the same protocol runs at wall speed in production and thousands of times
//! faster in simulation.
//!
//! Invariant the drivers keep: `now` never goes backwards for one state machine. Wall-clock
//! time (for last-write-wins timestamps) is a separate input and *may* jump; see
//! [`crate::node`].

use std::fmt;
use std::ops::{Add, Sub};

/// A point on a driver's monotonic clock, in milliseconds from an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tick(pub u64);

impl Tick {
    /// Ticks elapsed since `earlier`, 0 if `earlier` is later (never negative).
    pub fn since(self, earlier: Tick) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<u64> for Tick {
    type Output = Tick;
    fn add(self, ticks: u64) -> Tick {
        Tick(self.0.saturating_add(ticks))
    }
}

impl Sub<Tick> for Tick {
    type Output = u64;
    fn sub(self, earlier: Tick) -> u64 {
        self.since(earlier)
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(Tick(5) + 3, Tick(8));
        assert_eq!(Tick(u64::MAX) + 1, Tick(u64::MAX));
        assert_eq!(Tick(9) - Tick(4), 5);
        assert_eq!(Tick(4) - Tick(9), 0);
        assert_eq!(Tick(7).to_string(), "t7");
    }
}
