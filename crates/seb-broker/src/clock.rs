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

impl Clock for SystemClock {
    fn now_ms(&self) -> Option<u64> {
        let now =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        let prev = self.high_water.fetch_max(now, Ordering::Relaxed);
        if now.saturating_add(MAX_BACKSTEP_MS) < prev { None } else { Some(now) }
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
