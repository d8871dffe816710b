//! The signed envelope (DSSE layout, spec section 2).
//!
//! The signature covers `PAE(payloadType, payload)`; verification checks the bytes first and
//! only then parses them, so nothing is ever re-serialised before verification.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::json::{self, JsonError};
use crate::keys::{KeyError, KeyId, KeyResolver, SigningKey};
use crate::webauthn::{
    Assertion, VerifiedAssertion, WebAuthnError, statement_challenge, verify_assertion,
};

/// The kinds of signed statement in SEB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    Proposal,
    Certificate,
    Approval,
    Request,
    Decision,
    Outcome,
    Epoch,
    /// Admission's records (issue, deny, …), signed by the issuer key (spec section 8).
    Admission,
}

impl PayloadType {
    /// Every payload type.
    pub const ALL: [PayloadType; 8] = [
        Self::Proposal,
        Self::Certificate,
        Self::Approval,
        Self::Request,
        Self::Decision,
        Self::Outcome,
        Self::Epoch,
        Self::Admission,
    ];

    /// The media type string, `application/vnd.seb.<name>+json;v=1`.
    pub const fn media_type(self) -> &'static str {
        match self {
            Self::Proposal => "application/vnd.seb.proposal+json;v=1",
            Self::Certificate => "application/vnd.seb.certificate+json;v=1",
            Self::Approval => "application/vnd.seb.approval+json;v=1",
            Self::Request => "application/vnd.seb.request+json;v=1",
            Self::Decision => "application/vnd.seb.decision+json;v=1",
            Self::Outcome => "application/vnd.seb.outcome+json;v=1",
            Self::Epoch => "application/vnd.seb.epoch+json;v=1",
            Self::Admission => "application/vnd.seb.admission+json;v=1",
        }
    }

    /// Parse a media type string.
    pub fn from_media_type(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.media_type() == s)
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.media_type())
    }
}

/// DSSE pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + payload_type.len() + body.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Key id of the signer.
    pub keyid: String,
    /// Standard base64 Ed25519 signature over the PAE, or, with `webauthn`, the passkey's
    /// assertion signature (spec 5.1).
    pub sig: String,
    /// A passkey assertion (spec 5.1): present only on `approval` envelopes signed with a
    /// registered WebAuthn credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebAuthnEvidence>,
}

/// The WebAuthn parts of a passkey signature entry (spec 5.1), base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebAuthnEvidence {
    pub authenticator_data: String,
    pub client_data_json: String,
}

impl EnvelopeSignature {
    /// The passkey assertion of this entry, decoded (`None` for an Ed25519 entry).
    pub fn assertion(&self) -> Option<Result<Assertion, WebAuthnError>> {
        let w = self.webauthn.as_ref()?;
        let dec = |s: &str, what: &'static str| {
            URL_SAFE_NO_PAD.decode(s).map_err(|_| WebAuthnError::AuthenticatorData(what))
        };
        Some((|| {
            Ok(Assertion {
                authenticator_data: dec(
                    &w.authenticator_data,
                    "authenticator_data is not base64url",
                )?,
                client_data_json: URL_SAFE_NO_PAD
                    .decode(&w.client_data_json)
                    .map_err(|_| WebAuthnError::ClientData("not base64url".into()))?,
                signature: STANDARD.decode(&self.sig).map_err(|_| WebAuthnError::Signature)?,
            })
        })())
    }

    /// A passkey signature entry for `kid` carrying `assertion`.
    pub fn passkey(kid: &KeyId, assertion: &Assertion) -> Self {
        Self {
            keyid: kid.to_string(),
            sig: STANDARD.encode(&assertion.signature),
            webauthn: Some(WebAuthnEvidence {
                authenticator_data: URL_SAFE_NO_PAD.encode(&assertion.authenticator_data),
                client_data_json: URL_SAFE_NO_PAD.encode(&assertion.client_data_json),
            }),
        }
    }
}

/// A signed statement in the DSSE layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard base64 of the canonical JSON payload bytes.
    pub payload: String,
    /// One or more signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The payloadType is not the one expected here.
    #[error("payloadType `{found}` where `{expected}` was expected")]
    WrongPayloadType { expected: &'static str, found: String },
    /// The payload is not canonical base64.
    #[error("payload is not canonical base64")]
    PayloadEncoding,
    /// The envelope carries no signature, or more than allowed.
    #[error("envelope carries {0} signatures")]
    SignatureCount(usize),
    /// The same key signed twice.
    #[error("key `{0}` signed twice")]
    DuplicateSigner(String),
    /// The key id is not trusted here.
    #[error("key `{0}` is not trusted")]
    UntrustedKey(String),
    /// The signature is malformed or does not verify.
    #[error("signature by `{kid}` is invalid: {source}")]
    Signature { kid: String, source: KeyError },
    /// A passkey (WebAuthn) signature entry where only Ed25519 is accepted (every payload
    /// type but `approval`).
    #[error("a passkey signature is not accepted on this statement")]
    PasskeyNotAllowed,
    /// A passkey assertion failed one of the checks of spec 5.1.
    #[error("passkey assertion by `{kid}` refused ({}): {source}", source.code())]
    Passkey { kid: String, source: WebAuthnError },
    /// The verified payload is not valid for its type.
    #[error("payload: {0}")]
    Payload(#[from] JsonError),
}

/// Payload bytes whose signatures have been checked, with the signers that checked out.
///
/// Only [`Envelope::verify`] constructs one (private fields, no constructor): holding a
/// `VerifiedPayload` proves the bytes verified under a trusted key, like
/// [`crate::certificate::VerifiedCertificate`].
///
/// Code outside this module cannot forge one:
///
/// ```compile_fail,E0451
/// let forged = seb_core::envelope::VerifiedPayload { bytes: b"{}".to_vec(), signers: vec![] };
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedPayload {
    bytes: Vec<u8>,
    signers: Vec<KeyId>,
    passkeys: Vec<(KeyId, VerifiedAssertion)>,
}

impl VerifiedPayload {
    /// The exact signed bytes (canonical JSON when produced by SEB).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Distinct key ids whose signatures verified, in envelope order.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// The signers that signed with a passkey, with what their assertion reported (the
    /// signature counter that admission keeps, spec 5.1).
    pub fn passkeys(&self) -> &[(KeyId, VerifiedAssertion)] {
        &self.passkeys
    }

    /// The signers, consuming the payload.
    pub fn into_signers(self) -> Vec<KeyId> {
        self.signers
    }

    /// Parse the verified bytes strictly into `T`.
    pub fn parse<T: DeserializeOwned>(&self, limit: usize) -> Result<T, JsonError> {
        json::parse(&self.bytes, limit)
    }
}

/// Most signatures an envelope may carry (break-glass m-of-n stays far below this).
pub const MAX_SIGNATURES: usize = 16;

impl Envelope {
    /// Sign the canonical form of `payload` with one key.
    pub fn sign<T: Serialize + ?Sized>(
        payload_type: PayloadType,
        payload: &T,
        key: &SigningKey,
    ) -> Result<Self, JsonError> {
        Self::sign_multi(payload_type, payload, &[key])
    }

    /// Sign the canonical form of `payload` with several keys (break-glass m-of-n).
    pub fn sign_multi<T: Serialize + ?Sized>(
        payload_type: PayloadType,
        payload: &T,
        keys: &[&SigningKey],
    ) -> Result<Self, JsonError> {
        let bytes = json::canonical(payload)?;
        Ok(Self::sign_bytes(payload_type, &bytes, keys))
    }

    /// Sign exact payload bytes.
    pub fn sign_bytes(payload_type: PayloadType, bytes: &[u8], keys: &[&SigningKey]) -> Self {
        let msg = pae(payload_type.media_type(), bytes);
        Self {
            payload_type: payload_type.media_type().to_owned(),
            payload: STANDARD.encode(bytes),
            signatures: keys
                .iter()
                .map(|k| EnvelopeSignature {
                    keyid: k.kid().to_string(),
                    sig: k.sign_b64(&msg),
                    webauthn: None,
                })
                .collect(),
        }
    }

    /// Verify every signature under keys from `resolver`. Every signature must name a trusted
    /// key and verify strictly; a signer may appear once. Returns the signed bytes.
    ///
    /// An entry carrying `webauthn` is a passkey assertion (spec 5.1): accepted only on
    /// `approval` statements, for a credential [`KeyResolver::resolve_webauthn`] knows, over
    /// the statement challenge `SHA-256(PAE(payloadType, payload))`.
    pub fn verify(
        &self,
        expected: PayloadType,
        resolver: &dyn KeyResolver,
    ) -> Result<VerifiedPayload, EnvelopeError> {
        if self.payload_type != expected.media_type() {
            return Err(EnvelopeError::WrongPayloadType {
                expected: expected.media_type(),
                found: self.payload_type.chars().take(100).collect(),
            });
        }
        let n = self.signatures.len();
        if n == 0 || n > MAX_SIGNATURES {
            return Err(EnvelopeError::SignatureCount(n));
        }
        let bytes = STANDARD.decode(&self.payload).map_err(|_| EnvelopeError::PayloadEncoding)?;
        let msg = pae(&self.payload_type, &bytes);
        let mut signers: Vec<KeyId> = Vec::with_capacity(n);
        let mut passkeys = Vec::new();
        for s in &self.signatures {
            let short: String = s.keyid.chars().take(80).collect();
            let kid: KeyId =
                s.keyid.parse().map_err(|_| EnvelopeError::UntrustedKey(short.clone()))?;
            if signers.contains(&kid) {
                return Err(EnvelopeError::DuplicateSigner(short));
            }
            match s.assertion() {
                None => {
                    let key =
                        resolver.resolve(&kid).ok_or(EnvelopeError::UntrustedKey(short.clone()))?;
                    key.verify_b64(&msg, &s.sig)
                        .map_err(|source| EnvelopeError::Signature { kid: short, source })?;
                }
                Some(assertion) => {
                    if expected != PayloadType::Approval {
                        return Err(EnvelopeError::PasskeyNotAllowed);
                    }
                    let cred = resolver
                        .resolve_webauthn(&kid)
                        .ok_or(EnvelopeError::UntrustedKey(short.clone()))?;
                    let checked = assertion.and_then(|a| {
                        let challenge = statement_challenge(&self.payload_type, &bytes);
                        verify_assertion(&cred, &challenge, &a)
                    });
                    let verified =
                        checked.map_err(|source| EnvelopeError::Passkey { kid: short, source })?;
                    passkeys.push((kid.clone(), verified));
                }
            }
            signers.push(kid);
        }
        Ok(VerifiedPayload { bytes, signers, passkeys })
    }

    /// Decode the payload without verifying anything. For display and diagnostics only.
    pub fn insecure_payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        STANDARD.decode(&self.payload).map_err(|_| EnvelopeError::PayloadEncoding)
    }

    /// Canonical bytes of the whole envelope (the ledger entry for records).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, JsonError> {
        json::canonical(self)
    }

    /// Digest of the envelope's canonical form.
    pub fn digest(&self) -> Result<Digest, JsonError> {
        Digest::of_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::TrustedKeys;
    use serde_json::json;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32])
    }

    #[test]
    fn pae_matches_dsse_spec_example() {
        // Example from the DSSE protocol description.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_then_verify_and_refusals() {
        let k = key(1);
        let trusted: TrustedKeys = [k.public_key()].into_iter().collect();
        let env = Envelope::sign(PayloadType::Decision, &json!({"b": 1, "a": 2}), &k).unwrap();
        let v = env.verify(PayloadType::Decision, &trusted).unwrap();
        assert_eq!(v.bytes, br#"{"a":2,"b":1}"#.to_vec());
        assert_eq!(v.signers, vec![k.kid()]);

        assert!(matches!(
            env.verify(PayloadType::Outcome, &trusted),
            Err(EnvelopeError::WrongPayloadType { .. })
        ));
        let other: TrustedKeys = [key(2).public_key()].into_iter().collect();
        assert!(matches!(
            env.verify(PayloadType::Decision, &other),
            Err(EnvelopeError::UntrustedKey(_))
        ));

        let mut swapped = env.clone();
        swapped.payload_type = PayloadType::Outcome.media_type().to_owned();
        assert!(matches!(
            swapped.verify(PayloadType::Outcome, &trusted),
            Err(EnvelopeError::Signature { .. })
        ));

        let mut dup = env.clone();
        dup.signatures.push(dup.signatures[0].clone());
        assert!(matches!(
            dup.verify(PayloadType::Decision, &trusted),
            Err(EnvelopeError::DuplicateSigner(_))
        ));

        let mut none = env;
        none.signatures.clear();
        assert_eq!(
            none.verify(PayloadType::Decision, &trusted).unwrap_err(),
            EnvelopeError::SignatureCount(0)
        );
    }
}
