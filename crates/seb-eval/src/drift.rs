//! Experiment 5: drift detection. Random mutations of the live state between admission and
//! execution, at ε = 0 and with tolerances. The expectation of each case is derived from the
//! mutation plan (not from the comparison code under test): a change within tolerance must
//! pass, any other change to a projected pointer must be caught, changes outside the
//! projection are ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use seb_core::types::{FailedCheck, Tolerance};
use seb_target::test_double::TestTarget;
use serde_json::{Value, json};

use crate::fixtures::{self, Cert};
use crate::results::DriftResult;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Unchanged,
    Eps0Number,
    Eps0String,
    Eps0Removed,
    Eps0TypeChange,
    Unprojected,
    AbsWithin,
    AbsBoundary,
    AbsBeyond,
    RelWithin,
    RelBeyond,
    TolOtherField,
}

const KINDS: [Kind; 12] = [
    Kind::Unchanged,
    Kind::Eps0Number,
    Kind::Eps0String,
    Kind::Eps0Removed,
    Kind::Eps0TypeChange,
    Kind::Unprojected,
    Kind::AbsWithin,
    Kind::AbsBoundary,
    Kind::AbsBeyond,
    Kind::RelWithin,
    Kind::RelBeyond,
    Kind::TolOtherField,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Unchanged => "unchanged (pass)",
            Kind::Eps0Number => "ε=0: number changed (reject)",
            Kind::Eps0String => "ε=0: string changed (reject)",
            Kind::Eps0Removed => "ε=0: field removed (reject)",
            Kind::Eps0TypeChange => "ε=0: type changed (reject)",
            Kind::Unprojected => "field outside the projection changed (pass)",
            Kind::AbsWithin => "abs tolerance: within (pass)",
            Kind::AbsBoundary => "abs tolerance: exactly at the limit (pass)",
            Kind::AbsBeyond => "abs tolerance: beyond (reject)",
            Kind::RelWithin => "rel tolerance: within (pass)",
            Kind::RelBeyond => "rel tolerance: beyond (reject)",
            Kind::TolOtherField => "tolerance on a, b changed (reject)",
        }
    }
    fn expect_pass(self) -> bool {
        matches!(
            self,
            Kind::Unchanged
                | Kind::Unprojected
                | Kind::AbsWithin
                | Kind::AbsBoundary
                | Kind::RelWithin
        )
    }
}

/// Run `cases` random cases.
pub async fn run(cases: usize, seed: u64) -> Result<DriftResult> {
    let dir = tempfile::tempdir()?;
    let store = fixtures::sqlite(dir.path())?;
    let target = Arc::new(TestTarget::in_memory());
    let broker = fixtures::broker(store, target.clone(), fixtures::settings());
    let mut rng = Rng::new(seed);
    let mut res = DriftResult::default();
    for i in 0..cases {
        let kind = KINDS.get(i % KINDS.len()).copied().unwrap_or(Kind::Unchanged);
        let a = rng.range(10, 1000);
        let b = rng.range(0, 50);
        let s = format!("img-{}", rng.below(1000));
        let name = format!("drift-{i}");
        let base = json!({"a": a, "b": b, "s": s, "other": rng.below(100)});
        target.insecure_direct_write(&name, base.clone()).map_err(|e| anyhow!("{e}"))?;
        let projection: BTreeMap<String, Value> =
            [("/a".to_owned(), json!(a)), ("/b".to_owned(), json!(b)), ("/s".to_owned(), json!(s))]
                .into();
        let mut tol = BTreeMap::new();
        let mut live = base.clone();
        let set = |live: &mut Value, k: &str, v: Value| {
            if let Some(o) = live.as_object_mut() {
                o.insert(k.to_owned(), v);
            }
        };
        match kind {
            Kind::Unchanged => {}
            Kind::Eps0Number => {
                let d = rng.range(1, 5) * if rng.chance(1, 2) { 1 } else { -1 };
                if rng.chance(1, 2) {
                    set(&mut live, "a", json!(a + d))
                } else {
                    set(&mut live, "b", json!(b + d))
                }
            }
            Kind::Eps0String => set(&mut live, "s", json!(format!("{s}x"))),
            Kind::Eps0Removed => {
                if let Some(o) = live.as_object_mut() {
                    o.remove(if rng.chance(1, 2) { "b" } else { "s" });
                }
            }
            Kind::Eps0TypeChange => set(&mut live, "a", json!(a.to_string())),
            Kind::Unprojected => set(&mut live, "other", json!(1000 + rng.below(1000))),
            Kind::AbsWithin | Kind::AbsBoundary | Kind::AbsBeyond => {
                let limit = rng.range(2, 20);
                tol.insert("/a".to_owned(), Tolerance::Abs(limit as f64));
                let d = match kind {
                    Kind::AbsWithin => rng.range(1, limit - 1),
                    Kind::AbsBoundary => limit,
                    _ => rng.range(limit + 1, limit * 3),
                } * if rng.chance(1, 2) { 1 } else { -1 };
                set(&mut live, "a", json!(a + d));
            }
            Kind::RelWithin | Kind::RelBeyond => {
                tol.insert("/a".to_owned(), Tolerance::Rel(0.1));
                // |d| <= 0.09 a (within) or >= 0.11 a + 1 (beyond): far from the float limit.
                let d = if matches!(kind, Kind::RelWithin) {
                    rng.range(1, (a * 9 / 100).max(1))
                } else {
                    rng.range(a * 11 / 100 + 1, a / 2 + 2)
                } * if rng.chance(1, 2) { 1 } else { -1 };
                set(&mut live, "a", json!(a + d));
            }
            Kind::TolOtherField => {
                tol.insert("/a".to_owned(), Tolerance::Abs(100.0));
                set(&mut live, "b", json!(b + rng.range(1, 5)));
            }
        }
        let contract = fixtures::set_contract(&name, json!({"a": 1, "b": 2, "s": "new"}), vec![]);
        let cert = Cert::new(&mut rng, contract, projection)?.with_tolerance(tol);
        let body = cert.present()?;
        // The out-of-band change between admission and execution.
        if live != base {
            target.insecure_direct_write(&name, live).map_err(|e| anyhow!("{e}"))?;
        }
        let r = broker.execute(&body, "eval").await;
        let c = res.by_kind.entry(kind.name().to_owned()).or_default();
        for c in [c, &mut res.total] {
            c.cases += 1;
            let pass = kind.expect_pass();
            if pass {
                c.expected_pass += 1
            } else {
                c.expected_reject += 1
            }
            match (&r, pass) {
                (Ok(e), true) if crate::broker::applied(e) => c.passed += 1,
                (Ok(e), false) if crate::broker::applied(e) => c.missed += 1,
                (Err(rf), false) if rf.failed_check == FailedCheck::Drift => c.detected += 1,
                (Err(rf), true) if rf.failed_check == FailedCheck::Drift => c.false_rejects += 1,
                _ => c.other += 1,
            }
        }
    }
    let t = &res.total;
    res.matches_expectation = t.missed == 0
        && t.false_rejects == 0
        && t.other == 0
        && t.detected == t.expected_reject
        && t.passed == t.expected_pass;
    Ok(res)
}
