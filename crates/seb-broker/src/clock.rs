//! Wall-clock time for the broker (the core takes time as an argument).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix milliseconds, or `None` when the clock cannot be trusted.
    fn now_ms(&self) -> Option<u64>;
}

/// The system clock, refusing to be trusted when it jumps backwards by more than a second
/// (a sign of tampering or a badly stepped clock) until it catches up again.
#[derive(Debug, Default)]
pub struct SystemClock {
    high_water: AtomicU64,
}

/// How far backwards the clock may step before it is distrusted.
const MAX_BACKSTEP_MS: u64 = 1_000;

impl SystemClock {
    /// The rule, for a reading `now`: trusted unless it is more than [`MAX_BACKSTEP_MS`]
    /// behind the highest reading so far.
    fn guard(&self, now: u64) -> Option<u64> {
        let prev = self.high_water.fetch_max(now, Ordering::Relaxed);
        if now.saturating_add(MAX_BACKSTEP_MS) < prev { None } else { Some(now) }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> Option<u64> {
        let now =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        self.guard(now)
    }
}

/// A settable clock for tests.
#[derive(Debug)]
pub struct ManualClock(pub AtomicU64);

impl ManualClock {
    /// Start at `ms`.
    pub fn new(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }
    /// Set the time.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backward_step_beyond_a_second_is_distrusted_until_the_clock_catches_up() {
        let c = SystemClock::default();
        assert_eq!(c.guard(10_000), Some(10_000));
        assert_eq!(c.guard(9_500), Some(9_500), "small steps back (NTP slew) are tolerated");
        assert_eq!(c.guard(8_999), None, "more than 1 s behind the highest reading");
        assert_eq!(c.guard(5_000), None);
        assert_eq!(c.guard(9_000), Some(9_000), "within a second of the high-water mark again");
        assert_eq!(c.guard(20_000), Some(20_000));
        assert_eq!(c.guard(10_000), None, "the high-water mark moved forward");
    }

    #[test]
    fn the_system_clock_reads_now() {
        let c = SystemClock::default();
        let a = c.now_ms().expect("trusted");
        let b = c.now_ms().expect("trusted");
        assert!(b >= a && a > 1_700_000_000_000);
    }
}
