//! The split-proposal attack class (spec 5.2) at a reduced size: for every op with a
//! numeric or additive parameter, no split sequence escapes, the class is not vacuous (a
//! lone small step is certified), and no single-step change is escalated by net-effect
//! scoring. `scripts/eval.sh` runs it with 1,000 sequences per op.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_split_sequence_escapes_and_no_single_change_is_falsely_escalated() {
    // `SEB_SPLIT_CASES` raises the size (the evaluation's 1,000 per op).
    let n: usize = std::env::var("SEB_SPLIT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    for (i, op) in seb_eval::split::OPS.iter().enumerate() {
        let t = std::time::Instant::now();
        let a = seb_eval::split::run_op(i, n, 0x5eb + i as u64).await.unwrap();
        let fe = a.false_escalation.clone().unwrap();
        eprintln!(
            "{op}: {} sequences, {} escaped, {} single-step changes, {} falsely escalated, {:?} variants {:?} ({:.1} s)",
            a.cases,
            a.escaped,
            fe.singles,
            fe.escalated,
            a.failed_checks,
            a.variants,
            t.elapsed().as_secs_f64()
        );
        assert_eq!(a.cases, n, "{op}");
        assert_eq!(a.escaped, 0, "{op}: {:?}", a.escapes);
        assert_eq!(a.rejected, n, "{op}: {:?}", a.failed_checks);
        assert!(a.baseline_admitted, "{op}: a lone small step must go through");
        let fe = a.false_escalation.unwrap();
        assert!(fe.singles > 40, "{op}");
        assert_eq!(fe.escalated, 0, "{op}: single-step changes escalated by net effect");
    }
}

/// Without enforcement (`shadow`: the proposal alone decides) the same generator's
/// sequences escape: the class detects what it claims to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enforcement_the_split_sequences_escape() {
    for (i, op) in seb_eval::split::OPS.iter().enumerate() {
        let a = seb_eval::split::run_op_with(i, 10, 0x5eb + i as u64, "shadow").await.unwrap();
        assert!(
            a.escaped > 0,
            "{op}: shadow mode must let split sequences through: {:?}",
            a.failed_checks
        );
    }
}
