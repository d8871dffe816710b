//! Broker configuration: one TOML file, with environment overrides applied by the CLI.
//!
//! ```toml
//! [broker]
//! listen = "127.0.0.1:8443"          # plain HTTP is allowed only on loopback
//! tls_cert = "broker.crt"            # PEM; required unless listen is loopback
//! tls_key = "broker.key.pem"
//! key_file = "broker.seed"           # the broker's Ed25519 signing key (base64 seed)
//! store = "sqlite:seb.db"
//! origin = "seb.local/ledger"        # checkpoint origin line
//!
//! [trust]
//! issuers = ["<base64 Ed25519 public key>"]
//! break_glass = []
//! break_glass_quorum = 2
//!
//! [[approvers]]
//! name = "alice"
//! role = "human"                     # validator | human
//! public_key = "<base64>"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use seb_core::keys::{PublicKey, TrustedKeys};
use seb_core::pipeline::{Approver, ApproverRegistry, ApproverRole, PathRules};
use serde::{Deserialize, Serialize};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value is not acceptable.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub broker: BrokerSection,
    #[serde(default)]
    pub trust: TrustSection,
    #[serde(default)]
    pub approvers: Vec<ApproverEntry>,
    /// Required certification path per risk level; levels not listed are never executed.
    /// Absent: the defaults of [`PathRules::default`].
    #[serde(default)]
    pub path_rules: Option<Vec<PathRuleEntry>>,
    #[serde(default)]
    pub targets: TargetsSection,
    /// `[admission]`: the admission boundary served by the same binary (parsed by
    /// seb-admission; see docs/admission.md).
    #[serde(default)]
    pub admission: Option<toml::Table>,
}

/// `[broker]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain for TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS) on every
    /// route but `/healthz`, `/readyz` and the Kubernetes webhook.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// The broker's Ed25519 signing key (base64 of the 32-byte seed).
    pub key_file: PathBuf,
    /// `sqlite:<path>` (embedded default) or `postgres://…`.
    #[serde(default = "default_store")]
    pub store: String,
    /// Checkpoint origin line.
    #[serde(default = "default_origin")]
    pub origin: String,
    /// Largest request body, bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Allowed clock skew, ms.
    #[serde(default = "default_skew")]
    pub skew_ms: u64,
    /// Longest certificate validity accepted, s.
    #[serde(default = "default_max_validity")]
    pub max_validity_s: u64,
    /// How old the epoch state may be before the broker fails closed, ms.
    #[serde(default = "default_staleness")]
    pub epoch_max_staleness_ms: u64,
    /// Directory of this replica's spool: outcome and decision records the store did not
    /// take, synced to disk before the client is answered and written to the ledger with
    /// their original ids once the store answers. One per replica (it is locked).
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// How long another replica's open execution must stay orphaned (its lease gone) before
    /// this replica reconciles it, s. Must exceed `target_timeout_ms` plus the time a live
    /// replica takes to retake its lease once the database answers (about a second); a
    /// replica cut off from the database (but not the others) for longer may find its open
    /// executions reconciled by observation.
    #[serde(default = "default_orphan_grace")]
    pub orphan_grace_s: u64,
    /// Checkpoint publication interval, s (0 = only on demand).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_s: u64,
    /// Whole-request timeout, ms.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Longest TLS handshake, ms; a connection still handshaking then is closed.
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout_ms: u64,
    /// Longest time to receive a request's headers, ms (HTTP/1; on a kept-alive connection,
    /// counted from the previous response); the connection is closed then.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed, ms (a request is in
    /// flight from its head until its response has been sent; pings do not count).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Open connections on the listener; more are closed as soon as they are accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); more are closed as soon as
    /// they are accepted.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Timeout of each platform call, ms.
    #[serde(default = "default_target_timeout")]
    pub target_timeout_ms: u64,
    /// Individually recorded pre-authentication failures per client per minute; the rest
    /// are counted in a periodic summary record.
    #[serde(default = "default_preauth_rate")]
    pub preauth_records_per_minute: u32,
    /// `store` (default: the store is authoritative) or `statement` (poll signed epoch
    /// statements from admission at `epoch_statement_url`, fail closed when stale).
    #[serde(default = "default_epoch_source")]
    pub epoch_source: String,
    /// Statement mode: where admission serves its signed epoch statement.
    #[serde(default)]
    pub epoch_statement_url: Option<String>,
    /// Statement mode: PEM CA to trust for an `https://` statement URL (default: the system
    /// roots). The statement is signed; TLS keeps it private and current.
    #[serde(default)]
    pub epoch_statement_ca: Option<PathBuf>,
    /// Statement mode: poll interval, ms.
    #[serde(default = "default_poll")]
    pub epoch_poll_interval_ms: u64,
}

/// `[trust]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Issuer (admission) public keys, base64.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Break-glass operator public keys, base64 (a separate trust root).
    #[serde(default)]
    pub break_glass: Vec<String>,
    /// Distinct operator signatures a break-glass certificate needs.
    #[serde(default = "default_bg_quorum")]
    pub break_glass_quorum: usize,
    /// Admission keys whose epoch statements this broker accepts (statement mode).
    #[serde(default)]
    pub admission_keys: Vec<String>,
}

/// One `[[approvers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverEntry {
    pub name: String,
    pub role: ApproverRole,
    /// An Ed25519 key (base64). Exactly one of `public_key` and `credential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A passkey (spec 5.1, role `human` only): `{type = "webauthn", alg = -7|-8,
    /// public_key = <base64 SPKI DER>, credential_id = <base64url>, rp_id, origins}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<seb_core::webauthn::WebAuthnCredential>,
}

/// One `[[path_rules]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRuleEntry {
    /// Risk level 0..5.
    pub level: u8,
    /// The weakest acceptable path.
    pub path: seb_core::types::CertPath,
    /// Distinct validator approvals required.
    #[serde(default)]
    pub validators: usize,
    /// Distinct human approvals required.
    #[serde(default)]
    pub humans: usize,
}

/// `[targets]`: which platforms this broker drives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSection {
    /// The file-backed test double (only in builds with the `test-double` feature).
    #[serde(default)]
    pub test: Option<TestTargetSection>,
    /// Kubernetes (see docs/kubernetes.md).
    #[serde(default)]
    pub kubernetes: Option<toml::Table>,
    /// AWS (see docs/aws.md).
    #[serde(default)]
    pub aws: Option<toml::Table>,
}

/// `[targets.test]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestTargetSection {
    pub state_file: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_store() -> String {
    "sqlite:seb.db".into()
}
fn default_origin() -> String {
    "seb.local/ledger".into()
}
fn default_body_limit() -> usize {
    seb_core::json::DEFAULT_MAX_BODY
}
fn default_skew() -> u64 {
    30_000
}
fn default_max_validity() -> u64 {
    300
}
fn default_staleness() -> u64 {
    5_000
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("spool")
}
fn default_orphan_grace() -> u64 {
    60
}
fn default_checkpoint_interval() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_tls_handshake_timeout() -> u64 {
    10_000
}
fn default_header_read_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_max_connections() -> usize {
    512
}
fn default_max_connections_per_client() -> usize {
    64
}
fn default_target_timeout() -> u64 {
    10_000
}
fn default_preauth_rate() -> u32 {
    60
}
fn default_epoch_source() -> String {
    "store".into()
}
fn default_poll() -> u64 {
    1_000
}
fn default_bg_quorum() -> usize {
    2
}

impl BrokerSection {
    /// The deadlines and connection caps of the listener.
    pub fn serve_limits(&self) -> crate::ServeLimits {
        crate::ServeLimits {
            tls_handshake: std::time::Duration::from_millis(self.tls_handshake_timeout_ms),
            header_read: std::time::Duration::from_millis(self.header_read_timeout_ms),
            idle: std::time::Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
        }
    }
}

impl Config {
    /// Read and validate a configuration file. Relative paths inside it are resolved against
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut cfg: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.validate()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.broker.key_file);
        fix(&mut self.broker.spool_dir);
        for p in [
            &mut self.broker.tls_cert,
            &mut self.broker.tls_key,
            &mut self.broker.client_ca,
            &mut self.broker.epoch_statement_ca,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(rest) = self.broker.store.strip_prefix("sqlite:") {
            let p = Path::new(rest);
            if p.is_relative() {
                self.broker.store = format!("sqlite:{}", base.join(p).display());
            }
        }
        if let Some(t) = &mut self.targets.test {
            fix(&mut t.state_file);
        }
    }

    /// Check the rules that TOML types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.broker;
        if b.tls_cert.is_some() != b.tls_key.is_some() {
            return Err(ConfigError::Invalid("tls_cert and tls_key go together".into()));
        }
        if b.tls_cert.is_none() && !b.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "listen `{}` is not loopback: TLS (tls_cert, tls_key) is required",
                b.listen
            )));
        }
        if b.body_limit < 1024 || b.body_limit > 16 * 1024 * 1024 {
            return Err(ConfigError::Invalid("body_limit must be within 1 KiB..16 MiB".into()));
        }
        if b.tls_handshake_timeout_ms == 0
            || b.header_read_timeout_ms == 0
            || b.idle_timeout_ms == 0
            || b.max_connections == 0
            || b.max_connections_per_client == 0
        {
            return Err(ConfigError::Invalid(
                "tls_handshake_timeout_ms, header_read_timeout_ms, idle_timeout_ms, max_connections and max_connections_per_client must be above 0".into(),
            ));
        }
        if b.max_connections_per_client > b.max_connections {
            return Err(ConfigError::Invalid(
                "max_connections_per_client must not exceed max_connections".into(),
            ));
        }
        if self.trust.issuers.is_empty() {
            return Err(ConfigError::Invalid(
                "trust.issuers is empty: nothing could be executed".into(),
            ));
        }
        self.issuer_keys()?;
        self.break_glass_keys()?;
        self.approver_registry()?;
        self.path_rules()?;
        match b.epoch_source.as_str() {
            "store" => {}
            "statement" => {
                if self.trust.admission_keys.is_empty() || b.epoch_statement_url.is_none() {
                    return Err(ConfigError::Invalid(
                        "epoch_source = \"statement\" needs trust.admission_keys and broker.epoch_statement_url".into(),
                    ));
                }
                Self::keys(&self.trust.admission_keys, "admission")?;
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "epoch_source `{other}` is not `store` or `statement`"
                )));
            }
        }
        if !seb_ledger::checkpoint::is_valid_key_name(&b.origin) {
            return Err(ConfigError::Invalid(format!(
                "origin `{}` is not a valid signed-note key name",
                b.origin
            )));
        }
        if !self.trust.break_glass.is_empty() && self.trust.break_glass_quorum < 2 {
            return Err(ConfigError::Invalid("break_glass_quorum must be at least 2".into()));
        }
        Ok(())
    }

    fn keys(list: &[String], what: &str) -> Result<TrustedKeys, ConfigError> {
        list.iter()
            .map(|k| {
                PublicKey::from_base64(k)
                    .map_err(|e| ConfigError::Invalid(format!("{what} key `{k}`: {e}")))
            })
            .collect()
    }

    /// Trusted issuer keys.
    pub fn issuer_keys(&self) -> Result<TrustedKeys, ConfigError> {
        Self::keys(&self.trust.issuers, "issuer")
    }

    /// Where epochs come from.
    pub fn epoch_source(&self) -> Result<crate::engine::EpochSource, ConfigError> {
        Ok(match self.broker.epoch_source.as_str() {
            "statement" => crate::engine::EpochSource::Statement {
                admission_keys: Self::keys(&self.trust.admission_keys, "admission")?,
            },
            _ => crate::engine::EpochSource::Store,
        })
    }

    /// Break-glass operator keys.
    pub fn break_glass_keys(&self) -> Result<TrustedKeys, ConfigError> {
        Self::keys(&self.trust.break_glass, "break-glass")
    }

    /// The path rules in force.
    pub fn path_rules(&self) -> Result<PathRules, ConfigError> {
        let Some(entries) = &self.path_rules else { return Ok(PathRules::default()) };
        let mut rules = PathRules { levels: [None; 6] };
        for e in entries {
            let slot = rules.levels.get_mut(usize::from(e.level)).ok_or_else(|| {
                ConfigError::Invalid(format!("path_rules: level {} is outside 0..5", e.level))
            })?;
            if slot.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "path_rules: level {} listed twice",
                    e.level
                )));
            }
            *slot = Some(seb_core::pipeline::PathRule {
                path: e.path,
                validators: e.validators,
                humans: e.humans,
            });
        }
        Ok(rules)
    }

    /// The approver registry.
    pub fn approver_registry(&self) -> Result<ApproverRegistry, ConfigError> {
        approver_registry_of(&self.approvers)
    }
}

/// The registry of `[[approvers]]` entries: Ed25519 keys, or passkey credentials (role
/// `human` only, spec 5.1).
pub fn approver_registry_of(entries: &[ApproverEntry]) -> Result<ApproverRegistry, ConfigError> {
    let mut reg = ApproverRegistry::default();
    for a in entries {
        if a.role == ApproverRole::BreakGlass {
            return Err(ConfigError::Invalid(format!(
                "approver `{}`: break-glass keys belong in trust.break_glass",
                a.name
            )));
        }
        match (&a.public_key, &a.credential) {
            (Some(k), None) => {
                let key = PublicKey::from_base64(k)
                    .map_err(|e| ConfigError::Invalid(format!("approver `{}`: {e}", a.name)))?;
                reg.insert(Approver { name: a.name.clone(), role: a.role, key });
            }
            (None, Some(credential)) => {
                if a.role != ApproverRole::Human {
                    return Err(ConfigError::Invalid(format!(
                        "approver `{}`: a passkey credential is for role `human` only",
                        a.name
                    )));
                }
                reg.insert_passkey(seb_core::pipeline::PasskeyApprover {
                    name: a.name.clone(),
                    role: a.role,
                    credential: credential.clone(),
                });
            }
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "approver `{}`: give exactly one of `public_key` and `credential`",
                    a.name
                )));
            }
        }
    }
    Ok(reg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Approvers {
        approvers: Vec<ApproverEntry>,
    }

    fn registry(toml_text: &str) -> Result<ApproverRegistry, String> {
        let a: Approvers = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        approver_registry_of(&a.approvers).map_err(|e| e.to_string())
    }

    /// `[[approvers]]` accepts the passkey credential form (spec 5.1) for humans only, and
    /// exactly one of `public_key` and `credential`.
    #[test]
    fn approvers_accept_the_passkey_credential_form() {
        let pk =
            seb_core::webauthn::soft::SoftPasskey::new([3; 32], "seb.test", "https://seb.test");
        let c = serde_json::to_value(&pk.credential).unwrap_or_default();
        let cred = format!(
            "{{ type = \"webauthn\", alg = -8, public_key = {}, credential_id = {}, rp_id = \"seb.test\", origins = [\"https://seb.test\"] }}",
            c["public_key"], c["credential_id"]
        );
        let ok = registry(&format!(
            "[[approvers]]\nname = \"alice\"\nrole = \"human\"\ncredential = {cred}\n"
        ));
        let reg = ok.unwrap_or_default();
        let kid = pk.credential.kid();
        assert_eq!(reg.identity(&kid), Some(("alice", ApproverRole::Human)));
        assert_eq!(reg.passkey(&kid).map(|p| &p.credential), Some(&pk.credential));
        let as_validator = registry(&format!(
            "[[approvers]]\nname = \"v\"\nrole = \"validator\"\ncredential = {cred}\n"
        ));
        assert!(as_validator.is_err_and(|e| e.contains("human")));
        let both = registry(&format!(
            "[[approvers]]\nname = \"a\"\nrole = \"human\"\npublic_key = \"{}\"\ncredential = {cred}\n",
            SigningKeyForTest::pk()
        ));
        assert!(both.is_err_and(|e| e.contains("exactly one")));
        let neither = registry("[[approvers]]\nname = \"a\"\nrole = \"human\"\n");
        assert!(neither.is_err_and(|e| e.contains("exactly one")));
        let bad_alg = registry(&format!(
            "[[approvers]]\nname = \"a\"\nrole = \"human\"\ncredential = {}\n",
            cred.replace("alg = -8", "alg = -7")
        ));
        assert!(bad_alg.is_err(), "an Ed25519 SPKI under ES256 is refused");
    }

    struct SigningKeyForTest;
    impl SigningKeyForTest {
        fn pk() -> String {
            seb_core::keys::SigningKey::from_seed(&[9; 32]).public_key().to_base64()
        }
    }
}
