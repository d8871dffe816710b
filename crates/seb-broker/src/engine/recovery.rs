//! Crash recovery and the reconciliation of other replicas' orphaned executions (spec
//! section 10): resolve admits without an outcome by observation, never by re-execution.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use seb_core::json;
use seb_core::types::{OutcomeRecord, OutcomeStatus};
use seb_store::{PendingExecution, StoreError};
use seb_target::{Execution, Reconciled};
use tracing::{error, info, warn};

use crate::records::new_record_id;

use super::Broker;

impl Broker {
    /// Crash recovery (spec section 10): resolve every admit without an outcome by
    /// observation. Never re-executes; the nonce stays consumed. Identities that cannot be
    /// retired yet are queued for [`Broker::retire_queued`]. Returns the statuses recorded.
    pub async fn recover(&self) -> Result<Vec<(String, String, OutcomeStatus)>, StoreError> {
        let pending = self.not_spooled(self.store.pending().await?);
        self.resolve_pending(pending).await
    }

    /// Periodic reconciliation (spec section 10): resolve the open executions of replicas
    /// that are gone (their lease lost), once each has stayed orphaned on every pass for
    /// `grace`. A replica whose database session dropped retakes its own lease within
    /// seconds, and an execution it still runs ends within its target timeout, so `grace`
    /// must exceed both; a live replica's executions are never touched.
    pub async fn reconcile_orphans(
        &self,
        grace: Duration,
    ) -> Result<Vec<(String, String, OutcomeStatus)>, StoreError> {
        let orphans = self.store.orphans().await?;
        let now = Instant::now();
        let due: Vec<PendingExecution> = {
            let Ok(mut seen) = self.orphans_seen.lock() else {
                return Ok(Vec::new());
            };
            // Forget executions that are no longer orphaned (their replica came back).
            let keep: BTreeMap<(String, String), Instant> = orphans
                .iter()
                .map(|p| {
                    let key = (p.cid.clone(), p.nonce.clone());
                    let since = seen.get(&key).copied().unwrap_or(now);
                    (key, since)
                })
                .collect();
            *seen = keep;
            orphans
                .into_iter()
                .filter(|p| {
                    seen.get(&(p.cid.clone(), p.nonce.clone()))
                        .is_some_and(|since| now.duration_since(*since) >= grace)
                })
                .collect()
        };
        if due.is_empty() {
            return Ok(Vec::new());
        }
        info!(count = due.len(), "reconciling executions of replicas that are gone");
        let done = self.resolve_pending(self.not_spooled(due)).await?;
        if let Ok(mut seen) = self.orphans_seen.lock() {
            for (cid, nonce, _) in &done {
                seen.remove(&(cid.clone(), nonce.clone()));
            }
        }
        Ok(done)
    }

    /// Leave out executions whose outcome waits in this replica's spool: it is known, and
    /// is written with its own id by [`Broker::flush_spool`].
    pub(super) fn not_spooled(&self, pending: Vec<PendingExecution>) -> Vec<PendingExecution> {
        pending.into_iter().filter(|p| !self.spool.has_outcome(&p.cid, &p.nonce)).collect()
    }

    /// Resolve admits without an outcome by observation.
    pub(super) async fn resolve_pending(
        &self,
        pending: Vec<PendingExecution>,
    ) -> Result<Vec<(String, String, OutcomeStatus)>, StoreError> {
        let mut done = Vec::new();
        for p in pending {
            let now_ms = self.clock.settled_ms(p.admitted_at_ms);
            let exec: Option<Execution> = json::parse(&p.intent, usize::MAX).ok();
            // The crash lost the identity the execution may have minted: delete what is left
            // of it before observing, so that nothing can still write with it. A failure is
            // queued and retried with backoff until it succeeds ([`Broker::retire_queued`]);
            // the observation below does not depend on it.
            if let Some(e) = &exec
                && let Err(error) = self.retire_orphans_once(e).await
            {
                warn!(cid = %p.cid, nonce = %p.nonce, error = %error, "cannot retire the crashed execution's identity yet; queued for retry");
                self.queue_retirement(e.clone());
            }
            let status = match (&exec, p.dispatched) {
                (_, false) => OutcomeStatus::NotAttempted,
                (None, true) => OutcomeStatus::Uncertain,
                (Some(e), true) => match self.targets.get(&e.platform) {
                    None => OutcomeStatus::Uncertain,
                    Some(t) => {
                        match tokio::time::timeout(self.settings.target_timeout, t.reconcile(e))
                            .await
                        {
                            Ok(Ok(Reconciled::Applied)) => OutcomeStatus::Applied,
                            Ok(Ok(Reconciled::NotApplied)) => OutcomeStatus::NotApplied,
                            Ok(Ok(Reconciled::Uncertain)) | Ok(Err(_)) | Err(_) => {
                                OutcomeStatus::Uncertain
                            }
                        }
                    }
                },
            };
            if status == OutcomeStatus::Uncertain {
                error!(cid = %p.cid, nonce = %p.nonce, "ALERT: recovery cannot tell whether the mutation happened");
            }
            let outcome = OutcomeRecord {
                id: new_record_id(),
                cid: p.cid.clone(),
                nonce: p.nonce.clone(),
                status,
                started_ms: p.admitted_at_ms,
                ended_ms: now_ms,
                identity: None,
                target_request_id: None,
                result_digest: None,
                post_state_digest: None,
                error: Some("resolved by crash recovery".into()),
                broker_kid: self.signer.kid().clone(),
                break_glass: exec.as_ref().is_some_and(|e| e.break_glass),
            };
            let signed = self
                .signer
                .sign_outcome(&outcome)
                .map_err(|e| StoreError::invalid_from("signing the recovered outcome", e))?;
            match self.store.complete(&p.cid, &p.nonce, signed.entry).await {
                Ok(_) | Err(StoreError::AlreadyCompleted { .. }) => {}
                Err(e) => return Err(e),
            }
            self.metrics.outcome(status.as_str());
            info!(cid = %p.cid, nonce = %p.nonce, status = %status, "recovered");
            done.push((p.cid, p.nonce, status));
        }
        Ok(done)
    }
}
