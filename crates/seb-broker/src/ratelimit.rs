//! Rate limiting of records for failures before the certificate is authenticated
//! (spec section 7: garbage cannot flood the ledger, and nothing disappears silently).
//!
//! What is not recorded individually is counted in the open **summary window**. The window's
//! summary record id is allocated when the window opens (at its first uncounted refusal), so
//! every refusal it counts can name the record that will count it; the broker's periodic
//! tick closes the window and signs the summary under that id.

use std::collections::HashMap;
use std::sync::Mutex;

/// Per-client token buckets; dropped records are counted for the periodic summary.
#[derive(Debug)]
pub struct PreauthLimiter {
    per_minute: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: HashMap<String, Bucket>,
    window: Option<Window>,
}

/// An open summary window: the id its summary record will carry, and what it counts.
#[derive(Debug)]
struct Window {
    summary_id: String,
    dropped: HashMap<String, u64>,
}

/// A closed summary window, ready to be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The summary record's id, allocated when the window opened.
    pub summary_id: String,
    /// Distinct clients counted.
    pub clients: usize,
    /// Refusals counted.
    pub dropped: u64,
}

impl Inner {
    /// Count one unrecorded refusal of `client` in the open window (opening one, with a fresh
    /// summary id, if none is open). Returns the window's summary id.
    fn count(&mut self, client: &str) -> String {
        let w = self.window.get_or_insert_with(|| Window {
            summary_id: crate::records::new_record_id(),
            dropped: HashMap::new(),
        });
        *w.dropped.entry(client.to_owned()).or_default() += 1;
        w.summary_id.clone()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Most clients tracked at once; beyond this, the oldest buckets are forgotten.
const MAX_CLIENTS: usize = 10_000;

impl PreauthLimiter {
    /// Allow `per_minute` records per client, with a burst of the same size.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, inner: Mutex::new(Inner::default()) }
    }

    /// Whether a record for `client` may be written now (`Ok`); if not, it is counted in the
    /// open summary window and `Err` carries that window's summary record id.
    pub fn admit(&self, client: &str, now_ms: u64) -> Result<(), String> {
        let Ok(mut g) = self.inner.lock() else { return Ok(()) };
        let cap = f64::from(self.per_minute.max(1));
        if g.buckets.len() >= MAX_CLIENTS && !g.buckets.contains_key(client) {
            let stale: Vec<String> = g
                .buckets
                .iter()
                .filter(|(_, b)| now_ms.saturating_sub(b.at_ms) > 60_000)
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                g.buckets.remove(&k);
            }
        }
        let b = g.buckets.entry(client.to_owned()).or_insert(Bucket { tokens: cap, at_ms: now_ms });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
        b.tokens = (b.tokens + elapsed * cap / 60_000.0).min(cap);
        b.at_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(g.count(client))
        }
    }

    /// Count a refusal that cannot be recorded individually for another reason (no trusted
    /// time to sign it with) in the open window. Returns the window's summary record id.
    pub fn count_unrecorded(&self, client: &str) -> Option<String> {
        self.inner.lock().ok().map(|mut g| g.count(client))
    }

    /// Close the open window, if it counted anything.
    pub fn take_window(&self) -> Option<Summary> {
        let w = self.inner.lock().ok()?.window.take()?;
        Some(Summary {
            summary_id: w.summary_id,
            clients: w.dropped.len(),
            dropped: w.dropped.values().sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_and_counting_under_one_summary_id_per_window() {
        let l = PreauthLimiter::new(3);
        assert!(l.admit("a", 0).is_ok());
        assert!(l.admit("a", 0).is_ok());
        assert!(l.admit("a", 0).is_ok());
        let id = l.admit("a", 0).unwrap_err();
        assert!(l.admit("b", 0).is_ok());
        assert_eq!(l.admit("a", 10_000), Err(id.clone()), "same window, same summary id");
        assert!(l.admit("a", 20_001).is_ok());
        assert_eq!(l.count_unrecorded("c"), Some(id.clone()));
        assert_eq!(
            l.take_window(),
            Some(Summary { summary_id: id.clone(), clients: 2, dropped: 3 })
        );
        assert_eq!(l.take_window(), None);
        let next = l.admit("a", 20_001).unwrap_err();
        assert_ne!(next, id, "a new window has a new summary id");
    }
}
