//! Throwaway X.509 material made with `openssl`: a CA, and certificates it signs for a
//! server (kube-apiserver, PostgreSQL, the walkthrough's broker) or a TLS client (mTLS
//! tests). EC P-256 keys in PKCS#8, which every consumer here (Go, PostgreSQL, rustls) reads.

use std::path::{Path, PathBuf};

use crate::InfraError;
use crate::process::run;

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// What a certificate is for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// `serverAuth`.
    Server,
    /// `clientAuth`.
    Client,
}

/// A fresh CA in `dir` (`ca.crt`, `ca.key`), valid for two days; returns `ca.crt`.
pub fn make_ca(dir: &Path, common_name: &str) -> Result<PathBuf, InfraError> {
    let d = |n: &str| path_str(&dir.join(n));
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &d("ca.key"),
            "-out",
            &d("ca.crt"),
            "-days",
            "2",
            "-sha256",
            "-subj",
            &format!("/CN={common_name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    Ok(dir.join("ca.crt"))
}

/// A certificate `<name>.crt` with key `<name>.key`, for `subject_alt_names` (OpenSSL
/// syntax, e.g. `IP:10.0.0.1,DNS:host`) and `usage`, signed by the CA [`make_ca`] made in
/// `dir`; returns the certificate and key files.
pub fn issue(
    dir: &Path,
    name: &str,
    subject_alt_names: &str,
    usage: Usage,
) -> Result<(PathBuf, PathBuf), InfraError> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let ext = dir.join(format!("{name}.ext"));
    let eku = match usage {
        Usage::Server => "serverAuth",
        Usage::Client => "clientAuth",
    };
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={subject_alt_names}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\n"
        ),
    )?;
    run(
        "openssl",
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &path_str(&key)],
    )?;
    let pk8 = dir.join(format!("{name}.pk8"));
    run(
        "openssl",
        &["pkcs8", "-topk8", "-nocrypt", "-in", &path_str(&key), "-out", &path_str(&pk8)],
    )?;
    std::fs::rename(&pk8, &key)?;
    run(
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            &path_str(&key),
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &path_str(&csr),
        ],
    )?;
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &path_str(&csr),
            "-CA",
            &path_str(&dir.join("ca.crt")),
            "-CAkey",
            &path_str(&dir.join("ca.key")),
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            &path_str(&ext),
            "-out",
            &path_str(&crt),
        ],
    )?;
    Ok((crt, key))
}

/// A fresh CA in `dir` and a server certificate from it for `subject_alt_names`:
/// `(ca.crt, <name>.crt, <name>.key)`. The walkthrough's broker serves its API and the
/// admission webhook with it.
pub fn serving_certificate(
    dir: &Path,
    name: &str,
    subject_alt_names: &str,
) -> Result<(PathBuf, PathBuf, PathBuf), InfraError> {
    let ca = make_ca(dir, &format!("{name}-ca"))?;
    let (crt, key) = issue(dir, name, subject_alt_names, Usage::Server)?;
    Ok((ca, crt, key))
}
