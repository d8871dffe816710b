//! C2SP `tlog-checkpoint` bodies as C2SP `signed-note`s with Ed25519 keys.
//!
//! A signed note is a text ending in a newline, a blank line, and one or more signature lines
//! `— <key name> <base64(key hash || signature)>` (em dash U+2014). The Ed25519 signature covers
//! the note text including its final newline. The key hash is the first four bytes of
//! `SHA-256(key name || 0x0A || 0x01 || public key)`.
//!
//! Verification follows the note spec: signatures from unknown keys (another name or another
//! key hash) are ignored; a signature line that matches the expected key but does not verify
//! rejects the whole note; a note with no verified signature from the expected key is
//! rejected. The checkpoint body is only parsed after its signature has verified.
//!
//! A checkpoint body is `origin`, tree size (ASCII decimal, no leading zeros) and the base64
//! root hash, one per line, then optional non-empty extension lines, which are covered by the
//! signature and otherwise ignored ([`Checkpoint::parse_and_verify_with_extensions`] returns
//! them).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::keys::{PublicKey, SigningKey};
use sha2::{Digest as _, Sha256};

use crate::error::{LedgerError, short};
use crate::merkle::Hash;

/// Signature type byte of Ed25519 in the signed-note spec.
pub const ED25519_SIGNATURE_TYPE: u8 = 0x01;

/// Largest note accepted (bytes). Checkpoints are a few hundred bytes; this leaves room for
/// many cosignatures.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Most signature lines accepted in one note (the spec requires at least 16).
pub const MAX_NOTE_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";

/// A tree head: the log's identity, its size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Unique identifier of the log (first line).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 9162 root hash of the tree of `size` leaves.
    pub root: Hash,
}

/// First 4 bytes of `SHA-256(name || "\n" || 0x01 || pubkey)`: the note key hash (key ID) of
/// an Ed25519 key.
pub fn note_key_hash(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_SIGNATURE_TYPE]);
    h.update(key.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let [a, b, c, e, ..] = d;
    [a, b, c, e]
}

/// Whether `name` is a valid note key name: non-empty, without Unicode spaces or `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The verifier key string `<name>+<hex key hash>+<base64(0x01 || pubkey)>` used by the Go
/// `note` package and other signed-note tools to configure a trusted key.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(ED25519_SIGNATURE_TYPE);
    raw.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex::encode(note_key_hash(name, key)), STANDARD.encode(raw))
}

fn check_key_name(name: &str) -> Result<(), LedgerError> {
    if is_valid_key_name(name) { Ok(()) } else { Err(LedgerError::InvalidKeyName(short(name))) }
}

/// Whether `text` may be the text of a note: ends in a newline and holds no ASCII control
/// character other than newline.
fn check_note_text(text: &str) -> Result<(), LedgerError> {
    if !text.ends_with('\n') {
        return Err(LedgerError::MalformedNote("text does not end in a newline".into()));
    }
    if text.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(LedgerError::MalformedNote("text holds an ASCII control character".into()));
    }
    Ok(())
}

/// Sign a note text (ending in a newline) with one Ed25519 key; returns the full signed note.
pub fn sign_note(text: &str, key_name: &str, key: &SigningKey) -> Result<String, LedgerError> {
    check_key_name(key_name)?;
    check_note_text(text)?;
    if text.len() > MAX_NOTE_BYTES {
        return Err(LedgerError::MalformedNote("text is too large".into()));
    }
    Ok(sign_note_unchecked(text, key_name, key))
}

fn sign_note_unchecked(text: &str, key_name: &str, key: &SigningKey) -> String {
    let mut sig = Vec::with_capacity(68);
    sig.extend_from_slice(&note_key_hash(key_name, &key.public_key()));
    sig.extend_from_slice(&key.sign(text.as_bytes()));
    format!("{text}\n{SIG_PREFIX}{key_name} {}\n", STANDARD.encode(sig))
}

/// One parsed signature line.
struct NoteSignature<'a> {
    name: &'a str,
    key_hash: [u8; 4],
    sig: Vec<u8>,
}

fn parse_signature_line(line: &str) -> Result<NoteSignature<'_>, LedgerError> {
    let bad = |why: &str| LedgerError::MalformedNote(format!("signature line: {why}"));
    let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| bad("does not start with `— `"))?;
    let (name, b64) = rest.split_once(' ').ok_or_else(|| bad("no space after the key name"))?;
    check_key_name(name)?;
    let raw = STANDARD.decode(b64).map_err(|_| bad("signature is not canonical base64"))?;
    let (key_hash, sig) = raw.split_first_chunk::<4>().ok_or_else(|| bad("too short"))?;
    if sig.is_empty() {
        return Err(bad("too short"));
    }
    Ok(NoteSignature { name, key_hash: *key_hash, sig: sig.to_vec() })
}

/// Verify a signed note under one Ed25519 key and return its text (with the final newline).
///
/// Refuses malformed notes, notes where a signature by this key (same name and key hash)
/// does not verify, and notes without a signature by this key. Other signatures are ignored.
pub fn open_note<'a>(
    note: &'a str,
    key_name: &str,
    key: &PublicKey,
) -> Result<&'a str, LedgerError> {
    check_key_name(key_name)?;
    if note.len() > MAX_NOTE_BYTES {
        return Err(LedgerError::MalformedNote("note is too large".into()));
    }
    if note.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(LedgerError::MalformedNote("note holds an ASCII control character".into()));
    }
    // The text is separated from the signatures by the last blank line.
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| LedgerError::MalformedNote("no blank line before the signatures".into()))?;
    let (text, sigs) = note.split_at(split + 1);
    let sigs = sigs.strip_prefix('\n').unwrap_or(sigs);
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or_else(|| LedgerError::MalformedNote("signatures do not end in a newline".into()))?;
    if sigs.is_empty() {
        return Err(LedgerError::MalformedNote("no signature line".into()));
    }
    let want = note_key_hash(key_name, key);
    let mut verified = 0usize;
    for (n, line) in sigs.split('\n').enumerate() {
        if n >= MAX_NOTE_SIGNATURES {
            return Err(LedgerError::MalformedNote("too many signature lines".into()));
        }
        let s = parse_signature_line(line)?;
        if s.name != key_name || s.key_hash != want {
            continue; // an unknown key: ignored, as the spec requires
        }
        let sig: [u8; 64] = s
            .sig
            .as_slice()
            .try_into()
            .map_err(|_| LedgerError::NoteSignatureInvalid { name: short(key_name) })?;
        key.verify(text.as_bytes(), &sig)
            .map_err(|_| LedgerError::NoteSignatureInvalid { name: short(key_name) })?;
        verified += 1;
    }
    if verified == 0 {
        return Err(LedgerError::NoteNotSigned { name: short(key_name) });
    }
    Ok(text)
}

impl Checkpoint {
    /// The note text: `"origin\nsize\nbase64(root)\n"`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Check that the origin can be written as a checkpoint's first line.
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.origin.is_empty() {
            return Err(LedgerError::MalformedCheckpoint("empty origin".into()));
        }
        if self.origin.chars().any(|c| c < '\u{20}') {
            return Err(LedgerError::MalformedCheckpoint(format!(
                "origin `{}` holds a newline or control character",
                short(&self.origin.escape_debug().to_string())
            )));
        }
        Ok(())
    }

    /// The full signed note: body, blank line, `— <name> <base64(keyhash4 || sig)>\n`.
    ///
    /// Does not validate its input: a checkpoint that fails [`Checkpoint::validate`] or an
    /// invalid key name yield a note that no verifier accepts. Use [`Checkpoint::try_sign`] to
    /// have them refused instead.
    pub fn sign(&self, key_name: &str, key: &SigningKey) -> String {
        sign_note_unchecked(&self.body(), key_name, key)
    }

    /// [`Checkpoint::sign`], refusing an invalid origin or key name.
    pub fn try_sign(&self, key_name: &str, key: &SigningKey) -> Result<String, LedgerError> {
        self.validate()?;
        sign_note(&self.body(), key_name, key)
    }

    /// Verify a signed checkpoint note under `key` (named `key_name`) and parse its body.
    /// Extension lines are covered by the signature and ignored.
    pub fn parse_and_verify(
        note: &str,
        key_name: &str,
        key: &PublicKey,
    ) -> Result<Checkpoint, LedgerError> {
        Self::parse_and_verify_with_extensions(note, key_name, key).map(|(c, _)| c)
    }

    /// [`Checkpoint::parse_and_verify`], also returning the extension lines (without their
    /// newlines).
    pub fn parse_and_verify_with_extensions(
        note: &str,
        key_name: &str,
        key: &PublicKey,
    ) -> Result<(Checkpoint, Vec<String>), LedgerError> {
        let text = open_note(note, key_name, key)?;
        Self::parse_body(text)
    }

    /// Parse a checkpoint body WITHOUT any signature check. Only for text that
    /// [`open_note`] returned, or for display.
    pub fn parse_body(text: &str) -> Result<(Checkpoint, Vec<String>), LedgerError> {
        let bad = |why: String| LedgerError::MalformedCheckpoint(why);
        let body =
            text.strip_suffix('\n').ok_or_else(|| bad("does not end in a newline".into()))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("empty origin line".into()));
        }
        let size_line = lines.next().ok_or_else(|| bad("no tree size line".into()))?;
        let size = parse_size(size_line)
            .ok_or_else(|| bad(format!("tree size `{}` is not a decimal u64", short(size_line))))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash line".into()))?;
        let root: Hash =
            STANDARD.decode(root_line).ok().and_then(|r| r.try_into().ok()).ok_or_else(|| {
                bad(format!("root `{}` is not 32 bytes of base64", short(root_line)))
            })?;
        let mut extensions = Vec::new();
        for ext in lines {
            if ext.is_empty() {
                return Err(bad("empty extension line".into()));
            }
            extensions.push(ext.to_owned());
        }
        Ok((Checkpoint { origin: origin.to_owned(), size, root }, extensions))
    }
}

/// ASCII decimal without leading zeros (except `0` itself).
fn parse_size(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_size("18446744073709551616"), None);
        assert_eq!(parse_size("01"), None);
        assert_eq!(parse_size("+1"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size(" 1"), None);
    }

    #[test]
    fn key_names() {
        assert!(is_valid_key_name("example.com/log"));
        assert!(!is_valid_key_name(""));
        assert!(!is_valid_key_name("a b"));
        assert!(!is_valid_key_name("a+b"));
        assert!(!is_valid_key_name("a\u{00a0}b"));
        assert!(!is_valid_key_name("a\u{2003}b"));
    }
}
