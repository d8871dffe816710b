//! Key files: the base64 of a 32-byte Ed25519 seed, one line, mode 0600 (the reader and
//! writer are [`seb_admission::keyfile`]'s, shared with `seb mcp`).

use std::path::Path;

use anyhow::Result;
use seb_core::keys::SigningKey;
use zeroize::Zeroizing;

/// Generate a new key from the OS random source.
pub fn generate() -> Result<SigningKey> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    Ok(SigningKey::from_seed(&seed))
}

/// Write a key file (refuses to overwrite).
pub fn write(path: &Path, key: &SigningKey) -> Result<()> {
    Ok(seb_admission::keyfile::write(path, key)?)
}

/// Read a key file. A file other users can read is used, with a warning naming it (the
/// secret may already have leaked; rotate it and `chmod 600`). `seb mcp` refuses such a file.
pub fn read(path: &Path) -> Result<SigningKey> {
    if let Err(e @ seb_admission::keyfile::KeyFileError::Exposed { .. }) =
        seb_admission::keyfile::check_private(path)
    {
        tracing::warn!(path = %path.display(), error = %e, "key file is readable by other users");
    }
    Ok(seb_admission::keyfile::read(path)?)
}
