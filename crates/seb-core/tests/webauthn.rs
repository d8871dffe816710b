//! Passkey (WebAuthn) vectors, spec 5.1 (`crates/seb-core/testdata/webauthn/vectors.json`).
//!
//! 1. Every case verifies (or is refused by the named check) under `seb_core::webauthn`:
//!    registry lookup by key id, statement challenge, assertion, counter rule.
//! 2. The generator (`tests/webauthn/gen_vectors.py`, Python `cryptography`) reproduces the
//!    committed file byte for byte (deterministic keys and RFC 6979 ECDSA).
//! 3. py_webauthn (PyPI `webauthn`, pinned), an independent verifier, agrees on every case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use seb_core::keys::KeyId;
use seb_core::webauthn::{
    Assertion, CoseAlg, WebAuthnCredential, WebAuthnError, attested_credential_id, check_counter,
    find_credential, statement_challenge, verify_assertion, verify_registration,
    verify_registration_of,
};

/// The py_webauthn release the cross-check runs against.
const PY_WEBAUTHN_VERSION: &str = "3.0.1";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn vectors() -> Value {
    let p = dir().join("testdata/webauthn/vectors.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn registry(doc: &Value) -> Vec<WebAuthnCredential> {
    doc["registry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("cose_key"); // for py_webauthn only
            serde_json::from_value(c).unwrap()
        })
        .collect()
}

/// The Rust verdict on one case: "ok" or the refusing check's code.
fn verdict(creds: &[WebAuthnCredential], case: &Value) -> Result<(), WebAuthnError> {
    let kid: KeyId = case["kid"].as_str().unwrap().parse().unwrap();
    let cred = find_credential(creds, &kid)?;
    let payload = STANDARD.decode(case["payload"].as_str().unwrap()).unwrap();
    let challenge = statement_challenge(case["payload_type"].as_str().unwrap(), &payload);
    let a = &case["assertion"];
    let dec = |k: &str| URL_SAFE_NO_PAD.decode(a[k].as_str().unwrap()).unwrap();
    let assertion = Assertion {
        authenticator_data: dec("authenticator_data"),
        client_data_json: dec("client_data_json"),
        signature: dec("signature"),
    };
    let v = verify_assertion(cred, &challenge, &assertion)?;
    assert!(v.user_verified);
    check_counter(u32::try_from(case["stored_counter"].as_u64().unwrap()).unwrap(), v.counter)
}

#[test]
fn every_vector_gives_its_expected_outcome() {
    let doc = vectors();
    let creds = registry(&doc);
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0].alg, CoseAlg::Es256);
    assert_eq!(creds[1].alg, CoseAlg::EdDsa);
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut oks = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let want = case["expect"].as_str().unwrap();
        let got = match verdict(&creds, case) {
            Ok(()) => "ok",
            Err(e) => e.code(),
        };
        assert_eq!(got, want, "{name}");
        oks += usize::from(got == "ok");
    }
    assert_eq!(oks, 8, "four valid cases per algorithm");
}

#[test]
fn credential_json_round_trips_and_kid_is_sha256_of_spki() {
    let doc = vectors();
    for (c, wire) in registry(&doc).iter().zip(doc["registry"].as_array().unwrap()) {
        let mut wire = wire.clone();
        wire.as_object_mut().unwrap().remove("cose_key");
        assert_eq!(serde_json::to_value(c).unwrap(), wire);
        let spki = STANDARD.decode(wire["public_key"].as_str().unwrap()).unwrap();
        assert_eq!(c.kid().as_str(), hex::encode(sha2_256(&spki)));
    }
    // Refusals at parse time: wrong type, alg/key mismatch, unknown member, no origins.
    let base = {
        let mut w = doc["registry"][0].clone();
        w.as_object_mut().unwrap().remove("cose_key");
        w
    };
    for (field, value) in [
        ("type", Value::from("fido")),
        ("alg", Value::from(-8)),
        ("alg", Value::from(-257)),
        ("origins", Value::Array(vec![])),
        ("rp_id", Value::from("")),
        ("public_key", Value::from("AAAA")),
        ("credential_id", Value::from("a+b/")),
        ("extra", Value::from(1)),
    ] {
        let mut w = base.clone();
        w[field] = value;
        assert!(serde_json::from_value::<WebAuthnCredential>(w).is_err(), "{field}");
    }
}

fn sha2_256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}

/// Tampering with any byte of a valid assertion is refused.
#[test]
fn every_single_byte_flip_of_a_valid_assertion_is_refused() {
    let doc = vectors();
    let creds = registry(&doc);
    for case in doc["cases"].as_array().unwrap() {
        if case["expect"] != "ok" {
            continue;
        }
        for field in ["authenticator_data", "client_data_json", "signature"] {
            let raw = URL_SAFE_NO_PAD.decode(case["assertion"][field].as_str().unwrap()).unwrap();
            for i in 0..raw.len() {
                let mut t = raw.clone();
                t[i] ^= 0x01;
                let mut c = case.clone();
                c["assertion"][field] = Value::from(URL_SAFE_NO_PAD.encode(&t));
                assert!(verdict(&creds, &c).is_err(), "{} {field}[{i}]", case["name"]);
            }
        }
    }
}

#[test]
fn duplicate_keys_and_garbage_in_client_data_are_refused() {
    let doc = vectors();
    let creds = registry(&doc);
    let case = &doc["cases"][0];
    let payload = STANDARD.decode(case["payload"].as_str().unwrap()).unwrap();
    let chal = URL_SAFE_NO_PAD.encode(statement_challenge(APPROVAL, &payload));
    let ad =
        URL_SAFE_NO_PAD.decode(case["assertion"]["authenticator_data"].as_str().unwrap()).unwrap();
    for cdj in [
        format!(
            r#"{{"type":"webauthn.get","challenge":"{chal}","origin":"https://console.seb.example","origin":"https://evil.example"}}"#
        ),
        format!(
            r#"{{"type":"webauthn.get","challenge":"{chal}=","origin":"https://console.seb.example"}}"#
        ),
        format!(
            r#"{{"type":"webauthn.get","challenge":"{chal}","origin":"https://console.seb.example","crossOrigin":"false"}}"#
        ),
        format!(
            r#"{{"type":"webauthn.get","challenge":"{chal}","origin":"https://console.seb.example","topOrigin":"https://evil.example"}}"#
        ),
        format!(
            r#"{{"type":"webauthn.get","challenge":"{chal}","origin":"https://console.seb.example","tokenBinding":{{"status":"present","id":"x"}}}}"#
        ),
        r#"["webauthn.get"]"#.to_owned(),
        "\u{0}".to_owned(),
    ] {
        let a = Assertion {
            authenticator_data: ad.clone(),
            client_data_json: cdj.clone().into_bytes(),
            signature: vec![0; 64],
        };
        let err =
            verify_assertion(&creds[1], &statement_challenge(APPROVAL, &payload), &a).unwrap_err();
        assert_ne!(err.code(), "signature", "{cdj}: must fail before the signature check");
    }
}

const APPROVAL: &str = "application/vnd.seb.approval+json;v=1";

#[test]
fn registration_checks() {
    let creds = registry(&vectors());
    let cred = &creds[1];
    let challenge = [9u8; 32];
    let cdj = format!(
        r#"{{"type":"webauthn.create","challenge":"{}","origin":"https://console.seb.example","crossOrigin":false}}"#,
        URL_SAFE_NO_PAD.encode(challenge)
    );
    let mut ad = sha2_256(b"console.seb.example").to_vec();
    ad.push(0x45); // UP | UV | AT
    ad.extend_from_slice(&3u32.to_be_bytes());
    ad.extend_from_slice(&[0u8; 16]); // AAGUID
    ad.extend_from_slice(&u16::try_from(cred.credential_id.len()).unwrap().to_be_bytes());
    ad.extend_from_slice(&cred.credential_id);
    ad.extend_from_slice(&[0xa0]); // (COSE key not parsed)
    assert_eq!(attested_credential_id(&ad), Some(cred.credential_id.as_slice()));
    verify_registration(&cred.rp_id, &cred.origins, &challenge, cdj.as_bytes(), &ad).unwrap();
    verify_registration_of(cred, &challenge, cdj.as_bytes(), &ad).unwrap();

    let mut other = cred.clone();
    other.credential_id = vec![1, 2, 3];
    assert_eq!(
        verify_registration_of(&other, &challenge, cdj.as_bytes(), &ad),
        Err(WebAuthnError::CredentialId)
    );
    assert_eq!(
        verify_registration(&cred.rp_id, &cred.origins, &[8u8; 32], cdj.as_bytes(), &ad),
        Err(WebAuthnError::Challenge)
    );
    let get = cdj.replace("webauthn.create", "webauthn.get");
    assert!(matches!(
        verify_registration(&cred.rp_id, &cred.origins, &challenge, get.as_bytes(), &ad),
        Err(WebAuthnError::Type { .. })
    ));
    let mut no_uv = ad.clone();
    no_uv[32] = 0x41;
    assert_eq!(
        verify_registration(&cred.rp_id, &cred.origins, &challenge, cdj.as_bytes(), &no_uv),
        Err(WebAuthnError::UserVerification)
    );
    assert!(matches!(
        verify_registration("other.example", &cred.origins, &challenge, cdj.as_bytes(), &ad),
        Err(WebAuthnError::RpIdHash(_))
    ));
    assert!(matches!(
        verify_registration(
            &cred.rp_id,
            &["https://x".to_owned()],
            &challenge,
            cdj.as_bytes(),
            &ad
        ),
        Err(WebAuthnError::Origin(_))
    ));
}

#[test]
fn generator_reproduces_the_committed_vectors() {
    let out =
        std::env::temp_dir().join(format!("seb-webauthn-vectors-{}.json", std::process::id()));
    let st = Command::new("python3")
        .arg(dir().join("tests/webauthn/gen_vectors.py"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let fresh = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(fresh, std::fs::read(dir().join("testdata/webauthn/vectors.json")).unwrap());
}

#[test]
fn py_webauthn_agrees_on_every_vector() {
    let v = seb_testinfra::process::ensure_python_package(
        "import importlib.metadata as m; print(m.version('webauthn'))",
        PY_WEBAUTHN_VERSION,
        &format!("webauthn=={PY_WEBAUTHN_VERSION}"),
    )
    .unwrap();
    assert_eq!(v, PY_WEBAUTHN_VERSION);
    let out = Command::new("python3")
        .arg(dir().join("tests/webauthn/crosscheck.py"))
        .arg(dir().join("testdata/webauthn/vectors.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    let doc = vectors();
    let creds = registry(&doc);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(py.len(), cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let rust_ok = verdict(&creds, case).is_ok();
        let py_ok = py[name] == "ok";
        assert_eq!(rust_ok, py_ok, "{name}: seb-core {rust_ok}, py_webauthn {}", py[name]);
    }
}
