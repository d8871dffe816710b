//! The `[admission]` section of the server configuration, and the registries built from it.
//!
//! ```toml
//! [admission]
//! issuer_key_file = "issuer.seed"     # the issuer's Ed25519 key (base64 seed); its own key
//! issuer_name = "seb-admission"
//! validity_s = 300                    # certificate validity, capped at 300 s
//! approval_timeout_s = 900            # a proposal waits this long for approvals
//! proposal_max_age_s = 300            # a proposal's `at_ms` must be this close to now
//! statement_ttl_ms = 10000            # TTL of signed epoch statements
//! request_max_age_s = 60              # a signed request's `at_ms` must be this close to now
//! observe_timeout_ms = 10000          # each read-only observation of the target
//! policy_file = "admission.cedar"     # Cedar policies; the built-in default if absent
//! forbid_owner_approval = false       # true: an agent's owners may not approve its proposals
//!
//! [[admission.agents]]
//! name = "deploy-bot"
//! public_keys = ["<base64>"]          # several during rotation: add the new, then remove the old
//! groups = ["sre"]                    # Cedar parents: principal in SEB::Group::"sre"
//! attributes = { team = "payments", environment = "prod" }
//! owners = ["alice"]                  # with forbid_owner_approval: alice may not approve its proposals
//!
//! [[admission.approvers]]
//! name = "alice"
//! role = "human"                      # validator | human
//! public_key = "<base64>"
//!
//! [[admission.admins]]                # may revoke and load policies (signed requests)
//! name = "ops"
//! public_key = "<base64>"
//!
//! [admission.break_glass]
//! operators = [{ name = "op-1", public_key = "<base64>" }, { name = "op-2", public_key = "<base64>" }]
//! quorum = 2
//!
//! [admission.path_rules]              # escalation only: never weaker than the defaults;
//! L1 = { path = "quorum", validators = 1 }   # L0 and L5 are never certified (no key)
//!
//! [admission.escalation]              # what a Cedar escalation requires
//! quorum = { path = "quorum", validators = 2 }
//! human = { path = "human", humans = 1 }
//!
//! [admission.scoring]                 # see docs/admission.md
//! weights = { blast_radius = 0.3, privilege_expansion = 0.25, data_sensitivity = 0.2, irreversibility = 0.15, uncertainty = 0.1 }
//! peak_weight = 0.75
//! thresholds = [0.05, 0.25, 0.45, 0.65, 0.9]
//!
//! [admission.console]                 # the approvers' web console, see docs/console.md
//! session_idle_s = 900
//! session_max_s = 28800
//! signin_attempts_per_minute = 10
//!
//! [admission.notify]                  # see crate::notify
//! url = "https://hooks.example.com/seb"
//! bearer_token_file = "notify.token"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use seb_core::keys::{KeyId, KeyResolver, PublicKey, TrustedKeys};
use seb_core::pipeline::{Approver, ApproverRegistry, ApproverRole, PathRule, PathRules};
use seb_core::types::CertPath;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::AdmissionError;
use crate::paths::Escalation;
use crate::scoring::ScoringConfig;

/// The longest certificate validity admission ever issues, seconds (spec section 4 default).
pub const MAX_VALIDITY_S: u64 = 300;

/// The `[admission]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// The issuer's signing key (base64 of the 32-byte seed).
    pub issuer_key_file: PathBuf,
    /// The issuer's name in certificates.
    #[serde(default = "default_issuer_name")]
    pub issuer_name: String,
    /// Certificate validity, seconds (1..=300).
    #[serde(default = "default_validity")]
    pub validity_s: u64,
    /// How long a proposal waits for approvals before it is denied, seconds.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_s: u64,
    /// How far a proposal's `at_ms` (and an admin request's) may be from now, seconds.
    #[serde(default = "default_max_age")]
    pub proposal_max_age_s: u64,
    /// How far a signed request's (reads, break-glass drafts) `at_ms` may be from now,
    /// seconds.
    #[serde(default = "default_request_max_age")]
    pub request_max_age_s: u64,
    /// TTL of signed epoch statements, ms.
    #[serde(default = "default_statement_ttl")]
    pub statement_ttl_ms: u64,
    /// Largest request body, bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Timeout of each read-only observation of a target, ms.
    #[serde(default = "default_observe_timeout")]
    pub observe_timeout_ms: u64,
    /// Cedar policy file; the built-in default policy when absent.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Registered agents.
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    /// Registered approvers.
    #[serde(default)]
    pub approvers: Vec<ApproverEntry>,
    /// Operators allowed to revoke and load policies.
    #[serde(default)]
    pub admins: Vec<KeyEntry>,
    /// Break-glass operators and their quorum.
    #[serde(default)]
    pub break_glass: BreakGlassSection,
    /// Path rules per level; only stricter than the defaults.
    #[serde(default)]
    pub path_rules: PathRulesConfig,
    /// What a policy escalation requires.
    #[serde(default)]
    pub escalation: Escalation,
    /// Consequence scoring.
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// Net-effect scoring (spec 5.2): `enforce` (default) or `shadow`.
    #[serde(default)]
    pub net_effect: crate::net_effect::NetEffectMode,
    /// The net-effect window in seconds (default 3600).
    #[serde(default = "default_net_effect_window")]
    pub net_effect_window_s: u64,
    /// The net-effect scope: `object` (default), `namespace`, `account_service`.
    #[serde(default)]
    pub net_effect_scope: seb_target::NetScope,
    /// Refuse an approval by an approver listed in the proposing agent's `owners`.
    #[serde(default)]
    pub forbid_owner_approval: bool,
    /// `[admission.console]`: the approvers' web console (spec 12.2).
    #[serde(default)]
    pub console: crate::console::ConsoleConfig,
    /// `[admission.notify]`: where to post proposal events.
    #[serde(default)]
    pub notify: Option<crate::notify::NotifyConfig>,
    /// Base URL of the console (`https://seb.example.com`): invitation links are
    /// `<public_url>/console/enrol/<token>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The WebAuthn relying party passkeys enrol against (spec 5.1).
    #[serde(default)]
    pub webauthn: Option<WebAuthnSection>,
}

fn default_net_effect_window() -> u64 {
    crate::net_effect::DEFAULT_WINDOW_S
}

/// `[admission.webauthn]`: the relying party of enrolled passkeys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebAuthnSection {
    /// RP ID (a registrable domain of the console's origin, `localhost` in tests).
    pub rp_id: String,
    /// Origins the console is served from (`https://seb.example.com`).
    pub origins: Vec<String>,
}

/// One `[[admission.agents]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub name: String,
    /// Base64 Ed25519 public keys (more than one only while rotating).
    pub public_keys: Vec<String>,
    /// Cedar parent groups (`SEB::Group::"<name>"`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes policies can read as `principal.<name>`.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    /// Approvers responsible for this agent: with `forbid_owner_approval` they may not
    /// approve its proposals.
    #[serde(default)]
    pub owners: Vec<String>,
}

/// One `[[admission.approvers]]` entry.
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

/// A named key (admins, break-glass operators).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub public_key: String,
}

/// `[admission.break_glass]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassSection {
    #[serde(default)]
    pub operators: Vec<KeyEntry>,
    #[serde(default = "default_bg_quorum")]
    pub quorum: usize,
}

impl Default for BreakGlassSection {
    fn default() -> Self {
        Self { operators: Vec::new(), quorum: default_bg_quorum() }
    }
}

fn default_issuer_name() -> String {
    "seb-admission".into()
}
fn default_validity() -> u64 {
    MAX_VALIDITY_S
}
fn default_approval_timeout() -> u64 {
    900
}
fn default_max_age() -> u64 {
    300
}
fn default_request_max_age() -> u64 {
    60
}
fn default_statement_ttl() -> u64 {
    10_000
}
fn default_body_limit() -> usize {
    seb_core::json::DEFAULT_MAX_BODY
}
fn default_observe_timeout() -> u64 {
    10_000
}
fn default_bg_quorum() -> usize {
    2
}

fn invalid(s: impl Into<String>) -> AdmissionError {
    AdmissionError::Config(s.into())
}

fn key(what: &str, name: &str, b64: &str) -> Result<PublicKey, AdmissionError> {
    PublicKey::from_base64(b64).map_err(|e| invalid(format!("{what} `{name}`: {e}")))
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub name: String,
    pub keys: Vec<PublicKey>,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, Value>,
    /// Approvers responsible for the agent (`owners`).
    pub owners: Vec<String>,
}

/// Agents by name.
#[derive(Debug, Clone, Default)]
pub struct AgentRegistry {
    by_name: BTreeMap<String, Agent>,
}

impl AgentRegistry {
    /// The agent with this name.
    pub fn get(&self, name: &str) -> Option<&Agent> {
        self.by_name.get(name)
    }
    /// Every agent.
    pub fn iter(&self) -> impl Iterator<Item = &Agent> {
        self.by_name.values()
    }
    /// Register an agent (replaces one of the same name).
    pub fn insert(&mut self, agent: Agent) {
        self.by_name.insert(agent.name.clone(), agent);
    }
}

/// Named keys by key id (admins, break-glass operators).
#[derive(Debug, Clone, Default)]
pub struct NamedKeys {
    by_kid: BTreeMap<KeyId, (String, PublicKey)>,
}

impl NamedKeys {
    /// Add a key.
    pub fn insert(&mut self, name: &str, key: PublicKey) {
        self.by_kid.insert(key.kid(), (name.to_owned(), key));
    }
    /// The name a key id belongs to.
    pub fn name(&self, kid: &KeyId) -> Option<&str> {
        self.by_kid.get(kid).map(|(n, _)| n.as_str())
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_kid.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
    /// The keys as a trust set.
    pub fn trusted(&self) -> TrustedKeys {
        self.by_kid.values().map(|(_, k)| *k).collect()
    }
    /// Every (name, key).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PublicKey)> {
        self.by_kid.values().map(|(n, k)| (n.as_str(), k))
    }
}

impl KeyResolver for NamedKeys {
    fn resolve(&self, kid: &KeyId) -> Option<PublicKey> {
        self.by_kid.get(kid).map(|(_, k)| *k)
    }
}

/// Everything the configuration defines, checked.
#[derive(Debug, Clone)]
pub struct Registries {
    pub agents: AgentRegistry,
    pub approvers: ApproverRegistry,
    /// Approver names by role (for display).
    pub approver_roles: BTreeMap<String, ApproverRole>,
    pub admins: NamedKeys,
    pub break_glass: NamedKeys,
    pub break_glass_quorum: usize,
    pub path_rules: PathRules,
}

fn valid_name(what: &str, name: &str) -> Result<(), AdmissionError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{what} name `{name}` must be 1..128 of [A-Za-z0-9-_.@:]")))
    }
}

impl AdmissionConfig {
    /// Parse the `[admission]` table. Relative paths are resolved against `base`.
    pub fn from_table(table: toml::Table, base: &Path) -> Result<Self, AdmissionError> {
        let mut cfg: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        cfg.resolve_paths(base);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse a whole TOML document holding an `[admission]` table (for tests and tools).
    pub fn from_toml_str(text: &str, base: &Path) -> Result<Self, AdmissionError> {
        let mut doc: toml::Table =
            text.parse().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        match doc.remove("admission") {
            Some(toml::Value::Table(t)) => Self::from_table(t, base),
            _ => Err(invalid("no [admission] table")),
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.issuer_key_file);
        if let Some(p) = &mut self.policy_file {
            fix(p);
        }
        if let Some(n) = &mut self.notify {
            n.resolve_paths(base);
        }
    }

    /// Check what TOML types cannot express.
    pub fn validate(&self) -> Result<(), AdmissionError> {
        valid_name("issuer", &self.issuer_name)?;
        if self.validity_s == 0 || self.validity_s > MAX_VALIDITY_S {
            return Err(invalid(format!("validity_s must be within 1..={MAX_VALIDITY_S}")));
        }
        if self.approval_timeout_s == 0 {
            return Err(invalid("approval_timeout_s must be positive"));
        }
        if self.proposal_max_age_s == 0 {
            return Err(invalid("proposal_max_age_s must be positive"));
        }
        if self.request_max_age_s == 0 || self.request_max_age_s > 3600 {
            return Err(invalid("request_max_age_s must be within 1..=3600"));
        }
        if self.observe_timeout_ms == 0 {
            return Err(invalid("observe_timeout_ms must be positive"));
        }
        if self.statement_ttl_ms == 0 {
            return Err(invalid("statement_ttl_ms must be positive"));
        }
        if self.body_limit < 1024 || self.body_limit > 16 * 1024 * 1024 {
            return Err(invalid("body_limit must be within 1 KiB..16 MiB"));
        }
        if self.net_effect_window_s == 0
            || self.net_effect_window_s > crate::net_effect::MAX_WINDOW_S
        {
            return Err(invalid(format!(
                "net_effect_window_s must be within 1..={}",
                crate::net_effect::MAX_WINDOW_S
            )));
        }
        self.scoring.validate()?;
        self.escalation.validate()?;
        self.console.validate()?;
        if let Some(n) = &self.notify {
            n.validate()?;
        }
        self.registries()?;
        Ok(())
    }

    /// Build the registries (checks names, keys, roles and path rules).
    pub fn registries(&self) -> Result<Registries, AdmissionError> {
        let mut agents = AgentRegistry::default();
        let mut all_agent_keys = BTreeSet::new();
        for a in &self.agents {
            valid_name("agent", &a.name)?;
            if agents.get(&a.name).is_some() {
                return Err(invalid(format!("agent `{}` is registered twice", a.name)));
            }
            if a.public_keys.is_empty() {
                return Err(invalid(format!("agent `{}` has no public key", a.name)));
            }
            let keys = a
                .public_keys
                .iter()
                .map(|k| key("agent", &a.name, k))
                .collect::<Result<Vec<_>, _>>()?;
            for k in &keys {
                if !all_agent_keys.insert(k.kid()) {
                    return Err(invalid(format!(
                        "agent `{}`: key is registered to two agents",
                        a.name
                    )));
                }
            }
            for g in &a.groups {
                valid_name("group", g)?;
            }
            for o in &a.owners {
                valid_name("owner", o)?;
            }
            agents.insert(Agent {
                name: a.name.clone(),
                keys,
                groups: a.groups.clone(),
                attributes: a.attributes.clone(),
                owners: a.owners.clone(),
            });
        }
        let mut approvers = ApproverRegistry::default();
        let mut approver_roles = BTreeMap::new();
        for a in &self.approvers {
            valid_name("approver", &a.name)?;
            if a.role == ApproverRole::BreakGlass {
                return Err(invalid(format!(
                    "approver `{}`: break-glass keys belong in [admission.break_glass]",
                    a.name
                )));
            }
            if approver_roles.insert(a.name.clone(), a.role).is_some_and(|r| r != a.role) {
                return Err(invalid(format!("approver `{}` has two roles", a.name)));
            }
            match (&a.public_key, &a.credential) {
                (Some(pk), None) => {
                    let k = key("approver", &a.name, pk)?;
                    if all_agent_keys.contains(&k.kid()) {
                        return Err(invalid(format!("approver `{}` uses an agent's key", a.name)));
                    }
                    approvers.insert(Approver { name: a.name.clone(), role: a.role, key: k });
                }
                (None, Some(credential)) => {
                    if a.role != ApproverRole::Human {
                        return Err(invalid(format!(
                            "approver `{}`: a passkey credential is for role `human` only",
                            a.name
                        )));
                    }
                    approvers.insert_passkey(seb_core::pipeline::PasskeyApprover {
                        name: a.name.clone(),
                        role: a.role,
                        credential: credential.clone(),
                    });
                }
                _ => {
                    return Err(invalid(format!(
                        "approver `{}`: give exactly one of `public_key` and `credential`",
                        a.name
                    )));
                }
            }
        }
        let mut admins = NamedKeys::default();
        for a in &self.admins {
            valid_name("admin", &a.name)?;
            admins.insert(&a.name, key("admin", &a.name, &a.public_key)?);
        }
        let mut break_glass = NamedKeys::default();
        for o in &self.break_glass.operators {
            valid_name("break-glass operator", &o.name)?;
            break_glass.insert(&o.name, key("break-glass operator", &o.name, &o.public_key)?);
        }
        if !break_glass.is_empty() {
            if self.break_glass.quorum < 2 {
                return Err(invalid("break_glass.quorum must be at least 2"));
            }
            if self.break_glass.quorum > break_glass.len() {
                return Err(invalid(format!(
                    "break_glass.quorum {} exceeds the {} operator keys",
                    self.break_glass.quorum,
                    break_glass.len()
                )));
            }
        }
        let path_rules = self.path_rules.rules();
        check_escalation_only(&path_rules)?;
        Ok(Registries {
            agents,
            approvers,
            approver_roles,
            admins,
            break_glass,
            break_glass_quorum: self.break_glass.quorum,
            path_rules,
        })
    }
}

/// `[admission.path_rules]`: overrides of the default rule of L1..L4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRulesConfig {
    #[serde(rename = "L1", default)]
    pub l1: Option<PathRule>,
    #[serde(rename = "L2", default)]
    pub l2: Option<PathRule>,
    #[serde(rename = "L3", default)]
    pub l3: Option<PathRule>,
    #[serde(rename = "L4", default)]
    pub l4: Option<PathRule>,
}

impl PathRulesConfig {
    /// The defaults with the overrides applied.
    pub fn rules(&self) -> PathRules {
        let mut r = PathRules::default();
        for (slot, o) in r.levels.iter_mut().skip(1).zip([self.l1, self.l2, self.l3, self.l4]) {
            if let Some(o) = o {
                *slot = Some(o);
            }
        }
        r
    }
}

/// Configured path rules may only be stricter than [`PathRules::default`] (the broker's
/// default): a level the default never certifies stays uncertified, and a certified level
/// keeps at least its default path and approval counts.
pub fn check_escalation_only(rules: &PathRules) -> Result<(), AdmissionError> {
    let base = PathRules::default();
    for (i, (configured, default)) in rules.levels.iter().zip(base.levels.iter()).enumerate() {
        match (configured, default) {
            (Some(_), None) => {
                return Err(invalid(format!(
                    "path_rules: L{i} is never certified and cannot be enabled"
                )));
            }
            (None, _) => {}
            (Some(c), Some(d)) => {
                if !at_least(c, d) {
                    return Err(invalid(format!(
                        "path_rules: L{i} rule {c:?} is weaker than the default {d:?} (escalation only)"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn at_least(c: &PathRule, d: &PathRule) -> bool {
    c.path >= d.path && c.validators >= d.validators && c.humans >= d.humans
}

/// Whether `p` is a certification path that can be required of approvers.
pub fn is_autonomous_path(p: CertPath) -> bool {
    p != CertPath::BreakGlass
}

/// Read a key file through the one key-file reader ([`seb_store::keyfile`]): the base64 of a
/// 32-byte Ed25519 seed, refused when the group or other users can read it.
pub fn read_key_file(path: &Path) -> Result<seb_core::keys::SigningKey, AdmissionError> {
    seb_store::keyfile::read_signing_key(path).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(n: u8) -> String {
        seb_core::keys::SigningKey::from_seed(&[n; 32]).public_key().to_base64()
    }

    fn parse(extra: &str) -> Result<AdmissionConfig, AdmissionError> {
        let text = format!("[admission]\nissuer_key_file = \"k\"\n{extra}");
        AdmissionConfig::from_toml_str(&text, Path::new("/etc/seb"))
    }

    #[test]
    fn defaults_and_paths() {
        let c = parse("").unwrap();
        assert_eq!(c.issuer_key_file, PathBuf::from("/etc/seb/k"));
        assert_eq!((c.validity_s, c.approval_timeout_s, c.statement_ttl_ms), (300, 900, 10_000));
        assert_eq!(c.registries().unwrap().path_rules, PathRules::default());
    }

    #[test]
    fn refusals() {
        assert!(parse("validity_s = 301\n").is_err(), "validity is capped");
        assert!(parse("unknown = 1\n").is_err(), "unknown fields");
        let agent = |name: &str, k: u8| {
            format!("[[admission.agents]]\nname = \"{name}\"\npublic_keys = [\"{}\"]\n", pk(k))
        };
        assert!(parse(&format!("{}{}", agent("a", 1), agent("a", 2))).is_err(), "duplicate agent");
        assert!(
            parse(&format!("{}{}", agent("a", 1), agent("b", 1))).is_err(),
            "one key, two agents"
        );
        assert!(parse(&agent("bad name", 1)).is_err());
        let approver = |role: &str, k: u8| {
            format!(
                "[[admission.approvers]]\nname = \"x\"\nrole = \"{role}\"\npublic_key = \"{}\"\n",
                pk(k)
            )
        };
        assert!(parse(&approver("break_glass", 3)).is_err());
        assert!(
            parse(&format!("{}{}", approver("human", 3), approver("validator", 4))).is_err(),
            "two roles"
        );
        assert!(
            parse(&format!("{}{}", agent("a", 1), approver("human", 1))).is_err(),
            "agent key as approver"
        );
        let ops = format!(
            "[admission.break_glass]\nquorum = 3\noperators = [{{ name = \"o1\", public_key = \"{}\" }}, {{ name = \"o2\", public_key = \"{}\" }}]\n",
            pk(5),
            pk(6)
        );
        assert!(parse(&ops).is_err(), "quorum above the operator count");
        assert!(parse(&ops.replace("quorum = 3", "quorum = 1")).is_err(), "quorum below 2");
        assert!(parse(&ops.replace("quorum = 3", "quorum = 2")).is_ok());
        assert!(
            parse("[[admission.admins]]\nname = \"ops\"\npublic_key = \"AAAA\"\n").is_err(),
            "bad key"
        );
    }
}
