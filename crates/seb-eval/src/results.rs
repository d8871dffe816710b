//! The machine-readable results (`results.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub meta: Meta,
    pub micro: Vec<StepRow>,
    pub overhead: Vec<OverheadRun>,
    pub throughput: Vec<ThroughputPoint>,
    pub revocation: Vec<RevocationRun>,
    pub drift: Option<DriftResult>,
    pub attacks: Vec<AttackClass>,
    pub crashes: Vec<CrashStep>,
    /// Experiments (or parts) that could not run, with the error. Never silently empty.
    pub errors: Vec<String>,
}

/// The run and the machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub quick: bool,
    pub seed: u64,
    pub cores: usize,
    pub load_average_start: String,
    pub load_average_end: String,
    pub kernel: String,
    pub cpu_model: String,
    pub profile: String,
}

/// A paper figure (milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PaperFigure {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub note: String,
}

/// One micro-benchmark step (milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRow {
    pub name: String,
    pub summary: Summary,
    pub paper: Option<PaperFigure>,
}

/// Broker overhead on one platform and variant (milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverheadRun {
    pub platform: String,
    pub variant: String,
    /// True when a figure is computed (e.g. total minus a step) rather than measured.
    pub derived: bool,
    pub n: usize,
    pub warmup: usize,
    /// `total - mutate` (the paper's broker overhead: everything but the mutation call).
    pub overhead: Summary,
    /// `total - (observe + mint + mutate + retire)`: the broker's own work.
    pub broker_internal: Summary,
    pub total: Summary,
    pub steps: BTreeMap<String, Summary>,
    pub paper: Option<PaperFigure>,
    pub note: String,
}

/// Throughput at one concurrency level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThroughputPoint {
    pub platform: String,
    pub concurrency: usize,
    pub executions: usize,
    pub applied: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Summary,
    pub note: String,
}

/// Revocation propagation in one mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevocationRun {
    pub mode: String,
    pub trials: usize,
    /// Executions that started after the revocation committed and were still admitted.
    pub admitted_after_revoke: usize,
    /// Per trial: last admitted start after the commit minus the commit time (0 if none).
    pub window_ms: Summary,
    /// Per trial: commit until the first refusal returned.
    pub first_refusal_ms: Summary,
    pub poll_interval_ms: Option<u64>,
    pub note: String,
}

/// Drift detection counts for one mutation kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DriftCounts {
    pub cases: usize,
    pub expected_reject: usize,
    pub expected_pass: usize,
    /// Expected reject, refused at the drift check.
    pub detected: usize,
    /// Expected reject, admitted.
    pub missed: usize,
    /// Expected pass, admitted.
    pub passed: usize,
    /// Expected pass, refused.
    pub false_rejects: usize,
    /// Any other result (refused at another check, error).
    pub other: usize,
}

/// The drift experiment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriftResult {
    pub by_kind: BTreeMap<String, DriftCounts>,
    pub total: DriftCounts,
    /// Every case ended as expected.
    pub matches_expectation: bool,
}

/// One attack class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AttackClass {
    pub class: String,
    pub from_paper: bool,
    pub cases: usize,
    pub rejected: usize,
    pub escaped: usize,
    /// failed_check (or platform refusal) → count.
    pub failed_checks: BTreeMap<String, usize>,
    /// Variant → count.
    pub variants: BTreeMap<String, usize>,
    /// A legitimate case built the same way was admitted (the rejections are not vacuous).
    pub baseline_admitted: bool,
    pub escapes: Vec<String>,
    /// Split-proposal classes: how often a single-step change got a stronger requirement
    /// with net-effect scoring than alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_escalation: Option<FalseEscalation>,
}

/// False escalations of single-step changes (spec 5.2).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FalseEscalation {
    /// Single-step changes submitted (each with an empty window).
    pub singles: usize,
    /// Of them, those whose requirement under `enforce` was stronger than under `shadow`.
    pub escalated: usize,
    pub rate: f64,
}

/// Crash injection at one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CrashStep {
    pub step: String,
    pub crashes: usize,
    /// Child processes that really aborted at the step.
    pub aborted: usize,
    /// Executions whose mutation happened more than once.
    pub duplicates: usize,
    /// Admitted executions without exactly one outcome record after recovery.
    pub unrecorded_outcomes: usize,
    /// Re-presenting the same certificate after recovery was refused.
    pub replays_refused: usize,
    /// Mutations applied (0 or 1 per crash).
    pub applied: usize,
    pub recovered_statuses: BTreeMap<String, usize>,
    pub ledger_verified: bool,
    pub ledger_entries: u64,
    /// Platform tokens still valid after recovery (summed over crashes). The test double's
    /// tokens never expire; real platforms bound them by TTL (TokenRequest 600 s, STS 900 s).
    pub live_tokens_after_recovery: usize,
    pub problems: Vec<String>,
}
