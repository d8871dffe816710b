//! Untrusted bytes → `pipeline::authenticate` (checks 1–6) under the fixed policy of the
//! golden vectors, then checks 7–11 against the baseline snapshot when it authenticates.
//! Every rejection must name a check with the decision section 7 assigns to it.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use seb_core::pipeline::{authenticate, check_drift, check_state};

fuzz_target!(|data: &[u8]| {
    let f = &*common::FIXED;
    let snap = f.snap.snapshot();
    match authenticate(data, &f.broker.policy(), snap.now_ms) {
        Err(r) => common::assert_decision_fits(r.check, r.decision),
        Ok(auth) => {
            // Only the issuer can have signed it; the caller holds the subject key.
            assert!(auth.certificate().signers().len() >= 1);
            if let Err(r) = check_state(&auth, snap.epochs, snap.now_ms, &f.scope, false) {
                common::assert_decision_fits(r.check, r.decision);
                return;
            }
            if let Err(r) = check_drift(&auth, snap.observation) {
                common::assert_decision_fits(r.check, r.decision);
            }
        }
    }
});
