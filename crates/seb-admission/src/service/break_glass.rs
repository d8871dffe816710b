//! Stage `break-glass`: a draft (the exact certificate payload, `cert_path = break_glass`)
//! stored with the proposal, operator signatures stored one per operator and draft (a second
//! one by the same operator is `409`), and at the quorum the assembled certificate is
//! verified under the break-glass root and committed `certified` with its issue record.
//! Every refused step is logged at `warn`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::certificate::{CertificateTrust, UnverifiedCertificate, encode_nonce};
use seb_core::envelope::{Envelope, EnvelopeSignature, PayloadType, pae};
use seb_core::json;
use seb_core::keys::{KeyId, TrustedKeys};
use seb_core::types::{CertPath, CertificatePayload, Issuer, Subject, Validity};
use seb_store::admission::{Added, Cas, StoredSignature};
use tracing::{error, info, warn};

use super::state::{Body, Draft, Stage};
use super::{Admission, BreakGlassStatus, BreakGlassView, Loaded, ProposalView, short};
use crate::access::Caller;
use crate::error::AdmissionError;
use crate::records::AdmissionDecision;

const RETRIES: usize = 16;

impl Admission {
    /// The signers of the live draft of `l`.
    fn signers(l: &Loaded, cid: &str) -> Vec<(String, EnvelopeSignature)> {
        l.row
            .signatures
            .iter()
            .filter(|s| s.cid == cid)
            .filter_map(|s| {
                serde_json::from_slice::<EnvelopeSignature>(&s.body)
                    .ok()
                    .map(|sig| (s.operator.clone(), sig))
            })
            .collect()
    }

    pub(super) fn bg_view(&self, l: &Loaded, d: &Draft) -> BreakGlassView {
        BreakGlassView {
            payload_type: PayloadType::Certificate.media_type().to_owned(),
            payload: d.bytes_b64.clone(),
            certificate: d.payload.clone(),
            signers: Self::signers(l, &d.payload.cid).into_iter().map(|(n, _)| n).collect(),
            quorum: self.break_glass_quorum,
            expires_at_ms: d.payload.validity.not_after.saturating_mul(1000),
        }
    }

    pub(super) fn bg_status(&self, l: &Loaded) -> Option<BreakGlassStatus> {
        l.body.break_glass.as_ref().map(|d| BreakGlassStatus {
            cid: d.payload.cid.clone(),
            signers: Self::signers(l, &d.payload.cid).into_iter().map(|(n, _)| n).collect(),
            quorum: self.break_glass_quorum,
            expires_at_ms: d.payload.validity.not_after.saturating_mul(1000),
        })
    }

    /// The live break-glass draft of a proposal, for operators and admins.
    pub async fn break_glass_show_as(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BreakGlassView, AdmissionError> {
        caller.require(
            caller.handles_break_glass(),
            "GET /v1/admission/proposals/{id}/break-glass",
        )?;
        let l = self.load(id).await?;
        l.body
            .break_glass
            .as_ref()
            .map(|d| self.bg_view(&l, d))
            .ok_or_else(|| AdmissionError::NotFound("no break-glass draft".into()))
    }

    /// [`Admission::break_glass_draft`] by an operator or an admin.
    pub async fn break_glass_draft_as(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BreakGlassView, AdmissionError> {
        let r = match caller
            .require(caller.handles_break_glass(), "POST /v1/admission/proposals/{id}/break-glass")
        {
            Ok(()) => self.break_glass_draft(id).await,
            Err(e) => Err(e),
        };
        match &r {
            Ok(_) => {
                warn!(proposal_id = %id, caller = %caller.describe(), break_glass = true, "break-glass draft served")
            }
            Err(e) => {
                warn!(proposal_id = %short(id), caller = %caller.describe(), break_glass = true, error = %e, "break-glass draft refused")
            }
        }
        r
    }

    /// Create (or return the live) break-glass draft of a proposal: the exact certificate
    /// payload, `cert_path = break_glass`, for operators to sign.
    pub async fn break_glass_draft(&self, id: &str) -> Result<BreakGlassView, AdmissionError> {
        if self.break_glass.is_empty() {
            return Err(AdmissionError::Forbidden(
                "no break-glass operators are configured".into(),
            ));
        }
        for _ in 0..RETRIES {
            let now = self.now()?;
            let l = self.load(id).await?;
            let Some(ev) = l.body.stage.break_glass_candidate().cloned() else {
                return Err(AdmissionError::Conflict(match l.body.stage {
                    Stage::Evaluating(_) => {
                        format!("proposal `{id}` was not compiled and observed: nothing to certify")
                    }
                    Stage::Denied(_) => {
                        format!("proposal `{id}` was not compiled and observed: nothing to certify")
                    }
                    _ => format!("proposal `{id}` is {}", l.status().as_str()),
                }));
            };
            if let Some(d) = &l.body.break_glass
                && d.payload.validity.not_after.saturating_mul(1000) > now
            {
                return Ok(self.bg_view(&l, d));
            }
            let epochs = self.store.epochs().await?;
            let mut random = [0u8; 24];
            getrandom::fill(&mut random)
                .map_err(|e| AdmissionError::Internal(format!("random source: {e}")))?;
            let mut cid_bytes = [0u8; 16];
            getrandom::fill(&mut cid_bytes)
                .map_err(|e| AdmissionError::Internal(format!("random source: {e}")))?;
            let now_s = now / 1000;
            let payload = CertificatePayload {
                version: 1,
                cid: uuid::Builder::from_random_bytes(cid_bytes).into_uuid().to_string(),
                nonce: encode_nonce(&random),
                issuer: Issuer { name: self.settings.issuer_name.clone(), kid: self.issuer.kid() },
                subject: Subject {
                    agent: l.body.received.proposal.agent.clone(),
                    public_key: l.body.received.subject_key,
                },
                contract_digest: ev.contract_digest,
                contract: ev.contract,
                evidence: ev.evidence,
                validity: Validity {
                    not_before: now_s,
                    not_after: now_s.saturating_add(self.settings.validity_s),
                },
                policy_epoch: epochs.policy_epoch,
                revocation_epoch: epochs.revocation_epoch,
                cert_path: CertPath::BreakGlass,
                attestations: Vec::new(),
                issued_at_ms: now,
            };
            let bytes = json::canonical(&payload)?;
            let draft = Draft { payload, bytes_b64: STANDARD.encode(&bytes) };
            let next = Body { break_glass: Some(draft), ..l.body.clone() };
            if let Cas::Done { .. } = self.save(&l, next, None).await? {
                warn!(proposal_id = %id, break_glass = true, "break-glass draft created");
                let l = self.load(id).await?;
                if let Some(d) = &l.body.break_glass {
                    return Ok(self.bg_view(&l, d));
                }
            }
        }
        Err(AdmissionError::Conflict(format!("proposal `{id}` keeps changing: try again")))
    }

    /// Add one operator's signature to the break-glass draft; at the quorum the certificate
    /// is assembled, verified under the break-glass root, recorded and released. The same
    /// operator signing the same draft twice is `409`. Every refusal is logged at `warn`.
    pub async fn break_glass_sign(
        &self,
        id: &str,
        body: &[u8],
    ) -> Result<ProposalView, AdmissionError> {
        let r = self.break_glass_sign_inner(id, body).await;
        if let Err(e) = &r {
            warn!(proposal_id = %short(id), break_glass = true, status = e.http_status(), error = %e, "break-glass signature refused");
        }
        r
    }

    async fn break_glass_sign_inner(
        &self,
        id: &str,
        body: &[u8],
    ) -> Result<ProposalView, AdmissionError> {
        let sig: EnvelopeSignature = json::parse(body, self.settings.body_limit)
            .map_err(|e| AdmissionError::Parse(e.to_string()))?;
        let kid: KeyId =
            sig.keyid.parse().map_err(|_| AdmissionError::Unauthenticated("bad keyid".into()))?;
        let (name, key) = self
            .break_glass
            .iter()
            .find(|(_, k)| k.kid() == kid)
            .map(|(n, k)| (n.to_owned(), *k))
            .ok_or_else(|| {
                AdmissionError::Unauthenticated("not a break-glass operator key".into())
            })?;
        let now = self.now()?;
        let l = self.load(id).await?;
        if matches!(l.body.stage, Stage::Certified(_) | Stage::Issuing(_) | Stage::Evaluating(_)) {
            return Err(AdmissionError::Conflict(format!(
                "proposal `{id}` is {}",
                l.status().as_str()
            )));
        }
        let d = l
            .body
            .break_glass
            .clone()
            .ok_or_else(|| AdmissionError::Conflict("no break-glass draft".into()))?;
        if d.payload.validity.not_after.saturating_mul(1000) <= now {
            return Err(AdmissionError::Conflict(
                "the break-glass draft expired: create a new one".into(),
            ));
        }
        let bytes = STANDARD
            .decode(&d.bytes_b64)
            .map_err(|e| AdmissionError::Internal(format!("stored draft: {e}")))?;
        key.verify_b64(&pae(PayloadType::Certificate.media_type(), &bytes), &sig.sig).map_err(
            |e| AdmissionError::Unauthenticated(format!("break-glass signature by `{name}`: {e}")),
        )?;
        let stored = StoredSignature {
            cid: d.payload.cid.clone(),
            operator: name.clone(),
            body: serde_json::to_vec(&sig)
                .map_err(|e| AdmissionError::Internal(format!("signature as JSON: {e}")))?,
            at_ms: now,
        };
        match self.state()?.add_signature(id.to_owned(), l.row.status.clone(), stored, None).await?
        {
            Added::Added { .. } => {}
            Added::Duplicate => {
                return Err(AdmissionError::Conflict(format!(
                    "`{name}` already signed the break-glass draft of `{id}`"
                )));
            }
            Added::WrongStatus { status } => {
                return Err(AdmissionError::Conflict(format!(
                    "proposal `{id}` changed ({}): sign again",
                    status.as_deref().unwrap_or("gone")
                )));
            }
        }
        warn!(proposal_id = %id, operator = %name, break_glass = true, "break-glass signature added");
        self.break_glass_complete(id, &bytes).await?;
        self.view(id).await
    }

    /// At the quorum: assemble, verify under the break-glass root, commit `certified`.
    async fn break_glass_complete(&self, id: &str, bytes: &[u8]) -> Result<(), AdmissionError> {
        for _ in 0..RETRIES {
            let now = self.now()?;
            let l = self.load(id).await?;
            let Some(d) = l.body.break_glass.clone() else { return Ok(()) };
            let signed = Self::signers(&l, &d.payload.cid);
            if signed.len() < self.break_glass_quorum
                || l.body.stage.break_glass_candidate().is_none()
            {
                return Ok(());
            }
            let env = Envelope {
                payload_type: PayloadType::Certificate.media_type().to_owned(),
                payload: STANDARD.encode(bytes),
                signatures: signed.iter().map(|(_, s)| s.clone()).collect(),
            };
            let mut operators: Vec<String> = signed.into_iter().map(|(n, _)| n).collect();
            operators.sort();
            // Check what the broker will check, under the break-glass root alone.
            let checked = {
                let no_issuers = TrustedKeys::new();
                let trust = CertificateTrust {
                    issuers: &no_issuers,
                    break_glass: &self.break_glass_trust,
                    break_glass_quorum: self.break_glass_quorum,
                    limit: usize::MAX,
                };
                UnverifiedCertificate::new(env.clone()).verify(&trust).map(|_| ())
            };
            if let Err(e) = checked {
                error!(proposal_id = %id, break_glass = true, error = %e, "break-glass issuance failed");
                return Err(AdmissionError::Internal(format!(
                    "assembled break-glass certificate does not verify: {e}"
                )));
            }
            let epochs = self.store.epochs().await?;
            let digest = env.digest()?;
            let ev = l.body.stage.break_glass_candidate().cloned();
            let mut record = self.record(
                &l.body.received,
                ev.as_ref(),
                None,
                operators,
                AdmissionDecision::Issue,
                "issued under break-glass",
                now,
                Some(epochs),
            );
            record.cid = Some(d.payload.cid.clone());
            record.certificate_digest = Some(digest);
            record.cert_path = Some(d.payload.cert_path);
            record.risk_level = Some(d.payload.contract.risk_level);
            record.not_before = Some(d.payload.validity.not_before);
            record.not_after = Some(d.payload.validity.not_after);
            record.break_glass = true;
            let Some(certified) = l.body.stage.clone().break_glass_certify(env, &d.payload, digest)
            else {
                return Ok(());
            };
            let next = Body { stage: Stage::Certified(Box::new(certified)), ..l.body.clone() };
            if let Cas::Done { .. } = self.save(&l, next, Some(&record)).await? {
                info!(proposal_id = %id, cid = %d.payload.cid, cert_path = %d.payload.cert_path, risk_level = %d.payload.contract.risk_level, break_glass = true, "certificate issued");
                return Ok(());
            }
        }
        Ok(())
    }
}
