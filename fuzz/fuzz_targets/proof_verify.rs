//! The caller proof (section 6): input = 64-byte signature ‖ request JSON. The request is
//! parsed strictly, canonicalised, and the signature verified under the subject key of the
//! golden vectors (agent-1). Ed25519 signing is deterministic and strict verification admits
//! exactly one encoding of each signature, so any proof that verifies must equal agent-1's own
//! signature of those canonical bytes: a different accepted signature (malleability, S + L, a
//! non-canonical R) is a bug. The first 32 bytes are also tried as a public key.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use seb_core::envelope::{PayloadType, pae};
use seb_core::json;
use seb_core::keys::PublicKey;
use seb_core::types::ExecRequest;

fuzz_target!(|data: &[u8]| {
    let Some((sig, rest)) = data.split_first_chunk::<64>() else { return };
    if let Some(pk) = sig.first_chunk::<32>() {
        if let Ok(k) = PublicKey::from_bytes(pk) {
            let _ = k.verify(rest, sig);
        }
    }
    let Ok(request) = json::parse::<ExecRequest>(rest, json::DEFAULT_MAX_BODY) else { return };
    let bytes = json::canonical(&request).expect("a parsed request canonicalises");
    let subject = common::vectors_gen::key("agent-1");
    let msg = pae(PayloadType::Request.media_type(), &bytes);
    if subject.public_key().verify(&msg, sig).is_ok() {
        assert_eq!(&subject.sign(&msg), sig, "a second valid signature for the same request");
    }
});
