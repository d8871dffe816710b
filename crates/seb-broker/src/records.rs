//! Signing decision and outcome records with the broker key.

use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::json::{self, JsonError};
use seb_core::keys::{KeyId, PublicKey, SigningKey};
use seb_core::pipeline::Presented;
use seb_core::types::{Decision, DecisionRecord, FailedCheck, OutcomeRecord};

/// The broker's record signer.
#[derive(Debug)]
pub struct RecordSigner {
    key: SigningKey,
    kid: KeyId,
}

/// A signed record ready for the ledger.
#[derive(Debug, Clone)]
pub struct SignedRecord {
    /// The record id.
    pub id: String,
    /// Canonical bytes of the envelope: the ledger entry.
    pub entry: Vec<u8>,
}

/// A fresh record id (UUID v7: time-ordered).
pub fn new_record_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl RecordSigner {
    /// Sign with `key`.
    pub fn new(key: SigningKey) -> Self {
        let kid = key.kid();
        Self { key, kid }
    }

    /// The broker's key id.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The broker's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The signing key (checkpoints are signed with it too).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Build a decision record from what was presented.
    pub fn decision(
        &self,
        decision: Decision,
        failed_check: Option<FailedCheck>,
        reason: &str,
        presented: &Presented,
        identity: Option<String>,
        at_ms: u64,
    ) -> DecisionRecord {
        DecisionRecord {
            id: new_record_id(),
            cid: presented.cid.clone(),
            nonce: presented.nonce.clone(),
            decision,
            failed_check,
            reason: reason.chars().take(1024).collect(),
            certificate_digest: presented.certificate_digest,
            request_digest: presented.request_digest,
            contract_digest: presented.contract_digest,
            evidence_digest: presented.evidence_digest,
            observed_digest: presented.observed_digest,
            identity: identity.or_else(|| presented.caller.clone()),
            at_ms,
            broker_kid: self.kid.clone(),
            not_before: presented.not_before,
            not_after: presented.not_after,
            break_glass: presented.break_glass,
        }
    }

    /// Sign a decision record.
    pub fn sign_decision(&self, r: &DecisionRecord) -> Result<SignedRecord, JsonError> {
        let env = Envelope::sign(PayloadType::Decision, r, &self.key)?;
        Ok(SignedRecord { id: r.id.clone(), entry: env.canonical_bytes()? })
    }

    /// Sign an outcome record.
    pub fn sign_outcome(&self, r: &OutcomeRecord) -> Result<SignedRecord, JsonError> {
        let env = Envelope::sign(PayloadType::Outcome, r, &self.key)?;
        Ok(SignedRecord { id: r.id.clone(), entry: env.canonical_bytes()? })
    }
}

/// Digest of an optional JSON value.
pub fn digest_opt<T: serde::Serialize>(v: Option<&T>) -> Option<Digest> {
    v.and_then(|v| Digest::of_json(v).ok())
}

/// Parse a ledger entry back into its envelope (for display).
pub fn parse_entry(entry: &[u8]) -> Result<Envelope, JsonError> {
    json::parse(entry, usize::MAX)
}
