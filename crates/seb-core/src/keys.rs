//! Ed25519 keys, key ids and key lookup (spec section 2).
//!
//! Ed25519 only: there is no algorithm field, so there is no algorithm confusion. Public keys
//! that are not canonical, not on the curve or of small order are refused when parsed.
//!
//! Verification accepts exactly what ed25519-dalek's `verify_strict` accepts (RFC 8032
//! §5.1.7, cofactorless, `S < ℓ`, the recomputed `R` compared byte for byte, small-order `R`
//! and `A` refused). The equation runs in aws-lc (the workspace's crypto backend: 42 µs here
//! against dalek's 47 µs; issue 17), with the one check aws-lc does not make, small-order
//! `R`, made first against the eight canonical encodings ([`SMALL_ORDER_ENCODINGS`]); small-
//! order `A` is refused when the key is parsed. The equivalence is tested differentially
//! against `verify_strict`, including the signatures only the small-order check stops.
//! Signing also runs in aws-lc (14 µs against 24 µs): Ed25519 signatures are deterministic,
//! so they are the same bytes dalek would make (tested).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self, Ed25519KeyPair, UnparsedPublicKey};
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

/// The canonical encodings of the eight points of small order (the torsion subgroup). A
/// signature whose `R` is one of them is refused, as `verify_strict` refuses it: only these
/// can matter, since aws-lc accepts `R` only if it equals the canonical encoding of the point
/// it recomputes. Checked against curve25519-dalek's own torsion points in the tests.
pub const SMALL_ORDER_ENCODINGS: [[u8; 32]; 8] = [
    // identity: 0100000000000000000000000000000000000000000000000000000000000000
    [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // order 2: ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // order 4: 0000000000000000000000000000000000000000000000000000000000000000
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // order 4: 0000000000000000000000000000000000000000000000000000000000000080
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x80,
    ],
    // order 8: c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    // order 8: c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0xfa,
    ],
    // order 8: 26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    // order 8: 26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x85,
    ],
];

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

    /// Strict verification of a raw 64-byte signature over `msg`: what `verify_strict`
    /// accepts, no more (see the module documentation).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), KeyError> {
        let r = sig.first_chunk::<32>().ok_or(KeyError::BadSignature)?;
        if SMALL_ORDER_ENCODINGS.contains(r) {
            return Err(KeyError::BadSignature);
        }
        UnparsedPublicKey::new(&signature::ED25519, self.as_bytes())
            .verify(msg, sig)
            .map_err(|_| KeyError::BadSignature)
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

/// An Ed25519 signing key. The secret is zeroised on drop (dalek's copy by `zeroize`,
/// aws-lc's when it frees the key) and never printed.
pub struct SigningKey {
    dalek: DalekSigningKey,
    /// The same key in aws-lc, which signs (issue 17: 14 µs against dalek's 24 µs here).
    /// Built from the same seed, so it makes the same signatures; `None` only if aws-lc
    /// refused a 32-byte seed, which it does not, and then dalek signs.
    lc: Option<Ed25519KeyPair>,
}

impl SigningKey {
    /// Build from a 32-byte seed. Randomness comes from the caller (the core does no I/O).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            dalek: DalekSigningKey::from_bytes(seed),
            lc: Ed25519KeyPair::from_seed_unchecked(seed).ok(),
        }
    }

    /// The 32-byte seed, for storing the key. Handle with care.
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.dalek.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.dalek.verifying_key())
    }

    /// This key's id.
    pub fn kid(&self) -> KeyId {
        self.public_key().kid()
    }

    /// Sign `msg`, returning the raw signature.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match self.lc.as_ref().and_then(|k| k.sign(msg).as_ref().try_into().ok()) {
            Some(sig) => sig,
            None => self.dalek.sign(msg).to_bytes(),
        }
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

    mod strict_equivalence {
        //! `PublicKey::verify` (aws-lc plus the small-order `R` check) accepts exactly what
        //! ed25519-dalek's `verify_strict` accepts, and `SigningKey::sign` (aws-lc) makes
        //! dalek's signatures.
        use super::super::*;
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
        use curve25519_dalek::scalar::Scalar;
        use proptest::prelude::*;
        use sha2::Sha512;

        fn dalek_accepts(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> bool {
            let vk = VerifyingKey::from_bytes(key.as_bytes()).unwrap();
            vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).is_ok()
        }

        fn aws_lc_alone_accepts(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> bool {
            UnparsedPublicKey::new(&signature::ED25519, key.as_bytes()).verify(msg, sig).is_ok()
        }

        /// k = SHA-512(R ‖ A ‖ M) mod ℓ.
        fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
            let mut h = Sha512::new();
            h.update(r);
            h.update(a);
            h.update(msg);
            Scalar::from_bytes_mod_order_wide(&h.finalize().into())
        }

        #[test]
        fn the_small_order_list_is_the_torsion_subgroup() {
            let mut listed: Vec<[u8; 32]> = SMALL_ORDER_ENCODINGS.to_vec();
            listed.sort_unstable();
            listed.dedup();
            assert_eq!(listed.len(), 8, "eight distinct encodings");
            let mut torsion: Vec<[u8; 32]> =
                EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect();
            torsion.sort_unstable();
            assert_eq!(listed, torsion);
            for e in SMALL_ORDER_ENCODINGS {
                assert!(CompressedEdwardsY(e).decompress().unwrap().is_small_order());
            }
        }

        /// Signatures that satisfy the cofactorless equation with a small-order `R`: aws-lc
        /// alone accepts them, `verify_strict` does not, and neither does `verify`. With a
        /// key of mixed order `A = aB + T`, `S = k·a` gives `[S]B − [k]A = −[k]T`, a torsion
        /// point, so for each target `R` some message makes it hold.
        #[test]
        fn a_small_order_r_is_refused_as_verify_strict_refuses_it() {
            let a = Scalar::from_bytes_mod_order([7u8; 32]);
            let mut hit = 0;
            for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
                let point: EdwardsPoint = EdwardsPoint::mul_base(&a) + torsion;
                let a_bytes = point.compress().to_bytes();
                let Ok(key) = PublicKey::from_bytes(&a_bytes) else {
                    panic!("a mixed-order key is not of small order and must parse");
                };
                for target in SMALL_ORDER_ENCODINGS {
                    let made = (0u32..400).find_map(|i| {
                        let msg = format!("torsion {t} message {i}").into_bytes();
                        let k = challenge(&target, &a_bytes, &msg);
                        let r = EdwardsPoint::mul_base(&(k * a)) - k * point;
                        (r.compress().to_bytes() == target).then(|| {
                            let mut sig = [0u8; 64];
                            sig[..32].copy_from_slice(&target);
                            sig[32..].copy_from_slice((k * a).as_bytes());
                            (msg, sig)
                        })
                    });
                    let Some((msg, sig)) = made else { continue };
                    hit += 1;
                    assert!(aws_lc_alone_accepts(&key, &msg, &sig), "the equation holds");
                    assert!(!dalek_accepts(&key, &msg, &sig), "verify_strict refuses it");
                    assert_eq!(key.verify(&msg, &sig), Err(KeyError::BadSignature));
                }
            }
            // Identity R with a prime-order key, and more with mixed-order keys.
            assert!(hit >= 8, "only {hit} small-order-R signatures were made");
        }

        #[test]
        fn a_non_canonical_s_is_refused_by_both() {
            let sk = SigningKey::from_seed(&[3u8; 32]);
            let msg = b"non-canonical s";
            let mut sig = sk.sign(msg);
            // S + ℓ: the same scalar mod ℓ, not canonical.
            let s = Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap();
            let ell: [u8; 32] = [
                0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
                0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ];
            let mut sum = [0u8; 32];
            let mut carry = 0u16;
            for (i, out) in sum.iter_mut().enumerate() {
                let v = u16::from(s.as_bytes()[i]) + u16::from(ell[i]) + carry;
                *out = (v & 0xff) as u8;
                carry = v >> 8;
            }
            sig[32..].copy_from_slice(&sum);
            let key = sk.public_key();
            assert!(!dalek_accepts(&key, msg, &sig));
            assert_eq!(key.verify(msg, &sig), Err(KeyError::BadSignature));
        }

        proptest! {
            #[test]
            fn signatures_are_dalek_signatures(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..600)) {
                let ours = SigningKey::from_seed(&seed);
                let dalek = DalekSigningKey::from_bytes(&seed);
                prop_assert_eq!(ours.sign(&msg), dalek.sign(&msg).to_bytes());
                prop_assert_eq!(*ours.public_key().as_bytes(), dalek.verifying_key().to_bytes());
            }

            #[test]
            fn verification_agrees_with_verify_strict(
                seed in any::<[u8; 32]>(),
                msg in proptest::collection::vec(any::<u8>(), 0..300),
                flip in proptest::option::of((0usize..64 + 300, 0u8..8)),
                replace_r in proptest::option::of(0usize..8),
            ) {
                let sk = SigningKey::from_seed(&seed);
                let key = sk.public_key();
                let mut sig = sk.sign(&msg);
                let mut msg = msg;
                if let Some((at, bit)) = flip {
                    if at < 64 {
                        sig[at] ^= 1 << bit;
                    } else if let Some(b) = msg.get_mut(at - 64) {
                        *b ^= 1 << bit;
                    }
                }
                if let Some(i) = replace_r {
                    sig[..32].copy_from_slice(&SMALL_ORDER_ENCODINGS[i]);
                }
                let ours = key.verify(&msg, &sig).is_ok();
                prop_assert_eq!(ours, dalek_accepts(&key, &msg, &sig));
                if flip.is_none() && replace_r.is_none() {
                    prop_assert!(ours);
                }
            }
        }
    }
}
