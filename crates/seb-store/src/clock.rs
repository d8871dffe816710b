//! Wall-clock time for everything that signs: the broker's records and checkpoints and
//! admission's certificates, records and statements (the core takes time as an argument).
//!
//! One guarded clock for both roles. A reading is **trusted** unless it is more than
//! [`MAX_BACKSTEP_MS`] behind the highest reading so far (a sign of tampering or a badly
//! stepped clock), or the system time cannot be read at all. [`Clock::now_ms`] returns a
//! `Result` that callers must handle: there is no "time 0" fallback, and nothing is ever
//! signed with a time the clock did not vouch for.
//!
//! The rule for callers (ARCHITECTURE.md, "One guarded clock"):
//! - A decision taken now (admit or refuse an execution, issue a certificate, sign a
//!   statement or checkpoint) needs [`Clock::now_ms`]; without a trusted time it is not
//!   taken (the execution is refused before anything is reserved; the checkpoint or summary
//!   waits for the next tick).
//! - A record of something that already happened (an outcome after the mutation, recovery's
//!   outcome) cannot wait: it carries [`Clock::settled_ms`], the current time when trusted,
//!   else the highest trusted reading, and never earlier than the trusted time it follows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How far backwards the clock may step before it is distrusted (NTP slews far less).
pub const MAX_BACKSTEP_MS: u64 = 1_000;

/// Why the clock gave no trusted time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The reading is too far behind the highest reading so far.
    #[error(
        "clock stepped backwards: {now_ms} ms is {behind_ms} ms behind the highest reading {high_water_ms} ms (more than {MAX_BACKSTEP_MS} ms)"
    )]
    SteppedBack {
        /// The reading.
        now_ms: u64,
        /// The highest reading so far.
        high_water_ms: u64,
        /// How far behind it is.
        behind_ms: u64,
    },
    /// The system time is before the Unix epoch or out of range.
    #[error("system time is before the Unix epoch or out of range")]
    Unreadable,
}

/// A source of trusted Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix milliseconds, or why the clock cannot be trusted right now.
    fn now_ms(&self) -> Result<u64, ClockError>;

    /// The highest trusted reading so far (`None` before the first).
    fn last_trusted_ms(&self) -> Option<u64>;

    /// For a record of something that already happened after the trusted time `floor_ms`:
    /// now when trusted, else the highest trusted reading; never before `floor_ms`.
    fn settled_ms(&self, floor_ms: u64) -> u64 {
        match self.now_ms() {
            Ok(now) => now.max(floor_ms),
            Err(_) => self.last_trusted_ms().unwrap_or(floor_ms).max(floor_ms),
        }
    }
}

/// The backward-step guard shared by every clock: remembers the highest reading.
#[derive(Debug, Default)]
struct Guard {
    high_water: AtomicU64,
}

impl Guard {
    /// Trusted unless `now` is more than [`MAX_BACKSTEP_MS`] behind the highest reading.
    fn check(&self, now: u64) -> Result<u64, ClockError> {
        let prev = self.high_water.fetch_max(now, Ordering::Relaxed);
        if now.saturating_add(MAX_BACKSTEP_MS) < prev {
            Err(ClockError::SteppedBack { now_ms: now, high_water_ms: prev, behind_ms: prev - now })
        } else {
            Ok(now)
        }
    }

    fn last(&self) -> Option<u64> {
        Some(self.high_water.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }
}

/// The system clock behind the guard.
#[derive(Debug, Default)]
pub struct SystemClock {
    guard: Guard,
}

impl Clock for SystemClock {
    fn now_ms(&self) -> Result<u64, ClockError> {
        let since =
            SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| ClockError::Unreadable)?;
        let now = u64::try_from(since.as_millis()).map_err(|_| ClockError::Unreadable)?;
        if now == 0 {
            return Err(ClockError::Unreadable);
        }
        self.guard.check(now)
    }

    fn last_trusted_ms(&self) -> Option<u64> {
        self.guard.last()
    }
}

/// A settable clock for tests, behind the same guard: setting it back by more than
/// [`MAX_BACKSTEP_MS`] makes it untrusted until it catches up, exactly like the system clock.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
    guard: Guard,
}

impl ManualClock {
    /// Start at `ms`.
    pub fn new(ms: u64) -> Self {
        Self { now: AtomicU64::new(ms), guard: Guard::default() }
    }
    /// Set the time.
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::Relaxed);
    }
    /// Move the time forward.
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Result<u64, ClockError> {
        match self.now.load(Ordering::Relaxed) {
            0 => Err(ClockError::Unreadable),
            now => self.guard.check(now),
        }
    }

    fn last_trusted_ms(&self) -> Option<u64> {
        self.guard.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backward_step_beyond_a_second_is_distrusted_until_the_clock_catches_up() {
        let g = Guard::default();
        assert_eq!(g.check(10_000), Ok(10_000));
        assert_eq!(g.check(9_500), Ok(9_500), "small steps back (NTP slew) are tolerated");
        assert_eq!(
            g.check(8_999),
            Err(ClockError::SteppedBack { now_ms: 8_999, high_water_ms: 10_000, behind_ms: 1_001 }),
            "more than 1 s behind the highest reading"
        );
        assert!(g.check(5_000).is_err());
        assert_eq!(g.check(9_000), Ok(9_000), "within a second of the high-water mark again");
        assert_eq!(g.check(20_000), Ok(20_000));
        assert!(g.check(10_000).is_err(), "the high-water mark moved forward");
    }

    #[test]
    fn the_system_clock_reads_now() {
        let c = SystemClock::default();
        assert_eq!(c.last_trusted_ms(), None);
        let a = c.now_ms().unwrap();
        let b = c.now_ms().unwrap();
        assert!(b >= a && a > 1_700_000_000_000);
        assert!(c.last_trusted_ms().unwrap() >= b);
    }

    #[test]
    fn a_manual_clock_has_the_same_guard_and_never_reads_zero() {
        let c = ManualClock::new(0);
        assert_eq!(c.now_ms(), Err(ClockError::Unreadable), "time 0 is never a trusted time");
        c.set(50_000);
        assert_eq!(c.now_ms(), Ok(50_000));
        c.set(40_000);
        assert!(matches!(c.now_ms(), Err(ClockError::SteppedBack { .. })));
        c.advance(9_500);
        assert_eq!(c.now_ms(), Ok(49_500));
    }

    #[test]
    fn a_settled_time_is_the_last_trusted_one_and_never_before_its_floor() {
        let c = ManualClock::new(100_000);
        assert_eq!(c.settled_ms(90_000), 100_000);
        c.set(10_000);
        assert_eq!(c.settled_ms(90_000), 100_000, "untrusted now: the highest trusted reading");
        assert_eq!(c.settled_ms(120_000), 120_000, "never before the time it follows");
        let fresh = ManualClock::new(0);
        assert_eq!(fresh.settled_ms(77_000), 77_000, "no reading ever: the floor, not 0");
    }
}
