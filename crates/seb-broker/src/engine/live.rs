//! Executions whose credential is live, and identities awaiting retirement.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use seb_store::error_chain;
use seb_target::{Execution, Identity, Target};
use tracing::{info, warn};

use super::Broker;

/// Executions whose credential is live right now, by identity name (for admission webhooks).
#[derive(Debug, Default)]
pub struct LiveExecutions {
    inner: Mutex<BTreeMap<String, Execution>>,
}

impl LiveExecutions {
    /// The execution a live identity belongs to.
    pub fn get(&self, identity: &str) -> Option<Execution> {
        self.inner.lock().ok()?.get(identity).cloned()
    }
    fn insert(&self, identity: &str, exec: &Execution) {
        if let Ok(mut g) = self.inner.lock() {
            g.insert(identity.to_owned(), exec.clone());
        }
    }
    /// Register `names` for `exec` until the guard drops (every return path, cancellation).
    pub(super) fn register<'a>(&'a self, names: Vec<String>, exec: &Execution) -> LiveGuard<'a> {
        for n in &names {
            self.insert(n, exec);
        }
        LiveGuard { live: self, names }
    }
    fn remove(&self, identity: &str) {
        if let Ok(mut g) = self.inner.lock() {
            g.remove(identity);
        }
    }
    /// Number of live identities.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.len()).unwrap_or(0)
    }
    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps identities registered as live; unregisters them when dropped.
pub(super) struct LiveGuard<'a> {
    live: &'a LiveExecutions,
    names: Vec<String>,
}

impl LiveGuard<'_> {
    pub(super) fn add(&mut self, name: &str, exec: &Execution) {
        if !self.names.iter().any(|n| n == name) {
            self.live.insert(name, exec);
            self.names.push(name.to_owned());
        }
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            self.live.remove(n);
        }
    }
}

/// An execution whose identity could not be retired yet (after a crash, or a failed retire).
#[derive(Debug)]
pub(super) struct AwaitingRetirement {
    exec: Execution,
    /// Failed attempts so far.
    attempts: u32,
    next_at: Instant,
}

/// Delay before retirement attempt `attempts + 1`: 250 ms doubling, at most 30 s.
fn retirement_backoff(attempts: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(7)))
        .min(Duration::from_secs(30))
}

impl Broker {
    pub(super) async fn retire(&self, target: &dyn Target, exec: &Execution, identity: Identity) {
        let name = identity.name.clone();
        let error =
            match tokio::time::timeout(self.settings.target_timeout, target.retire(exec, identity))
                .await
            {
                Ok(Ok(())) => return,
                Ok(Err(e)) => error_chain(&e),
                Err(_) => "timed out".to_owned(),
            };
        warn!(cid = %exec.cid, nonce = %exec.nonce, identity = %name, error = %error, "retire failed; queued for retry");
        self.queue_retirement(exec.clone());
    }

    /// One attempt at deleting whatever [`Target::mint`] may have created for `exec`.
    pub(super) async fn retire_orphans_once(&self, exec: &Execution) -> Result<(), String> {
        let Some(t) = self.targets.get(&exec.platform) else {
            return Err(format!("platform `{}` is not configured on this broker", exec.platform));
        };
        match tokio::time::timeout(self.settings.target_timeout, t.retire_orphans(exec)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    /// Keep `exec`'s identity for [`Broker::retire_queued`] (one failed attempt so far).
    pub(super) fn queue_retirement(&self, exec: Execution) {
        if let Ok(mut q) = self.retirements.lock() {
            if !q.iter().any(|r| r.exec.cid == exec.cid && r.exec.nonce == exec.nonce) {
                q.push(AwaitingRetirement {
                    exec,
                    attempts: 1,
                    next_at: Instant::now() + retirement_backoff(1),
                });
            }
            self.metrics.set_awaiting_retirement(q.len());
        }
    }

    /// Identities whose retirement has not succeeded yet.
    pub fn awaiting_retirement(&self) -> usize {
        self.retirements.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Retry every queued retirement that is due; a failure is logged (warn) and retried
    /// later with backoff, without limit. Returns how many still wait.
    pub async fn retire_queued(&self) -> usize {
        let now = Instant::now();
        let due: Vec<Execution> = match self.retirements.lock() {
            Ok(q) => q.iter().filter(|r| r.next_at <= now).map(|r| r.exec.clone()).collect(),
            Err(_) => return 0,
        };
        for exec in due {
            let result = self.retire_orphans_once(&exec).await;
            let Ok(mut q) = self.retirements.lock() else { break };
            let Some(i) =
                q.iter().position(|r| r.exec.cid == exec.cid && r.exec.nonce == exec.nonce)
            else {
                continue;
            };
            match result {
                Ok(()) => {
                    let done = q.swap_remove(i);
                    info!(cid = %exec.cid, nonce = %exec.nonce, attempts = done.attempts + 1, "execution identity retired");
                }
                Err(error) => {
                    if let Some(r) = q.get_mut(i) {
                        r.attempts = r.attempts.saturating_add(1);
                        let wait = retirement_backoff(r.attempts);
                        r.next_at = Instant::now() + wait;
                        warn!(cid = %exec.cid, nonce = %exec.nonce, attempt = r.attempts, retry_in_ms = wait.as_millis() as u64, error = %error, "execution identity awaiting retirement");
                    }
                }
            }
            self.metrics.set_awaiting_retirement(q.len());
        }
        self.awaiting_retirement()
    }
}
