//! Console sessions, sign-in challenges and the sign-in rate limit. Pure: time is an argument,
//! randomness is passed in, nothing here does I/O.
//!
//! - A session id is 32 random bytes, sent to the browser once (the cookie) and kept here only
//!   as its SHA-256, so a dump of this table does not yield a usable cookie.
//! - A session ends after `idle_ms` without a request or `max_ms` after sign-in, whichever
//!   comes first, or at sign-out.
//! - Each session carries its own CSRF token (32 random bytes); every state-changing request
//!   must present it (compared in constant time).
//! - A sign-in challenge is 32 random bytes, single use (taken out of the table by the first
//!   attempt, whatever its outcome) and valid for `challenge_ms`.
//! - Sign-in attempts are limited per client address (a fixed window) and in total.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use seb_core::digest::Digest;

/// Bounds of the session table and the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A session ends this long after its last request.
    pub idle_ms: u64,
    /// A session ends this long after sign-in.
    pub max_ms: u64,
    /// A sign-in challenge is valid this long.
    pub challenge_ms: u64,
    /// Sign-in attempts (challenge requests and assertions) per client address per window.
    pub attempts_per_window: u32,
    /// Sign-in attempts from all addresses together per window.
    pub attempts_total_per_window: u32,
    /// The rate-limit window.
    pub window_ms: u64,
    /// Most live sessions and most outstanding challenges.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_ms: 15 * 60 * 1000,
            max_ms: 8 * 3600 * 1000,
            challenge_ms: 120_000,
            attempts_per_window: 10,
            attempts_total_per_window: 300,
            window_ms: 60_000,
            max_entries: 10_000,
        }
    }
}

/// A signed-in approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The approver's registry name.
    pub approver: String,
    /// The credential used to sign in (its id, raw bytes).
    pub credential_id: Vec<u8>,
    /// The CSRF token (base64url) the pages embed and state-changing requests send back.
    pub csrf: String,
    /// Sign-in time.
    pub created_ms: u64,
    /// Last request.
    pub seen_ms: u64,
}

/// Why a session lookup failed (the page then asks to sign in again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// No cookie, or one this table never issued (or already forgot).
    Unknown,
    /// Idle or absolute lifetime exceeded.
    Expired,
}

/// Why a sign-in challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// Never issued, or already used.
    Unknown,
    /// Issued more than `challenge_ms` ago.
    Expired,
}

fn key(token: &str) -> Digest {
    Digest::of_bytes(token.as_bytes())
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The console's in-memory state.
#[derive(Debug, Default)]
pub struct Table {
    limits: Limits,
    sessions: BTreeMap<Digest, Session>,
    /// SHA-256 of the challenge cookie → (challenge bytes, issued_ms).
    challenges: BTreeMap<Digest, ([u8; 32], u64)>,
    /// Client address → (window start, attempts in it).
    attempts: BTreeMap<String, (u64, u32)>,
    total: (u64, u32),
}

impl Table {
    /// An empty table with these limits.
    pub fn new(limits: Limits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn prune(&mut self, now: u64) {
        let l = self.limits;
        self.sessions.retain(|_, s| {
            now.saturating_sub(s.seen_ms) <= l.idle_ms
                && now.saturating_sub(s.created_ms) <= l.max_ms
        });
        self.challenges.retain(|_, (_, at)| now.saturating_sub(*at) <= l.challenge_ms);
        self.attempts.retain(|_, (start, _)| now.saturating_sub(*start) < l.window_ms);
    }

    /// Count one sign-in attempt from `client`; `false` when it is over the limit (the
    /// attempt must then be refused without further work).
    pub fn attempt(&mut self, client: &str, now: u64) -> bool {
        let l = self.limits;
        if now.saturating_sub(self.total.0) >= l.window_ms {
            self.total = (now, 0);
        }
        self.total.1 = self.total.1.saturating_add(1);
        if self.attempts.len() >= l.max_entries && !self.attempts.contains_key(client) {
            self.prune(now);
        }
        let e = self.attempts.entry(client.to_owned()).or_insert((now, 0));
        if now.saturating_sub(e.0) >= l.window_ms {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= l.attempts_per_window && self.total.1 <= l.attempts_total_per_window
    }

    /// Store a new challenge under the cookie value `cookie` (both random, from the caller).
    /// `false` when the table is full of live challenges.
    pub fn add_challenge(&mut self, cookie: &str, challenge: [u8; 32], now: u64) -> bool {
        if self.challenges.len() >= self.limits.max_entries {
            self.prune(now);
            if self.challenges.len() >= self.limits.max_entries {
                return false;
            }
        }
        self.challenges.insert(key(cookie), (challenge, now));
        true
    }

    /// Take the challenge stored under `cookie` (single use: it is gone afterwards, whatever
    /// the caller does with it).
    pub fn take_challenge(&mut self, cookie: &str, now: u64) -> Result<[u8; 32], ChallengeError> {
        let (c, at) = self.challenges.remove(&key(cookie)).ok_or(ChallengeError::Unknown)?;
        if now.saturating_sub(at) > self.limits.challenge_ms {
            return Err(ChallengeError::Expired);
        }
        Ok(c)
    }

    /// Open a session under the cookie value `token` with CSRF token `csrf` (both random).
    /// `false` when the table is full of live sessions.
    pub fn open(
        &mut self,
        token: &str,
        csrf: &str,
        approver: &str,
        credential_id: &[u8],
        now: u64,
    ) -> bool {
        if self.sessions.len() >= self.limits.max_entries {
            self.prune(now);
            if self.sessions.len() >= self.limits.max_entries {
                return false;
            }
        }
        self.sessions.insert(
            key(token),
            Session {
                approver: approver.to_owned(),
                credential_id: credential_id.to_vec(),
                csrf: csrf.to_owned(),
                created_ms: now,
                seen_ms: now,
            },
        );
        true
    }

    /// The session of cookie value `token`, refreshed (its idle timer restarts).
    pub fn get(&mut self, token: &str, now: u64) -> Result<Session, SessionError> {
        let k = key(token);
        let l = self.limits;
        let s = self.sessions.get_mut(&k).ok_or(SessionError::Unknown)?;
        if now.saturating_sub(s.seen_ms) > l.idle_ms || now.saturating_sub(s.created_ms) > l.max_ms
        {
            self.sessions.remove(&k);
            return Err(SessionError::Expired);
        }
        s.seen_ms = now;
        Ok(s.clone())
    }

    /// End the session of `token` (sign-out).
    pub fn close(&mut self, token: &str) {
        self.sessions.remove(&key(token));
    }

    /// End every session of `approver` (removed from the directory).
    pub fn close_all_of(&mut self, approver: &str) {
        self.sessions.retain(|_, s| s.approver != approver);
    }

    /// Live sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// 32 random bytes as base64url (a cookie value, a CSRF token).
pub fn token_from(bytes: &[u8; 32]) -> String {
    B64URL.encode(bytes)
}

/// Whether `presented` is the session's CSRF token.
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| ct_eq(p.as_bytes(), session.csrf.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            idle_ms: 100,
            max_ms: 1000,
            challenge_ms: 50,
            attempts_per_window: 3,
            attempts_total_per_window: 5,
            window_ms: 1000,
            max_entries: 4,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_maximum_age() {
        let mut t = Table::new(limits());
        assert!(t.open("tok", "csrf", "alice", b"cred", 0));
        assert_eq!(t.get("tok", 90).map(|s| s.approver), Ok("alice".to_owned()));
        // The idle timer restarted at 90.
        assert!(t.get("tok", 180).is_ok());
        assert_eq!(t.get("tok", 281), Err(SessionError::Expired));
        assert_eq!(t.get("tok", 282), Err(SessionError::Unknown));
        assert!(t.open("tok2", "c", "bob", b"x", 0));
        for now in (90..=990).step_by(90) {
            assert!(t.get("tok2", now).is_ok(), "{now}");
        }
        assert_eq!(t.get("tok2", 1001), Err(SessionError::Expired));
        assert_eq!(t.get("never", 0), Err(SessionError::Unknown));
    }

    #[test]
    fn sign_out_and_removal_end_sessions() {
        let mut t = Table::new(limits());
        t.open("a", "c", "alice", b"1", 0);
        t.open("b", "c", "alice", b"1", 0);
        t.open("c", "c", "bob", b"2", 0);
        t.close("a");
        assert_eq!(t.get("a", 1), Err(SessionError::Unknown));
        t.close_all_of("alice");
        assert_eq!(t.get("b", 1), Err(SessionError::Unknown));
        assert!(t.get("c", 1).is_ok());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_challenge_is_single_use_and_short_lived() {
        let mut t = Table::new(limits());
        assert!(t.add_challenge("ck", [7; 32], 0));
        assert_eq!(t.take_challenge("ck", 10), Ok([7; 32]));
        assert_eq!(t.take_challenge("ck", 10), Err(ChallengeError::Unknown));
        t.add_challenge("ck2", [8; 32], 0);
        assert_eq!(t.take_challenge("ck2", 51), Err(ChallengeError::Expired));
        // Gone after the failed attempt too.
        assert_eq!(t.take_challenge("ck2", 1), Err(ChallengeError::Unknown));
        assert_eq!(t.take_challenge("other", 1), Err(ChallengeError::Unknown));
    }

    #[test]
    fn tables_are_bounded() {
        let mut t = Table::new(limits());
        for i in 0..4 {
            assert!(t.add_challenge(&format!("c{i}"), [0; 32], 0));
            assert!(t.open(&format!("s{i}"), "x", "a", b"", 0));
        }
        assert!(!t.add_challenge("c5", [0; 32], 10));
        assert!(!t.open("s5", "x", "a", b"", 10));
        // Once the old ones expired there is room again.
        assert!(t.add_challenge("c5", [0; 32], 60));
        assert!(t.open("s5", "x", "a", b"", 2000));
    }

    #[test]
    fn sign_in_attempts_are_limited_per_client_and_in_total() {
        let mut t = Table::new(limits());
        assert!(t.attempt("10.0.0.1", 0));
        assert!(t.attempt("10.0.0.1", 1));
        assert!(t.attempt("10.0.0.1", 2));
        assert!(!t.attempt("10.0.0.1", 3));
        // Another client is not affected by the first one's limit…
        assert!(t.attempt("10.0.0.2", 4));
        // …but the total is reached (6 attempts > 5).
        assert!(!t.attempt("10.0.0.3", 5));
        // A new window.
        assert!(t.attempt("10.0.0.1", 1001));
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let s = Session {
            approver: "a".into(),
            credential_id: vec![],
            csrf: "abc".into(),
            created_ms: 0,
            seen_ms: 0,
        };
        assert!(csrf_ok(&s, Some("abc")));
        assert!(!csrf_ok(&s, Some("abd")));
        assert!(!csrf_ok(&s, Some("ab")));
        assert!(!csrf_ok(&s, None));
        assert_eq!(token_from(&[0; 32]).len(), 43);
    }
}
