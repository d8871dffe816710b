//! What agents, approvers and operators sign: shared by the CLI, the tests and the server.
//!
//! Proposals and approvals are the spec's `proposal` and `approval` envelopes. Operator
//! commands (revocation, policy load) are not protocol statements: they are authenticated
//! requests, the JSON body signed by a registered admin key as
//! `PAE("application/vnd.seb.admission-admin+json;v=1", body)` and sent in the
//! [`ADMIN_SIGNATURE_HEADER`] header as `<kid>:<base64 signature>`.
//!
//! Every other request that is not itself a signed statement (reads, break-glass draft
//! creation) is a signed request: the caller signs
//! `PAE("application/vnd.seb.admission-read+json;v=1", "<METHOD>\n<path?query>\n<at_ms>")`
//! with a registered key ([`sign_read`]) and sends it in the [`READ_SIGNATURE_HEADER`]
//! header as `<kid>:<at_ms>:<base64 signature>`. Admission resolves the key against its
//! registries (agent, approver, break-glass operator, admin) and refuses a signature outside
//! its freshness window.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::envelope::{Envelope, EnvelopeSignature, PayloadType, pae};
use seb_core::json::{self, JsonError};
use seb_core::keys::SigningKey;
use seb_core::types::{Approval, Proposal};
use seb_store::Revocation;
use serde::{Deserialize, Serialize};

/// Media type of signed admin requests.
pub const ADMIN_MEDIA_TYPE: &str = "application/vnd.seb.admission-admin+json;v=1";
/// Header carrying an admin request's signature: `<kid>:<base64 signature>`.
pub const ADMIN_SIGNATURE_HEADER: &str = "seb-admin-signature";

/// Media type of signed requests (reads and break-glass draft creation).
pub const READ_MEDIA_TYPE: &str = "application/vnd.seb.admission-read+json;v=1";
/// Header carrying a signed request's signature: `<kid>:<at_ms>:<base64 signature>`.
pub const READ_SIGNATURE_HEADER: &str = "seb-request-signature";

/// The bytes a signed request signs (before PAE): `"<METHOD>\n<path?query>\n<at_ms>"`.
pub fn read_message(method: &str, path_and_query: &str, at_ms: u64) -> Vec<u8> {
    format!("{method}\n{path_and_query}\n{at_ms}").into_bytes()
}

/// Sign a request to admission: `method` as sent (`GET`, `POST`), `path_and_query` exactly
/// as sent (`/v1/admission/proposals?status=pending`), `at_ms` now (Unix ms). Returns the
/// [`READ_SIGNATURE_HEADER`] value `<kid>:<at_ms>:<base64 signature>`.
pub fn sign_read(key: &SigningKey, method: &str, path_and_query: &str, at_ms: u64) -> String {
    let sig = key.sign_b64(&pae(READ_MEDIA_TYPE, &read_message(method, path_and_query, at_ms)));
    format!("{}:{at_ms}:{sig}", key.kid())
}

/// An operator command. Exactly one of `revoke` and `load_policy` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminRequest {
    /// Unique per request (replays within the freshness window are refused).
    pub request_id: String,
    /// The admin's name (must own the signing key).
    pub admin: String,
    /// When it was signed (Unix ms).
    pub at_ms: u64,
    /// Revoke a cid, an agent, or everything.
    #[serde(default)]
    pub revoke: Option<Revocation>,
    /// Load this Cedar policy text.
    #[serde(default)]
    pub load_policy: Option<String>,
    /// Invite an approver to enrol a passkey (spec 5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_approver: Option<InviteApprover>,
    /// Remove an enrolled approver by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_approver: Option<String>,
}

/// `invite_approver` of an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteApprover {
    pub name: String,
    /// `human` (passkeys enrol human approvers only).
    pub role: String,
}

impl AdminRequest {
    /// How many commands the request carries (exactly one is accepted).
    pub fn commands(&self) -> usize {
        usize::from(self.revoke.is_some())
            + usize::from(self.load_policy.is_some())
            + usize::from(self.invite_approver.is_some())
            + usize::from(self.remove_approver.is_some())
    }
}

/// Sign a proposal as its agent.
pub fn sign_proposal(p: &Proposal, agent: &SigningKey) -> Result<Envelope, JsonError> {
    Envelope::sign(PayloadType::Proposal, p, agent)
}

/// Sign an approval as an approver.
pub fn sign_approval(a: &Approval, approver: &SigningKey) -> Result<Envelope, JsonError> {
    Envelope::sign(PayloadType::Approval, a, approver)
}

/// Encode and sign an admin request: returns the body and the signature header value.
pub fn sign_admin(r: &AdminRequest, admin: &SigningKey) -> Result<(Vec<u8>, String), JsonError> {
    let body = json::canonical(r)?;
    let sig = admin.sign_b64(&pae(ADMIN_MEDIA_TYPE, &body));
    Ok((body, format!("{}:{sig}", admin.kid())))
}

/// Sign a break-glass draft's payload (standard base64 of the canonical certificate
/// payload, as served by the draft endpoint) as one operator.
pub fn sign_break_glass(
    payload_b64: &str,
    operator: &SigningKey,
) -> Result<EnvelopeSignature, base64::DecodeError> {
    let bytes = STANDARD.decode(payload_b64)?;
    let msg = pae(PayloadType::Certificate.media_type(), &bytes);
    Ok(EnvelopeSignature {
        keyid: operator.kid().to_string(),
        sig: operator.sign_b64(&msg),
        webauthn: None,
    })
}

/// A fresh proposal id.
pub fn new_proposal_id() -> String {
    format!("p-{}", uuid::Uuid::now_v7())
}
