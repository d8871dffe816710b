//! Signed notes and checkpoints: the Go `note` package's published vector, the `signed_note`
//! crate as an oracle, round trips and refusals.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::keys::{PublicKey, SigningKey};
use seb_ledger::LedgerError;
use seb_ledger::checkpoint::{
    Checkpoint, is_valid_key_name, note_key_hash, open_note, sign_note, verifier_key,
};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};

const NAME: &str = "seb.example/ledger";

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn cp(size: u64) -> Checkpoint {
    Checkpoint { origin: NAME.into(), size, root: [size as u8; 32] }
}

/// The example of golang.org/x/mod/sumdb/note (also in the `signed_note` crate's docs).
#[test]
fn go_note_package_vector() {
    let skey = STANDARD.decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
    let vkey = STANDARD.decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
    assert_eq!((skey[0], vkey[0]), (0x01, 0x01));
    let sk = SigningKey::from_seed(&skey[1..].try_into().unwrap());
    let pk = PublicKey::from_bytes(&vkey[1..].try_into().unwrap()).unwrap();
    assert_eq!(sk.public_key(), pk);
    assert_eq!(note_key_hash("PeterNeumann", &pk), [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(
        verifier_key("PeterNeumann", &pk),
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    );
    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    let signed = "If you think cryptography is the answer to your problem,\n\
                  then you don't know what your problem is.\n\
                  \n\
                  \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    assert_eq!(sign_note(text, "PeterNeumann", &sk).unwrap(), signed);
    assert_eq!(open_note(signed, "PeterNeumann", &pk).unwrap(), text);
}

#[test]
fn key_hash_is_the_spec_formula() {
    use sha2::{Digest as _, Sha256};
    let pk = key(3).public_key();
    let mut pre = NAME.as_bytes().to_vec();
    pre.push(0x0a);
    pre.push(0x01);
    pre.extend_from_slice(pk.as_bytes());
    assert_eq!(note_key_hash(NAME, &pk), Sha256::digest(&pre)[..4]);
    let mut typed = vec![0x01];
    typed.extend_from_slice(pk.as_bytes());
    assert_eq!(u32::from_be_bytes(note_key_hash(NAME, &pk)), signed_note::key_id(NAME, &typed));
}

#[test]
fn signed_note_crate_agrees_both_ways() {
    let sk = key(9);
    let pk = sk.public_key();
    let c = Checkpoint { origin: NAME.into(), size: 1234, root: [0xab; 32] };
    let ours = c.sign(NAME, &sk);

    // Their verifier accepts our note and sees our body as the text.
    let verifier = StandardVerifier::new(&verifier_key(NAME, &pk)).unwrap();
    let note = Note::from_bytes(ours.as_bytes()).unwrap();
    let (verified, unverified) =
        note.verify(&VerifierList::new(vec![Box::new(verifier.clone())])).unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(note.text(), c.body().as_bytes());

    // Their signer produces byte-identical notes (Ed25519 is deterministic).
    let mut seed = vec![0x01];
    seed.extend_from_slice(sk.seed().as_slice());
    let skey = format!(
        "PRIVATE+KEY+{NAME}+{}+{}",
        hex::encode(note_key_hash(NAME, &pk)),
        STANDARD.encode(&seed)
    );
    let signer = StandardSigner::new(&skey).unwrap();
    let mut theirs = Note::new(c.body().as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&signer]).unwrap();
    let theirs = String::from_utf8(theirs.to_bytes()).unwrap();
    assert_eq!(theirs, ours);
    assert_eq!(Checkpoint::parse_and_verify(&theirs, NAME, &pk).unwrap(), c);

    // Their parser also refuses what we refuse for a bad signature.
    let tampered = ours.replace("\n1234\n", "\n1235\n");
    let note = Note::from_bytes(tampered.as_bytes()).unwrap();
    assert!(note.verify(&VerifierList::new(vec![Box::new(verifier)])).is_err());
    assert!(Checkpoint::parse_and_verify(&tampered, NAME, &pk).is_err());
}

#[test]
fn round_trip() {
    let sk = key(1);
    for size in [0u64, 1, 2, 1000, u64::MAX] {
        let c = cp(size);
        let note = c.sign(NAME, &sk);
        assert_eq!(note, c.try_sign(NAME, &sk).unwrap());
        assert!(note.starts_with(&c.body()));
        assert!(note.contains("\n\n\u{2014} seb.example/ledger "));
        assert_eq!(Checkpoint::parse_and_verify(&note, NAME, &sk.public_key()).unwrap(), c);
    }
    assert_eq!(cp(7).body(), format!("seb.example/ledger\n7\n{}\n", STANDARD.encode([7u8; 32])));
}

#[test]
fn tampered_notes_fail() {
    let sk = key(1);
    let pk = sk.public_key();
    let note = cp(42).sign(NAME, &sk);
    let tamper = |from: &str, to: &str| note.replacen(from, to, 1);
    let root_b64 = STANDARD.encode([42u8; 32]);
    let other_root = STANDARD.encode([43u8; 32]);
    for bad in [
        tamper("\n42\n", "\n43\n"),
        tamper(&root_b64, &other_root),
        tamper("seb.example/ledger\n", "seb.example/ledgeR\n"),
        tamper("\n42\n", "\n42\nextension\n"),
    ] {
        assert!(
            matches!(
                Checkpoint::parse_and_verify(&bad, NAME, &pk),
                Err(LedgerError::NoteSignatureInvalid { .. })
            ),
            "{bad}"
        );
    }
    // A flipped bit anywhere in the note is caught one way or another.
    for i in 0..note.len() {
        let mut b = note.clone().into_bytes();
        b[i] ^= 0x01;
        if let Ok(s) = String::from_utf8(b) {
            assert!(Checkpoint::parse_and_verify(&s, NAME, &pk).is_err(), "byte {i}");
        }
    }
    // Another key, or the right key under another name, is "not signed".
    assert!(matches!(
        Checkpoint::parse_and_verify(&note, NAME, &key(2).public_key()),
        Err(LedgerError::NoteNotSigned { .. })
    ));
    assert!(matches!(
        Checkpoint::parse_and_verify(&note, "seb.example/other", &pk),
        Err(LedgerError::NoteNotSigned { .. })
    ));
}

fn sig_line(name: &str, key_hash: [u8; 4], sig: &[u8]) -> String {
    let mut raw = key_hash.to_vec();
    raw.extend_from_slice(sig);
    format!("\u{2014} {name} {}\n", STANDARD.encode(raw))
}

#[test]
fn unknown_signatures_are_ignored_known_bad_ones_reject() {
    let sk = key(1);
    let pk = sk.public_key();
    let c = cp(5);
    let ours = c.sign(NAME, &sk);
    let (body, our_line) = ours.split_once("\n\n").unwrap();
    let body = format!("{body}\n");

    // Cosignatures by other keys and names are ignored, before or after ours.
    let other = key(2);
    let witness = sign_note(&body, "witness.example", &other).unwrap();
    let witness_line = witness.split_once("\n\n").unwrap().1;
    let same_name_other_key = sign_note(&body, NAME, &other).unwrap();
    let same_name_line = same_name_other_key.split_once("\n\n").unwrap().1;
    let mut many = format!("{body}\n");
    for _ in 0..20 {
        many.push_str(witness_line);
    }
    many.push_str(same_name_line);
    many.push_str(our_line);
    assert_eq!(Checkpoint::parse_and_verify(&many, NAME, &pk).unwrap(), c);

    // A line claiming our name and key hash that does not verify rejects the whole note, even
    // when a valid one follows.
    let forged = sig_line(NAME, note_key_hash(NAME, &pk), &[0u8; 64]);
    let note = format!("{body}\n{forged}{our_line}");
    assert!(matches!(
        Checkpoint::parse_and_verify(&note, NAME, &pk),
        Err(LedgerError::NoteSignatureInvalid { .. })
    ));
    // So does one of the wrong length.
    let short = sig_line(NAME, note_key_hash(NAME, &pk), &[0u8; 10]);
    let note = format!("{body}\n{our_line}{short}");
    assert!(matches!(
        Checkpoint::parse_and_verify(&note, NAME, &pk),
        Err(LedgerError::NoteSignatureInvalid { .. })
    ));
    // Only unknown signatures: not signed.
    let note = format!("{body}\n{witness_line}");
    assert!(matches!(
        Checkpoint::parse_and_verify(&note, NAME, &pk),
        Err(LedgerError::NoteNotSigned { .. })
    ));
    // Too many signature lines.
    let mut flood = format!("{body}\n");
    for _ in 0..100 {
        flood.push_str(witness_line);
    }
    flood.push_str(our_line);
    assert!(matches!(
        Checkpoint::parse_and_verify(&flood, NAME, &pk),
        Err(LedgerError::MalformedNote(_))
    ));
}

#[test]
fn malformed_notes_are_refused() {
    let sk = key(1);
    let pk = sk.public_key();
    let note = cp(5).sign(NAME, &sk);
    let (body, line) = note.split_once("\n\n").unwrap();
    let b64 = line.rsplit_once(' ').unwrap().1.trim_end();
    let cases = [
        // no blank line before the signatures
        note.replacen("\n\n", "\n", 1),
        // hyphens or an en dash instead of the em dash
        note.replace('\u{2014}', "--"),
        note.replace('\u{2014}', "\u{2013}"),
        // no final newline
        note.trim_end().to_owned(),
        // an empty signature block
        format!("{body}\n\n"),
        // a carriage return
        note.replace("\n\n", "\r\n\n"),
        // two spaces after the name
        note.replace(&format!("{NAME} "), &format!("{NAME}  ")),
        // base64 without padding, or with a non-canonical last character
        note.replace(b64, b64.trim_end_matches('=')),
        // a signature line with only a key hash
        format!("{body}\n\n{}", sig_line(NAME, [1, 2, 3, 4], &[])),
    ];
    for bad in cases {
        assert!(
            matches!(
                Checkpoint::parse_and_verify(&bad, NAME, &pk),
                Err(LedgerError::MalformedNote(_) | LedgerError::InvalidKeyName(_))
            ),
            "{bad:?}: {:?}",
            Checkpoint::parse_and_verify(&bad, NAME, &pk)
        );
    }
    // An empty line among the signature lines makes everything before it the text, which
    // then no longer matches the signature.
    assert!(matches!(
        Checkpoint::parse_and_verify(&format!("{note}\n{line}"), NAME, &pk),
        Err(LedgerError::NoteSignatureInvalid { .. })
    ));
    // An invalid key name in a signature line is malformed too.
    let bad_name = format!("{body}\n\n{}", sig_line("a+b", [0; 4], &[0; 64]));
    assert!(Checkpoint::parse_and_verify(&bad_name, NAME, &pk).is_err());
}

#[test]
fn checkpoint_bodies_are_strict_and_extensions_preserved() {
    let sk = key(1);
    let pk = sk.public_key();
    let root = STANDARD.encode([9u8; 32]);
    let open = |text: &str| {
        let note = sign_note(text, NAME, &sk).unwrap();
        Checkpoint::parse_and_verify_with_extensions(&note, NAME, &pk)
    };
    let (c, ext) = open(&format!("{NAME}\n3\n{root}\nfoo bar\n\u{2014} baz\n")).unwrap();
    assert_eq!(c, Checkpoint { origin: NAME.into(), size: 3, root: [9; 32] });
    assert_eq!(ext, vec!["foo bar".to_owned(), "\u{2014} baz".to_owned()]);
    let (_, ext) = open(&format!("{NAME}\n3\n{root}\n")).unwrap();
    assert!(ext.is_empty());
    for bad in [
        format!("{NAME}\n03\n{root}\n"),
        format!("{NAME}\n-3\n{root}\n"),
        format!("{NAME}\n 3\n{root}\n"),
        format!("{NAME}\n18446744073709551616\n{root}\n"),
        format!("{NAME}\n3\n{}\n", STANDARD.encode([9u8; 31])),
        format!("{NAME}\n3\n{}\n", STANDARD.encode([9u8; 33])),
        format!("{NAME}\n3\n{}\n", root.trim_end_matches('=')),
        format!("{NAME}\n3\n"),
        format!("\n3\n{root}\n"),
        format!("{NAME}\n3\n{root}\n\nafter-empty-line\n"),
    ] {
        assert!(matches!(open(&bad), Err(LedgerError::MalformedCheckpoint(_))), "{bad:?}");
    }
}

#[test]
fn signing_refuses_what_cannot_verify() {
    let sk = key(1);
    assert!(matches!(cp(1).try_sign("bad name", &sk), Err(LedgerError::InvalidKeyName(_))));
    assert!(matches!(cp(1).try_sign("", &sk), Err(LedgerError::InvalidKeyName(_))));
    assert!(matches!(cp(1).try_sign("a+b", &sk), Err(LedgerError::InvalidKeyName(_))));
    let mut c = cp(1);
    c.origin = "two\nlines".into();
    assert!(matches!(c.try_sign(NAME, &sk), Err(LedgerError::MalformedCheckpoint(_))));
    c.origin = String::new();
    assert!(matches!(c.try_sign(NAME, &sk), Err(LedgerError::MalformedCheckpoint(_))));
    // The infallible form still never yields a note that verifies wrongly.
    let note = cp(1).sign("bad name", &sk);
    assert!(Checkpoint::parse_and_verify(&note, "bad name", &sk.public_key()).is_err());
    assert!(matches!(sign_note("no newline", NAME, &sk), Err(LedgerError::MalformedNote(_))));
    assert!(matches!(sign_note("tab\there\n", NAME, &sk), Err(LedgerError::MalformedNote(_))));
    assert!(is_valid_key_name(NAME));
}
