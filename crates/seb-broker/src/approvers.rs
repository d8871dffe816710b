//! The approver registry check 3 uses (spec 5.1): the configured `[[approvers]]` (Ed25519 keys
//! and passkey credentials) joined, in store mode, with the approvers enrolled in the store.
//!
//! The enrolled set is read from the store at most once per [`REFRESH`] and cached; an
//! enrolment or removal takes effect on this broker within that bound. If the store cannot be
//! read, the configured registry alone is used: an approval by an enrolled approver is then
//! refused at `path` (fail closed), never accepted on stale data older than the last read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seb_core::json;
use seb_core::pipeline::{ApproverRegistry, ApproverRole, PasskeyApprover};
use seb_core::webauthn::WebAuthnCredential;
use seb_store::Store;
use tracing::warn;

/// Longest time an enrolled-approver change takes to reach check 3 on this broker.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The joined registry, cached.
#[derive(Debug, Default)]
pub struct EnrolledCache {
    cached: Mutex<Option<(Instant, Arc<ApproverRegistry>)>>,
}

impl EnrolledCache {
    /// The registry for one presentation: `configured` plus the store's enrolled approvers.
    pub async fn registry(
        &self,
        configured: &ApproverRegistry,
        store: &dyn Store,
    ) -> Arc<ApproverRegistry> {
        let Some(dir) = store.approver_directory() else {
            return Arc::new(configured.clone());
        };
        if let Ok(g) = self.cached.lock()
            && let Some((at, reg)) = g.as_ref()
            && at.elapsed() < REFRESH
        {
            return Arc::clone(reg);
        }
        let mut reg = configured.clone();
        match dir.enrolled().await {
            Ok(entries) => {
                for e in entries {
                    let parsed: Option<WebAuthnCredential> =
                        json::parse(e.credential.as_bytes(), 64 * 1024).ok();
                    match parsed {
                        Some(c) if c.kid().as_str() == e.kid && e.role == "human" => {
                            reg.insert_passkey(PasskeyApprover {
                                name: e.name,
                                role: ApproverRole::Human,
                                credential: c,
                            });
                        }
                        _ => {
                            warn!(approver = %e.name, "enrolled approver entry is malformed; ignored")
                        }
                    }
                }
            }
            Err(e) => {
                warn!(error = %seb_store::error_chain(&e), "enrolled approvers unreadable; using the configured ones");
                return Arc::new(reg);
            }
        }
        let reg = Arc::new(reg);
        if let Ok(mut g) = self.cached.lock() {
            *g = Some((Instant::now(), Arc::clone(&reg)));
        }
        reg
    }
}
