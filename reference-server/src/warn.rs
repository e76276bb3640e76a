//! Warnings that repeat (a frame dropped, a cache overflowing) are logged at
//! most once per period, with the number of times they were held back; the
//! events themselves are counted in `/metrics` by their callers.

use std::time::{Duration, Instant};

/// How often one repeated warning may be logged.
pub const PERIOD: Duration = Duration::from_secs(5);

/// One repeated warning's state. Time is an input, so it is tested without sleeping.
#[derive(Debug, Default)]
pub struct RateLimited {
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimited {
    /// Whether the warning may be logged at `now`: `Some(n)` with the number
    /// of occurrences held back since it was last logged, or `None` while
    /// it is held back (and counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < PERIOD => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_period_with_the_count_held_back() {
        let start = Instant::now();
        let mut warning = RateLimited::default();
        assert_eq!(warning.allow(start), Some(0));
        for ms in [1, 100, 4_999] {
            assert_eq!(warning.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(warning.allow(start + PERIOD), Some(3));
        assert_eq!(warning.allow(start + PERIOD + Duration::from_millis(1)), None);
        assert_eq!(warning.allow(start + PERIOD * 3), Some(1));
    }
}
