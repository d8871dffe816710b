//! Passkey approvers (spec 5.1): enrolment invitations and registration, the approver
//! registry that joins configured and enrolled approvers, each passkey's signature counter,
//! and removal. The WebAuthn checks themselves are pure ([`seb_core::webauthn`]); this module
//! is the adapter around them (store, clock, ledger records).
//!
//! - An invitation is an admin-signed request (`invite_approver: {name, role}`), valid for at
//!   most [`INVITATION_TTL_MS`] and usable once. Its token (32 random bytes, base64url) is the
//!   only secret of the enrolment page; the store keeps only its SHA-256.
//! - Registration checks the `webauthn.create` response against the invitation's challenge,
//!   the configured RP ID and origins, UP and UV, and that the attested credential id is the
//!   submitted one; the registry entry is signed by the issuer into the ledger (an `admission`
//!   record with `decision: "enrol"`) in the same store transaction that consumes the
//!   invitation.
//! - Approvals signed with a passkey are verified on receipt against the joined registry;
//!   each credential's counter must increase (compare-and-set in the store for enrolled
//!   passkeys; in memory for passkeys written in the configuration file).

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use seb_core::envelope::{Envelope, PayloadType, VerifiedPayload};
use seb_core::json;
use seb_core::keys::KeyId;
use seb_core::pipeline::{ApproverRegistry, ApproverRole, PasskeyApprover};
use seb_core::webauthn::{CoseAlg, WebAuthnCredential, check_counter, verify_registration_of};
use seb_store::approvers::{
    ApproverDirectory, CounterResult, EnrolResult, EnrolledApprover, Invitation,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use super::{Admission, short};
use crate::access::Caller;
use crate::config::AdmissionConfig;
use crate::error::AdmissionError;
use crate::records::{STAGE, new_id};

/// Longest life of an invitation (15 minutes).
pub const INVITATION_TTL_MS: u64 = 15 * 60 * 1000;

/// Enrolment settings and the counters of configured passkeys.
#[derive(Debug)]
pub(crate) struct Enrolment {
    public_url: Option<String>,
    rp_id: Option<String>,
    origins: Vec<String>,
    /// Counters of passkeys from the configuration file (not in the store's directory).
    config_counters: Mutex<BTreeMap<KeyId, u32>>,
    /// Approvers of the configuration file: (name, role, kid, passkey).
    config_entries: Vec<(String, ApproverRole, KeyId, Option<WebAuthnCredential>)>,
}

impl Enrolment {
    pub(crate) fn from_config(cfg: &AdmissionConfig) -> Result<Self, AdmissionError> {
        let (rp_id, origins) = match &cfg.webauthn {
            Some(w) => {
                if w.rp_id.is_empty() || w.origins.is_empty() {
                    return Err(AdmissionError::Config(
                        "[admission.webauthn] needs an rp_id and at least one origin".into(),
                    ));
                }
                (Some(w.rp_id.clone()), w.origins.clone())
            }
            None => (None, Vec::new()),
        };
        let mut config_entries = Vec::new();
        for a in &cfg.approvers {
            let kid = match (&a.public_key, &a.credential) {
                (Some(k), _) => seb_core::keys::PublicKey::from_base64(k)
                    .map_err(|e| AdmissionError::Config(format!("approver `{}`: {e}", a.name)))?
                    .kid(),
                (None, Some(c)) => c.kid(),
                (None, None) => {
                    return Err(AdmissionError::Config(format!(
                        "approver `{}` has no key",
                        a.name
                    )));
                }
            };
            config_entries.push((a.name.clone(), a.role, kid, a.credential.clone()));
        }
        Ok(Self {
            config_entries,
            public_url: cfg.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
            rp_id,
            origins,
            config_counters: Mutex::new(BTreeMap::new()),
        })
    }
}

/// What `POST /v1/admission/approvers/invitations` answers.
#[derive(Debug, Clone, Serialize)]
pub struct InvitationView {
    /// The secret token (base64url of 32 random bytes): give it only to the approver.
    pub token: String,
    /// `<public_url>/console/enrol/<token>`.
    pub url: String,
    pub expires_at_ms: u64,
    pub name: String,
    pub role: ApproverRole,
}

/// What `GET /v1/admission/enrolments/{token}` answers: the `navigator.credentials.create`
/// parameters.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolmentView {
    pub name: String,
    pub role: ApproverRole,
    pub rp_id: String,
    pub origins: Vec<String>,
    /// base64url, no padding.
    pub challenge: String,
    /// base64url, no padding.
    pub user_id: String,
    pub expires_at_ms: u64,
}

/// Body of `POST /v1/admission/enrolments/{token}` (every byte string base64url without
/// padding; `public_key` is the SPKI DER from `getPublicKey()`, `alg` from
/// `getPublicKeyAlgorithm()`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub credential_id: String,
    pub public_key: String,
    pub alg: i64,
    pub client_data_json: String,
    pub authenticator_data: String,
}

/// One approver as `GET /v1/admission/approvers` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ApproverView {
    pub name: String,
    pub role: ApproverRole,
    pub kid: KeyId,
    /// `config` (the configuration file) or `enrolled` (the store).
    pub source: &'static str,
    /// The passkey (none for an Ed25519 approver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<WebAuthnCredential>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolled_at_ms: Option<u64>,
}

/// An approver-registry change in the ledger: payloadType `admission`, signed by the issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverRecord {
    pub id: String,
    /// Always `admission`.
    pub stage: String,
    /// `enrol` or `remove_approver`.
    pub decision: String,
    pub approver: String,
    pub role: ApproverRole,
    /// The credential's key id (enrolment).
    pub kid: Option<KeyId>,
    /// The registry entry's credential (enrolment).
    pub credential: Option<WebAuthnCredential>,
    /// The admin who signed the invitation or the removal.
    pub by: String,
    pub issuer_kid: KeyId,
    pub at_ms: u64,
    /// Always false (a registry change is never break-glass).
    pub break_glass: bool,
}

fn random<const N: usize>() -> Result<[u8; N], AdmissionError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AdmissionError::Internal(format!("random source: {e}")))?;
    Ok(b)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_token(token: &str) -> bool {
    token.len() == 43 && URL_SAFE_NO_PAD.decode(token).is_ok_and(|b| b.len() == 32)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

fn b64u(field: &str, s: &str) -> Result<Vec<u8>, AdmissionError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AdmissionError::Parse(format!("`{field}` is not base64url without padding")))
}

fn parse_role(role: &str) -> Option<ApproverRole> {
    serde_json::from_value(serde_json::Value::String(role.to_owned())).ok()
}

fn role_str(role: ApproverRole) -> &'static str {
    match role {
        ApproverRole::Validator => "validator",
        ApproverRole::Human => "human",
        ApproverRole::BreakGlass => "break_glass",
    }
}

/// The name and role an approval's signer has in the joined registry.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) role: ApproverRole,
}

impl Identity {
    pub(crate) fn of(reg: &ApproverRegistry, kid: &KeyId) -> Result<Self, AdmissionError> {
        reg.identity(kid)
            .map(|(name, role)| Self { name: name.to_owned(), role })
            .ok_or_else(|| AdmissionError::Unauthenticated("unknown approver".into()))
    }
}

impl Admission {
    fn directory(&self) -> Result<&dyn ApproverDirectory, AdmissionError> {
        self.store.approver_directory().ok_or_else(|| {
            AdmissionError::Config(format!(
                "the {} store keeps no approver directory",
                self.store.backend()
            ))
        })
    }

    fn rp(&self) -> Result<(&str, &[String]), AdmissionError> {
        match &self.enrolment.rp_id {
            Some(rp) => Ok((rp.as_str(), self.enrolment.origins.as_slice())),
            None => Err(AdmissionError::Config(
                "passkey enrolment needs [admission.webauthn] rp_id and origins".into(),
            )),
        }
    }

    /// The configured approvers plus every approver enrolled in the store. An enrolled entry
    /// that does not parse, or whose key id does not match its credential, is left out (and
    /// logged): it can approve nothing.
    pub async fn approver_registry(&self) -> Result<ApproverRegistry, AdmissionError> {
        let mut reg = self.approvers.clone();
        let Some(dir) = self.store.approver_directory() else {
            return Ok(reg);
        };
        for e in dir.enrolled().await? {
            match enrolled_entry(&e) {
                Some(p) => reg.insert_passkey(p),
                None => {
                    warn!(approver = %e.name, kid = %e.kid, "enrolled approver entry is malformed; ignored")
                }
            }
        }
        Ok(reg)
    }

    /// Keep the signature counter of every passkey that signed `verified` (spec 5.1): refuse a
    /// counter that does not increase (a cloned authenticator or a replayed assertion).
    pub(crate) async fn keep_counters(
        &self,
        verified: &VerifiedPayload,
    ) -> Result<(), AdmissionError> {
        for (kid, a) in verified.passkeys() {
            if let Some(stored) = self.advance_passkey_counter(kid, a.counter).await? {
                warn!(kid = %kid, stored, counter = a.counter, decision = "deny", failed_check = "passkey_counter", "passkey counter did not increase");
                return Err(AdmissionError::Unauthenticated(format!(
                    "passkey `{kid}`: signature counter {} does not increase past {stored} (cloned authenticator or replayed assertion)",
                    a.counter
                )));
            }
        }
        Ok(())
    }

    /// Advance the counter of passkey `kid` to `counter` (the store's compare-and-set for
    /// enrolled passkeys, memory for configured ones). `Some(stored)` when refused: the
    /// counter does not increase past `stored`. Shared by approvals and console sign-in.
    pub async fn advance_passkey_counter(
        &self,
        kid: &KeyId,
        counter: u32,
    ) -> Result<Option<u32>, AdmissionError> {
        let result = match self.store.approver_directory() {
            Some(dir) => dir.advance_counter(kid.as_str(), counter).await?,
            None => CounterResult::Unknown,
        };
        Ok(match result {
            CounterResult::Advanced => None,
            CounterResult::Regression { stored } => Some(stored),
            CounterResult::Unknown => {
                let mut m = self
                    .enrolment
                    .config_counters
                    .lock()
                    .map_err(|_| AdmissionError::Internal("lock poisoned".into()))?;
                let stored = m.get(kid).copied().unwrap_or(0);
                match check_counter(stored, counter) {
                    Ok(()) => {
                        m.insert(kid.clone(), counter);
                        None
                    }
                    Err(_) => Some(stored),
                }
            }
        })
    }

    /// `POST /v1/admission/approvers/invitations`: an admin-signed `invite_approver`.
    pub async fn invite_approver(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<InvitationView, AdmissionError> {
        let req = self.admin(body, signature).await?;
        if req.commands() != 1 {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        let inv = req
            .invite_approver
            .ok_or_else(|| AdmissionError::Parse("`invite_approver` is missing".into()))?;
        if !valid_name(&inv.name) {
            return Err(AdmissionError::Parse(
                "approver name must be 1..64 of [A-Za-z0-9-_.@]".into(),
            ));
        }
        let role = parse_role(&inv.role)
            .ok_or_else(|| AdmissionError::Parse(format!("unknown role `{}`", short(&inv.role))))?;
        if role != ApproverRole::Human {
            return Err(AdmissionError::Invalid(
                "passkeys enrol human approvers only (validators keep Ed25519 keys)".into(),
            ));
        }
        self.rp()?;
        let public_url = self.enrolment.public_url.clone().ok_or_else(|| {
            AdmissionError::Config("invitations need [admission] public_url".into())
        })?;
        let reg = self.approver_registry().await?;
        if reg.passkeys().any(|p| p.name == inv.name) || self.configured_name(&inv.name) {
            return Err(AdmissionError::Conflict(format!(
                "approver `{}` already exists",
                inv.name
            )));
        }
        let now = self.now()?;
        let token = URL_SAFE_NO_PAD.encode(random::<32>()?);
        let expires_at_ms = now.saturating_add(INVITATION_TTL_MS);
        self.directory()?
            .create_invitation(Invitation {
                token_hash: token_hash(&token),
                name: inv.name.clone(),
                role: role_str(role).to_owned(),
                challenge: random::<32>()?.to_vec(),
                user_id: random::<16>()?.to_vec(),
                invited_by: req.admin.clone(),
                created_at_ms: now,
                expires_at_ms,
            })
            .await?;
        info!(approver = %inv.name, by = %req.admin, expires_at_ms, "approver invited");
        Ok(InvitationView {
            url: format!("{public_url}/console/enrol/{token}"),
            token,
            expires_at_ms,
            name: inv.name,
            role,
        })
    }

    fn configured_name(&self, name: &str) -> bool {
        self.enrolment.config_entries.iter().any(|(n, ..)| n == name)
    }

    async fn usable_invitation(&self, token: &str) -> Result<Invitation, AdmissionError> {
        let gone = || AdmissionError::NotFound("no usable invitation with this token".into());
        if !valid_token(token) {
            return Err(gone());
        }
        let now = self.now()?;
        self.directory()?.invitation(&token_hash(token), now).await?.ok_or_else(gone)
    }

    /// `GET /v1/admission/enrolments/{token}`: the registration parameters (the token is the
    /// secret; 404 when unknown, used or expired).
    pub async fn enrolment(&self, token: &str) -> Result<EnrolmentView, AdmissionError> {
        let inv = self.usable_invitation(token).await?;
        let (rp_id, origins) = self.rp()?;
        Ok(EnrolmentView {
            role: parse_role(&inv.role)
                .ok_or_else(|| AdmissionError::Internal("stored invitation role".into()))?,
            name: inv.name,
            rp_id: rp_id.to_owned(),
            origins: origins.to_vec(),
            challenge: URL_SAFE_NO_PAD.encode(&inv.challenge),
            user_id: URL_SAFE_NO_PAD.encode(&inv.user_id),
            expires_at_ms: inv.expires_at_ms,
        })
    }

    /// `POST /v1/admission/enrolments/{token}`: register the passkey. Returns the signed
    /// registry entry (the ledger's `enrol` record).
    pub async fn enrol(&self, token: &str, body: &[u8]) -> Result<Envelope, AdmissionError> {
        let inv = self.usable_invitation(token).await?;
        let r: Registration = json::parse(body, self.settings.body_limit)
            .map_err(|e| AdmissionError::Parse(e.to_string()))?;
        let alg = CoseAlg::from_cose(r.alg).ok_or_else(|| {
            AdmissionError::Invalid(format!("unsupported COSE algorithm {} (only -7, -8)", r.alg))
        })?;
        let (rp_id, origins) = self.rp()?;
        let credential = WebAuthnCredential {
            alg,
            public_key: b64u("public_key", &r.public_key)?,
            credential_id: b64u("credential_id", &r.credential_id)?,
            rp_id: rp_id.to_owned(),
            origins: origins.to_vec(),
        };
        let cdj = b64u("client_data_json", &r.client_data_json)?;
        let ad = b64u("authenticator_data", &r.authenticator_data)?;
        verify_registration_of(&credential, &inv.challenge, &cdj, &ad).map_err(|e| {
            warn!(approver = %inv.name, decision = "deny", failed_check = e.code(), error = %e, "passkey registration refused");
            AdmissionError::Invalid(format!("registration refused ({}): {e}", e.code()))
        })?;
        let role = parse_role(&inv.role)
            .ok_or_else(|| AdmissionError::Internal("stored invitation role".into()))?;
        let now = self.now()?;
        let kid = credential.kid();
        let record = ApproverRecord {
            id: new_id(),
            stage: STAGE.to_owned(),
            decision: "enrol".to_owned(),
            approver: inv.name.clone(),
            role,
            kid: Some(kid.clone()),
            credential: Some(credential.clone()),
            by: inv.invited_by.clone(),
            issuer_kid: self.issuer.kid(),
            at_ms: now,
            break_glass: false,
        };
        let envelope = Envelope::sign(PayloadType::Admission, &record, &self.issuer)?;
        let entry = envelope.canonical_bytes()?;
        let enrolled = EnrolledApprover {
            name: inv.name.clone(),
            role: inv.role.clone(),
            kid: kid.to_string(),
            credential: String::from_utf8(json::canonical(&credential)?)
                .map_err(|e| AdmissionError::Internal(e.to_string()))?,
            entry: entry.clone(),
            enrolled_at_ms: now,
        };
        match self.directory()?.enrol(&inv.token_hash, now, enrolled, entry).await? {
            EnrolResult::Enrolled { index } => {
                info!(approver = %inv.name, kid = %kid, alg = %alg, ledger_index = index, "approver enrolled");
                Ok(envelope)
            }
            EnrolResult::InvitationUnusable => {
                Err(AdmissionError::NotFound("no usable invitation with this token".into()))
            }
            EnrolResult::AlreadyEnrolled => Err(AdmissionError::Conflict(format!(
                "approver `{}` or this credential is already enrolled",
                inv.name
            ))),
        }
    }

    /// `GET /v1/admission/approvers` (any authenticated caller).
    pub async fn list_approvers(
        &self,
        _caller: &Caller,
    ) -> Result<Vec<ApproverView>, AdmissionError> {
        let mut out: Vec<ApproverView> = self
            .enrolment
            .config_entries
            .iter()
            .map(|(name, role, kid, credential)| ApproverView {
                name: name.clone(),
                role: *role,
                kid: kid.clone(),
                source: "config",
                credential: credential.clone(),
                enrolled_at_ms: None,
            })
            .collect();
        if let Some(dir) = self.store.approver_directory() {
            for e in dir.enrolled().await? {
                if let Some(p) = enrolled_entry(&e) {
                    out.push(ApproverView {
                        name: p.name,
                        role: p.role,
                        kid: p.credential.kid(),
                        source: "enrolled",
                        credential: Some(p.credential),
                        enrolled_at_ms: Some(e.enrolled_at_ms),
                    });
                }
            }
        }
        Ok(out)
    }

    /// `DELETE /v1/admission/approvers/{name}`: an admin-signed `remove_approver`. Only
    /// enrolled approvers can be removed this way (configured ones are removed from the file).
    pub async fn remove_approver(
        &self,
        name: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Envelope, AdmissionError> {
        let req = self.admin(body, signature).await?;
        if req.commands() != 1 {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        let target = req
            .remove_approver
            .as_deref()
            .ok_or_else(|| AdmissionError::Parse("`remove_approver` is missing".into()))?;
        if target != name {
            return Err(AdmissionError::Invalid(format!(
                "request removes `{}` but was sent to `{}`",
                short(target),
                short(name)
            )));
        }
        let enrolled = self.directory()?.enrolled().await?;
        let Some(entry) = enrolled.iter().find(|e| e.name == name) else {
            if self.configured_name(name) {
                return Err(AdmissionError::Conflict(format!(
                    "approver `{name}` is configured in the file; remove it there"
                )));
            }
            return Err(AdmissionError::NotFound(format!("approver `{}`", short(name))));
        };
        let now = self.now()?;
        let record = ApproverRecord {
            id: new_id(),
            stage: STAGE.to_owned(),
            decision: "remove_approver".to_owned(),
            approver: name.to_owned(),
            role: parse_role(&entry.role).unwrap_or(ApproverRole::Human),
            kid: entry.kid.parse().ok(),
            credential: None,
            by: req.admin.clone(),
            issuer_kid: self.issuer.kid(),
            at_ms: now,
            break_glass: false,
        };
        let envelope = Envelope::sign(PayloadType::Admission, &record, &self.issuer)?;
        let index = self
            .directory()?
            .remove_approver(name, envelope.canonical_bytes()?)
            .await?
            .ok_or_else(|| AdmissionError::NotFound(format!("approver `{}`", short(name))))?;
        warn!(approver = %name, by = %req.admin, ledger_index = index, "approver removed");
        Ok(envelope)
    }
}

/// An enrolled entry as a registry passkey, if it is well formed and its kid matches.
fn enrolled_entry(e: &EnrolledApprover) -> Option<PasskeyApprover> {
    let credential: WebAuthnCredential = json::parse(e.credential.as_bytes(), 64 * 1024).ok()?;
    let role = parse_role(&e.role)?;
    (credential.kid().as_str() == e.kid && role == ApproverRole::Human).then(|| PasskeyApprover {
        name: e.name.clone(),
        role,
        credential,
    })
}
