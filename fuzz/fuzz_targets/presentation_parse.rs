//! Untrusted bytes → a `Presentation` (section 6) under the strict parser; whatever parses
//! must canonicalise, re-parse to the same value, and hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seb_core::digest::Digest;
use seb_core::json;
use seb_core::types::{ExecRequest, Presentation, parse_presentation};

fuzz_target!(|data: &[u8]| {
    let _ = json::parse_value(data, json::DEFAULT_MAX_BODY);
    let Ok(p) = parse_presentation(data, json::DEFAULT_MAX_BODY) else { return };
    let canonical = json::canonical(&p).expect("a parsed presentation canonicalises");
    let again: Presentation = json::parse(&canonical, usize::MAX).expect("canonical re-parses");
    assert_eq!(json::canonical(&again).expect("canonical"), canonical, "JCS is not idempotent");
    let request = json::canonical(&p.request).expect("request canonicalises");
    let r2: ExecRequest = json::parse(&request, usize::MAX).expect("request re-parses");
    assert_eq!(json::canonical(&r2).expect("canonical"), request);
    let _ = Digest::of_bytes(&request);
    let _ = p.certificate.digest();
});
