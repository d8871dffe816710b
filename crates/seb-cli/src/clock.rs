//! The CLI's wall clock: the one guarded clock of [`seb_store::clock`]. A statement the CLI
//! signs (a request, a proposal, an approval, an epoch statement) never carries time 0: an
//! unreadable clock is an error.

use seb_store::clock::{Clock as _, SystemClock};

/// Now, in Unix milliseconds.
pub fn now_ms() -> anyhow::Result<u64> {
    Ok(SystemClock::default().now_ms()?)
}
