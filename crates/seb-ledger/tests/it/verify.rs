//! The offline auditor: a ledger of signed records, then one tamper at a time.

use seb_core::envelope::{Envelope, PayloadType};
use seb_core::keys::{SigningKey, TrustedKeys};
use seb_ledger::LedgerError;
use seb_ledger::checkpoint::Checkpoint;
use seb_ledger::merkle::MemoryTree;
use seb_ledger::verify::{
    LedgerExport, RecordKeys, VerifyOptions, VerifyReport, verify_export, verify_export_with,
    verify_ledger,
};
use serde_json::{Value, json};

const ORIGIN: &str = "seb.example/ledger";
/// Certificate validity used by the sample records (Unix seconds).
const NB: u64 = 1_700_000_000;
const NA: u64 = NB + 300;
const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn broker() -> SigningKey {
    SigningKey::from_seed(&[1; 32])
}

fn trusted() -> TrustedKeys {
    [broker().public_key()].into_iter().collect()
}

struct Ledger {
    key: SigningKey,
    tree: MemoryTree,
    entries: Vec<Vec<u8>>,
    checkpoints: Vec<String>,
}

impl Ledger {
    fn new() -> Self {
        Self { key: broker(), tree: MemoryTree::new(), entries: vec![], checkpoints: vec![] }
    }

    fn push_envelope(&mut self, env: &Envelope) -> u64 {
        let bytes = env.canonical_bytes().unwrap();
        self.entries.push(bytes.clone());
        self.tree.append(&bytes)
    }

    fn push(&mut self, pt: PayloadType, payload: Value) -> u64 {
        let env = Envelope::sign(pt, &payload, &self.key).unwrap();
        self.push_envelope(&env)
    }

    fn decision_json(
        &self,
        decision: &str,
        cid: Option<&str>,
        nonce: Option<&str>,
        at_ms: u64,
    ) -> Value {
        let admit = decision == "admit";
        json!({
            "id": format!("rec-{}", self.entries.len()),
            "cid": cid, "nonce": nonce, "decision": decision,
            "failed_check": if admit { Value::Null } else { json!("replay") },
            "reason": if admit { Value::Null } else { json!("nonce already reserved") },
            "certificate_digest": D, "request_digest": D, "contract_digest": D,
            "evidence_digest": D, "observed_digest": D,
            "identity": if admit { json!("seb-exec-1234") } else { Value::Null },
            "at_ms": at_ms,
            "broker_kid": self.key.kid().to_string(),
            "not_before": NB, "not_after": NA,
            "break_glass": false,
        })
    }

    fn decision(&mut self, decision: &str, cid: Option<&str>, nonce: Option<&str>) -> u64 {
        let v = self.decision_json(decision, cid, nonce, NB * 1000 + 5_000);
        self.push(PayloadType::Decision, v)
    }

    fn admit_at(&mut self, cid: &str, nonce: &str, at_ms: u64) -> u64 {
        let v = self.decision_json("admit", Some(cid), Some(nonce), at_ms);
        self.push(PayloadType::Decision, v)
    }

    fn admit(&mut self, cid: &str, nonce: &str) -> u64 {
        self.admit_at(cid, nonce, NB * 1000 + 5_000)
    }

    fn outcome_json(&self, cid: &str, nonce: &str, status: &str) -> Value {
        json!({
            "id": format!("rec-{}", self.entries.len()),
            "cid": cid, "nonce": nonce, "status": status,
            "started_ms": NB * 1000 + 6_000, "ended_ms": NB * 1000 + 7_000,
            "identity": "seb-exec-1234", "target_request_id": "req-1",
            "result_digest": D, "post_state_digest": D, "error": null,
            "broker_kid": self.key.kid().to_string(),
        })
    }

    fn outcome(&mut self, cid: &str, nonce: &str, status: &str) -> u64 {
        let v = self.outcome_json(cid, nonce, status);
        self.push(PayloadType::Outcome, v)
    }

    fn checkpoint(&mut self) -> Checkpoint {
        let c =
            Checkpoint { origin: ORIGIN.into(), size: self.tree.size(), root: self.tree.root() };
        self.checkpoints.push(c.sign(ORIGIN, &self.key));
        c
    }

    fn export(&self) -> LedgerExport {
        LedgerExport {
            origin: ORIGIN.into(),
            entries: self.entries.clone(),
            checkpoints: self.checkpoints.clone(),
        }
    }
}

fn verify(export: &LedgerExport) -> Result<VerifyReport, LedgerError> {
    verify_export(export, &trusted(), ORIGIN, &broker().public_key(), None)
}

fn verify_from(export: &LedgerExport, t: &Checkpoint) -> Result<VerifyReport, LedgerError> {
    verify_export(export, &trusted(), ORIGIN, &broker().public_key(), Some(t))
}

fn verify_opts(export: &LedgerExport, o: VerifyOptions) -> Result<VerifyReport, LedgerError> {
    verify_export_with(export, &trusted(), ORIGIN, &broker().public_key(), None, &o)
}

/// Ten records with checkpoints at 5 and 10; returns the ledger and the checkpoint at 5.
fn sample() -> (Ledger, Checkpoint) {
    let mut l = Ledger::new();
    l.decision("reject", None, None); // 0: pre-auth parse failure
    l.admit("c1", "n1"); // 1
    l.outcome("c1", "n1", "applied"); // 2
    let mut bg = l.decision_json("admit", Some("c2"), Some("n2"), NB * 1000);
    bg["break_glass"] = json!(true);
    l.push(PayloadType::Decision, bg); // 3
    l.decision("reject", Some("c2"), Some("n2")); // 4: replay
    let at5 = l.checkpoint();
    l.outcome("c2", "n2", "uncertain"); // 5
    l.push(
        PayloadType::Epoch,
        json!({"policy_epoch": 3, "revocation_epoch": 1, "revoked_cids": [],
               "revoked_agents": [], "issued_at_ms": NB * 1000, "ttl_ms": 60_000}),
    ); // 6
    l.decision("readmit", Some("c3"), Some("n3")); // 7
    l.admit("c4", "n4"); // 8
    l.decision("fail_closed", Some("c5"), Some("n5")); // 9
    l.checkpoint();
    (l, at5)
}

/// The entry index an error names, if it names one.
fn entry_index(e: &LedgerError) -> Option<u64> {
    use LedgerError::*;
    match e {
        EntryMalformed { index, .. }
        | EntryNotCanonical { index }
        | EntryPayloadType { index, .. }
        | EntryUntrustedKey { index, .. }
        | EntrySignature { index, .. }
        | EntryPayload { index, .. }
        | EntryBrokerKid { index, .. }
        | OutcomeWithoutAdmit { index, .. }
        | OutcomeBeforeAdmit { index, .. }
        | DuplicateOutcome { index, .. }
        | DuplicateAdmit { index, .. }
        | AdmitOutsideValidity { index, .. }
        | AttestationNotRecorded { index, .. } => Some(*index),
        _ => None,
    }
}

#[test]
fn an_intact_ledger_verifies_and_is_counted() {
    let (l, at5) = sample();
    let export = l.export();
    let report = verify(&export).unwrap();
    assert_eq!(
        report,
        VerifyReport {
            size: 10,
            root: l.tree.root(),
            decisions: 7,
            outcomes: 2,
            admits: 3,
            break_glass: 1,
            rejects: 2,
            readmits: 1,
            fail_closed: 1,
            epochs: 1,
            issued: 0,
            denied: 0,
            approvals: 0,
            approver_changes: 0,
            passkey_approvals: 0,
            passkey_unresolved: 0,
            uncertain_outcomes: 1,
            open_admits: 1,
            checkpoints: 2,
            latest_checkpoint: Some(10),
            trusted_size: None,
        }
    );
    // From an earlier trusted checkpoint, from the empty tree, and from the latest one.
    assert_eq!(verify_from(&export, &at5).unwrap().trusted_size, Some(5));
    let empty = Checkpoint { origin: ORIGIN.into(), size: 0, root: seb_ledger::empty_root() };
    assert!(verify_from(&export, &empty).is_ok());
    let latest = Checkpoint { origin: ORIGIN.into(), size: 10, root: l.tree.root() };
    assert!(verify_from(&export, &latest).is_ok());
    // The report serialises with a hex root.
    let j = serde_json::to_value(&report).unwrap();
    assert_eq!(j["root"], json!(hex::encode(l.tree.root())));
}

#[test]
fn the_export_format_round_trips_strictly() {
    let (l, _) = sample();
    let export = l.export();
    let bytes = export.to_json_pretty().unwrap();
    assert_eq!(LedgerExport::from_json(&bytes, 1 << 20).unwrap(), export);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["entries"][0].is_string());
    let ok = |s: &str| LedgerExport::from_json(s.as_bytes(), 1 << 20);
    assert!(ok(r#"{"origin":"o","entries":["AA=="],"checkpoints":[]}"#).is_ok());
    for bad in [
        r#"{"origin":"o","origin":"p","entries":[],"checkpoints":[]}"#,
        r#"{"origin":"o","entries":[],"checkpoints":[],"extra":1}"#,
        r#"{"origin":"o","entries":["AA"],"checkpoints":[]}"#,
        r#"{"origin":"o","entries":["!!"],"checkpoints":[]}"#,
        r#"{"origin":"o","checkpoints":[]}"#,
    ] {
        assert!(matches!(ok(bad), Err(LedgerError::ExportFormat(_))), "{bad}");
    }
    assert!(matches!(LedgerExport::from_json(&bytes, 100), Err(LedgerError::ExportFormat(_))));
}

#[test]
fn a_changed_byte_in_an_entry_is_caught_at_that_entry() {
    let (l, _) = sample();
    let export = l.export();
    // A changed signature character: precisely "signature does not verify".
    let mut e = export.clone();
    let text = String::from_utf8(e.entries[3].clone()).unwrap();
    let sig_at = text.find(r#""sig":""#).unwrap() + 10;
    let mut bytes = text.into_bytes();
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    e.entries[3] = bytes;
    let err = verify(&e).unwrap_err();
    assert!(matches!(err, LedgerError::EntrySignature { index: 3, .. }), "{err}");
    assert!(err.to_string().starts_with("entry 3: signature does not verify"), "{err}");
    // Every single-bit change anywhere in the entry is refused, naming entry 3.
    for i in 0..export.entries[3].len() {
        let mut e = export.clone();
        e.entries[3][i] ^= 0x01;
        let err = verify(&e).unwrap_err();
        assert_eq!(entry_index(&err), Some(3), "byte {i}: {err}");
    }
}

#[test]
fn a_removed_entry_is_caught() {
    let (l, _) = sample();
    let mut e = l.export();
    e.entries.remove(2);
    let err = verify(&e).unwrap_err();
    assert!(matches!(err, LedgerError::CheckpointRootMismatch { size: 5 }), "{err}");
    assert!(err.to_string().contains("root mismatch (fork or tampering"), "{err}");

    let mut e = l.export();
    e.entries.pop();
    let err = verify(&e).unwrap_err();
    assert!(
        matches!(err, LedgerError::ExportTruncated { checkpoint_size: 10, entries: 9 }),
        "{err}"
    );
    assert!(err.to_string().starts_with("export truncated"), "{err}");

    // Dropping the tail together with its checkpoint leaves a shorter, consistent log, but not
    // one that extends what the auditor already trusts.
    let mut e = l.export();
    e.entries.truncate(5);
    e.checkpoints.truncate(1);
    assert_eq!(verify(&e).unwrap().size, 5);
    let latest = Checkpoint { origin: ORIGIN.into(), size: 10, root: l.tree.root() };
    assert!(matches!(
        verify_from(&e, &latest),
        Err(LedgerError::TrustedBeyondExport { trusted_size: 10, entries: 5 })
    ));
}

#[test]
fn reordered_entries_are_caught() {
    let (l, _) = sample();
    for (a, b, size) in [(0, 1, 5), (6, 7, 10), (4, 5, 5)] {
        let mut e = l.export();
        e.entries.swap(a, b);
        let err = verify(&e).unwrap_err();
        assert!(
            matches!(err, LedgerError::CheckpointRootMismatch { size: s } if s == size),
            "{err}"
        );
        assert!(err.to_string().contains("reordered"), "{err}");
    }
    // Past the last checkpoint (allowed only when full coverage is not required), an outcome
    // moved before its admit is reported as a reordering.
    let (mut l, _) = sample();
    l.admit("c6", "n6"); // 10
    l.outcome("c6", "n6", "applied"); // 11
    let mut e = l.export();
    e.entries.swap(10, 11);
    let relaxed = VerifyOptions { require_full_checkpoint: false, ..VerifyOptions::default() };
    let err = verify_opts(&e, relaxed).unwrap_err();
    assert!(matches!(err, LedgerError::OutcomeBeforeAdmit { index: 10, admit_index: 11, .. }));
    assert!(err.to_string().contains("(entries reordered)"), "{err}");
    assert!(verify_opts(&l.export(), relaxed).is_ok());
}

/// Five entries of a second history that shares the first two entries with `sample()`.
fn forked() -> Ledger {
    let mut l = Ledger::new();
    l.decision("reject", None, None);
    l.admit("c1", "n1");
    l.outcome("c1", "n1", "failed");
    l.decision("reject", None, None);
    l.decision("reject", None, None);
    l
}

#[test]
fn forked_checkpoints_are_caught() {
    let (l, at5) = sample();
    let mut f = forked();
    let f5 = f.checkpoint();
    assert_eq!(f5.size, 5);
    assert_ne!(f5.root, at5.root);

    // Two signed heads of the same size: signed proof of a fork.
    let mut e = l.export();
    e.checkpoints.push(f.checkpoints[0].clone());
    let err = verify(&e).unwrap_err();
    assert!(matches!(err, LedgerError::ConflictingCheckpoints { size: 5 }), "{err}");

    // A signed head of the other history alone: the entries do not match it.
    let mut e = l.export();
    e.checkpoints[0] = f.checkpoints[0].clone();
    let err = verify(&e).unwrap_err();
    assert!(matches!(err, LedgerError::CheckpointRootMismatch { size: 5 }), "{err}");
    assert!(err.to_string().starts_with("checkpoint size 5: root mismatch"), "{err}");

    // The auditor trusts a head of the other history: the export does not extend it.
    let err = verify_from(&l.export(), &f5).unwrap_err();
    assert!(matches!(err, LedgerError::TrustedRootMismatch { size: 5 }), "{err}");
    let bogus_empty = Checkpoint { origin: ORIGIN.into(), size: 0, root: [0; 32] };
    assert!(matches!(
        verify_from(&l.export(), &bogus_empty),
        Err(LedgerError::TrustedRootMismatch { size: 0 })
    ));
    let elsewhere = Checkpoint { origin: "other.example/log".into(), ..at5 };
    assert!(matches!(verify_from(&l.export(), &elsewhere), Err(LedgerError::TrustedOrigin { .. })));
}

#[test]
fn checkpoints_must_verify_name_the_log_and_cover_the_export() {
    let (l, _) = sample();
    // Signed by another key.
    let mut e = l.export();
    let c = Checkpoint { origin: ORIGIN.into(), size: 10, root: l.tree.root() };
    e.checkpoints[1] = c.sign(ORIGIN, &SigningKey::from_seed(&[7; 32]));
    let err = verify(&e).unwrap_err();
    assert!(
        matches!(&err, LedgerError::CheckpointInvalid { position: 1, source }
            if matches!(**source, LedgerError::NoteNotSigned { .. })),
        "{err}"
    );
    // A tampered note.
    let mut e = l.export();
    e.checkpoints[0] = e.checkpoints[0].replacen("\n5\n", "\n4\n", 1);
    assert!(matches!(verify(&e), Err(LedgerError::CheckpointInvalid { position: 0, .. })));
    // Another origin, properly signed.
    let mut e = l.export();
    let other = Checkpoint { origin: "other.example/log".into(), size: 10, root: l.tree.root() };
    e.checkpoints[1] = other.sign(ORIGIN, &l.key);
    assert!(matches!(verify(&e), Err(LedgerError::CheckpointOrigin { size: 10, .. })));
    // Entries past the last checkpoint.
    let (mut l2, _) = sample();
    l2.admit("c7", "n7");
    let err = verify(&l2.export()).unwrap_err();
    assert!(matches!(err, LedgerError::UncoveredEntries { covered: 10, entries: 11 }), "{err}");
    // No checkpoint at all.
    let mut e = l.export();
    e.checkpoints.clear();
    assert!(matches!(verify(&e), Err(LedgerError::NoCheckpoint)));
    let relaxed = VerifyOptions { require_full_checkpoint: false, ..VerifyOptions::default() };
    assert_eq!(verify_opts(&e, relaxed).unwrap().checkpoints, 0);
    // Duplicate identical checkpoints are fine.
    let mut e = l.export();
    e.checkpoints.push(e.checkpoints[0].clone());
    assert_eq!(verify(&e).unwrap().checkpoints, 2);
    // The empty log with a checkpoint of size 0.
    let mut empty = Ledger::new();
    empty.checkpoint();
    let r = verify(&empty.export()).unwrap();
    assert_eq!((r.size, r.root), (0, seb_ledger::empty_root()));
}

#[test]
fn an_outcome_without_an_admit_is_caught() {
    let (mut l, _) = sample();
    let i = l.outcome("c9", "n9", "applied");
    l.checkpoint();
    let err = verify(&l.export()).unwrap_err();
    assert!(matches!(err, LedgerError::OutcomeWithoutAdmit { index, .. } if index == i), "{err}");
    assert_eq!(err.to_string(), "entry 10: outcome for (`c9`, `n9`) without a prior admit");
    // A readmit or reject is not an admit.
    let (mut l, _) = sample();
    l.outcome("c3", "n3", "applied");
    l.checkpoint();
    assert!(matches!(verify(&l.export()), Err(LedgerError::OutcomeWithoutAdmit { index: 10, .. })));
}

#[test]
fn a_duplicate_outcome_is_caught() {
    let (mut l, _) = sample();
    l.outcome("c1", "n1", "applied");
    l.checkpoint();
    let err = verify(&l.export()).unwrap_err();
    assert!(matches!(err, LedgerError::DuplicateOutcome { index: 10, first: 2, .. }), "{err}");
}

#[test]
fn a_duplicate_admit_is_caught() {
    let (mut l, _) = sample();
    l.admit("c4", "n4");
    l.checkpoint();
    let err = verify(&l.export()).unwrap_err();
    assert!(matches!(err, LedgerError::DuplicateAdmit { index: 10, first: 8, .. }), "{err}");
}

#[test]
fn an_admit_outside_the_validity_window_is_caught() {
    let start = NB * 1000 - 30_000;
    let end = NA * 1000;
    for (at_ms, ok) in
        [(start - 1, false), (start, true), (end - 1, true), (end, false), (0, false)]
    {
        let (mut l, _) = sample();
        l.admit_at("c8", "n8", at_ms);
        l.checkpoint();
        let r = verify(&l.export());
        if ok {
            assert!(r.is_ok(), "{at_ms}: {r:?}");
        } else {
            let err = r.unwrap_err();
            assert!(
                matches!(err, LedgerError::AdmitOutsideValidity { index: 10, at_ms: a, not_before: NB, not_after: NA } if a == at_ms),
                "{at_ms}: {err}"
            );
        }
    }
    // The skew is a parameter.
    let (mut l, _) = sample();
    l.admit_at("c8", "n8", NB * 1000 - 1);
    l.checkpoint();
    assert!(verify(&l.export()).is_ok());
    let strict = VerifyOptions { skew_ms: 0, ..VerifyOptions::default() };
    assert!(matches!(
        verify_opts(&l.export(), strict),
        Err(LedgerError::AdmitOutsideValidity { .. })
    ));
}

#[test]
fn an_entry_signed_by_an_untrusted_key_is_caught() {
    let (mut l, _) = sample();
    let rogue = SigningKey::from_seed(&[66; 32]);
    let mut v = l.decision_json("admit", Some("c8"), Some("n8"), NB * 1000);
    v["broker_kid"] = json!(rogue.kid().to_string());
    let env = Envelope::sign(PayloadType::Decision, &v, &rogue).unwrap();
    l.push_envelope(&env);
    l.checkpoint();
    let err = verify(&l.export()).unwrap_err();
    assert!(matches!(err, LedgerError::EntryUntrustedKey { index: 10, .. }), "{err}");
    assert!(err.to_string().starts_with("entry 10: signed by untrusted key"), "{err}");

    // Once the auditor trusts the new key too (rotation), the same export verifies.
    let both: TrustedKeys = [broker().public_key(), rogue.public_key()].into_iter().collect();
    let r = verify_export(&l.export(), &both, ORIGIN, &broker().public_key(), None).unwrap();
    assert_eq!(r.admits, 4);
}

#[test]
fn entries_must_be_canonical_typed_and_well_formed_records() {
    let (l, _) = sample();
    let rebuild = |f: &dyn Fn(&mut Ledger)| {
        let (mut l, _) = sample();
        f(&mut l);
        l.checkpoint();
        verify(&l.export()).unwrap_err()
    };

    // Not the canonical bytes of the envelope (pretty-printed).
    let mut e = l.export();
    let env: Envelope = serde_json::from_slice(&e.entries[1]).unwrap();
    e.entries[1] = serde_json::to_vec_pretty(&env).unwrap();
    assert!(matches!(verify(&e), Err(LedgerError::EntryNotCanonical { index: 1 })));

    // Not an envelope, or one with an unknown field.
    let mut e = l.export();
    e.entries[1] = b"[]".to_vec();
    assert!(matches!(verify(&e), Err(LedgerError::EntryMalformed { index: 1, .. })));

    // A certificate is not a ledger record.
    let err = rebuild(&|l| {
        l.push(PayloadType::Certificate, json!({"version": 1}));
    });
    assert!(matches!(err, LedgerError::EntryPayloadType { index: 10, .. }), "{err}");

    // broker_kid naming a key that did not sign.
    let err = rebuild(&|l| {
        let mut v = l.decision_json("reject", None, None, NB * 1000);
        v["broker_kid"] = json!(SigningKey::from_seed(&[5; 32]).kid().to_string());
        l.push(PayloadType::Decision, v);
    });
    assert!(matches!(err, LedgerError::EntryBrokerKid { index: 10, .. }), "{err}");

    // Invalid record payloads.
    let err = rebuild(&|l| {
        let v = l.decision_json("maybe", None, None, NB * 1000);
        l.push(PayloadType::Decision, v);
    });
    assert!(
        matches!(&err, LedgerError::EntryPayload { index: 10, reason } if reason.contains("maybe"))
    );
    let err = rebuild(&|l| {
        let mut v = l.decision_json("admit", Some("c"), Some("n"), NB * 1000);
        v.as_object_mut().unwrap().remove("not_after");
        l.push(PayloadType::Decision, v);
    });
    assert!(
        matches!(&err, LedgerError::EntryPayload { index: 10, reason } if reason.contains("not_after"))
    );
    let err = rebuild(&|l| {
        let v = l.decision_json("admit", None, Some("n"), NB * 1000);
        l.push(PayloadType::Decision, v);
    });
    assert!(matches!(err, LedgerError::EntryPayload { index: 10, .. }), "{err}");
    let err = rebuild(&|l| {
        let v = l.outcome_json("c1", "n1", "done");
        l.push(PayloadType::Outcome, v);
    });
    assert!(
        matches!(&err, LedgerError::EntryPayload { index: 10, reason } if reason.contains("done"))
    );
    let err = rebuild(&|l| {
        let env = Envelope::sign_bytes(
            PayloadType::Decision,
            br#"{"decision": "reject", "at_ms": 1}"#,
            &[&l.key],
        );
        l.push_envelope(&env);
    });
    assert!(
        matches!(&err, LedgerError::EntryPayload { index: 10, reason } if reason.contains("canonical"))
    );
}

// ----- Admission records (payloadType `admission`, signed by the issuer key) -----

fn issuer() -> SigningKey {
    SigningKey::from_seed(&[9; 32])
}

fn admission_json(key: &SigningKey, decision: &str, cid: Option<&str>) -> Value {
    let issued = decision == "issue";
    json!({
        "id": "adm-1", "stage": "admission", "decision": decision,
        "proposal_id": "p-1", "agent": "agent-a",
        "cid": cid, "certificate_digest": if issued { json!(D) } else { Value::Null },
        "contract_digest": D, "evidence_digest": D,
        "risk_level": "L2", "score_milli": 300, "factors": null, "cert_path": "human",
        "approvers": ["alice"], "policy_epoch": 1, "revocation_epoch": 0, "policy_digest": D,
        "not_before": if issued { json!(NB) } else { Value::Null },
        "not_after": if issued { json!(NA) } else { Value::Null },
        "reason": "approved", "issuer_kid": key.kid().to_string(),
        "at_ms": NB * 1000, "break_glass": false,
    })
}

fn push_signed(l: &mut Ledger, key: &SigningKey, pt: PayloadType, v: &Value) {
    let env = Envelope::sign(pt, v, key).unwrap();
    l.push_envelope(&env);
}

fn verify_roles(
    export: &LedgerExport,
    admission: Option<&TrustedKeys>,
) -> Result<VerifyReport, LedgerError> {
    let broker_keys = trusted();
    let keys = RecordKeys { broker: &broker_keys, admission: admission.map(|a| a as _) };
    verify_ledger(export, &keys, ORIGIN, &[broker().public_key()], None, &VerifyOptions::default())
}

fn admission_keys() -> TrustedKeys {
    [issuer().public_key()].into_iter().collect()
}

#[test]
fn admission_records_verify_under_the_issuer_key_and_are_counted() {
    let mut l = Ledger::new();
    push_signed(
        &mut l,
        &issuer(),
        PayloadType::Admission,
        &admission_json(&issuer(), "issue", Some("c1")),
    );
    l.admit("c1", "n1");
    l.outcome("c1", "n1", "applied");
    push_signed(
        &mut l,
        &issuer(),
        PayloadType::Admission,
        &admission_json(&issuer(), "deny", None),
    );
    l.checkpoint();
    let r = verify_roles(&l.export(), Some(&admission_keys())).unwrap();
    assert_eq!((r.issued, r.denied, r.admits, r.outcomes, r.decisions), (1, 1, 1, 1, 1));
    // Without the admission key the issuer's signature is untrusted.
    let e = verify_roles(&l.export(), None).unwrap_err();
    assert!(matches!(e, LedgerError::EntryUntrustedKey { index: 0, .. }), "{e}");
    // The old entry point (broker keys only) refuses them the same way.
    assert!(matches!(verify(&l.export()), Err(LedgerError::EntryUntrustedKey { index: 0, .. })));
}

#[test]
fn a_key_trusted_for_one_role_cannot_sign_the_other() {
    // The broker key forging an issuance record.
    let mut l = Ledger::new();
    push_signed(
        &mut l,
        &broker(),
        PayloadType::Admission,
        &admission_json(&broker(), "issue", Some("c1")),
    );
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(matches!(e, LedgerError::EntrySignerRole { index: 0, role: "admission" }), "{e}");

    // The issuer key forging a broker admit (no stage field).
    let mut l = Ledger::new();
    let mut admit = l.decision_json("admit", Some("c1"), Some("n1"), NB * 1000 + 5_000);
    admit["broker_kid"] = json!(issuer().kid().to_string());
    push_signed(&mut l, &issuer(), PayloadType::Decision, &admit);
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(matches!(e, LedgerError::EntrySignerRole { index: 0, role: "broker" }), "{e}");

    // The issuer key forging an outcome.
    let mut l = Ledger::new();
    l.admit("c1", "n1");
    let mut out = l.outcome_json("c1", "n1", "applied");
    out["broker_kid"] = json!(issuer().kid().to_string());
    push_signed(&mut l, &issuer(), PayloadType::Outcome, &out);
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(matches!(e, LedgerError::EntrySignerRole { index: 1, role: "broker" }), "{e}");

    // An issuance naming another issuer than the one that signed it.
    let mut l = Ledger::new();
    let mut v = admission_json(&issuer(), "issue", Some("c1"));
    v["issuer_kid"] = json!(broker().kid().to_string());
    push_signed(&mut l, &issuer(), PayloadType::Admission, &v);
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(matches!(e, LedgerError::EntrySignerRole { index: 0, role: "admission" }), "{e}");
}

/// Records of different roles are told apart by their payloadType, not by a field inside:
/// an admission record under the broker's `decision` type is refused whoever signed it, and
/// each type is checked under its own role's key.
#[test]
fn each_role_signs_only_under_its_own_payload_type() {
    // The pre-`admission`-type encoding: an issuance under `decision`, signed by the issuer.
    let mut l = Ledger::new();
    push_signed(
        &mut l,
        &issuer(),
        PayloadType::Decision,
        &admission_json(&issuer(), "issue", Some("c1")),
    );
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(
        matches!(&e, LedgerError::EntryPayload { index: 0, reason } if reason.contains("payloadType")),
        "{e}"
    );
    // The same under `decision` signed by the broker key: still refused.
    let mut l = Ledger::new();
    push_signed(
        &mut l,
        &broker(),
        PayloadType::Decision,
        &admission_json(&broker(), "issue", Some("c1")),
    );
    l.checkpoint();
    assert!(verify_roles(&l.export(), Some(&admission_keys())).is_err());
    // A broker admit under the `admission` type, signed by the broker key: the role check
    // refuses it (the broker key is not an admission key).
    let mut l = Ledger::new();
    let admit = l.decision_json("admit", Some("c1"), Some("n1"), NB * 1000 + 5_000);
    push_signed(&mut l, &broker(), PayloadType::Admission, &admit);
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(
        matches!(
            e,
            LedgerError::EntrySignerRole { index: 0, role: "admission" }
                | LedgerError::EntryPayload { index: 0, .. }
        ),
        "{e}"
    );
    // A broker admit under the `admission` type signed by the issuer key (naming itself):
    // not an admission record's shape.
    let mut l = Ledger::new();
    let mut admit = l.decision_json("admit", Some("c1"), Some("n1"), NB * 1000 + 5_000);
    admit["issuer_kid"] = json!(issuer().kid().to_string());
    push_signed(&mut l, &issuer(), PayloadType::Admission, &admit);
    l.checkpoint();
    let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
    assert!(matches!(e, LedgerError::EntryPayload { index: 0, .. }), "{e}");
}

#[test]
fn admission_records_must_be_well_formed() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("unknown decision", Box::new(|v| v["decision"] = json!("admit"))),
        ("issue without cid", Box::new(|v| v["cid"] = Value::Null)),
        ("issue without digest", Box::new(|v| v["certificate_digest"] = Value::Null)),
        ("issue without validity", Box::new(|v| v["not_after"] = Value::Null)),
        ("empty validity", Box::new(|v| v["not_after"] = json!(NB))),
        ("carries a nonce", Box::new(|v| v["nonce"] = json!("n1"))),
        ("carries a broker_kid", Box::new(|v| v["broker_kid"] = json!(issuer().kid().to_string()))),
        (
            "break_glass missing",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("break_glass");
            }),
        ),
        ("at_ms negative", Box::new(|v| v["at_ms"] = json!(-1))),
        ("another stage", Box::new(|v| v["stage"] = json!("broker"))),
    ];
    for (name, mutate) in cases {
        let mut l = Ledger::new();
        let mut v = admission_json(&issuer(), "issue", Some("c1"));
        mutate(&mut v);
        push_signed(&mut l, &issuer(), PayloadType::Admission, &v);
        l.checkpoint();
        let e = verify_roles(&l.export(), Some(&admission_keys())).unwrap_err();
        assert!(
            matches!(
                e,
                LedgerError::EntryPayload { index: 0, .. } | LedgerError::EntryBrokerKid { .. }
            ),
            "{name}: {e}"
        );
    }
}

/// Across a broker key rotation the ledger's later records and checkpoints are signed by the
/// new key: it verifies when both keys are trusted, and not with the old key alone.
#[test]
fn a_ledger_across_a_key_rotation_verifies_with_both_keys() {
    let (mut l, _) = sample();
    let new_key = || SigningKey::from_seed(&[9; 32]);
    l.key = new_key();
    l.admit("c6", "n6"); // 10, signed by the new key
    l.outcome("c6", "n6", "applied"); // 11
    l.checkpoint(); // at 12, signed by the new key
    let export = l.export();
    let both: TrustedKeys = [broker().public_key(), new_key().public_key()].into_iter().collect();
    let keys = RecordKeys { broker: &both, admission: None };
    let opts = VerifyOptions::default();
    let note_keys = [broker().public_key(), new_key().public_key()];
    let report = verify_ledger(&export, &keys, ORIGIN, &note_keys, None, &opts).unwrap();
    assert_eq!((report.size, report.checkpoints), (12, 3));
    // The old checkpoint key alone: the checkpoint at 12 does not verify.
    let err = verify_ledger(&export, &keys, ORIGIN, &note_keys[..1], None, &opts).unwrap_err();
    assert!(matches!(err, LedgerError::CheckpointInvalid { position: 2, .. }), "{err:?}");
    // No checkpoint key at all verifies nothing.
    let err = verify_ledger(&export, &keys, ORIGIN, &[], None, &opts).unwrap_err();
    assert!(matches!(err, LedgerError::CheckpointInvalid { position: 0, .. }), "{err:?}");
}

/// A certificate's approvals were each recorded (an `approval` record of the same proposal
/// with the approval envelope's digest) before its issue record: in order it verifies and
/// is counted; an issue naming an approval recorded only after it, or never, or for another
/// proposal, is refused at the issue record.
#[test]
fn each_attestation_is_recorded_before_its_issue() {
    const A1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let approval = |proposal: &str| {
        let mut v = admission_json(&issuer(), "approval", None);
        v["proposal_id"] = json!(proposal);
        v["attestation_digest"] = json!(A1);
        v
    };
    let mut issue = admission_json(&issuer(), "issue", Some("c1"));
    issue["attestation_digests"] = json!([A1]);
    let build = |entries: &[&Value]| {
        let mut l = Ledger::new();
        for e in entries {
            push_signed(&mut l, &issuer(), PayloadType::Admission, e);
        }
        l.checkpoint();
        verify_roles(&l.export(), Some(&admission_keys()))
    };
    let r = build(&[&approval("p-1"), &issue]).unwrap();
    assert_eq!((r.approvals, r.issued), (1, 1));
    let e = build(&[&issue, &approval("p-1")]).unwrap_err();
    assert!(matches!(e, LedgerError::AttestationNotRecorded { index: 0, .. }), "{e}");
    let e = build(&[&issue]).unwrap_err();
    assert!(matches!(e, LedgerError::AttestationNotRecorded { index: 0, .. }), "{e}");
    let e = build(&[&approval("p-other"), &issue]).unwrap_err();
    assert!(matches!(e, LedgerError::AttestationNotRecorded { index: 1, .. }), "{e}");
    // An approval record without the digest it is about is malformed.
    let mut bare = approval("p-1");
    bare.as_object_mut().unwrap().remove("attestation_digest");
    assert!(matches!(build(&[&bare]), Err(LedgerError::EntryPayload { index: 0, .. })));
}
