//! Shared by every fuzz target: the fixed broker policy of the golden vectors.
#![allow(dead_code)]

#[path = "../../crates/seb-core/tests/support/vectors_gen.rs"]
pub mod vectors_gen;

use std::sync::LazyLock;

use seb_core::types::{Decision, FailedCheck};
use vectors_gen::{EnforceableChecks, LoadedBroker, LoadedSnapshot, Scenario};

/// The broker configuration, scope rule and snapshot of the baseline vector
/// (`admit_policy_l2`), and its presentation body.
pub struct Fixed {
    pub broker: LoadedBroker,
    pub scope: EnforceableChecks,
    pub snap: LoadedSnapshot,
    pub body: Vec<u8>,
}

pub static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let b = Scenario::default().build().expect("baseline scenario builds");
    Fixed {
        broker: LoadedBroker::from_json(&b.broker).expect("broker"),
        scope: EnforceableChecks::from_json(&b.scope).expect("scope"),
        snap: LoadedSnapshot::from_json(&b.snapshot).expect("snapshot"),
        body: b.body,
    }
});

/// The decision section 7 assigns to each check; anything else is a bug.
pub fn assert_decision_fits(check: FailedCheck, d: Decision) {
    use Decision::*;
    use FailedCheck::*;
    assert!(
        matches!(
            (check, d),
            (Parse | Path | Caller | Match | Time | Scope | Replay, Reject)
                | (Signature | Revocation, FailClosed)
                | (PolicyEpoch, Readmit)
                | (Drift, Readmit | FailClosed)
        ),
        "check {check} with decision {d}"
    );
}
