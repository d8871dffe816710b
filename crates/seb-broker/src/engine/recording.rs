//! Decision records for refusals (rate-limited before authentication), the spool of records
//! the store did not take, summaries and checkpoints.

use seb_core::pipeline::{Presented, Rejection};
use seb_core::types::{Decision, FailedCheck};
use seb_ledger::checkpoint::Checkpoint;
use seb_store::{StoreError, StoredCheckpoint, error_chain};
use tracing::{error, info, warn};

use crate::clock::ClockError;
use crate::ratelimit::Summary;
use crate::records::SignedRecord;
use crate::spool::{Kept, Spooled};

use super::{Broker, Refusal};

impl Broker {
    /// Refuse an execution when the clock gives no trusted time: nothing is reserved, and
    /// nothing is signed now (there is no trustworthy `at_ms` to sign). The refusal is counted
    /// in the open summary window, whose record is signed once the clock is trusted again,
    /// and the body names that summary record.
    pub(super) fn refuse_untimed(&self, client: &str, e: &ClockError) -> Refusal {
        let (check, decision) = (FailedCheck::Time, Decision::FailClosed);
        self.metrics.decision(decision.as_str(), Some(check.as_str()));
        let record_id = self.limiter.count_unrecorded(client).unwrap_or_default();
        error!(decision = decision.as_str(), failed_check = check.as_str(), client, error = %e, summary_record_id = %record_id, "refused: the broker clock is not trustworthy");
        Refusal {
            failed_check: check,
            decision,
            reason: format!("broker clock is not trustworthy: {e}"),
            record_id,
            recorded: false,
        }
    }

    /// Record a failed check and build the refusal.
    pub(super) async fn refuse(&self, rej: Rejection, client: &str, now_ms: u64) -> Refusal {
        let preauth = matches!(rej.check, FailedCheck::Parse | FailedCheck::Signature);
        // Garbage from anyone must not page the operator: counted apart.
        if preauth {
            self.metrics.preauth_refusal(rej.decision.as_str(), rej.check.as_str());
        } else {
            self.metrics.decision(rej.decision.as_str(), Some(rej.check.as_str()));
        }
        warn!(
            cid = rej.presented.cid.as_deref().unwrap_or(""),
            nonce = rej.presented.nonce.as_deref().unwrap_or(""),
            decision = rej.decision.as_str(),
            failed_check = rej.check.as_str(),
            client,
            reason = %rej.reason,
            "refused"
        );
        if preauth && let Err(summary_id) = self.limiter.admit(client, now_ms) {
            // Counted in the open summary window: the body names the summary record.
            return Refusal {
                failed_check: rej.check,
                decision: rej.decision,
                reason: rej.reason,
                record_id: summary_id,
                recorded: false,
            };
        }
        // Before authentication the caller is unknown: identify the transport peer instead.
        let identity = preauth.then(|| format!("client:{client}"));
        let record = self.signer.decision(
            rej.decision,
            Some(rej.check),
            &rej.reason,
            &rej.presented,
            identity,
            now_ms,
        );
        let id = record.id.clone();
        match self.signer.sign_decision(&record) {
            Ok(signed) => self.append_or_backlog(signed).await,
            Err(e) => error!(error = %e, "cannot sign decision record"),
        }
        Refusal {
            failed_check: rej.check,
            decision: rej.decision,
            reason: rej.reason,
            record_id: id,
            recorded: true,
        }
    }

    pub(super) async fn append_or_backlog(&self, signed: SignedRecord) {
        // Keep order: flush anything spooled first.
        if !self.spool.is_empty() && self.flush_spool().await > 0 {
            self.spool_record(signed.entry, None);
            return;
        }
        match self.store.append(vec![signed.entry.clone()]).await {
            Ok(_) => {}
            Err(e) => self.spool_record(signed.entry, Some(e)),
        }
    }

    pub(super) fn spool_record(&self, entry: Vec<u8>, store_error: Option<StoreError>) {
        let (kept, spool_error) = self.spool.push(Spooled::Record { entry });
        self.metrics.set_pending_records(self.spool.len());
        if kept == Kept::Memory && self.spool.is_durable() {
            let store_error = store_error.map(|e| e.to_string()).unwrap_or_default();
            let spool_error = spool_error.map(|e| e.to_string()).unwrap_or_default();
            error!(error = %store_error, spool_error = %spool_error, "decision record kept in memory only");
        }
    }

    /// Write the records that waited for the store, oldest first, with their original bytes
    /// (outcomes through `complete`, so one already recorded is not written twice). Stops
    /// at the first the store does not take. Returns how many still wait.
    pub async fn flush_spool(&self) -> usize {
        if self.spool.is_empty() {
            return 0;
        }
        let _one = self.flushing.lock().await;
        let items = match self.spool.items() {
            Ok(items) => items,
            Err(e) => {
                error!(error = %e, "ALERT: cannot read the spool");
                return self.spool.len();
            }
        };
        let mut items = items.into_iter().peekable();
        while let Some((seq, item)) = items.next() {
            let taken = match item {
                Spooled::Record { entry } => {
                    // Consecutive decision records go in one append.
                    let mut seqs = vec![seq];
                    let mut batch = vec![entry];
                    while let Some((s, Spooled::Record { .. })) = items.peek() {
                        let s = *s;
                        if let Some((_, Spooled::Record { entry })) = items.next() {
                            seqs.push(s);
                            batch.push(entry);
                        }
                    }
                    self.store.append(batch).await.map(|_| seqs)
                }
                Spooled::Outcome { cid, nonce, entry } => {
                    match self.store.complete(&cid, &nonce, entry).await {
                        Ok(index) => {
                            info!(cid, nonce, ledger_index = index, "spooled outcome recorded");
                            Ok(vec![seq])
                        }
                        Err(StoreError::AlreadyCompleted { .. }) => {
                            // Our own commit whose answer was lost, or another replica's
                            // recovery after this one was cut off for longer than the grace.
                            warn!(
                                cid,
                                nonce,
                                "spooled outcome: the execution already has an outcome; not written twice"
                            );
                            Ok(vec![seq])
                        }
                        Err(e @ StoreError::Invalid { .. }) => {
                            error!(cid, nonce, error = %error_chain(&e), "ALERT: spooled outcome refused by the store; dropped");
                            Ok(vec![seq])
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match taken {
                Ok(seqs) => {
                    if let Err(e) = self.spool.remove(&seqs) {
                        error!(error = %e, "cannot remove written records from the spool");
                        break;
                    }
                }
                Err(e) => {
                    warn!(error = %e, waiting = self.spool.len(), "spool not flushed yet");
                    break;
                }
            }
        }
        self.metrics.set_pending_records(self.spool.len());
        self.spool.len()
    }

    /// Close the summary window, if it counted anything, and append its summary record under
    /// the id allocated when the window opened. Without a trusted time the window stays open
    /// (and keeps counting) until a later call.
    pub async fn write_summary(&self) {
        let now_ms = match self.clock.now_ms() {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "summary record waits for a trusted clock");
                return;
            }
        };
        let Some(Summary { summary_id, clients, dropped }) = self.limiter.take_window() else {
            return;
        };
        self.metrics.preauth_dropped(dropped);
        let reason = format!(
            "summary: {dropped} refusals from {clients} clients were not recorded individually (pre-authentication failures over the rate limit, or refused while the clock was not trustworthy)"
        );
        let mut record = self.signer.decision(
            Decision::Reject,
            Some(FailedCheck::Parse),
            &reason,
            &Presented::default(),
            Some("summary".into()),
            now_ms,
        );
        record.id = summary_id;
        match self.signer.sign_decision(&record) {
            Ok(signed) => self.append_or_backlog(signed).await,
            Err(e) => error!(error = %e, record_id = %record.id, "cannot sign summary record"),
        }
    }

    /// Sign and store a checkpoint of the current ledger if it grew since the last one.
    /// Returns the newest checkpoint (`None` only for an empty ledger with no checkpoint).
    pub async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let size = self.store.ledger_size().await?;
        self.metrics.set_ledger_size(size);
        let latest = self.store.latest_checkpoint().await?;
        if latest.as_ref().is_some_and(|c| c.size == size) {
            return Ok(latest);
        }
        let at_ms = match self.clock.now_ms() {
            Ok(t) => t,
            Err(e) => {
                // Nothing is signed without a trusted time: the next tick retries.
                warn!(error = %e, "checkpoint waits for a trusted clock");
                return Ok(latest);
            }
        };
        let root = self.store.root(size).await?;
        let note = Checkpoint { origin: self.settings.origin.clone(), size, root }
            .sign(&self.settings.origin, self.signer.key());
        let cp = StoredCheckpoint { size, note, at_ms };
        match self.store.put_checkpoint(cp.clone()).await {
            Ok(()) => Ok(Some(cp)),
            Err(e) => {
                // Another replica sharing the store may have stored a newer checkpoint between
                // our read of the size and our write (checkpoints only move forward): that one
                // is as good an answer. Anything else is the original error.
                match self.store.latest_checkpoint().await {
                    Ok(Some(newer)) if newer.size >= size => Ok(Some(newer)),
                    _ => Err(e),
                }
            }
        }
    }
}
