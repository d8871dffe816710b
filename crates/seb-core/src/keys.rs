//! Ed25519 keys, key ids and key lookup (spec section 2).
//!
//! Ed25519 only: there is no algorithm field, so there is no algorithm confusion. Public keys
//! of small order are refused when parsed, and verification uses `verify_strict`, which also
//! rejects non-canonical signatures.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey as DalekSigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not valid base64 (standard alphabet, canonical padding) or not 32 bytes.
    #[error("public key is not 32 bytes of canonical base64")]
    Encoding,
    /// The bytes are not the canonical encoding of a valid curve point (RFC 8032 §5.1.3: a
    /// y-coordinate ≥ p is refused).
    #[error("public key is not a valid Ed25519 point")]
    InvalidPoint,
    /// The key has small order (accepts forged signatures); refused.
    #[error("public key has small order")]
    WeakKey,
    /// The signature is not 64 bytes of canonical base64.
    #[error("signature is not 64 bytes of canonical base64")]
    SignatureEncoding,
    /// The signature does not verify under strict rules.
    #[error("signature does not verify")]
    BadSignature,
    /// A key id is not 64 lowercase hex digits.
    #[error("key id `{0}` is not 64 lowercase hex digits")]
    KeyId(String),
}

/// Lowercase hex SHA-256 of the 32-byte public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of a public key.
    pub fn of(key: &PublicKey) -> Self {
        Self(hex::encode(Sha256::digest(key.as_bytes())))
    }
    /// The key id of other key material: lowercase hex SHA-256 of `bytes` (a passkey's
    /// SubjectPublicKeyInfo DER, spec 5.1).
    pub fn of_raw(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }
    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl FromStr for KeyId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyError::KeyId(s.chars().take(80).collect()))
        }
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a compressed point encodes its y-coordinate canonically (y < p = 2^255 − 19; the
/// top bit is the sign of x). Only y in p..2^255 − 1 is non-canonical: low 255 bits of
/// `0x7fff…ffed` or more.
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    let [first, middle @ .., last] = bytes;
    !(*last & 0x7f == 0x7f && middle.iter().all(|b| *b == 0xff) && *first >= 0xed)
}

/// A verified-to-be-safe Ed25519 public key (valid point, not of small order).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parse 32 raw bytes, refusing non-canonical encodings, invalid points and small-order
    /// keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        // ed25519-dalek decompresses y ≥ p as y − p, so without this check the same point has
        // a second encoding (and a second key id).
        if !is_canonical_y(bytes) {
            return Err(KeyError::InvalidPoint);
        }
        let vk = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        if vk.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(Self(vk))
    }

    /// Parse standard base64 (as carried in certificates and registries).
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        let raw = STANDARD.decode(s).map_err(|_| KeyError::Encoding)?;
        let arr: [u8; 32] = raw.try_into().map_err(|_| KeyError::Encoding)?;
        Self::from_bytes(&arr)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Standard base64 of the raw bytes.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.as_bytes())
    }

    /// This key's id.
    pub fn kid(&self) -> KeyId {
        KeyId::of(self)
    }

    /// Strict verification of a base64 signature over `msg`.
    pub fn verify_b64(&self, msg: &[u8], sig_b64: &str) -> Result<(), KeyError> {
        let raw = STANDARD.decode(sig_b64).map_err(|_| KeyError::SignatureEncoding)?;
        let arr: [u8; 64] = raw.try_into().map_err(|_| KeyError::SignatureEncoding)?;
        self.verify(msg, &arr)
    }

    /// Strict verification of a raw 64-byte signature over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), KeyError> {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PublicKey::from_base64(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signing key. The secret is zeroised on drop and never printed.
pub struct SigningKey(DalekSigningKey);

impl SigningKey {
    /// Build from a 32-byte seed. Randomness comes from the caller (the core does no I/O).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(DalekSigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for storing the key. Handle with care.
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// This key's id.
    pub fn kid(&self) -> KeyId {
        self.public_key().kid()
    }

    /// Sign `msg`, returning the raw signature.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    /// Sign `msg`, returning standard base64.
    pub fn sign_b64(&self, msg: &[u8]) -> String {
        STANDARD.encode(self.sign(msg))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(kid={}, secret=<redacted>)", self.kid())
    }
}

/// Looks up trusted public keys by key id. Rotation is adding the new key before removing
/// the old one.
pub trait KeyResolver {
    /// The trusted key with this id, if any.
    fn resolve(&self, kid: &KeyId) -> Option<PublicKey>;

    /// The trusted passkey (WebAuthn credential, spec 5.1) with this id, if any. Only approver
    /// registries hold passkeys; every other resolver keeps the default (none).
    fn resolve_webauthn(&self, _kid: &KeyId) -> Option<crate::webauthn::WebAuthnCredential> {
        None
    }
}

/// A fixed set of trusted keys.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, PublicKey>,
}

impl TrustedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Trust a key.
    pub fn insert(&mut self, key: PublicKey) -> &mut Self {
        self.keys.insert(key.kid(), key);
        self
    }
    /// Stop trusting a key.
    pub fn remove(&mut self, kid: &KeyId) -> Option<PublicKey> {
        self.keys.remove(kid)
    }
    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl FromIterator<PublicKey> for TrustedKeys {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(iter: I) -> Self {
        let mut t = Self::new();
        for k in iter {
            t.insert(k);
        }
        t
    }
}

impl KeyResolver for TrustedKeys {
    fn resolve(&self, kid: &KeyId) -> Option<PublicKey> {
        self.keys.get(kid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_kid() {
        let sk = SigningKey::from_seed(&[7u8; 32]);
        let pk = sk.public_key();
        let sig = sk.sign(b"hello");
        assert!(pk.verify(b"hello", &sig).is_ok());
        assert_eq!(pk.verify(b"hellO", &sig), Err(KeyError::BadSignature));
        assert_eq!(pk.kid().as_str().len(), 64);
        assert_eq!(PublicKey::from_base64(&pk.to_base64()), Ok(pk));
        assert!(!format!("{sk:?}").contains(&hex::encode([7u8; 32])));
    }

    /// Regression: y ≥ p used to decode (as y − p), giving a point a second encoding.
    #[test]
    fn non_canonical_encodings_are_refused() {
        // y = 3 has a point of large order; its non-canonical twin is p + 3.
        let mut canonical = [0u8; 32];
        canonical[0] = 3;
        assert!(PublicKey::from_bytes(&canonical).is_ok());
        let mut twin = [0xffu8; 32];
        twin[0] = 0xed + 3;
        twin[31] = 0x7f;
        assert_eq!(PublicKey::from_bytes(&twin), Err(KeyError::InvalidPoint));
        twin[31] = 0xff; // with the sign bit set
        assert_eq!(PublicKey::from_bytes(&twin), Err(KeyError::InvalidPoint));
        // p − 1 (y = −1, order 2) is canonical but weak; p itself (y = 0) is non-canonical.
        let mut p_minus_1 = [0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        assert_eq!(PublicKey::from_bytes(&p_minus_1), Err(KeyError::WeakKey));
        p_minus_1[0] = 0xed;
        assert_eq!(PublicKey::from_bytes(&p_minus_1), Err(KeyError::InvalidPoint));
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point (small order) encoded as y = 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::WeakKey));
    }
}
