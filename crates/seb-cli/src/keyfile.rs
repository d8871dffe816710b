//! Key files: the base64 of a 32-byte Ed25519 seed, one line, mode 0600.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
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

/// Read a key file. A file other users can read is used, with a warning naming it (the
/// secret may already have leaked; rotate it and `chmod 600`).
pub fn read(path: &Path) -> Result<SigningKey> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "key file is readable by other users: chmod 600 it and consider rotating the key");
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading key file `{}`", path.display()))?,
    );
    let raw = Zeroizing::new(STANDARD.decode(text.trim()).context("key file is not base64")?);
    if raw.len() != 32 {
        bail!("key file `{}` does not hold a 32-byte seed", path.display());
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&raw);
    Ok(SigningKey::from_seed(&seed))
}
