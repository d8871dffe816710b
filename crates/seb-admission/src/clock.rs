//! Wall-clock time for admission: the one guarded clock of [`seb_store::clock`], shared with
//! the broker (the core takes time as an argument).

pub use seb_store::clock::{Clock, ClockError, MAX_BACKSTEP_MS, ManualClock, SystemClock};
