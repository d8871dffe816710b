//! Wall-clock time for the broker: the one guarded clock of [`seb_store::clock`], shared with
//! admission (the core takes time as an argument).

pub use seb_store::clock::{Clock, ClockError, MAX_BACKSTEP_MS, ManualClock, SystemClock};
