//! The reduced evaluation (`--quick` sizes) into a tempdir, including the live parts
//! (kube-apiserver, moto with IAM enforcement, PostgreSQL: seb-testinfra starts them; none is
//! skipped), with assertions on the properties the evaluation exists to show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use seb_eval::results::Results;

fn well_formed_svg(text: &str) -> Result<(), String> {
    let t = text.trim();
    if !t.starts_with("<?xml") || !t.contains("<svg") || !t.ends_with("</svg>") {
        return Err("not an SVG document".into());
    }
    // Tag balance: every opened element is closed, in order; attributes are quoted.
    let mut stack: Vec<String> = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("close without open")?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_owned();
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{name}>"));
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        // Text between tags must not contain a raw '&' that is not an entity.
        let text_end = rest.find('<').unwrap_or(rest.len());
        let txt = &rest[..text_end];
        for (j, _) in txt.match_indices('&') {
            let ent = &txt[j..];
            if !(ent.starts_with("&amp;")
                || ent.starts_with("&lt;")
                || ent.starts_with("&gt;")
                || ent.starts_with("&quot;"))
            {
                return Err("raw & in text".into());
            }
        }
    }
    if stack.is_empty() { Ok(()) } else { Err(format!("unclosed: {stack:?}")) }
}

#[test]
fn reduced_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_seb-eval"));
    let plan = seb_eval::Plan::quick(exe);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(seb_eval::run_all(&plan, &out)).unwrap();

    let r: Results =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(r.errors.is_empty(), "parts of the evaluation did not run: {:#?}", r.errors);

    // 1-3: every experiment produced figures, live platforms included.
    assert!(r.micro.len() >= 8 && r.micro.iter().all(|m| m.summary.n > 0));
    for p in ["test-double", "kubernetes", "aws"] {
        assert_eq!(
            r.overhead.iter().filter(|o| o.platform == p).count(),
            3,
            "{p}: full + 2 ablations"
        );
        assert!(
            r.throughput
                .iter()
                .any(|t| t.platform == p && t.applied == t.executions && t.applied > 0),
            "{p} throughput"
        );
    }
    assert!(r.throughput.iter().filter(|t| t.platform == "test-double").count() == 4);

    // 4: zero window in the store modes; statement mode is bounded.
    assert_eq!(r.revocation.len(), 3);
    for v in &r.revocation {
        match v.poll_interval_ms {
            None => {
                assert_eq!(v.admitted_after_revoke, 0, "{}", v.mode);
                assert_eq!(v.window_ms.max, 0.0, "{}", v.mode);
            }
            Some(poll) => {
                let bound = poll as f64 + 2_000.0;
                assert!(
                    v.window_ms.max <= bound,
                    "{}: window {} > {bound}",
                    v.mode,
                    v.window_ms.max
                );
            }
        }
        assert_eq!(v.first_refusal_ms.n, v.trials, "{}: every trial saw a refusal", v.mode);
    }

    // 5: drift detection exactly as expected.
    let d = r.drift.as_ref().unwrap();
    assert!(d.matches_expectation, "{d:#?}");
    assert_eq!(d.total.missed, 0);
    assert_eq!(d.total.false_rejects, 0);
    assert!(d.total.expected_reject > 0 && d.total.expected_pass > 0);

    // 6: zero escapes in every class; the legitimate twin of each class is admitted.
    // 17 broker classes and one split-proposal class per op (spec 5.2).
    assert_eq!(r.attacks.len(), 17 + seb_eval::split::OPS.len());
    for a in r.attacks.iter().filter(|a| a.class.starts_with("split proposal")) {
        let fe = a.false_escalation.as_ref().expect("split classes report false escalations");
        assert_eq!(fe.escalated, 0, "{}: single-step changes escalated by net effect", a.class);
    }
    for a in &r.attacks {
        assert_eq!(a.escaped, 0, "ESCAPE in {}: {:?}", a.class, a.escapes);
        assert!(a.escapes.is_empty(), "{}: {:?}", a.class, a.escapes);
        assert_eq!(a.rejected, a.cases, "{}", a.class);
        assert!(a.cases > 0 && a.baseline_admitted, "{}", a.class);
    }

    // 7: every step crashed for real, on the test double and on Kubernetes; no duplicate, the
    // recovered status is what the target shows, no identity left, every admit has one
    // outcome, ledger ok.
    assert_eq!(r.crashes.len(), 10);
    assert_eq!(r.crashes.iter().filter(|c| c.step.starts_with("kubernetes ")).count(), 5);
    for c in &r.crashes {
        assert_eq!(c.aborted, c.crashes, "{}: {:?}", c.step, c.problems);
        assert_eq!(c.duplicates, 0, "{}", c.step);
        assert_eq!(c.unrecorded_outcomes, 0, "{}: {:?}", c.step, c.problems);
        assert_eq!(c.replays_refused, c.crashes, "{}", c.step);
        assert!(c.ledger_verified, "{}: {:?}", c.step, c.problems);
        assert!(c.problems.is_empty(), "{}: {:?}", c.step, c.problems);
        assert_eq!(c.live_tokens_after_recovery, 0, "{}: orphaned identities", c.step);
    }

    // Report and figures.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for fig in seb_eval::report::FIGURES {
        assert!(md.contains(fig), "report references {fig}");
        let svg = std::fs::read_to_string(out.join(fig)).unwrap();
        well_formed_svg(&svg).unwrap_or_else(|e| panic!("{fig}: {e}"));
    }
    assert!(md.contains("paper"));
}
