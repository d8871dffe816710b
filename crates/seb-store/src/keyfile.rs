//! Key files: the one reader for every signing key SEB loads (the broker's record key, the
//! admission issuer key, agent, approver, admin and epoch keys in the CLI).
//!
//! Format: the base64 of a 32-byte Ed25519 seed on one line (what `seb keygen` writes,
//! mode 0600). A file that the group or other users can read is **refused** with a message
//! naming the file, its mode and the fix: the secret may already have leaked. The mode is
//! read from the opened file, so the check and the read see the same file.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::keys::SigningKey;
use zeroize::Zeroizing;

/// Why a key file was not used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be opened or read.
    #[error("reading key file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Other users can read it.
    #[error(
        "key file `{path}` is readable by group or other users (mode {mode:04o}); refusing to use it: run `chmod 600 {path}`, and rotate the key if others may have read it"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file.
    #[error("key file `{path}` is not a regular file")]
    NotAFile {
        /// The file.
        path: String,
    },
    /// Not the base64 of a 32-byte seed.
    #[error("key file `{path}` does not hold the base64 of a 32-byte Ed25519 seed")]
    Format {
        /// The file.
        path: String,
    },
}

/// Largest key file read (a seed line is 45 bytes; leaves room for whitespace).
const MAX_KEY_FILE: u64 = 4096;

/// Read a secret file (a key of any format), refusing one that the group or other users
/// can read. The bytes are zeroed when dropped.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let shown = || path.display().to_string();
    let read_err = |source| KeyFileError::Read { path: shown(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile { path: shown() });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: shown(), mode });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes).map_err(read_err)?;
    Ok(bytes)
}

/// Read an Ed25519 signing key file (see the module docs).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let bytes = read_secret(path)?;
    let format = || KeyFileError::Format { path: path.display().to_string() };
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(format());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| format())?;
    let raw = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| format())?);
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(raw.as_slice().try_into().map_err(|_| format())?);
    Ok(SigningKey::from_seed(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_key_file_reads_and_a_shared_one_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let k = SigningKey::from_seed(&[7; 32]);
        let text = format!("{}\n", STANDARD.encode(k.seed().as_ref()));
        let ok = write(dir.path(), "k.seed", &text, 0o600);
        assert_eq!(read_signing_key(&ok).unwrap().kid(), k.kid());
        let ro = write(dir.path(), "ro.seed", &text, 0o400);
        assert_eq!(read_signing_key(&ro).unwrap().kid(), k.kid());
        for mode in [0o640, 0o604, 0o644, 0o660, 0o666] {
            let p = write(dir.path(), &format!("{mode:o}.seed"), &text, mode);
            let e = read_signing_key(&p).unwrap_err();
            assert!(matches!(e, KeyFileError::Permissions { mode: m, .. } if m == mode), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("{mode:04o}")) && msg.contains("chmod 600"), "{msg}");
            assert!(msg.contains(&p.display().to_string()), "{msg}");
        }
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let short = write(dir.path(), "short", &STANDARD.encode([1u8; 31]), 0o600);
        assert!(matches!(read_signing_key(&short), Err(KeyFileError::Format { .. })));
        let junk = write(dir.path(), "junk", "not base64!", 0o600);
        assert!(matches!(read_signing_key(&junk), Err(KeyFileError::Format { .. })));
        let big = write(dir.path(), "big", &"A".repeat(10_000), 0o600);
        assert!(matches!(read_signing_key(&big), Err(KeyFileError::Format { .. })));
        assert!(matches!(
            read_signing_key(&dir.path().join("absent")),
            Err(KeyFileError::Read { .. })
        ));
        assert!(matches!(read_signing_key(dir.path()), Err(KeyFileError::NotAFile { .. })));
    }
}
