//! Untrusted bytes → strict JSON → `Envelope` → verification under fixed keys, for every
//! payload type, and as a certificate through the typestate.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use seb_core::certificate::{CertificateTrust, UnverifiedCertificate};
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::json;
use seb_core::keys::TrustedKeys;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = json::parse::<Envelope>(data, json::DEFAULT_MAX_BODY) else { return };
    // Canonical bytes of a strictly parsed envelope re-parse to the same envelope.
    let canonical = env.canonical_bytes().expect("a parsed envelope canonicalises");
    let again: Envelope = json::parse(&canonical, usize::MAX).expect("canonical bytes re-parse");
    assert_eq!(again, env);
    let _ = env.digest();
    let _ = env.insecure_payload_bytes();

    let fixed = &*common::FIXED;
    let issuer: TrustedKeys =
        [common::vectors_gen::key("issuer").public_key()].into_iter().collect();
    for ty in PayloadType::ALL {
        if let Ok(v) = env.verify(ty, &issuer) {
            // Only the issuer key is trusted, so a verified envelope was signed by it.
            assert_eq!(v.signers().len(), 1);
            assert_eq!(v.bytes().to_vec(), env.insecure_payload_bytes().expect("verified payload decodes"));
        }
    }
    let policy = fixed.broker.policy();
    let trust = CertificateTrust {
        issuers: policy.trust.issuers,
        break_glass: policy.trust.break_glass,
        break_glass_quorum: policy.trust.break_glass_quorum,
        limit: policy.trust.limit,
    };
    let unverified = UnverifiedCertificate::new(env);
    let _ = unverified.insecure_payload(json::DEFAULT_MAX_BODY);
    if let Ok(cert) = unverified.verify(&trust) {
        let p = cert.payload();
        assert_eq!(p.contract.digest().expect("contract digest"), p.contract_digest);
    }
});
