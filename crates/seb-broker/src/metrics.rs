//! Prometheus metrics: decisions by check, outcomes by status, latency per step.
//!
//! Refusals before the certificate is authenticated (`parse`, `signature`) are counted in
//! `seb_preauth_refusals_total`, apart from `seb_decisions_total`: anyone can send garbage,
//! so it must not raise the `fail_closed` decisions an operator is paged on.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
    failed_check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

fn step_histogram() -> Histogram {
    // 10 µs .. ~10 s
    Histogram::new(exponential_buckets(0.000_01, 2.0, 21))
}

/// The broker's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    preauth_refusals: Family<DecisionLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    steps: Family<StepLabels, Histogram, fn() -> Histogram>,
    preauth_dropped: Counter,
    ledger_size: Gauge,
    pending_records: Gauge,
    awaiting_retirement: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seb");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let preauth_refusals = Family::<DecisionLabels, Counter>::default();
        let steps = Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            step_histogram,
        );
        let preauth_dropped = Counter::default();
        let ledger_size = Gauge::default();
        let pending_records = Gauge::default();
        let awaiting_retirement = Gauge::default();
        registry.register(
            "decisions",
            "Broker decisions on authenticated certificates (and admits) by decision and failed check",
            decisions.clone(),
        );
        registry.register(
            "preauth_refusals",
            "Refusals before the certificate is authenticated (parse, signature), by decision and failed check; not in seb_decisions_total",
            preauth_refusals.clone(),
        );
        registry.register("outcomes", "Execution outcomes by status", outcomes.clone());
        registry.register("step_duration_seconds", "Latency of each pipeline step", steps.clone());
        registry.register(
            "preauth_records_dropped",
            "Pre-authentication failure records folded into summaries",
            preauth_dropped.clone(),
        );
        registry.register("ledger_size", "Entries in the ledger", ledger_size.clone());
        registry.register(
            "pending_records",
            "Signed records (decisions, outcomes) waiting in the spool for the store",
            pending_records.clone(),
        );
        registry.register(
            "identities_awaiting_retirement",
            "Execution identities (after a crash or a failed retire) whose deletion is being retried",
            awaiting_retirement.clone(),
        );
        Self {
            registry,
            decisions,
            preauth_refusals,
            outcomes,
            steps,
            preauth_dropped,
            ledger_size,
            pending_records,
            awaiting_retirement,
        }
    }

    /// Count a decision.
    pub fn decision(&self, decision: &str, failed_check: Option<&str>) {
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: decision.to_owned(),
                failed_check: failed_check.unwrap_or("").to_owned(),
            })
            .inc();
    }

    /// Count a refusal before authentication (kept out of [`Metrics::decision`]).
    pub fn preauth_refusal(&self, decision: &str, failed_check: &str) {
        self.preauth_refusals
            .get_or_create(&DecisionLabels {
                decision: decision.to_owned(),
                failed_check: failed_check.to_owned(),
            })
            .inc();
    }

    /// Count an outcome.
    pub fn outcome(&self, status: &str) {
        self.outcomes.get_or_create(&OutcomeLabels { status: status.to_owned() }).inc();
    }

    /// Observe a step's duration.
    pub fn step(&self, step: &str, seconds: f64) {
        self.steps.get_or_create(&StepLabels { step: step.to_owned() }).observe(seconds);
    }

    /// Count dropped pre-authentication records.
    pub fn preauth_dropped(&self, n: u64) {
        self.preauth_dropped.inc_by(n);
    }

    /// Set the ledger size gauge.
    pub fn set_ledger_size(&self, n: u64) {
        self.ledger_size.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Set the pending records gauge.
    pub fn set_pending_records(&self, n: usize) {
        self.pending_records.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Set the identities-awaiting-retirement gauge.
    pub fn set_awaiting_retirement(&self, n: usize) {
        self.awaiting_retirement.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
