//! Capped, jittered exponential backoff (2 s doubling to 80 s), shared by the IMAP reconnects and the daemon's
//! failed passes. Pure.
use std::time::Duration;

/// First delay after a failure.
pub const FIRST: Duration = Duration::from_secs(2);
/// Longest delay between attempts.
pub const CAP: Duration = Duration::from_secs(80);

/// Counts consecutive failures; reset after a connection that worked.
#[derive(Debug)]
pub struct Backoff {
    failures: u32,
    rng: fastrand::Rng,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { failures: 0, rng: fastrand::Rng::new() }
    }
}

impl Backoff {
    /// A backoff whose jitter is reproducible (for tests).
    pub fn with_seed(seed: u64) -> Self {
        Self { failures: 0, rng: fastrand::Rng::with_seed(seed) }
    }

    /// The delay before the next attempt: FIRST * 2^failures, plus up to a quarter of jitter (so that many
    /// clients cut off together do not come back together), never above CAP.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let base = FIRST.saturating_mul(1 << exponent).min(CAP);
        let jitter_ms = self.rng.u64(0..=duration_ms(base) / 4);
        (base + Duration::from_millis(jitter_ms)).min(CAP)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_at_two_seconds_double_and_stop_at_eighty() {
        let mut backoff = Backoff::with_seed(7);
        let delays: Vec<_> = (0..10).map(|_| backoff.next_delay()).collect();
        let first = delays.first().copied().unwrap();
        assert!((FIRST..=FIRST.mul_f32(1.25)).contains(&first), "{first:?}");
        for pair in delays.windows(2) {
            assert!(pair[1] >= pair[0], "{delays:?}");
        }
        assert!(delays.iter().all(|d| *d <= CAP), "{delays:?}");
        assert_eq!(delays.last().copied().unwrap(), CAP);
    }

    #[test]
    fn jitter_spreads_clients_that_fail_together() {
        let third = |seed| {
            let mut backoff = Backoff::with_seed(seed);
            backoff.next_delay();
            backoff.next_delay();
            backoff.next_delay()
        };
        let distinct: std::collections::BTreeSet<_> = (0..20).map(third).collect();
        assert!(distinct.len() > 10, "{distinct:?}");
        assert!(distinct.iter().all(|d| (Duration::from_secs(8)..=Duration::from_secs(10)).contains(d)));
    }

    #[test]
    fn reset_starts_again_from_two_seconds() {
        let mut backoff = Backoff::with_seed(1);
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST.mul_f32(1.25));
    }
}
