//! STAND-IN (helper `console`): the signatures of `seb_core::webauthn` from INTERFACES.md so
//! the console compiles before `passkey` lands. It verifies NOTHING: `verify_assertion` and
//! `verify_registration` always fail closed. Drop this commit when merging h/passkey.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::keys::KeyId;

/// COSE algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoseAlg {
    Es256,
    EdDsa,
}

/// A registered WebAuthn credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAuthnCredential {
    pub alg: CoseAlg,
    pub public_key: Vec<u8>,
    pub credential_id: Vec<u8>,
    pub rp_id: String,
    pub origins: Vec<String>,
}

impl WebAuthnCredential {
    /// Lowercase hex SHA-256 of the SPKI DER.
    pub fn kid(&self) -> KeyId {
        hex::encode(Sha256::digest(&self.public_key)).parse().unwrap_or_else(|_| KeyId::of(&crate::keys::SigningKey::from_seed(&[0; 32]).public_key()))
    }
}

/// An assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A verified assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub counter: u32,
    pub user_verified: bool,
}

/// Stand-in error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebAuthnError {
    #[error("stand-in verifier: nothing verifies")]
    StandIn,
}

/// SHA-256(PAE(payload_type, payload)).
pub fn statement_challenge(payload_type: &str, payload: &[u8]) -> [u8; 32] {
    Sha256::digest(crate::envelope::pae(payload_type, payload)).into()
}

/// Stand-in: always fails closed.
pub fn verify_assertion(
    _cred: &WebAuthnCredential,
    _challenge: &[u8],
    _a: &Assertion,
) -> Result<VerifiedAssertion, WebAuthnError> {
    Err(WebAuthnError::StandIn)
}

/// Stand-in: always fails closed.
pub fn verify_registration(
    _rp_id: &str,
    _origins: &[String],
    _challenge: &[u8],
    _client_data_json: &[u8],
    _authenticator_data: &[u8],
) -> Result<(), WebAuthnError> {
    Err(WebAuthnError::StandIn)
}
