//! Passkey (WebAuthn) assertions over SEB statements (spec section 5.1). Pure: no I/O, no clock.
//!
//! A human approver may sign an `approval` with a passkey. The challenge is not a random server
//! nonce but the digest of the statement, `SHA-256(PAE(payloadType, payload))`, so the assertion
//! signs exactly what an Ed25519 key would. Verification (admission on receipt, the broker at
//! check 3, the offline ledger verifier):
//!
//! 1. `client_data_json` parses strictly (no duplicate keys, bounded size, typed members);
//! 2. `type` = `webauthn.get`, `challenge` = base64url-nopad of the statement challenge,
//!    `origin` ∈ the credential's origins, `crossOrigin` absent or false, no `topOrigin`;
//! 3. `authenticator_data`'s rpIdHash = SHA-256(rp_id), flags UP and UV set;
//! 4. the signature verifies over `authenticator_data ‖ SHA-256(client_data_json)` under the
//!    registered key: ES256 (ECDSA P-256 / SHA-256, DER signature, aws-lc-rs) or EdDSA (strict
//!    Ed25519, small-order keys refused).
//!
//! The signature counter is returned; keeping it is the caller's job ([`check_counter`] is the
//! rule). Every function here is panic-free on any input.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::envelope::pae;
use crate::json;
use crate::keys::{KeyId, PublicKey};

/// Largest `client_data_json` accepted (browsers send ~200 bytes).
pub const MAX_CLIENT_DATA: usize = 4096;
/// Largest `authenticator_data` accepted (37 bytes plus extensions / attested data).
pub const MAX_AUTHENTICATOR_DATA: usize = 4096;
/// Most origins one credential may list.
pub const MAX_ORIGINS: usize = 16;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, uncompressed point).
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (id-Ed25519, RFC 8410).
const SPKI_ED25519_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// COSE algorithm of a passkey. Serialised as the COSE integer (-7 / -8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoseAlg {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// Ed25519 (COSE -8).
    EdDsa,
}

impl CoseAlg {
    /// The COSE integer.
    pub const fn cose(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::EdDsa => -8,
        }
    }
    /// From the COSE integer; only -7 and -8 are supported.
    pub const fn from_cose(n: i64) -> Option<Self> {
        match n {
            -7 => Some(Self::Es256),
            -8 => Some(Self::EdDsa),
            _ => None,
        }
    }
}

impl fmt::Display for CoseAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        })
    }
}

impl Serialize for CoseAlg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.cose())
    }
}
impl<'de> Deserialize<'de> for CoseAlg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Self::from_cose(n).ok_or_else(|| {
            serde::de::Error::custom(format!("unsupported COSE algorithm {n} (only -7, -8)"))
        })
    }
}

/// Why an assertion, a registration or a credential was refused. Each variant names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebAuthnError {
    /// `client_data_json` is not strict JSON of the expected shape.
    #[error("clientDataJSON is malformed: {0}")]
    ClientData(String),
    /// `type` is not `webauthn.get` (or `webauthn.create` for a registration).
    #[error("clientDataJSON type `{found}` where `{expected}` was expected")]
    Type { expected: &'static str, found: String },
    /// The challenge is not the expected one (another statement, or a random value).
    #[error("challenge does not match the statement")]
    Challenge,
    /// The origin is not one of the credential's origins.
    #[error("origin `{0}` is not allowed for this credential")]
    Origin(String),
    /// `crossOrigin` true or a `topOrigin` present (the ceremony ran in a foreign frame).
    #[error("cross-origin ceremony refused")]
    CrossOrigin,
    /// `tokenBinding` with status `present` (not supported, so refused).
    #[error("token binding is not supported")]
    TokenBinding,
    /// `authenticator_data` is too short, too long or has trailing bytes.
    #[error("authenticatorData is malformed: {0}")]
    AuthenticatorData(&'static str),
    /// rpIdHash is not SHA-256 of the credential's RP ID.
    #[error("rpIdHash does not match RP ID `{0}`")]
    RpIdHash(String),
    /// User presence flag not set.
    #[error("user presence (UP) flag not set")]
    UserPresence,
    /// User verification flag not set.
    #[error("user verification (UV) flag not set")]
    UserVerification,
    /// The signature is malformed or does not verify under the registered key.
    #[error("assertion signature does not verify")]
    Signature,
    /// The credential's public key is not an SPKI of the named algorithm, or is weak.
    #[error("credential public key: {0}")]
    PublicKey(&'static str),
    /// The credential itself is malformed (empty RP ID, no origins, …).
    #[error("credential: {0}")]
    Credential(&'static str),
    /// No registered credential has this key id.
    #[error("unknown credential `{0}`")]
    UnknownCredential(String),
    /// The signature counter did not increase (a cloned authenticator).
    #[error("signature counter {new} does not increase past {stored}")]
    CounterRegression { stored: u32, new: u32 },
    /// The attested credential id in a registration differs from the submitted one.
    #[error("attested credential id does not match")]
    CredentialId,
}

impl WebAuthnError {
    /// A short stable code for the failed check (records, problem+json, vectors).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::ClientData(_) => "client_data",
            Self::Type { .. } => "type",
            Self::Challenge => "challenge",
            Self::Origin(_) => "origin",
            Self::CrossOrigin => "cross_origin",
            Self::TokenBinding => "token_binding",
            Self::AuthenticatorData(_) => "authenticator_data",
            Self::RpIdHash(_) => "rp_id_hash",
            Self::UserPresence => "user_present",
            Self::UserVerification => "user_verified",
            Self::Signature => "signature",
            Self::PublicKey(_) => "public_key",
            Self::Credential(_) => "credential",
            Self::UnknownCredential(_) => "unknown_credential",
            Self::CounterRegression { .. } => "counter",
            Self::CredentialId => "credential_id",
        }
    }
}

/// A registered passkey (the `credential` of a registry entry, spec 5.1).
///
/// JSON form: `{"type": "webauthn", "alg": -7|-8, "public_key": <base64 SPKI DER>,
/// "credential_id": <base64url>, "rp_id", "origins": [..]}`. Deserialising checks that the
/// public key is an SPKI of `alg` and a valid, non-weak point, so a held value is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnCredential {
    pub alg: CoseAlg,
    /// SubjectPublicKeyInfo DER (JSON: standard base64).
    pub public_key: Vec<u8>,
    /// The authenticator's credential id (JSON: base64url, no padding).
    pub credential_id: Vec<u8>,
    pub rp_id: String,
    pub origins: Vec<String>,
}

impl WebAuthnCredential {
    /// Key id: lowercase hex SHA-256 of the SPKI DER bytes.
    pub fn kid(&self) -> KeyId {
        KeyId::of_raw(&self.public_key)
    }

    /// Check the credential's form: the key parses for `alg`, the RP ID and origins are sane.
    pub fn validate(&self) -> Result<(), WebAuthnError> {
        parse_key(self.alg, &self.public_key)?;
        if self.rp_id.is_empty() || self.rp_id.len() > 253 {
            return Err(WebAuthnError::Credential("rp_id must be 1..=253 bytes"));
        }
        if self.origins.is_empty() || self.origins.len() > MAX_ORIGINS {
            return Err(WebAuthnError::Credential("origins must list 1..=16 origins"));
        }
        if self.origins.iter().any(|o| o.is_empty() || o.len() > 512) {
            return Err(WebAuthnError::Credential("an origin is empty or too long"));
        }
        if self.credential_id.is_empty() || self.credential_id.len() > 1023 {
            return Err(WebAuthnError::Credential("credential_id must be 1..=1023 bytes"));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialWire {
    #[serde(rename = "type")]
    kind: String,
    alg: CoseAlg,
    public_key: String,
    credential_id: String,
    rp_id: String,
    origins: Vec<String>,
}

impl Serialize for WebAuthnCredential {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CredentialWire {
            kind: "webauthn".to_owned(),
            alg: self.alg,
            public_key: STANDARD.encode(&self.public_key),
            credential_id: URL_SAFE_NO_PAD.encode(&self.credential_id),
            rp_id: self.rp_id.clone(),
            origins: self.origins.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for WebAuthnCredential {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = CredentialWire::deserialize(d)?;
        if w.kind != "webauthn" {
            return Err(D::Error::custom("credential type must be `webauthn`"));
        }
        let public_key = STANDARD
            .decode(&w.public_key)
            .map_err(|_| D::Error::custom("public_key is not canonical base64"))?;
        let credential_id = URL_SAFE_NO_PAD
            .decode(&w.credential_id)
            .map_err(|_| D::Error::custom("credential_id is not base64url without padding"))?;
        let cred =
            Self { alg: w.alg, public_key, credential_id, rp_id: w.rp_id, origins: w.origins };
        cred.validate().map_err(D::Error::custom)?;
        Ok(cred)
    }
}

/// A WebAuthn assertion (`navigator.credentials.get` response), raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What a verified assertion tells the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The authenticator's signature counter (0 when the authenticator keeps none).
    pub counter: u32,
    /// Always true on success (UV is required); kept for callers that log it.
    pub user_verified: bool,
}

/// The statement challenge: `SHA-256(PAE(payloadType, payload))`, raw 32 bytes. In
/// `clientDataJSON` it appears as base64url without padding.
pub fn statement_challenge(payload_type: &str, payload: &[u8]) -> [u8; 32] {
    Sha256::digest(pae(payload_type, payload)).into()
}

/// The parsed members of `clientDataJSON` that SEB checks. Unknown members are allowed (the
/// WebAuthn spec lets browsers add them), duplicate keys are not.
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
    #[serde(rename = "topOrigin", default)]
    top_origin: Option<String>,
    #[serde(rename = "tokenBinding", default)]
    token_binding: Option<serde_json::Value>,
}

fn check_client_data(
    bytes: &[u8],
    expected_type: &'static str,
    challenge: &[u8],
    origins: &[String],
) -> Result<(), WebAuthnError> {
    let cd: ClientData = json::parse(bytes, MAX_CLIENT_DATA)
        .map_err(|e| WebAuthnError::ClientData(e.to_string().chars().take(200).collect()))?;
    if cd.kind != expected_type {
        return Err(WebAuthnError::Type {
            expected: expected_type,
            found: cd.kind.chars().take(40).collect(),
        });
    }
    // Compare the decoded bytes (strict base64url without padding, canonical trailing bits).
    let got = URL_SAFE_NO_PAD.decode(&cd.challenge).map_err(|_| WebAuthnError::Challenge)?;
    if got != challenge {
        return Err(WebAuthnError::Challenge);
    }
    if !origins.contains(&cd.origin) {
        return Err(WebAuthnError::Origin(cd.origin.chars().take(200).collect()));
    }
    if cd.cross_origin == Some(true) || cd.top_origin.is_some() {
        return Err(WebAuthnError::CrossOrigin);
    }
    if let Some(tb) = cd.token_binding
        && tb.get("status").and_then(|s| s.as_str()) == Some("present")
    {
        return Err(WebAuthnError::TokenBinding);
    }
    Ok(())
}

/// rpIdHash, flags and counter of authenticator data (the first 37 bytes).
struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    counter: u32,
    rest: &'a [u8],
}

fn parse_auth_data(bytes: &[u8]) -> Result<AuthData<'_>, WebAuthnError> {
    if bytes.len() > MAX_AUTHENTICATOR_DATA {
        return Err(WebAuthnError::AuthenticatorData("too long"));
    }
    let (rp_id_hash, tail) =
        bytes.split_at_checked(32).ok_or(WebAuthnError::AuthenticatorData("too short"))?;
    let (&flags, tail) = tail.split_first().ok_or(WebAuthnError::AuthenticatorData("too short"))?;
    let (count, rest) =
        tail.split_at_checked(4).ok_or(WebAuthnError::AuthenticatorData("too short"))?;
    let count: [u8; 4] =
        count.try_into().map_err(|_| WebAuthnError::AuthenticatorData("too short"))?;
    Ok(AuthData { rp_id_hash, flags, counter: u32::from_be_bytes(count), rest })
}

fn check_rp_and_flags(ad: &AuthData<'_>, rp_id: &str) -> Result<(), WebAuthnError> {
    let want: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
    if ad.rp_id_hash != want {
        return Err(WebAuthnError::RpIdHash(rp_id.chars().take(100).collect()));
    }
    if ad.flags & FLAG_UP == 0 {
        return Err(WebAuthnError::UserPresence);
    }
    if ad.flags & FLAG_UV == 0 {
        return Err(WebAuthnError::UserVerification);
    }
    Ok(())
}

enum Key {
    Es256([u8; 65]),
    EdDsa(PublicKey),
}

fn parse_key(alg: CoseAlg, spki: &[u8]) -> Result<Key, WebAuthnError> {
    match alg {
        CoseAlg::Es256 => {
            let point = spki
                .strip_prefix(&SPKI_P256_PREFIX[..])
                .ok_or(WebAuthnError::PublicKey("not a P-256 SubjectPublicKeyInfo"))?;
            let point: [u8; 65] = point
                .try_into()
                .map_err(|_| WebAuthnError::PublicKey("P-256 point is not 65 bytes"))?;
            if point.first() != Some(&0x04) {
                return Err(WebAuthnError::PublicKey("P-256 point is not uncompressed"));
            }
            // Validity of the point (on the curve, not the identity) is checked by parsing it.
            aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                point,
            )
            .map_err(|_| WebAuthnError::PublicKey("P-256 point is not on the curve"))?;
            Ok(Key::Es256(point))
        }
        CoseAlg::EdDsa => {
            let raw = spki
                .strip_prefix(&SPKI_ED25519_PREFIX[..])
                .ok_or(WebAuthnError::PublicKey("not an Ed25519 SubjectPublicKeyInfo"))?;
            let raw: [u8; 32] = raw
                .try_into()
                .map_err(|_| WebAuthnError::PublicKey("Ed25519 key is not 32 bytes"))?;
            PublicKey::from_bytes(&raw)
                .map(Key::EdDsa)
                .map_err(|_| WebAuthnError::PublicKey("Ed25519 key is invalid or weak"))
        }
    }
}

fn verify_signature(key: &Key, msg: &[u8], sig: &[u8]) -> Result<(), WebAuthnError> {
    match key {
        Key::Es256(point) => {
            let pk = aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                &point[..],
            );
            pk.verify(msg, sig).map_err(|_| WebAuthnError::Signature)
        }
        Key::EdDsa(pk) => {
            let arr: [u8; 64] = sig.try_into().map_err(|_| WebAuthnError::Signature)?;
            pk.verify(msg, &arr).map_err(|_| WebAuthnError::Signature)
        }
    }
}

/// Verify an assertion by `cred` over `challenge` (for approvals: [`statement_challenge`]).
///
/// Checks, in order: clientDataJSON (strict; type `webauthn.get`; challenge; origin ∈
/// `cred.origins`; not cross-origin), authenticatorData (rpIdHash = SHA-256(rp_id); UP; UV;
/// no attested credential data; no trailing bytes without the extension flag), then the
/// signature over `authenticator_data ‖ SHA-256(client_data_json)`.
pub fn verify_assertion(
    cred: &WebAuthnCredential,
    challenge: &[u8],
    a: &Assertion,
) -> Result<VerifiedAssertion, WebAuthnError> {
    let key = parse_key(cred.alg, &cred.public_key)?;
    check_client_data(&a.client_data_json, "webauthn.get", challenge, &cred.origins)?;
    let ad = parse_auth_data(&a.authenticator_data)?;
    check_rp_and_flags(&ad, &cred.rp_id)?;
    if ad.flags & FLAG_AT != 0 {
        return Err(WebAuthnError::AuthenticatorData("attested credential data in an assertion"));
    }
    if ad.flags & FLAG_ED == 0 && !ad.rest.is_empty() {
        return Err(WebAuthnError::AuthenticatorData("trailing bytes"));
    }
    if ad.flags & FLAG_ED != 0 && ad.rest.is_empty() {
        return Err(WebAuthnError::AuthenticatorData("extension flag without extensions"));
    }
    let mut msg = Vec::with_capacity(a.authenticator_data.len() + 32);
    msg.extend_from_slice(&a.authenticator_data);
    msg.extend_from_slice(&Sha256::digest(&a.client_data_json));
    verify_signature(&key, &msg, &a.signature)?;
    Ok(VerifiedAssertion { counter: ad.counter, user_verified: true })
}

/// Verify the registration (`navigator.credentials.create`) response used by enrolment: type
/// `webauthn.create`, challenge, origin, not cross-origin, rpIdHash, UP and UV, and attested
/// credential data present. (No attestation statement is checked: SEB asks for `none`; the
/// invitation token authorises the enrolment.)
pub fn verify_registration(
    rp_id: &str,
    origins: &[String],
    challenge: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
) -> Result<(), WebAuthnError> {
    check_client_data(client_data_json, "webauthn.create", challenge, origins)?;
    let ad = parse_auth_data(authenticator_data)?;
    check_rp_and_flags(&ad, rp_id)?;
    if ad.flags & FLAG_AT == 0 {
        return Err(WebAuthnError::AuthenticatorData("no attested credential data"));
    }
    Ok(())
}

/// The credential id inside a registration's attested credential data (AAGUID[16] ‖
/// len[2] ‖ id[len] ‖ COSE key), or `None` when absent or malformed.
pub fn attested_credential_id(authenticator_data: &[u8]) -> Option<&[u8]> {
    let ad = parse_auth_data(authenticator_data).ok()?;
    if ad.flags & FLAG_AT == 0 {
        return None;
    }
    let after_aaguid = ad.rest.get(16..)?;
    let (len, tail) = after_aaguid.split_at_checked(2)?;
    let len = usize::from(u16::from_be_bytes(len.try_into().ok()?));
    tail.get(..len)
}

/// [`verify_registration`] plus: the submitted credential is well formed and its id equals the
/// attested one.
pub fn verify_registration_of(
    cred: &WebAuthnCredential,
    challenge: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
) -> Result<(), WebAuthnError> {
    cred.validate()?;
    verify_registration(
        &cred.rp_id,
        &cred.origins,
        challenge,
        client_data_json,
        authenticator_data,
    )?;
    match attested_credential_id(authenticator_data) {
        Some(id) if id == cred.credential_id.as_slice() => Ok(()),
        _ => Err(WebAuthnError::CredentialId),
    }
}

/// The signature-counter rule (WebAuthn §7.2 step 21): when either the stored or the new
/// counter is non-zero, the new one must be strictly greater; otherwise the authenticator may
/// have been cloned. Both zero means the authenticator keeps no counter.
pub fn check_counter(stored: u32, new: u32) -> Result<(), WebAuthnError> {
    if (stored != 0 || new != 0) && new <= stored {
        return Err(WebAuthnError::CounterRegression { stored, new });
    }
    Ok(())
}

/// The credential with key id `kid` among `creds`.
pub fn find_credential<'a>(
    creds: &'a [WebAuthnCredential],
    kid: &KeyId,
) -> Result<&'a WebAuthnCredential, WebAuthnError> {
    creds
        .iter()
        .find(|c| c.kid() == *kid)
        .ok_or_else(|| WebAuthnError::UnknownCredential(kid.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rule() {
        assert!(check_counter(0, 0).is_ok());
        assert!(check_counter(0, 1).is_ok());
        assert!(check_counter(5, 6).is_ok());
        assert_eq!(
            check_counter(5, 5),
            Err(WebAuthnError::CounterRegression { stored: 5, new: 5 })
        );
        assert!(check_counter(5, 4).is_err());
        assert!(check_counter(5, 0).is_err());
    }

    #[test]
    fn short_and_garbage_inputs_do_not_panic() {
        let cred = WebAuthnCredential {
            alg: CoseAlg::EdDsa,
            public_key: vec![],
            credential_id: vec![1],
            rp_id: "x".into(),
            origins: vec!["https://x".into()],
        };
        let a =
            Assertion { authenticator_data: vec![], client_data_json: vec![], signature: vec![] };
        assert!(matches!(verify_assertion(&cred, &[0; 32], &a), Err(WebAuthnError::PublicKey(_))));
        for n in 0..40 {
            assert!(parse_auth_data(&vec![0u8; n]).is_ok() == (n >= 37));
            assert!(attested_credential_id(&vec![0x45u8; n]).is_none() || n >= 55);
        }
        assert!(verify_registration("x", &[], &[], b"{", &[]).is_err());
    }

    #[test]
    fn alg_serde_is_the_cose_integer() {
        assert_eq!(serde_json::to_string(&CoseAlg::Es256).unwrap_or_default(), "-7");
        assert_eq!(serde_json::from_str::<CoseAlg>("-8").ok(), Some(CoseAlg::EdDsa));
        assert!(serde_json::from_str::<CoseAlg>("-257").is_err());
    }
}

/// A software passkey (EdDSA) for tests and tools: builds the assertions and registration
/// responses a browser and an authenticator would, from a seed. Not for production signing.
pub mod soft {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest as _, Sha256};

    use super::{Assertion, CoseAlg, WebAuthnCredential};
    use crate::envelope::{Envelope, EnvelopeSignature, PayloadType};
    use crate::json::{self, JsonError};
    use crate::keys::SigningKey;

    /// An EdDSA passkey with a signature counter.
    #[derive(Debug)]
    pub struct SoftPasskey {
        key: SigningKey,
        /// The credential as registered.
        pub credential: WebAuthnCredential,
        /// The next assertion's counter is this plus one (0 keeps it at 0).
        pub counter: u32,
    }

    /// DER prefix of an Ed25519 SubjectPublicKeyInfo.
    const ED25519_SPKI: [u8; 12] =
        [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

    impl SoftPasskey {
        /// A passkey from `seed` for `rp_id`, used at `origin`.
        pub fn new(seed: [u8; 32], rp_id: &str, origin: &str) -> Self {
            let key = SigningKey::from_seed(&seed);
            let mut spki = ED25519_SPKI.to_vec();
            spki.extend_from_slice(key.public_key().as_bytes());
            let credential_id =
                Sha256::digest(seed).get(..16).map(<[u8]>::to_vec).unwrap_or_default();
            Self {
                key,
                credential: WebAuthnCredential {
                    alg: CoseAlg::EdDsa,
                    public_key: spki,
                    credential_id,
                    rp_id: rp_id.to_owned(),
                    origins: vec![origin.to_owned()],
                },
                counter: 1,
            }
        }

        fn client_data(&self, kind: &str, challenge: &[u8]) -> Vec<u8> {
            let origin = self.credential.origins.first().cloned().unwrap_or_default();
            serde_json::json!({
                "type": kind,
                "challenge": URL_SAFE_NO_PAD.encode(challenge),
                "origin": origin,
                "crossOrigin": false,
            })
            .to_string()
            .into_bytes()
        }

        fn auth_data(&self, flags: u8, counter: u32) -> Vec<u8> {
            let mut ad = Sha256::digest(self.credential.rp_id.as_bytes()).to_vec();
            ad.push(flags);
            ad.extend_from_slice(&counter.to_be_bytes());
            ad
        }

        /// An assertion over `challenge` (UP and UV set), advancing the counter.
        pub fn assert(&mut self, challenge: &[u8]) -> Assertion {
            if self.counter != 0 {
                self.counter = self.counter.saturating_add(1);
            }
            let authenticator_data = self.auth_data(0x05, self.counter);
            let client_data_json = self.client_data("webauthn.get", challenge);
            let mut msg = authenticator_data.clone();
            msg.extend_from_slice(&Sha256::digest(&client_data_json));
            Assertion {
                authenticator_data,
                client_data_json,
                signature: self.key.sign(&msg).to_vec(),
            }
        }

        /// An `approval` envelope over `approval` signed with this passkey (spec 5.1).
        pub fn sign_approval<T: serde::Serialize + ?Sized>(
            &mut self,
            approval: &T,
        ) -> Result<Envelope, JsonError> {
            let bytes = json::canonical(approval)?;
            let challenge = super::statement_challenge(PayloadType::Approval.media_type(), &bytes);
            let a = self.assert(&challenge);
            let mut env = Envelope::sign_bytes(PayloadType::Approval, &bytes, &[]);
            env.signatures = vec![EnvelopeSignature::passkey(&self.credential.kid(), &a)];
            Ok(env)
        }

        /// A registration response for `challenge`: (client_data_json, authenticator_data),
        /// the attested credential data carrying this credential's id.
        pub fn register(&self, challenge: &[u8]) -> (Vec<u8>, Vec<u8>) {
            let mut ad = self.auth_data(0x45, 0);
            ad.extend_from_slice(&[0u8; 16]);
            let id = &self.credential.credential_id;
            ad.extend_from_slice(&u16::try_from(id.len()).unwrap_or(0).to_be_bytes());
            ad.extend_from_slice(id);
            // COSE_Key {1: 1, 3: -8, -1: 6, -2: x}
            ad.extend_from_slice(&[0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20]);
            ad.extend_from_slice(self.key.public_key().as_bytes());
            (self.client_data("webauthn.create", challenge), ad)
        }
    }
}
