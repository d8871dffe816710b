//! Key files: the base64 of a 32-byte Ed25519 seed, one line, mode 0600.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
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
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file `{}`", path.display()))?;
    let text = Zeroizing::new(STANDARD.encode(key.seed().as_ref()));
    writeln!(f, "{}", text.as_str())?;
    Ok(())
}

/// Read a key file through the one key-file reader ([`seb_store::keyfile`]): a file the
/// group or other users can read is refused, naming the file, its mode and the fix.
pub fn read(path: &Path) -> Result<SigningKey> {
    Ok(seb_store::keyfile::read_signing_key(path)?)
}
