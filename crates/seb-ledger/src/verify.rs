//! The offline auditor (spec section 8): checks a ledger export end to end.
//!
//! Order of checks, so that the first error is the most telling one:
//!
//! 1. **Checkpoints**: every signed note verifies under the broker's note key, names the
//!    export's origin, and no two of them claim different roots for one size (that alone
//!    proves a fork).
//! 2. **Entries**, in log order: each is a strictly parsed envelope whose bytes are exactly its
//!    canonical form, of payloadType decision, outcome or epoch, signed by a trusted broker key,
//!    with a payload that is canonical JSON and a valid record; its `broker_kid` (when present)
//!    names a key that signed it. As soon as the entries reach a checkpoint's size (or the
//!    trusted checkpoint's), the recomputed root must equal the signed one.
//! 3. **Coverage**: no checkpoint is larger than the export (truncation); by default the export
//!    must carry a checkpoint of its full size, so no entry escapes the signed tree heads.
//! 4. **Consistency with the trusted checkpoint**: the auditor's earlier checkpoint must be the
//!    root of a prefix of the export. Because the whole tree is recomputed, this is exactly
//!    what a verified RFC 9162 consistency proof from it to the export's latest checkpoint
//!    would establish.
//! 5. **Semantics**: every outcome follows an `admit` for the same (cid, nonce); no (cid,
//!    nonce) has two outcomes or two admits; every `admit` lies inside its certificate's
//!    validity window: `not_before * 1000 - skew_ms <= at_ms < not_after * 1000`.
//!
//! Records have roles (checked in step 2): the broker's decisions and outcomes must be signed
//! by a broker key; admission's issuance and denial records (`stage: "admission"`, decision
//! `issue` or `deny`) by an admission issuer key, which their `issuer_kid` names; epoch
//! statements by either. A key trusted for one role cannot forge a record of the other.
//!
//! Integrity comes before semantics: once steps 1-4 pass, the export is exactly what the broker
//! signed, so a semantic error is evidence against the broker itself, not against the copy.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use seb_core::envelope::{Envelope, EnvelopeError, PayloadType};
use seb_core::json;
use seb_core::keys::{KeyResolver, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checkpoint::Checkpoint;
use crate::error::{LedgerError, short};
use crate::merkle::{Frontier, Hash, leaf_hash};

/// The on-disk export format that `seb ledger export` writes (JSON; entries as standard
/// base64 strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerExport {
    /// The log's origin, as in its checkpoints.
    pub origin: String,
    /// The entries in log order; each is the canonical bytes of a signed record envelope.
    #[serde(with = "base64_entries")]
    pub entries: Vec<Vec<u8>>,
    /// Signed checkpoint notes (C2SP signed-note text).
    pub checkpoints: Vec<String>,
}

impl LedgerExport {
    /// Parse an export strictly (duplicate keys, unknown fields and oversize input refused).
    pub fn from_json(bytes: &[u8], limit: usize) -> Result<Self, LedgerError> {
        json::parse(bytes, limit).map_err(|e| LedgerError::ExportFormat(e.to_string()))
    }

    /// The export as pretty-printed JSON.
    pub fn to_json_pretty(&self) -> Result<Vec<u8>, LedgerError> {
        serde_json::to_vec_pretty(self).map_err(|e| LedgerError::ExportFormat(e.to_string()))
    }
}

mod base64_entries {
    use super::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(entries: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(entries.iter().map(|e| STANDARD.encode(e)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .enumerate()
            .map(|(i, s)| {
                STANDARD.decode(s).map_err(|_| {
                    D::Error::custom(format_args!("entry {i} is not canonical base64"))
                })
            })
            .collect()
    }
}

/// Tunables of the auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Clock skew allowed before `not_before` (the broker's time check uses the same).
    pub skew_ms: u64,
    /// Largest entry accepted, in bytes.
    pub max_entry_bytes: usize,
    /// Require a checkpoint whose size is the whole export (default). Without one, entries
    /// past the latest checkpoint are only individually signed: they could have been dropped
    /// or reordered unnoticed.
    pub require_full_checkpoint: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self { skew_ms: 30_000, max_entry_bytes: 1 << 20, require_full_checkpoint: true }
    }
}

/// What an export that passed every check contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Number of entries (the tree size).
    pub size: u64,
    /// Root of the whole export.
    #[serde(serialize_with = "hex_hash")]
    pub root: Hash,
    /// Decision records (any decision).
    pub decisions: u64,
    /// Outcome records.
    pub outcomes: u64,
    /// `admit` decisions.
    pub admits: u64,
    /// Decision records flagged `break_glass`.
    pub break_glass: u64,
    /// `reject` decisions.
    pub rejects: u64,
    /// `readmit` decisions.
    pub readmits: u64,
    /// `fail_closed` decisions.
    pub fail_closed: u64,
    /// Epoch statements.
    pub epochs: u64,
    /// Admission `issue` records (certificates issued).
    pub issued: u64,
    /// Admission `deny` records (proposals denied).
    pub denied: u64,
    /// Admission `approval` records (approvals received).
    #[serde(default)]
    pub approvals: u64,
    /// Admission `enrol` and `remove_approver` records (approver-registry changes).
    pub approver_changes: u64,
    /// Passkey approvals re-verified against the credential of their `enrol` record.
    pub passkey_approvals: u64,
    /// Passkey approvals whose credential no `enrol` record in the ledger registers (passkeys
    /// from a configuration file): not verifiable offline.
    pub passkey_unresolved: u64,
    /// Outcomes with status `uncertain` (each one is an alert).
    pub uncertain_outcomes: u64,
    /// Admits without an outcome yet (executions in flight or awaiting crash recovery).
    pub open_admits: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// Size of the largest checkpoint, if any.
    pub latest_checkpoint: Option<u64>,
    /// Size of the trusted checkpoint the export was proven consistent with, if one was given.
    pub trusted_size: Option<u64>,
}

fn hex_hash<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(h))
}

/// Verify an export with default [`VerifyOptions`].
///
/// `broker_keys` resolves the keys trusted to sign records (decision, outcome and epoch
/// entries); `note_key_name` and `note_key` verify the checkpoints; `trusted` is an earlier
/// checkpoint the auditor already holds (already verified by them), which the export must
/// extend.
///
/// Every checkpoint must carry `export.origin`, and so must `trusted`. Without a trusted
/// checkpoint, the caller should also check that `export.origin` is the log it means to audit.
pub fn verify_export(
    export: &LedgerExport,
    broker_keys: &dyn KeyResolver,
    note_key_name: &str,
    note_key: &PublicKey,
    trusted: Option<&Checkpoint>,
) -> Result<VerifyReport, LedgerError> {
    verify_export_with(
        export,
        broker_keys,
        note_key_name,
        note_key,
        trusted,
        &VerifyOptions::default(),
    )
}

/// [`verify_export`] with explicit options.
pub fn verify_export_with(
    export: &LedgerExport,
    broker_keys: &dyn KeyResolver,
    note_key_name: &str,
    note_key: &PublicKey,
    trusted: Option<&Checkpoint>,
    options: &VerifyOptions,
) -> Result<VerifyReport, LedgerError> {
    let keys = RecordKeys { broker: broker_keys, admission: None };
    verify_ledger(export, &keys, note_key_name, std::slice::from_ref(note_key), trusted, options)
}

/// The keys trusted to sign records, by role.
#[derive(Clone, Copy)]
pub struct RecordKeys<'a> {
    /// Keys of the broker(s): their decisions, outcomes and epoch records.
    pub broker: &'a dyn KeyResolver,
    /// Keys of the admission issuer(s): issuance and denial records and epoch statements.
    /// `None`: the ledger must hold no admission record.
    pub admission: Option<&'a dyn KeyResolver>,
}

impl std::fmt::Debug for RecordKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKeys").field("admission", &self.admission.is_some()).finish()
    }
}

impl KeyResolver for RecordKeys<'_> {
    /// Any key of either role (the signature check); the role check comes after.
    fn resolve(&self, kid: &seb_core::keys::KeyId) -> Option<PublicKey> {
        self.broker.resolve(kid).or_else(|| self.admission.and_then(|a| a.resolve(kid)))
    }
}

/// Verify a ledger that may hold admission records as well as the broker's. A checkpoint is
/// valid when one of `note_keys` signed it (several across a broker key rotation).
pub fn verify_ledger(
    export: &LedgerExport,
    keys: &RecordKeys<'_>,
    note_key_name: &str,
    note_keys: &[PublicKey],
    trusted: Option<&Checkpoint>,
    options: &VerifyOptions,
) -> Result<VerifyReport, LedgerError> {
    let entries = u64::try_from(export.entries.len())
        .map_err(|_| LedgerError::TreeTooLarge { size: u64::MAX })?;

    // 1. Checkpoints.
    let mut checkpoints: Vec<Checkpoint> = Vec::with_capacity(export.checkpoints.len());
    for (position, note) in export.checkpoints.iter().enumerate() {
        let mut verified = Err(LedgerError::MalformedCheckpoint("no checkpoint key given".into()));
        for key in note_keys {
            verified = Checkpoint::parse_and_verify(note, note_key_name, key);
            if verified.is_ok() {
                break;
            }
        }
        let c = verified
            .map_err(|e| LedgerError::CheckpointInvalid { position, source: Box::new(e) })?;
        if c.origin != export.origin {
            return Err(LedgerError::CheckpointOrigin {
                size: c.size,
                found: short(&c.origin),
                expected: short(&export.origin),
            });
        }
        checkpoints.push(c);
    }
    checkpoints.sort_by_key(|c| c.size);
    for pair in checkpoints.windows(2) {
        if let [a, b] = pair
            && a.size == b.size
            && a.root != b.root
        {
            return Err(LedgerError::ConflictingCheckpoints { size: a.size });
        }
    }
    checkpoints.dedup();
    if let Some(t) = trusted {
        if t.origin != export.origin {
            return Err(LedgerError::TrustedOrigin {
                found: short(&t.origin),
                expected: short(&export.origin),
            });
        }
        if t.size > entries {
            return Err(LedgerError::TrustedBeyondExport { trusted_size: t.size, entries });
        }
    }

    // 2. Entries, with every checkpoint checked as soon as the entries reach its size.
    let mut pending = checkpoints.iter().peekable();
    let check_at = |frontier: &Frontier,
                    pending: &mut std::iter::Peekable<std::slice::Iter<'_, Checkpoint>>|
     -> Result<(), LedgerError> {
        let size = frontier.size();
        if let Some(t) = trusted
            && t.size == size
            && t.root != frontier.root()
        {
            return Err(LedgerError::TrustedRootMismatch { size });
        }
        while let Some(c) = pending.next_if(|c| c.size == size) {
            if c.root != frontier.root() {
                return Err(LedgerError::CheckpointRootMismatch { size });
            }
        }
        Ok(())
    };
    let mut frontier = Frontier::new();
    check_at(&frontier, &mut pending)?;
    let mut records = Vec::with_capacity(export.entries.len());
    for (index, entry) in (0u64..).zip(&export.entries) {
        records.push(check_entry(index, entry, keys, options)?);
        frontier.try_push(leaf_hash(entry))?;
        check_at(&frontier, &mut pending)?;
    }

    // 3. Coverage.
    if let Some(c) = pending.next() {
        return Err(LedgerError::ExportTruncated { checkpoint_size: c.size, entries });
    }
    let latest_checkpoint = checkpoints.last().map(|c| c.size);
    if options.require_full_checkpoint {
        match latest_checkpoint {
            None => return Err(LedgerError::NoCheckpoint),
            Some(covered) if covered != entries => {
                return Err(LedgerError::UncoveredEntries { covered, entries });
            }
            Some(_) => {}
        }
    }
    // 4. The trusted checkpoint was compared with the recomputed root when the entries reached
    // its size (at most `entries`, checked above; size 0 against the empty root).

    // 5. Semantics.
    let mut report = VerifyReport {
        size: entries,
        root: frontier.root(),
        decisions: 0,
        outcomes: 0,
        admits: 0,
        break_glass: 0,
        rejects: 0,
        readmits: 0,
        fail_closed: 0,
        epochs: 0,
        issued: 0,
        denied: 0,
        approvals: 0,
        approver_changes: 0,
        passkey_approvals: 0,
        passkey_unresolved: 0,
        uncertain_outcomes: 0,
        open_admits: 0,
        checkpoints: u64::try_from(checkpoints.len()).unwrap_or(u64::MAX),
        latest_checkpoint,
        trusted_size: trusted.map(|t| t.size),
    };
    check_semantics(&records, options, &mut report)?;
    Ok(report)
}

/// What the auditor needs from one record.
#[derive(Debug)]
enum Record {
    Decision {
        decision: Decision,
        key: Option<(String, String)>,
        at_ms: u64,
        validity: Option<(u64, u64)>,
        break_glass: bool,
    },
    Outcome {
        key: (String, String),
        uncertain: bool,
    },
    Epoch,
    Admission {
        kind: AdmissionKind,
        break_glass: bool,
        proposal_id: String,
        /// `approval`: the approval envelope's digest; `issue`: those the certificate carries.
        attestations: Vec<String>,
        passkey_approvals: Vec<seb_core::envelope::Envelope>,
    },
    ApproverChange {
        /// The credential an `enrol` record registers.
        enrolled: Option<seb_core::webauthn::WebAuthnCredential>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdmissionKind {
    Issue,
    Deny,
    Approval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Admit,
    Reject,
    Readmit,
    FailClosed,
}

const OUTCOME_STATUSES: [&str; 6] =
    ["applied", "failed", "conflict", "not_attempted", "not_applied", "uncertain"];

fn check_entry(
    index: u64,
    entry: &[u8],
    keys: &RecordKeys<'_>,
    options: &VerifyOptions,
) -> Result<Record, LedgerError> {
    let envelope: Envelope = json::parse(entry, options.max_entry_bytes)
        .map_err(|e| LedgerError::EntryMalformed { index, reason: e.to_string() })?;
    let canonical = envelope
        .canonical_bytes()
        .map_err(|e| LedgerError::EntryMalformed { index, reason: e.to_string() })?;
    if canonical != entry {
        return Err(LedgerError::EntryNotCanonical { index });
    }
    let payload_type = PayloadType::from_media_type(&envelope.payload_type)
        .filter(|t| {
            matches!(
                t,
                PayloadType::Decision
                    | PayloadType::Outcome
                    | PayloadType::Epoch
                    | PayloadType::Admission
            )
        })
        .ok_or_else(|| LedgerError::EntryPayloadType {
            index,
            found: short(&envelope.payload_type),
        })?;
    let verified = envelope.verify(payload_type, keys).map_err(|e| match e {
        EnvelopeError::UntrustedKey(kid) => LedgerError::EntryUntrustedKey { index, kid },
        EnvelopeError::PayloadEncoding | EnvelopeError::Payload(_) => {
            LedgerError::EntryMalformed { index, reason: e.to_string() }
        }
        source => LedgerError::EntrySignature { index, source },
    })?;
    let bad = |reason: String| LedgerError::EntryPayload { index, reason };
    let value = json::parse_value(verified.bytes(), options.max_entry_bytes)
        .map_err(|e| bad(e.to_string()))?;
    if json::canonical(&value).map_err(|e| bad(e.to_string()))? != verified.bytes() {
        return Err(bad("payload is not canonical JSON".into()));
    }
    let Value::Object(obj) = &value else {
        return Err(bad("payload is not a JSON object".into()));
    };
    // Each role's records are told apart by their payloadType (spec section 2), never by a
    // field inside: a broker decision may not pose as an admission record.
    if payload_type == PayloadType::Decision
        && obj.get("stage").and_then(Value::as_str) == Some(ADMISSION_STAGE)
    {
        return Err(bad(
            "an admission record (`stage: admission`) under the broker's `decision` payloadType"
                .into(),
        ));
    }
    if payload_type == PayloadType::Admission {
        // Signed by the admission key its `issuer_kid` names, and that key is trusted as one.
        let role = LedgerError::EntrySignerRole { index, role: "admission" };
        let claimed = req_str(obj, "issuer_kid").map_err(bad)?;
        let trusted_issuer = keys.admission.is_some_and(|a| {
            verified.signers().iter().any(|k| k.as_str() == claimed && a.resolve(k).is_some())
        });
        if !trusted_issuer {
            return Err(role);
        }
        if req_str(obj, "stage").map_err(bad)? != ADMISSION_STAGE {
            return Err(bad("an admission record without `stage: admission`".into()));
        }
        return parse_admission(obj).map_err(bad);
    }
    if payload_type != PayloadType::Epoch {
        if let Some(claimed) = obj.get("broker_kid").and_then(Value::as_str)
            && !verified.signers().iter().any(|k| k.as_str() == claimed)
        {
            return Err(LedgerError::EntryBrokerKid { index, claimed: short(claimed) });
        }
        if !verified.signers().iter().any(|k| keys.broker.resolve(k).is_some()) {
            return Err(LedgerError::EntrySignerRole { index, role: "broker" });
        }
    }
    match payload_type {
        PayloadType::Decision => parse_decision(obj).map_err(bad),
        PayloadType::Outcome => parse_outcome(obj).map_err(bad),
        _ => Ok(Record::Epoch),
    }
}

/// Passkeys registered by the ledger's `enrol` records, by key id (removal keeps them: an
/// approval given before a removal stays verifiable).
#[derive(Debug, Default)]
struct EnrolledPasskeys(
    std::collections::BTreeMap<seb_core::keys::KeyId, seb_core::webauthn::WebAuthnCredential>,
);

impl EnrolledPasskeys {
    fn insert(&mut self, kid: seb_core::keys::KeyId, c: seb_core::webauthn::WebAuthnCredential) {
        self.0.insert(kid, c);
    }
    fn contains_key(&self, kid: &seb_core::keys::KeyId) -> bool {
        self.0.contains_key(kid)
    }
}

impl KeyResolver for EnrolledPasskeys {
    fn resolve(&self, _kid: &seb_core::keys::KeyId) -> Option<PublicKey> {
        None
    }
    fn resolve_webauthn(
        &self,
        kid: &seb_core::keys::KeyId,
    ) -> Option<seb_core::webauthn::WebAuthnCredential> {
        self.0.get(kid).cloned()
    }
}

/// The `stage` of admission's records.
const ADMISSION_STAGE: &str = "admission";

fn parse_admission(obj: &Map<String, Value>) -> Result<Record, String> {
    let kind = match req_str(obj, "decision")? {
        "issue" => AdmissionKind::Issue,
        "deny" => AdmissionKind::Deny,
        "approval" => AdmissionKind::Approval,
        // Approver-registry changes (spec 5.1): signed by the issuer like every admission
        // record, never break-glass, naming the approver.
        decision @ ("enrol" | "remove_approver") => {
            req_str(obj, "approver")?;
            req_u64(obj, "at_ms")?;
            if obj.get("break_glass") != Some(&Value::Bool(false)) {
                return Err("an approver record must carry `break_glass: false`".into());
            }
            let mut enrolled = None;
            if decision == "enrol" {
                let kid = req_str(obj, "kid")?;
                let c: seb_core::webauthn::WebAuthnCredential = obj
                    .get("credential")
                    .cloned()
                    .ok_or("an enrol record without its credential")
                    .and_then(|v| {
                        serde_json::from_value(v)
                            .map_err(|_| "an enrol record's credential is malformed")
                    })?;
                if c.kid().as_str() != kid {
                    return Err("an enrol record's kid is not its credential's".into());
                }
                enrolled = Some(c);
            }
            return Ok(Record::ApproverChange { enrolled });
        }
        other => return Err(format!("unknown admission decision `{}`", short(other))),
    };
    let issued = kind == AdmissionKind::Issue;
    let proposal_id = opt_str(obj, "proposal_id")?.unwrap_or_default().to_owned();
    let mut attestations = Vec::new();
    if kind == AdmissionKind::Approval {
        attestations.push(req_str(obj, "attestation_digest")?.to_owned());
    }
    if issued {
        match obj.get("attestation_digests") {
            None => {}
            Some(Value::Array(a)) => {
                for d in a {
                    let Value::String(d) = d else {
                        return Err("`attestation_digests` holds a non-string".into());
                    };
                    attestations.push(d.clone());
                }
            }
            Some(_) => return Err("`attestation_digests` is not an array".into()),
        }
    }
    req_u64(obj, "at_ms")?;
    let break_glass = match obj.get("break_glass") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`break_glass` is not a boolean".into()),
        None => return Err("missing field `break_glass`".into()),
    };
    // Never confusable with the broker's records of the same certificate.
    for field in ["broker_kid", "nonce"] {
        if obj.get(field).is_some_and(|v| !v.is_null()) {
            return Err(format!("an admission record carries `{field}`"));
        }
    }
    if issued {
        req_str(obj, "cid")?;
        req_str(obj, "certificate_digest")?;
        let not_before = req_u64(obj, "not_before")?;
        let not_after = req_u64(obj, "not_after")?;
        if not_after <= not_before {
            return Err("issued with an empty validity window".into());
        }
    }
    let passkey_approvals = match obj.get("passkey_approvals") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| "`passkey_approvals` is not a list of envelopes".to_owned())?,
    };
    Ok(Record::Admission { kind, break_glass, proposal_id, attestations, passkey_approvals })
}

fn req_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("`{field}` is not a string")),
        None => Err(format!("missing field `{field}`")),
    }
}

fn req_u64(obj: &Map<String, Value>, field: &str) -> Result<u64, String> {
    match obj.get(field) {
        Some(v) => v.as_u64().ok_or_else(|| format!("`{field}` is not a non-negative integer")),
        None => Err(format!("missing field `{field}`")),
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{field}` is neither a string nor null")),
    }
}

fn parse_decision(obj: &Map<String, Value>) -> Result<Record, String> {
    let decision = match req_str(obj, "decision")? {
        "admit" => Decision::Admit,
        "reject" => Decision::Reject,
        "readmit" => Decision::Readmit,
        "fail_closed" => Decision::FailClosed,
        other => return Err(format!("unknown decision `{}`", short(other))),
    };
    let at_ms = req_u64(obj, "at_ms")?;
    let break_glass = match obj.get("break_glass") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`break_glass` is not a boolean".into()),
    };
    let key = match (opt_str(obj, "cid")?, opt_str(obj, "nonce")?) {
        (Some(c), Some(n)) => Some((c.to_owned(), n.to_owned())),
        _ => None,
    };
    let validity = if decision == Decision::Admit {
        if key.is_none() {
            return Err("admit without both `cid` and `nonce`".into());
        }
        Some((req_u64(obj, "not_before")?, req_u64(obj, "not_after")?))
    } else {
        None
    };
    Ok(Record::Decision { decision, key, at_ms, validity, break_glass })
}

fn parse_outcome(obj: &Map<String, Value>) -> Result<Record, String> {
    let key = (req_str(obj, "cid")?.to_owned(), req_str(obj, "nonce")?.to_owned());
    let status = req_str(obj, "status")?;
    if !OUTCOME_STATUSES.contains(&status) {
        return Err(format!("unknown outcome status `{}`", short(status)));
    }
    Ok(Record::Outcome { key, uncertain: status == "uncertain" })
}

fn check_semantics(
    records: &[Record],
    options: &VerifyOptions,
    report: &mut VerifyReport,
) -> Result<(), LedgerError> {
    // First admit of every (cid, nonce) anywhere in the log, to tell "never admitted" from
    // "admitted later" (reordering).
    let mut first_admit: HashMap<&(String, String), u64> = HashMap::new();
    for (index, r) in (0u64..).zip(records) {
        if let Record::Decision { decision: Decision::Admit, key: Some(k), .. } = r {
            first_admit.entry(k).or_insert(index);
        }
    }
    let mut admitted: HashMap<&(String, String), u64> = HashMap::new();
    // Approvals recorded so far: (proposal_id, approval envelope digest).
    let mut approved: HashMap<(&str, &str), u64> = HashMap::new();
    let mut finished: HashMap<&(String, String), u64> = HashMap::new();
    let mut passkeys = EnrolledPasskeys::default();
    for (index, r) in (0u64..).zip(records) {
        match r {
            Record::Decision { decision, key, at_ms, validity, break_glass } => {
                report.decisions += 1;
                report.break_glass += u64::from(*break_glass);
                match decision {
                    Decision::Reject => report.rejects += 1,
                    Decision::Readmit => report.readmits += 1,
                    Decision::FailClosed => report.fail_closed += 1,
                    Decision::Admit => {
                        report.admits += 1;
                        if let (Some(k), Some((not_before, not_after))) = (key, validity) {
                            if let Some(first) = admitted.insert(k, index) {
                                return Err(LedgerError::DuplicateAdmit {
                                    index,
                                    first,
                                    cid: short(&k.0),
                                    nonce: short(&k.1),
                                });
                            }
                            let start =
                                not_before.saturating_mul(1000).saturating_sub(options.skew_ms);
                            let end = not_after.saturating_mul(1000);
                            if *at_ms < start || *at_ms >= end {
                                return Err(LedgerError::AdmitOutsideValidity {
                                    index,
                                    at_ms: *at_ms,
                                    not_before: *not_before,
                                    not_after: *not_after,
                                });
                            }
                        }
                    }
                }
            }
            Record::Outcome { key, uncertain } => {
                report.outcomes += 1;
                report.uncertain_outcomes += u64::from(*uncertain);
                if !admitted.contains_key(key) {
                    let (cid, nonce) = (short(&key.0), short(&key.1));
                    return Err(match first_admit.get(key) {
                        Some(&admit_index) => {
                            LedgerError::OutcomeBeforeAdmit { index, admit_index, cid, nonce }
                        }
                        None => LedgerError::OutcomeWithoutAdmit { index, cid, nonce },
                    });
                }
                if let Some(first) = finished.insert(key, index) {
                    return Err(LedgerError::DuplicateOutcome {
                        index,
                        first,
                        cid: short(&key.0),
                        nonce: short(&key.1),
                    });
                }
            }
            Record::Epoch => report.epochs += 1,
            Record::ApproverChange { enrolled } => {
                report.approver_changes += 1;
                if let Some(c) = enrolled {
                    passkeys.insert(c.kid(), c.clone());
                }
            }
            Record::Admission {
                kind,
                break_glass,
                proposal_id,
                attestations,
                passkey_approvals,
            } => {
                report.break_glass += u64::from(*break_glass);
                for approval in passkey_approvals {
                    // Every passkey approval whose credential an earlier `enrol` record
                    // registered must verify (spec 5.1); others (passkeys written in a
                    // configuration file) are counted as unresolved.
                    let known = approval.signatures.iter().all(|s| {
                        s.keyid
                            .parse()
                            .is_ok_and(|k: seb_core::keys::KeyId| passkeys.contains_key(&k))
                    });
                    if !known {
                        report.passkey_unresolved += 1;
                        continue;
                    }
                    approval.verify(seb_core::envelope::PayloadType::Approval, &passkeys).map_err(
                        |e| LedgerError::EntryPayload {
                            index,
                            reason: format!("passkey approval does not verify: {e}"),
                        },
                    )?;
                    report.passkey_approvals += 1;
                }
                match kind {
                    AdmissionKind::Issue => {
                        report.issued += 1;
                        // Each approval a certificate carries was recorded before its issue.
                        for d in attestations {
                            if !approved.contains_key(&(proposal_id.as_str(), d.as_str())) {
                                return Err(LedgerError::AttestationNotRecorded {
                                    index,
                                    proposal_id: short(proposal_id),
                                    digest: short(d),
                                });
                            }
                        }
                    }
                    AdmissionKind::Deny => report.denied += 1,
                    AdmissionKind::Approval => {
                        report.approvals += 1;
                        for d in attestations {
                            approved.entry((proposal_id.as_str(), d.as_str())).or_insert(index);
                        }
                    }
                }
            }
        }
    }
    report.open_admits = u64::try_from(admitted.len().saturating_sub(finished.len())).unwrap_or(0);
    Ok(())
}
