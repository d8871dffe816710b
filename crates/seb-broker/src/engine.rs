//! The enforcement engine: drives spec section 7 in order over a [`Store`] and [`Target`]s.
//!
//! Architecture invariants (each has a test in `tests/pipeline.rs`):
//! - Nothing mints a credential without a verified certificate and a reserved nonce: the
//!   only call to [`Target::mint`] is in [`Broker::run_reserved`], which takes a
//!   [`Reserved`] that only [`Broker::reserve`] constructs from a successful reservation.
//! - The admit record is durable (committed with the reservation) before any credential
//!   exists.
//! - The credential is retired right after the call, whatever the call's outcome; a
//!   retirement that fails (there, or for a crashed execution at recovery) is retried with
//!   backoff until it succeeds.
//! - Every failure of checks 1–12 produces a signed decision record (pre-authentication
//!   failures are rate-limited per client and counted in summaries); every attempt after a
//!   reservation produces a signed outcome record.
//! - A reserved nonce is never released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seb_core::certificate::CertificateTrust;
use seb_core::json;
use seb_core::keys::TrustedKeys;
use seb_core::pipeline::{
    self, ApproverRegistry, Authenticated, BrokerPolicy, EpochView, PathRules, Presented, Rejection,
};
use seb_core::types::{
    Decision, EpochStatement, FailedCheck, OutcomeRecord, OutcomeStatus, Platform,
};
use seb_ledger::checkpoint::Checkpoint;
use seb_store::{
    PendingExecution, Reservation, ReserveResult, Revocation, Store, StoreError, StoredCheckpoint,
    error_chain,
};
use seb_target::{Execution, Identity, MutationResult, MutationStatus, Reconciled, Target};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::clock::{Clock, ClockError};
use crate::metrics::Metrics;
use crate::ratelimit::{PreauthLimiter, Summary};
use crate::records::{RecordSigner, SignedRecord, digest_opt, new_record_id};
use crate::spool::{Kept, Spool, Spooled};

/// Static settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub body_limit: usize,
    pub skew_ms: u64,
    pub max_validity_s: u64,
    pub epoch_max_staleness_ms: u64,
    pub target_timeout: Duration,
    pub origin: String,
    pub preauth_records_per_minute: u32,
    /// Where the epochs come from.
    pub epoch_source: EpochSource,
}

/// Where a broker learns the active epochs and revocations.
#[derive(Debug, Clone, Default)]
pub enum EpochSource {
    /// The store is authoritative (embedded, or shared PostgreSQL): read per request and
    /// re-read inside the reservation transaction (zero window).
    #[default]
    Store,
    /// Signed epoch statements from admission (brokers that do not share its store), applied
    /// to the local store; the broker fails closed once the newest is older than its TTL.
    Statement {
        /// Admission keys allowed to sign statements.
        admission_keys: TrustedKeys,
    },
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            body_limit: json::DEFAULT_MAX_BODY,
            skew_ms: 30_000,
            max_validity_s: 300,
            epoch_max_staleness_ms: 5_000,
            target_timeout: Duration::from_secs(10),
            origin: "seb.local/ledger".into(),
            preauth_records_per_minute: 60,
            epoch_source: EpochSource::Store,
        }
    }
}

/// Trust material the engine checks certificates against.
#[derive(Debug, Clone, Default)]
pub struct TrustRoots {
    pub issuers: TrustedKeys,
    pub break_glass: TrustedKeys,
    pub break_glass_quorum: usize,
    pub approvers: ApproverRegistry,
    pub path_rules: PathRules,
}

/// A refusal at checks 1–12, already recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub failed_check: FailedCheck,
    pub decision: Decision,
    pub reason: String,
    /// The decision record's id (or the summary's, for rate-limited pre-auth failures).
    pub record_id: String,
    /// Whether the record was written individually (false: counted in a summary).
    pub recorded: bool,
}

impl Refusal {
    /// The HTTP status of spec section 7.
    pub fn http_status(&self) -> u16 {
        match (self.failed_check, self.decision) {
            (_, Decision::FailClosed) => 503,
            (_, Decision::Readmit) => 409,
            (FailedCheck::Parse, _) => 400,
            _ => 403,
        }
    }
}

/// An admitted execution's report.
#[derive(Debug, Clone, Serialize)]
pub struct Executed {
    pub decision: Decision,
    pub cid: String,
    pub nonce: String,
    pub admit_record_id: String,
    pub admit_index: u64,
    pub outcome: OutcomeRecord,
    /// Ledger index of the outcome record once the store took it; `null` while it waits
    /// (see `outcome_state`).
    pub outcome_index: Option<u64>,
    /// Where the outcome record is as the answer is sent.
    pub outcome_state: OutcomeState,
    /// Whether the operation's profile has no precondition (recorded, spec section 7).
    pub unpinned: bool,
    /// Time spent in each step, microseconds (`authenticate`, `state`, `observe`, `reserve`,
    /// `mint`, `dispatch`, `mutate`, `retire`, `outcome`, `total`).
    pub timings_us: BTreeMap<&'static str, u64>,
}

/// Where an execution's outcome record is when the broker answers (spec section 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeState {
    /// In the ledger at `outcome_index`.
    Recorded,
    /// The store did not take it; it is synced to this replica's spool and will be written
    /// to the ledger, byte for byte with this `outcome.id`, once the store answers again.
    Spooled,
    /// Neither the store nor the spool took it: it waits in this replica's memory only. If
    /// the replica dies before the store is back, crash recovery records the execution by
    /// observation under another id.
    Unsaved,
}

/// Result of one presentation.
pub type ExecResult = Result<Executed, Refusal>;

/// A nonce reservation that committed: the only way to reach minting.
#[derive(Debug)]
pub struct Reserved {
    exec: Execution,
    admit_record_id: String,
    admit_index: u64,
    /// The trusted time of the reservation (the floor of the outcome's times).
    reserved_ms: u64,
}

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
    fn register<'a>(&'a self, names: Vec<String>, exec: &Execution) -> LiveGuard<'a> {
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
struct LiveGuard<'a> {
    live: &'a LiveExecutions,
    names: Vec<String>,
}

impl LiveGuard<'_> {
    fn add(&mut self, name: &str, exec: &Execution) {
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

/// The broker.
pub struct Broker {
    store: Arc<dyn Store>,
    targets: BTreeMap<Platform, Arc<dyn Target>>,
    signer: RecordSigner,
    trust: TrustRoots,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    limiter: PreauthLimiter,
    live: LiveExecutions,
    /// Signed records the store did not take (outcomes, decision records), kept until it
    /// does; durable when the spool has a file.
    spool: Spool,
    /// One spool flush at a time (two would append the same decision record twice).
    flushing: tokio::sync::Mutex<()>,
    /// Other replicas' open executions seen orphaned, and since when (periodic reconcile).
    orphans_seen: Mutex<BTreeMap<(String, String), Instant>>,
    /// Statement mode: (issued_at_ms, ttl_ms) of the newest applied statement.
    statement: Mutex<Option<(u64, u64)>>,
    /// Identities whose retirement failed, retried with backoff until it succeeds.
    retirements: Mutex<Vec<AwaitingRetirement>>,
    /// Configured plus store-enrolled approvers for check 3 (spec 5.1).
    enrolled: crate::approvers::EnrolledCache,
}

/// An execution whose identity could not be retired yet (after a crash, or a failed retire).
#[derive(Debug)]
struct AwaitingRetirement {
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

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("store", &self.store.backend())
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .field("kid", self.signer.kid())
            .finish_non_exhaustive()
    }
}

/// Step timings of one execution, mirrored into the metrics.
#[derive(Debug, Default)]
struct Timings(BTreeMap<&'static str, u64>);

impl Timings {
    fn record(&mut self, metrics: &Metrics, step: &'static str, since: Instant) {
        let d = since.elapsed();
        metrics.step(step, d.as_secs_f64());
        self.0.insert(step, u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
}

/// Fault injection for crash tests: abort the process at a named step (feature
/// `fault-injection`, never in a product build).
#[cfg(feature = "fault-injection")]
fn crash_point(step: &str) {
    if std::env::var("SEB_CRASH_AT").is_ok_and(|v| v == step) {
        eprintln!("SEB_CRASH_AT={step}: aborting");
        std::process::abort();
    }
}
#[cfg(not(feature = "fault-injection"))]
fn crash_point(_step: &str) {}

impl Broker {
    /// Assemble a broker.
    pub fn new(
        store: Arc<dyn Store>,
        targets: Vec<Arc<dyn Target>>,
        signer: RecordSigner,
        trust: TrustRoots,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let limiter = PreauthLimiter::new(settings.preauth_records_per_minute);
        Self {
            store,
            targets: targets.into_iter().map(|t| (t.platform(), t)).collect(),
            signer,
            trust,
            settings,
            clock,
            metrics: Metrics::new(),
            limiter,
            live: LiveExecutions::default(),
            spool: Spool::in_memory(),
            flushing: tokio::sync::Mutex::new(()),
            orphans_seen: Mutex::new(BTreeMap::new()),
            statement: Mutex::new(None),
            retirements: Mutex::new(Vec::new()),
            enrolled: crate::approvers::EnrolledCache::default(),
        }
    }

    /// Keep the records the store does not take in `spool` (a file makes them durable)
    /// instead of memory.
    #[must_use]
    pub fn with_spool(mut self, spool: Spool) -> Self {
        self.metrics.set_pending_records(spool.len());
        self.spool = spool;
        self
    }

    /// The spool of records waiting for the store.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    /// The record signer.
    pub fn signer(&self) -> &RecordSigner {
        &self.signer
    }
    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    /// Live execution identities.
    pub fn live(&self) -> &LiveExecutions {
        &self.live
    }
    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }
    /// The configured target for a platform.
    pub fn target(&self, p: Platform) -> Option<&Arc<dyn Target>> {
        self.targets.get(&p)
    }

    fn policy_with<'a>(&'a self, approvers: &'a ApproverRegistry) -> BrokerPolicy<'a> {
        BrokerPolicy {
            trust: CertificateTrust {
                issuers: &self.trust.issuers,
                break_glass: &self.trust.break_glass,
                break_glass_quorum: self.trust.break_glass_quorum,
                limit: self.settings.body_limit,
            },
            approvers,
            path_rules: &self.trust.path_rules,
            skew_ms: self.settings.skew_ms,
            max_validity_s: self.settings.max_validity_s,
        }
    }

    /// Run one presentation through the whole pipeline. `client` identifies the transport
    /// peer (address or mTLS subject) for rate limiting and pre-auth records.
    pub async fn execute(&self, body: &[u8], client: &str) -> ExecResult {
        let total = Instant::now();
        let mut timings = Timings::default();
        let now_ms = match self.clock.now_ms() {
            Ok(t) => t,
            Err(e) => return Err(self.refuse_untimed(client, &e)),
        };
        // Checks 1–6.
        let t = Instant::now();
        // Bind first: the policy borrows non-Send trait objects and must not live across
        // an await.
        let approvers = self.enrolled.registry(&self.trust.approvers, self.store.as_ref()).await;
        let authenticated = pipeline::authenticate(body, &self.policy_with(&approvers), now_ms);
        let auth = match authenticated {
            Ok(a) => a,
            Err(rej) => return Err(self.refuse(rej, client, now_ms).await),
        };
        timings.record(&self.metrics, "authenticate", t);
        let c = auth.certificate().payload();
        let Some(target) = self.targets.get(&c.contract.platform).cloned() else {
            let rej = auth.reject(
                FailedCheck::Scope,
                Decision::Reject,
                format!("platform `{}` is not configured on this broker", c.contract.platform),
            );
            return Err(self.refuse(rej, client, now_ms).await);
        };
        // Checks 7–10.
        let t = Instant::now();
        let epochs = self.epoch_view(&c.cid, &c.subject.agent, now_ms).await;
        let epochs = match epochs {
            Ok(e) => e,
            Err(e) => {
                let rej =
                    auth.reject(FailedCheck::Revocation, Decision::FailClosed, store_reason(&e));
                return Err(self.refuse(rej, client, now_ms).await);
            }
        };
        // A store that cannot answer is named as such, never as a replay.
        let reserved = match self.store.is_reserved(&c.cid, &c.nonce).await {
            Ok(r) => r,
            Err(e) => {
                let rej = auth.reject(FailedCheck::Reserve, Decision::FailClosed, store_reason(&e));
                return Err(self.refuse(rej, client, now_ms).await);
            }
        };
        if let Err(rej) =
            pipeline::check_state(&auth, epochs.as_ref(), now_ms, target.as_ref(), reserved)
        {
            return Err(self.refuse(rej, client, now_ms).await);
        }
        timings.record(&self.metrics, "state", t);
        // Check 11.
        let mut exec = execution_of(&auth);
        let t = Instant::now();
        let observed = tokio::time::timeout(
            self.settings.target_timeout,
            target.observe(&exec.observe_request()),
        )
        .await;
        timings.record(&self.metrics, "observe", t);
        let observation = match observed {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err("timed out".to_owned()),
        };
        let observed_digest =
            match pipeline::check_drift(&auth, observation.as_ref().map_err(String::as_str)) {
                Ok(d) => d,
                Err(rej) => return Err(self.refuse(rej, client, now_ms).await),
            };
        exec.observed_version = observation.ok().and_then(|o| o.version);
        let mut presented = auth.presented().clone();
        presented.observed_digest = Some(observed_digest);
        // Checks 12–13.
        let t = Instant::now();
        let reserved = self.reserve(&auth, &presented, exec, client, now_ms).await?;
        timings.record(&self.metrics, "reserve", t);
        crash_point("after_reserve");
        let unpinned =
            target.profile(&reserved.exec.op).map(|p| p.precondition.is_none()).unwrap_or(true);
        let mut out = self.run_reserved(target.as_ref(), reserved, unpinned, &mut timings).await;
        timings.record(&self.metrics, "total", total);
        out.timings_us = timings.0;
        Ok(out)
    }

    /// The epoch state for checks 7–10: `Ok(None)` when there is none to trust (no
    /// statement yet), `Err` when the store could not be read.
    async fn epoch_view(
        &self,
        cid: &str,
        agent: &str,
        now_ms: u64,
    ) -> Result<Option<EpochView>, StoreError> {
        // In statement mode the state is as fresh as the newest statement, and may be no
        // older than that statement's TTL.
        let (as_of_ms, max_staleness_ms) = match &self.settings.epoch_source {
            EpochSource::Store => (now_ms, self.settings.epoch_max_staleness_ms),
            EpochSource::Statement { .. } => match self.statement.lock().ok().and_then(|g| *g) {
                Some(fresh) => fresh,
                None => {
                    warn!("no epoch statement received yet");
                    return Ok(None);
                }
            },
        };
        match self.store.epoch_check(cid, agent).await {
            Ok(ec) => Ok(Some(EpochView {
                policy_epoch: ec.epochs.policy_epoch,
                revocation_epoch: ec.epochs.revocation_epoch,
                revoked_cids: if ec.cid_revoked {
                    [cid.to_owned()].into()
                } else {
                    Default::default()
                },
                revoked_agents: if ec.agent_revoked {
                    [agent.to_owned()].into()
                } else {
                    Default::default()
                },
                as_of_ms,
                max_staleness_ms,
            })),
            Err(e) => {
                warn!(error = %error_chain(&e), "epoch state unreadable");
                Err(e)
            }
        }
    }

    async fn reserve(
        &self,
        auth: &Authenticated,
        presented: &Presented,
        exec: Execution,
        client: &str,
        now_ms: u64,
    ) -> Result<Reserved, Refusal> {
        let c = auth.certificate().payload();
        let record =
            self.signer.decision(Decision::Admit, None, "admitted", presented, None, now_ms);
        let intent = json::canonical(&exec);
        let signed = self.signer.sign_decision(&record);
        let (Ok(signed), Ok(intent)) = (signed, intent) else {
            let rej = auth.reject(
                FailedCheck::Reserve,
                Decision::FailClosed,
                "cannot encode the admit record",
            );
            return Err(self.refuse(rej, client, now_ms).await);
        };
        let res = self
            .store
            .reserve(Reservation {
                cid: c.cid.clone(),
                nonce: c.nonce.clone(),
                agent: c.subject.agent.clone(),
                policy_epoch: c.policy_epoch,
                revocation_epoch: c.revocation_epoch,
                admit_entry: signed.entry,
                intent,
                at_ms: now_ms,
            })
            .await;
        let fail = |decision, reason: String| {
            let mut rej = auth.reject(FailedCheck::Reserve, decision, reason);
            rej.presented = Box::new(presented.clone());
            rej
        };
        match res {
            Ok(ReserveResult::Reserved { admit_index }) => {
                self.metrics.decision("admit", None);
                info!(cid = %c.cid, nonce = %c.nonce, decision = "admit", ledger_index = admit_index, break_glass = record.break_glass, "admitted");
                Ok(Reserved { exec, admit_record_id: record.id, admit_index, reserved_ms: now_ms })
            }
            Ok(ReserveResult::Replay) => {
                Err(self.refuse(fail(Decision::Reject, "nonce already reserved (lost the race)".into()), client, now_ms).await)
            }
            Ok(ReserveResult::EpochChanged { active }) => Err(self
                .refuse(
                    fail(
                        Decision::FailClosed,
                        format!(
                            "epochs changed before the reservation committed (policy {}, revocation {})",
                            active.policy_epoch, active.revocation_epoch
                        ),
                    ),
                    client,
                    now_ms,
                )
                .await),
            Ok(ReserveResult::Revoked { reason }) => {
                Err(self.refuse(fail(Decision::FailClosed, reason), client, now_ms).await)
            }
            Err(e) => Err(self.refuse(fail(Decision::FailClosed, store_reason(&e)), client, now_ms).await),
        }
    }

    /// Steps 14–17 for a committed reservation.
    async fn run_reserved(
        &self,
        target: &dyn Target,
        r: Reserved,
        unpinned: bool,
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
                    .finish(
                        r,
                        started_ms,
                        None,
                        failed(format!("mint: {}", error_chain(&e))),
                        unpinned,
                    )
                    .await;
            }
            Err(_) => {
                return self
                    .finish(r, started_ms, None, failed("mint: timed out".into()), unpinned)
                    .await;
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
                    unpinned,
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
                                unpinned,
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
        let done = self.finish(r, started_ms, Some(identity_name), result, unpinned).await;
        timings.record(&self.metrics, "outcome", t);
        done
    }

    async fn retire(&self, target: &dyn Target, exec: &Execution, identity: Identity) {
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
    async fn retire_orphans_once(&self, exec: &Execution) -> Result<(), String> {
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
    fn queue_retirement(&self, exec: Execution) {
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

    async fn finish(
        &self,
        r: Reserved,
        started_ms: u64,
        identity: Option<String>,
        m: MutationResult,
        unpinned: bool,
    ) -> Executed {
        let status = match m.status {
            MutationStatus::Applied => OutcomeStatus::Applied,
            MutationStatus::Failed => OutcomeStatus::Failed,
            MutationStatus::Conflict => OutcomeStatus::Conflict,
        };
        self.finish_as(r, started_ms, identity, status, m, unpinned).await
    }

    /// Build, sign and store the outcome record with an explicit status.
    async fn finish_as(
        &self,
        r: Reserved,
        started_ms: u64,
        identity: Option<String>,
        status: OutcomeStatus,
        m: MutationResult,
        unpinned: bool,
    ) -> Executed {
        let mut error = m.error;
        if unpinned && status == OutcomeStatus::Applied {
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
        self.complete(r, outcome, unpinned).await
    }

    async fn complete(&self, r: Reserved, outcome: OutcomeRecord, unpinned: bool) -> Executed {
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
            unpinned,
            timings_us: BTreeMap::new(),
        }
    }

    /// Refuse an execution when the clock gives no trusted time: nothing is reserved, and
    /// nothing is signed now (there is no trustworthy `at_ms` to sign). The refusal is counted
    /// in the open summary window, whose record is signed once the clock is trusted again,
    /// and the body names that summary record.
    fn refuse_untimed(&self, client: &str, e: &ClockError) -> Refusal {
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

    /// Write a signed outcome; when the store does not take it, keep it in the spool (synced
    /// to disk before the client is answered) for [`Broker::flush_spool`]. The normal path
    /// is one store call and no local write.
    async fn record_outcome(
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

    /// Record a failed check and build the refusal.
    async fn refuse(&self, rej: Rejection, client: &str, now_ms: u64) -> Refusal {
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

    async fn append_or_backlog(&self, signed: SignedRecord) {
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

    fn spool_record(&self, entry: Vec<u8>, store_error: Option<StoreError>) {
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

    /// Statement mode: verify a signed epoch statement from admission and apply it to the
    /// local store. Epochs only move forward; a statement older than the newest applied one
    /// is refused (no rollback by replaying an old statement).
    pub async fn apply_statement(
        &self,
        envelope: &seb_core::envelope::Envelope,
    ) -> Result<EpochStatement, String> {
        let EpochSource::Statement { admission_keys } = &self.settings.epoch_source else {
            return Err("this broker reads epochs from its store, not from statements".into());
        };
        let verified = envelope
            .verify(seb_core::envelope::PayloadType::Epoch, admission_keys)
            .map_err(|e| format!("statement: {e}"))?;
        let st: EpochStatement =
            verified.parse(self.settings.body_limit).map_err(|e| format!("statement: {e}"))?;
        if let Ok(g) = self.statement.lock()
            && let Some((newest, _)) = *g
            && st.issued_at_ms < newest
        {
            return Err(format!(
                "statement issued at {} is older than the applied one ({newest})",
                st.issued_at_ms
            ));
        }
        let now_ms = self.clock.now_ms().map_err(|e| format!("statement not applied: {e}"))?;
        let store_err = |e: StoreError| format!("store: {}", error_chain(&e));
        // Bring the local store up to the statement (monotonic, idempotent).
        let mut ep = self.store.epochs().await.map_err(store_err)?;
        if ep.policy_epoch > st.policy_epoch || ep.revocation_epoch > st.revocation_epoch {
            return Err("statement would move an epoch backwards".into());
        }
        while ep.policy_epoch < st.policy_epoch {
            ep = self.store.bump_policy_epoch(now_ms, None).await.map_err(store_err)?;
        }
        while ep.revocation_epoch < st.revocation_epoch {
            ep = self.store.revoke(Revocation::All, now_ms, None).await.map_err(store_err)?;
        }
        let (cids, agents) = self.store.revocations().await.map_err(store_err)?;
        for c in st.revoked_cids.iter().filter(|c| !cids.contains(c)) {
            self.store.revoke(Revocation::Cid(c.clone()), now_ms, None).await.map_err(store_err)?;
        }
        for a in st.revoked_agents.iter().filter(|a| !agents.contains(a)) {
            self.store
                .revoke(Revocation::Agent(a.clone()), now_ms, None)
                .await
                .map_err(store_err)?;
        }
        if let Ok(mut g) = self.statement.lock() {
            *g = Some((st.issued_at_ms, st.ttl_ms));
        }
        info!(
            policy_epoch = st.policy_epoch,
            revocation_epoch = st.revocation_epoch,
            "epoch statement applied"
        );
        Ok(st)
    }

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
    fn not_spooled(&self, pending: Vec<PendingExecution>) -> Vec<PendingExecution> {
        pending.into_iter().filter(|p| !self.spool.has_outcome(&p.cid, &p.nonce)).collect()
    }

    /// Resolve admits without an outcome by observation.
    async fn resolve_pending(
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

/// The reason of a refusal because the store did not answer: always says so, with the
/// store error's whole cause chain.
fn store_reason(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable { .. } => error_chain(e),
        other => format!("store unavailable: {}", error_chain(other)),
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

fn execution_of(auth: &Authenticated) -> Execution {
    let c = auth.certificate().payload();
    let r = auth.request();
    Execution {
        cid: c.cid.clone(),
        nonce: c.nonce.clone(),
        agent: c.subject.agent.clone(),
        risk_level: c.contract.risk_level,
        platform: c.contract.platform,
        op: r.op.clone(),
        target: r.target.clone(),
        params: r.params.clone(),
        contract: c.contract.clone(),
        evidence: c.evidence.projection.clone(),
        observed_version: None,
        break_glass: auth.certificate().is_break_glass(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal because the store failed names it as such and carries the cause.
    #[test]
    fn a_store_refusal_reason_carries_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = StoreError::unavailable_from("postgres", io);
        assert_eq!(store_reason(&e), "store unavailable: postgres: connection refused");
        let e = StoreError::corrupt_from("ledger", seb_ledger::LedgerError::EmptyTree);
        assert_eq!(
            store_reason(&e),
            "store unavailable: store corrupt: ledger: a tree of size 0 has no proofs"
        );
    }
}
