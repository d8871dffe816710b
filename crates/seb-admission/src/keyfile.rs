//! Key files: the base64 of a 32-byte Ed25519 seed, one line, mode 0600 (what `seb keygen`
//! writes). One reader for admission (the issuer key), the CLI, `seb mcp` and the tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use seb_core::keys::SigningKey;

/// Why a key file cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key file `{}` is not base64", path.display())]
    NotBase64 { path: PathBuf },
    #[error("key file `{}` does not hold a 32-byte seed", path.display())]
    BadLength { path: PathBuf },
    #[error(
        "key file `{}` is readable by other users (mode {mode:o}): chmod 600 it and consider rotating the key",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// Refuse a key file that group or others can read, write or execute (`mode & 0o077`).
pub fn check_private(path: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path)
        .map_err(|source| KeyFileError::Io { path: path.to_owned(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed { path: path.to_owned(), mode });
    }
    Ok(())
}

/// Read a key file (permissions are the caller's decision: see [`check_private`] and
/// [`read_private`]).
pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|source| KeyFileError::Io { path: path.to_owned(), source })?,
    );
    let raw = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| KeyFileError::NotBase64 { path: path.to_owned() })?,
    );
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        raw.as_slice().try_into().map_err(|_| KeyFileError::BadLength { path: path.to_owned() })?,
    );
    Ok(SigningKey::from_seed(&seed))
}

/// Read a key file only if no other user can read it.
pub fn read_private(path: &Path) -> Result<SigningKey, KeyFileError> {
    check_private(path)?;
    read(path)
}

/// Write a key file with mode 0600 (refuses to overwrite).
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| KeyFileError::Io { path: path.to_owned(), source };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let text = Zeroizing::new(STANDARD.encode(key.seed().as_ref()));
    writeln!(f, "{}", text.as_str()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn private_files_are_read_and_exposed_ones_refused() {
        let dir = std::env::temp_dir().join(format!("seb-keyfile-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        let key = SigningKey::from_seed(&[7; 32]);
        write(&p, &key).unwrap();
        assert_eq!(read_private(&p).unwrap().kid(), key.kid());
        assert!(matches!(write(&p, &key), Err(KeyFileError::Io { .. })), "never overwritten");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_private(&p).unwrap_err();
        assert!(matches!(e, KeyFileError::Exposed { mode: 0o640, .. }), "{e}");
        assert!(!e.to_string().contains(&STANDARD.encode([7u8; 32])));
        assert_eq!(read(&p).unwrap().kid(), key.kid(), "the plain reader leaves it to the caller");
        std::fs::write(&p, "not base64!").unwrap();
        assert!(matches!(read(&p), Err(KeyFileError::NotBase64 { .. })));
        std::fs::write(&p, STANDARD.encode([1u8; 16])).unwrap();
        assert!(matches!(read(&p), Err(KeyFileError::BadLength { .. })));
        assert!(matches!(read(&dir.join("missing")), Err(KeyFileError::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
