//! [`IoBudget`]: a token bucket that paces compaction I/O so foreground requests keep the disk.
//!
//! Pure: the caller passes the time in and does the sleeping. Tokens are bytes, kept scaled
//! by 10^9 (byte-nanoseconds) so refilling at `rate` bytes per second over any number of
//! nanoseconds is exact, with no rounding drift over a long compaction.
//!
//! Invariants:
//! - Tokens never exceed `burst_bytes`; over any interval the bytes granted are at most
//!   `burst_bytes + rate * elapsed` (plus the one request that may overdraw, below).
//! - A request larger than the burst is granted once the bucket is full and leaves a debt, so
//!   large blocks are never starved and the long-run rate still holds.

use std::time::{Duration, Instant};

use super::CompactionError;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Token bucket of bytes, refilled at `rate_bytes_per_sec` up to `burst_bytes`.
#[derive(Clone, Debug)]
pub struct IoBudget {
    rate_bytes_per_sec: u64,
    burst_bytes: u64,
    /// Bytes times 10^9; negative is a debt left by a request over the burst.
    tokens_scaled: i128,
    /// When `tokens_scaled` was last brought up to date.
    updated: Instant,
}

impl IoBudget {
    /// A full bucket at `now`. Errors if the rate or burst is zero (nothing could ever run).
    pub fn new(
        rate_bytes_per_sec: u64,
        burst_bytes: u64,
        now: Instant,
    ) -> Result<IoBudget, CompactionError> {
        if rate_bytes_per_sec == 0 || burst_bytes == 0 {
            return Err(CompactionError::InvalidPolicy(
                "I/O budget rate and burst must be positive",
            ));
        }
        Ok(IoBudget {
            rate_bytes_per_sec,
            burst_bytes,
            tokens_scaled: i128::from(burst_bytes) * NANOS_PER_SEC,
            updated: now,
        })
    }

    /// Asks for `bytes` at `now`. `None`: granted, issue the I/O. `Some(wait)`: nothing was
    /// taken; sleep `wait` and ask again (the grant is then certain unless the rate changed).
    pub fn take(&mut self, bytes: u64, now: Instant) -> Option<Duration> {
        self.refill(now);
        let need = i128::from(bytes.min(self.burst_bytes)) * NANOS_PER_SEC;
        if self.tokens_scaled >= need {
            self.tokens_scaled -= i128::from(bytes) * NANOS_PER_SEC;
            return None;
        }
        let missing = need - self.tokens_scaled;
        let rate = i128::from(self.rate_bytes_per_sec);
        // Round up, so waking after `wait` always finds enough tokens.
        let wait_nanos = (missing + rate - 1) / rate;
        Some(duration_from_nanos(wait_nanos))
    }

    /// Changes the rate from `now` on (e.g. lower while foreground latency is high); tokens
    /// earned so far at the old rate are kept.
    pub fn set_rate(&mut self, rate_bytes_per_sec: u64, now: Instant) {
        self.refill(now);
        self.rate_bytes_per_sec = rate_bytes_per_sec.max(1);
    }

    /// Whole bytes available at `now` (0 while in debt).
    pub fn available_bytes(&mut self, now: Instant) -> u64 {
        self.refill(now);
        u64::try_from(self.tokens_scaled.max(0) / NANOS_PER_SEC).unwrap_or(u64::MAX)
    }

    /// Adds the tokens earned since `updated`, capped at the burst. A `now` before `updated`
    /// (a caller's clock going back) earns nothing rather than panicking.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        let earned = i128::try_from(elapsed.as_nanos())
            .unwrap_or(i128::MAX)
            .saturating_mul(i128::from(self.rate_bytes_per_sec));
        let cap = i128::from(self.burst_bytes) * NANOS_PER_SEC;
        self.tokens_scaled = self.tokens_scaled.saturating_add(earned).min(cap);
        self.updated = self.updated.max(now);
    }
}

fn duration_from_nanos(nanos: i128) -> Duration {
    let nanos = u128::try_from(nanos.max(0)).unwrap_or(0);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits a u32.
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}
