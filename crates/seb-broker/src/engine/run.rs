//! Steps 14–17 for a committed reservation: mint, mark the dispatch, mutate, retire, and
//! record the signed outcome (or spool it when the store does not take it).

use std::collections::BTreeMap;
use std::time::Instant;

use seb_core::types::{Decision, OutcomeRecord, OutcomeStatus};
use seb_store::{StoreError, error_chain};
use seb_target::{MutationResult, MutationStatus, Reconciled, Target};
use tracing::{error, info, warn};

use crate::records::{digest_opt, new_record_id};
use crate::spool::{Kept, Spooled};

use super::{Broker, Executed, OutcomeState, Reserved, Timings, crash_point};

impl Broker {
    /// Steps 14–17 for a committed reservation.
    pub(super) async fn run_reserved(
        &self,
        target: &dyn Target,
        r: Reserved,
        timings: &mut Timings,
    ) -> Executed {
        let exec = &r.exec;
        // After the fact: the execution is under way, so a distrusted clock cannot stop it;
        // the times are the last trusted reading, never before the reservation.
        let started_ms = self.clock.settled_ms(r.reserved_ms);
        // Live from before the identity exists: a platform hook that sees the identity's
        // first request must already find its execution.
        let mut live = self.live.register(target.identity_name(exec).into_iter().collect(), exec);
        let t = Instant::now();
        let minted = tokio::time::timeout(self.settings.target_timeout, target.mint(exec)).await;
        timings.record(&self.metrics, "mint", t);
        let identity = match minted {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => {
                return self
                    .finish(r, started_ms, None, failed(format!("mint: {}", error_chain(&e))))
                    .await;
            }
            Err(_) => {
                return self.finish(r, started_ms, None, failed("mint: timed out".into())).await;
            }
        };
        crash_point("after_mint");
        live.add(&identity.name, exec);
        let identity_name = identity.name.clone();
        // Durably note the call is about to happen: without this mark, recovery can prove it
        // never did.
        let t = Instant::now();
        let dispatched = self.store.mark_dispatched(&exec.cid, &exec.nonce, started_ms).await;
        timings.record(&self.metrics, "dispatch", t);
        if let Err(e) = dispatched {
            self.retire(target, exec, identity).await;
            return self
                .finish(
                    r,
                    started_ms,
                    Some(identity_name),
                    failed(format!("not dispatched: {}", error_chain(&e))),
                )
                .await;
        }
        crash_point("after_dispatch");
        let t = Instant::now();
        let mutated =
            tokio::time::timeout(self.settings.target_timeout, target.mutate(exec, &identity))
                .await;
        timings.record(&self.metrics, "mutate", t);
        crash_point("after_mutate");
        let t = Instant::now();
        self.retire(target, exec, identity).await;
        timings.record(&self.metrics, "retire", t);
        drop(live);
        crash_point("after_retire");
        let result = match mutated {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err("timed out".to_owned()),
        };
        let result = match result {
            Ok(m) => m,
            Err(e) => {
                // The call's fate is unknown: observe, never retry.
                let status = match target.reconcile(exec).await {
                    Ok(Reconciled::Applied) => MutationStatus::Applied,
                    Ok(Reconciled::NotApplied) => MutationStatus::Failed,
                    Ok(Reconciled::Uncertain) | Err(_) => {
                        error!(cid = %exec.cid, nonce = %exec.nonce, error = %e, "outcome uncertain");
                        return self
                            .finish_as(
                                r,
                                started_ms,
                                Some(identity_name),
                                OutcomeStatus::Uncertain,
                                failed(e),
                            )
                            .await;
                    }
                };
                MutationResult {
                    status,
                    target_request_id: None,
                    result: None,
                    post_state: None,
                    error: Some(e),
                }
            }
        };
        let t = Instant::now();
        let done = self.finish(r, started_ms, Some(identity_name), result).await;
        timings.record(&self.metrics, "outcome", t);
        done
    }

    pub(super) async fn finish(
        &self,
        r: Reserved,
        started_ms: u64,
        identity: Option<String>,
        m: MutationResult,
    ) -> Executed {
        let status = match m.status {
            MutationStatus::Applied => OutcomeStatus::Applied,
            MutationStatus::Failed => OutcomeStatus::Failed,
            MutationStatus::Conflict => OutcomeStatus::Conflict,
        };
        self.finish_as(r, started_ms, identity, status, m).await
    }

    /// Build, sign and store the outcome record with an explicit status.
    pub(super) async fn finish_as(
        &self,
        r: Reserved,
        started_ms: u64,
        identity: Option<String>,
        status: OutcomeStatus,
        m: MutationResult,
    ) -> Executed {
        let mut error = m.error;
        if r.unpinned && status == OutcomeStatus::Applied {
            error = Some("applied without a precondition: the operation's profile has none".into());
        }
        let outcome = OutcomeRecord {
            id: new_record_id(),
            cid: r.exec.cid.clone(),
            nonce: r.exec.nonce.clone(),
            status,
            started_ms,
            ended_ms: self.clock.settled_ms(started_ms),
            identity,
            target_request_id: m.target_request_id,
            result_digest: digest_opt(m.result.as_ref()),
            post_state_digest: digest_opt(m.post_state.as_ref()),
            error,
            broker_kid: self.signer.kid().clone(),
            break_glass: r.exec.break_glass,
        };
        self.complete(r, outcome).await
    }

    pub(super) async fn complete(&self, r: Reserved, outcome: OutcomeRecord) -> Executed {
        self.metrics.outcome(outcome.status.as_str());
        let (outcome_index, outcome_state) = match self.signer.sign_outcome(&outcome) {
            Ok(signed) => self.record_outcome(&r.exec.cid, &r.exec.nonce, signed.entry).await,
            Err(e) => {
                error!(cid = %outcome.cid, nonce = %outcome.nonce, error = %e, "ALERT: cannot sign outcome");
                (None, OutcomeState::Unsaved)
            }
        };
        info!(cid = %outcome.cid, nonce = %outcome.nonce, status = %outcome.status, outcome_state = ?outcome_state, "execution finished");
        Executed {
            decision: Decision::Admit,
            cid: r.exec.cid.clone(),
            nonce: r.exec.nonce.clone(),
            admit_record_id: r.admit_record_id,
            admit_index: r.admit_index,
            outcome,
            outcome_index,
            outcome_state,
            unpinned: r.unpinned,
            timings_us: BTreeMap::new(),
        }
    }

    /// Write a signed outcome; when the store does not take it, keep it in the spool (synced
    /// to disk before the client is answered) for [`Broker::flush_spool`]. The normal path
    /// is one store call and no local write.
    pub(super) async fn record_outcome(
        &self,
        cid: &str,
        nonce: &str,
        entry: Vec<u8>,
    ) -> (Option<u64>, OutcomeState) {
        let e = match self.store.complete(cid, nonce, entry.clone()).await {
            Ok(i) => return (Some(i), OutcomeState::Recorded),
            // A commit whose answer was lost, then retried by someone: it is in the ledger.
            Err(StoreError::AlreadyCompleted { .. }) => {
                warn!(cid, nonce, "outcome already recorded");
                return (None, OutcomeState::Recorded);
            }
            Err(e) => e,
        };
        let (kept, spool_error) =
            self.spool.push(Spooled::Outcome { cid: cid.into(), nonce: nonce.into(), entry });
        self.metrics.set_pending_records(self.spool.len());
        match kept {
            Kept::Durable => {
                warn!(cid, nonce, error = %error_chain(&e), "outcome spooled until the store answers");
                (None, OutcomeState::Spooled)
            }
            Kept::Memory => {
                let spool_error = spool_error.map(|e| e.to_string()).unwrap_or_default();
                error!(cid, nonce, error = %error_chain(&e), spool_error = %spool_error, "ALERT: outcome kept in memory only");
                (None, OutcomeState::Unsaved)
            }
        }
    }
}

fn failed(error: String) -> MutationResult {
    MutationResult {
        status: MutationStatus::Failed,
        target_request_id: None,
        result: None,
        post_state: None,
        error: Some(error),
    }
}
