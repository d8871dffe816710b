//! Net-effect scoring (SEB-SPEC section 5.2): a proposal is scored alone and as the net
//! effect of the same agent's changes certified on the same scope within the window,
//! followed by this one; the stronger path wins (`enforce`, the default) or is only
//! computed, logged and shown (`shadow`). Documented in `docs/admission.md`.
//!
//! The model per operation is the platform profile's ([`seb_target::PlatformProfile::change`],
//! [`seb_target::net_effect::net`], [`seb_target::PlatformProfile::net_consequence`]); this
//! module is the admission side: configuration, the Cedar context (`context.evidence`,
//! `context.change`, `context.cumulative`), combining the two evaluations, the view, and
//! the log records. The store's [`seb_store::NetEffectLog`] gives the window and the
//! serial compare-and-append.
//!
//! Invariants:
//! - In `enforce` mode the requirement is `max(alone, net)` field by field
//!   ([`crate::paths::Requirement::max`]), and a proposal is permitted only if the policy
//!   permits both evaluations: net effect can only add requirements.
//! - A window that cannot be read, or a logged change that does not parse, fails closed in
//!   `enforce` mode (the proposal is denied); in `shadow` mode it is logged and ignored.
//! - A certified change is appended to the log before its certificate exists, only if the
//!   window is unchanged since it was scored; otherwise it is scored again.

use std::collections::BTreeMap;

use seb_core::types::RiskLevel;
use seb_store::{CertifiedChange, NetEffectAppend, Store};
use seb_target::net_effect::net;
use seb_target::{Change, NetScope, PlatformProfile};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::AdmissionError;
use crate::paths::Requirement;
use crate::policy::{PolicyOutcome, cedar_json};
use crate::scoring::{Score, ScoringConfig};

/// `[admission] net_effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetEffectMode {
    /// The stronger of the two paths is required (default).
    #[default]
    Enforce,
    /// Computed, logged and shown; the proposal's own path is required.
    Shadow,
}

/// Default window: one hour.
pub const DEFAULT_WINDOW_S: u64 = 3600;
/// Longest window accepted: seven days.
pub const MAX_WINDOW_S: u64 = 7 * 24 * 3600;
/// Most related changes read into one assessment (the oldest beyond it are dropped from
/// the view, never from the net: the net is folded over all of them).
pub const MAX_RELATED_SHOWN: usize = 100;

/// The net-effect settings of one admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetEffectSettings {
    pub mode: NetEffectMode,
    pub window_ms: u64,
    pub scope: NetScope,
}

impl Default for NetEffectSettings {
    fn default() -> Self {
        Self {
            mode: NetEffectMode::Enforce,
            window_ms: DEFAULT_WINDOW_S * 1000,
            scope: NetScope::Object,
        }
    }
}

/// What a logged change holds (the store's opaque `change`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedChange {
    pub op: String,
    pub change: Change,
}

/// A related change as approvers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedChange {
    pub proposal_id: String,
    pub cid: String,
    pub op: String,
    pub at_ms: u64,
    pub risk_level: u8,
    /// `{<field>: {kind, delta, before?, after?, …}}`.
    pub fields: Value,
    pub deletes: u64,
    pub creates: u64,
}

/// One side's result (alone or net).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideScore {
    pub level: RiskLevel,
    pub score_milli: u32,
    pub permitted: bool,
    pub escalations: Vec<seb_core::types::CertPath>,
    pub requirement: Option<Requirement>,
}

/// The net-effect part of a proposal view (`net_effect`), kept with the proposal's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetEffectView {
    pub mode: NetEffectMode,
    pub scope: NetScope,
    pub scope_key: String,
    pub window_ms: u64,
    /// Changes certified at or after this time are in the window.
    pub since_ms: u64,
    /// Newest log position the assessment read (the compare-and-append's expectation).
    pub seen_seq: Option<u64>,
    /// The changes of the window, oldest first (at most [`MAX_RELATED_SHOWN`] newest).
    pub related: Vec<RelatedChange>,
    /// How many changes the window holds.
    pub related_count: usize,
    /// This proposal's own change.
    pub change: Change,
    /// The net effect of the window followed by this proposal.
    pub net: Change,
    /// The proposal scored alone.
    pub alone: SideScore,
    /// The net effect scored.
    pub net_score: SideScore,
    /// Which side decided: `alone`, `net` (stronger, enforced) or `net_shadow` (stronger,
    /// not enforced).
    pub decided_by: String,
    /// The `context.cumulative` record Cedar saw.
    pub cumulative: Value,
    /// The policy epoch of the assessment (a new policy assesses again before issuance).
    pub policy_epoch: u64,
}

/// The window as read: the changes (parsed) and the newest seq.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub since_ms: u64,
    pub changes: Vec<(CertifiedChange, LoggedChange)>,
    pub seen_seq: Option<u64>,
}

/// Read the window of `agent` on `scope_key` ending at `now`.
pub async fn read_window(
    store: &dyn Store,
    settings: &NetEffectSettings,
    agent: &str,
    scope_key: &str,
    now: u64,
) -> Result<Window, String> {
    let since_ms = now.saturating_sub(settings.window_ms);
    let rows = store
        .net_effect_window(agent, scope_key, since_ms)
        .await
        .map_err(|e| format!("net effect: window unreadable: {}", seb_store::error_chain(&e)))?;
    let seen_seq = rows.iter().map(|r| r.seq).max();
    let mut changes = Vec::with_capacity(rows.len());
    for r in rows {
        let logged: LoggedChange = serde_json::from_str(&r.change)
            .map_err(|e| format!("net effect: logged change of `{}` does not parse: {e}", r.cid))?;
        changes.push((r, logged));
    }
    Ok(Window { since_ms, changes, seen_seq })
}

/// The `context.cumulative` record: `{count, strongest_level, net: {<field>: …}, deletes,
/// creates, window_s}` where `count` is the number of changes already certified in the
/// window (this proposal not included) and `net` includes this proposal.
pub fn cumulative(window: &Window, net: &Change, settings: &NetEffectSettings) -> Value {
    let strongest = window.changes.iter().map(|(r, _)| r.risk_level).max().unwrap_or(0);
    json!({
        "count": window.changes.len(),
        "strongest_level": strongest,
        "net": net.cedar_fields(),
        "deletes": net.deletes,
        "creates": net.creates,
        "window_s": settings.window_ms / 1000,
    })
}

/// The per-proposal facts every evaluation sees: `context.evidence` (the admitted
/// projection, pointer → value) and `context.change` (`{<field>: …}`), plus
/// `context.cumulative` when given.
pub fn policy_facts(
    evidence: &BTreeMap<String, Value>,
    change: &Change,
    cumulative: Option<&Value>,
) -> Value {
    let ev: serde_json::Map<String, Value> =
        evidence.iter().filter_map(|(k, v)| cedar_json(v).map(|v| (k.clone(), v))).collect();
    let mut m = serde_json::Map::new();
    m.insert("evidence".into(), Value::Object(ev));
    m.insert("change".into(), cedar_json(&change.cedar_fields()).unwrap_or_else(|| json!({})));
    if let Some(c) = cumulative {
        m.insert("cumulative".into(), cedar_json(c).unwrap_or_else(|| json!({})));
    }
    Value::Object(m)
}

/// Score the net change: the newest proposal's own factors, raised field by field by the
/// profile's rules applied to the net change.
pub fn net_score(
    scoring: &ScoringConfig,
    profile: &dyn PlatformProfile,
    own: &seb_target::ConsequenceFactors,
    target: &Value,
    net: &Change,
) -> Score {
    let mut f = own.clone();
    if let Some(n) = profile.net_consequence(target, net) {
        f = f.max(&n);
        if net.changes > 1 {
            f.reasons.push(format!("net effect of {} changes in the window", net.changes));
        }
    }
    scoring.score(&f)
}

/// Fold the window's changes and this one.
pub fn fold(window: &Window, this: &Change) -> Change {
    net(window.changes.iter().map(|(_, l)| &l.change).chain(std::iter::once(this)))
}

/// The related changes as shown.
pub fn related(window: &Window) -> Vec<RelatedChange> {
    let skip = window.changes.len().saturating_sub(MAX_RELATED_SHOWN);
    window
        .changes
        .iter()
        .skip(skip)
        .map(|(r, l)| RelatedChange {
            proposal_id: r.proposal_id.clone(),
            cid: r.cid.clone(),
            op: l.op.clone(),
            at_ms: r.at_ms,
            risk_level: r.risk_level,
            fields: l.change.cedar_fields(),
            deletes: l.change.deletes,
            creates: l.change.creates,
        })
        .collect()
}

/// Combine the two evaluations: in `enforce` mode the stronger wins (permitted only if
/// both are, escalations of both, the higher level); in `shadow` mode the alone side.
pub fn combine(
    mode: NetEffectMode,
    alone: (&Score, &PolicyOutcome),
    net: (&Score, &PolicyOutcome),
) -> (Score, PolicyOutcome, &'static str) {
    let stronger = net.0.level > alone.0.level
        || (!net.1.permitted && alone.1.permitted)
        || net.1.escalations.iter().any(|e| !alone.1.escalations.contains(e));
    match mode {
        NetEffectMode::Shadow => {
            (alone.0.clone(), alone.1.clone(), if stronger { "net_shadow" } else { "alone" })
        }
        NetEffectMode::Enforce if !stronger => (alone.0.clone(), alone.1.clone(), "alone"),
        NetEffectMode::Enforce => {
            let score = if net.0.level > alone.0.level { net.0.clone() } else { alone.0.clone() };
            let mut outcome = alone.1.clone();
            outcome.permitted = alone.1.permitted && net.1.permitted;
            for e in &net.1.escalations {
                if !outcome.escalations.contains(e) {
                    outcome.escalations.push(*e);
                }
            }
            for r in &net.1.reasons {
                outcome.reasons.push(format!("net effect: {r}"));
            }
            for e in &net.1.errors {
                outcome.errors.push(format!("net effect: {e}"));
            }
            (score, outcome, "net")
        }
    }
}

/// Append this proposal's certified change if the window it was scored against is
/// unchanged. `Ok(true)`: appended; `Ok(false)`: the window changed (score again).
#[allow(clippy::too_many_arguments)]
pub async fn account(
    store: &dyn Store,
    view: &NetEffectView,
    agent: &str,
    proposal_id: &str,
    op: &str,
    cid: &str,
    level: RiskLevel,
    now: u64,
) -> Result<bool, AdmissionError> {
    let change =
        serde_json::to_string(&LoggedChange { op: op.to_owned(), change: view.change.clone() })
            .map_err(|e| AdmissionError::Internal(format!("net effect change: {e}")))?;
    let row = CertifiedChange {
        seq: 0,
        agent: agent.to_owned(),
        scope_key: view.scope_key.clone(),
        proposal_id: proposal_id.to_owned(),
        cid: cid.to_owned(),
        at_ms: now,
        risk_level: level.get(),
        change,
    };
    match store.net_effect_append(row, view.since_ms, view.seen_seq).await? {
        NetEffectAppend::Appended { .. } => Ok(true),
        NetEffectAppend::Conflict => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_core::types::CertPath;
    use seb_target::FieldChange;

    fn outcome(permitted: bool, esc: &[CertPath]) -> PolicyOutcome {
        PolicyOutcome { permitted, escalations: esc.to_vec(), reasons: vec![], errors: vec![] }
    }

    fn score(level: u8) -> Score {
        let s = ScoringConfig::default();
        let f = [0.0, 0.06, 0.3, 0.5, 0.7, 1.0][usize::from(level)];
        let sc = s.score(&seb_target::ConsequenceFactors {
            blast_radius: f,
            privilege_expansion: f,
            data_sensitivity: f,
            irreversibility: f,
            uncertainty: f,
            reasons: vec![],
        });
        assert_eq!(sc.level.get(), level);
        sc
    }

    #[test]
    fn enforce_takes_the_stronger_side_and_shadow_only_reports_it() {
        let (a, n) = (score(1), score(3));
        let (s, o, by) = combine(
            NetEffectMode::Enforce,
            (&a, &outcome(true, &[])),
            (&n, &outcome(true, &[CertPath::Human])),
        );
        assert_eq!(
            (s.level.get(), o.escalations.as_slice(), by),
            (3, [CertPath::Human].as_slice(), "net")
        );
        let (s, o, by) = combine(
            NetEffectMode::Shadow,
            (&a, &outcome(true, &[])),
            (&n, &outcome(false, &[CertPath::Human])),
        );
        assert_eq!(
            (s.level.get(), o.permitted, o.escalations.len(), by),
            (1, true, 0, "net_shadow")
        );
        // A net side that forbids denies in enforce mode.
        let (_, o, _) =
            combine(NetEffectMode::Enforce, (&a, &outcome(true, &[])), (&a, &outcome(false, &[])));
        assert!(!o.permitted);
        // Never weaker than alone.
        let (s, o, by) = combine(
            NetEffectMode::Enforce,
            (&n, &outcome(true, &[CertPath::Quorum])),
            (&a, &outcome(true, &[])),
        );
        assert_eq!(
            (s.level.get(), o.escalations.as_slice(), by),
            (3, [CertPath::Quorum].as_slice(), "alone")
        );
    }

    #[test]
    fn facts_and_cumulative_are_cedar_shaped() {
        let c = Change::of("o").with("replicas", FieldChange::numeric(Some(2), Some(3)));
        let w = Window::default();
        let cum = cumulative(&w, &c, &NetEffectSettings::default());
        assert_eq!(cum["count"], 0);
        assert_eq!(cum["net"]["replicas"]["delta"], 1);
        assert_eq!(cum["window_s"], 3600);
        let ev: BTreeMap<String, Value> = [("/x".to_owned(), json!(1.5))].into();
        let f = policy_facts(&ev, &c, Some(&cum));
        assert_eq!(f["evidence"]["/x"], "1.5", "floats become strings for Cedar");
        assert_eq!(f["change"]["replicas"]["after"], 3);
        assert!(policy_facts(&ev, &c, None).get("cumulative").is_none());
    }
}
