//! Rate limiting of records for failures before the certificate is authenticated
//! (spec section 7: garbage cannot flood the ledger, and nothing disappears silently).

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
    dropped: HashMap<String, u64>,
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

    /// Whether a record for `client` may be written now; if not, it is counted as dropped.
    pub fn admit(&self, client: &str, now_ms: u64) -> bool {
        let Ok(mut g) = self.inner.lock() else { return true };
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
            true
        } else {
            *g.dropped.entry(client.to_owned()).or_default() += 1;
            false
        }
    }

    /// Take the dropped counts since the last call: (clients, records).
    pub fn take_dropped(&self) -> (usize, u64) {
        let Ok(mut g) = self.inner.lock() else { return (0, 0) };
        let d = std::mem::take(&mut g.dropped);
        (d.len(), d.values().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_and_counting() {
        let l = PreauthLimiter::new(3);
        assert!(l.admit("a", 0));
        assert!(l.admit("a", 0));
        assert!(l.admit("a", 0));
        assert!(!l.admit("a", 0));
        assert!(l.admit("b", 0));
        assert!(!l.admit("a", 10_000));
        assert!(l.admit("a", 20_001));
        assert_eq!(l.take_dropped(), (1, 2));
        assert_eq!(l.take_dropped(), (0, 0));
    }
}
