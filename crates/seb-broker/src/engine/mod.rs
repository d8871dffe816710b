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

mod checks;
mod live;
mod recording;
mod recovery;
mod reserve;
mod run;
mod statement;

pub use live::LiveExecutions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seb_core::certificate::CertificateTrust;
use seb_core::json;
use seb_core::keys::TrustedKeys;
use seb_core::pipeline::{ApproverRegistry, BrokerPolicy, PathRules};
use seb_core::types::{Decision, FailedCheck, OutcomeRecord, Platform};
use seb_store::{Store, StoreError, error_chain};
use seb_target::{Execution, Target};
use serde::Serialize;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::ratelimit::PreauthLimiter;
use crate::records::RecordSigner;
use crate::spool::Spool;

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
    /// Whether the operation's profile has no precondition (recorded, spec section 7).
    unpinned: bool,
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
    retirements: Mutex<Vec<live::AwaitingRetirement>>,
    /// Configured plus store-enrolled approvers for check 3 (spec 5.1).
    enrolled: crate::approvers::EnrolledCache,
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
}

/// The reason of a refusal because the store did not answer: always says so, with the
/// store error's whole cause chain.
fn store_reason(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable { .. } => error_chain(e),
        other => format!("store unavailable: {}", error_chain(other)),
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
