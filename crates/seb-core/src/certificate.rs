//! Certificates as a typestate: an [`UnverifiedCertificate`] can be parsed and printed; only
//! [`UnverifiedCertificate::verify`] yields a [`VerifiedCertificate`], which is what every
//! later step requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::digest::Digest;
use crate::envelope::{Envelope, EnvelopeError, PayloadType};
use crate::json::{self, JsonError};
use crate::keys::{KeyId, KeyResolver, SigningKey};
use crate::types::{CertPath, CertificatePayload};

/// A certificate whose signature has not been checked. Its contents are claims only.
#[derive(Debug, Clone)]
pub struct UnverifiedCertificate {
    envelope: Envelope,
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CertificateError {
    /// The envelope or its signatures do not verify (check `signature`, fail closed).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The signer is not the issuer the payload names (check `signature`).
    #[error("certificate names issuer kid `{named}` but is signed by `{signed}`")]
    IssuerMismatch { named: String, signed: String },
    /// The break-glass quorum was not met (check `signature`).
    #[error("break-glass certificate has {have} operator signatures, {need} required")]
    BreakGlassQuorum { have: usize, need: usize },
    /// A non-break-glass certificate signed by break-glass keys, or the reverse.
    #[error("certificate path `{0}` is signed under the wrong trust root")]
    WrongTrustRoot(CertPath),
    /// The signed digests do not match the signed contents (check `signature`).
    #[error("{0} digest does not match the certificate contents")]
    DigestMismatch(&'static str),
    /// The verified payload is malformed (check `parse`).
    #[error("certificate payload: {0}")]
    Payload(JsonError),
    /// A field violates the certificate rules (check `parse`).
    #[error("certificate field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
}

/// The trust roots a broker holds for certificates.
pub struct CertificateTrust<'a> {
    /// Issuer keys (admission).
    pub issuers: &'a dyn KeyResolver,
    /// Break-glass operator keys (a separate trust root).
    pub break_glass: &'a dyn KeyResolver,
    /// Distinct operator signatures a break-glass certificate needs.
    pub break_glass_quorum: usize,
    /// Body limit for the payload.
    pub limit: usize,
}

impl std::fmt::Debug for CertificateTrust<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateTrust")
            .field("break_glass_quorum", &self.break_glass_quorum)
            .finish_non_exhaustive()
    }
}

/// A certificate whose signature, issuer and internal digests have been verified.
#[derive(Debug, Clone)]
pub struct VerifiedCertificate {
    payload: CertificatePayload,
    envelope_digest: Digest,
    signers: Vec<KeyId>,
}

impl UnverifiedCertificate {
    /// Wrap an envelope. Nothing is trusted yet.
    pub fn new(envelope: Envelope) -> Self {
        Self { envelope }
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Decode the payload WITHOUT verifying the signature: for display and diagnostics only.
    pub fn insecure_payload(&self, limit: usize) -> Result<CertificatePayload, CertificateError> {
        let bytes = self.envelope.insecure_payload_bytes()?;
        json::parse(&bytes, limit).map_err(CertificateError::Payload)
    }

    /// Verify the envelope under the trust roots, then parse and check the payload.
    pub fn verify(
        self,
        trust: &CertificateTrust<'_>,
    ) -> Result<VerifiedCertificate, CertificateError> {
        let envelope_digest = self.envelope.digest().map_err(CertificateError::Payload)?;
        self.verify_digested(trust, envelope_digest)
    }

    /// [`Self::verify`] for a caller that already computed `self.envelope().digest()` (the
    /// pipeline needs it for the records before verifying): the envelope is canonicalised and
    /// hashed once per presentation. Crate-private, so no outside caller can pass a digest
    /// that is not the envelope's.
    pub(crate) fn verify_digested(
        self,
        trust: &CertificateTrust<'_>,
        envelope_digest: Digest,
    ) -> Result<VerifiedCertificate, CertificateError> {
        // Break-glass certificates are signed only by operator keys, regular ones only by an
        // issuer; try the issuer root first, then the break-glass root.
        let (verified, break_glass) =
            match self.envelope.verify(PayloadType::Certificate, trust.issuers) {
                Ok(v) => (v, false),
                Err(EnvelopeError::UntrustedKey(k)) => {
                    match self.envelope.verify(PayloadType::Certificate, trust.break_glass) {
                        Ok(v) => (v, true),
                        Err(EnvelopeError::UntrustedKey(_)) => {
                            return Err(EnvelopeError::UntrustedKey(k).into());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
        let payload: CertificatePayload =
            verified.parse(trust.limit).map_err(CertificateError::Payload)?;
        if break_glass {
            if payload.cert_path != CertPath::BreakGlass {
                return Err(CertificateError::WrongTrustRoot(payload.cert_path));
            }
            if verified.signers().len() < trust.break_glass_quorum.max(1) {
                return Err(CertificateError::BreakGlassQuorum {
                    have: verified.signers().len(),
                    need: trust.break_glass_quorum.max(1),
                });
            }
        } else {
            if payload.cert_path == CertPath::BreakGlass {
                return Err(CertificateError::WrongTrustRoot(payload.cert_path));
            }
            let signed = verified.signers().first().map(ToString::to_string).unwrap_or_default();
            if verified.signers().len() != 1 || payload.issuer.kid.as_str() != signed {
                return Err(CertificateError::IssuerMismatch {
                    named: payload.issuer.kid.to_string(),
                    signed,
                });
            }
        }
        check_fields(&payload)?;
        if payload.contract.digest().map_err(CertificateError::Payload)? != payload.contract_digest
        {
            return Err(CertificateError::DigestMismatch("contract"));
        }
        if Digest::of_json(&payload.evidence.projection).map_err(CertificateError::Payload)?
            != payload.evidence.digest
        {
            return Err(CertificateError::DigestMismatch("evidence"));
        }
        Ok(VerifiedCertificate { payload, envelope_digest, signers: verified.into_signers() })
    }
}

fn check_fields(p: &CertificatePayload) -> Result<(), CertificateError> {
    let field = |field: &'static str, reason: &str| CertificateError::Field {
        field,
        reason: reason.into(),
    };
    if p.version != 1 {
        return Err(field("version", "only version 1 is understood"));
    }
    if uuid::Uuid::parse_str(&p.cid).is_err() {
        return Err(field("cid", "not a UUID"));
    }
    check_nonce(&p.nonce).map_err(|r| field("nonce", &r))?;
    if p.validity.not_after <= p.validity.not_before {
        return Err(field("validity", "not_after is not after not_before"));
    }
    crate::constraints::validate(&p.contract.constraints).map_err(|r| field("contract", &r))?;
    if !p.contract.target.is_object() {
        return Err(field("contract", "target is not an object"));
    }
    Ok(())
}

/// A nonce is ≥ 16 random bytes in unpadded base64url, at most 64 characters.
pub fn check_nonce(nonce: &str) -> Result<(), String> {
    if nonce.len() > 64 {
        return Err("longer than 64 characters".into());
    }
    let raw = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| "not unpadded base64url".to_owned())?;
    if raw.len() < 16 {
        return Err("fewer than 16 bytes".into());
    }
    Ok(())
}

/// Encode random bytes as a nonce (the caller supplies the randomness).
pub fn encode_nonce(random: &[u8; 24]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

impl VerifiedCertificate {
    /// The verified payload.
    pub fn payload(&self) -> &CertificatePayload {
        &self.payload
    }
    /// Digest of the envelope as presented.
    pub fn digest(&self) -> Digest {
        self.envelope_digest
    }
    /// Key ids that signed it.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }
    /// Whether this is a break-glass certificate (flagged on every record).
    pub fn is_break_glass(&self) -> bool {
        self.payload.cert_path == CertPath::BreakGlass
    }
}

impl CertificatePayload {
    /// Sign as an issuer.
    pub fn sign(&self, issuer: &SigningKey) -> Result<Envelope, JsonError> {
        Envelope::sign(PayloadType::Certificate, self, issuer)
    }
}
