//! The admission side of the CLI: `seb propose`, `seb approve`, `seb proposals`,
//! `seb admission revoke|statement|epochs|break-glass`, `seb policy load|show`, and mounting
//! the admission API in `seb serve`.
//!
//! Every request that is not itself a signed statement is signed with the caller's key
//! (`--agent-key`, `--key`: the `seb-request-signature` header of
//! [`seb_admission::client::sign_read`]); admission answers it according to the roles that
//! key is registered with.
//!
//! Every command prints a readable table or summary by default and the raw JSON with
//! `--json`. Exit codes: 0 success (certified, approved, listed), 2 refused or denied,
//! 3 still pending (`--wait` timed out), 1 errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use seb_admission::client::{
    ADMIN_SIGNATURE_HEADER, AdminRequest, READ_SIGNATURE_HEADER, new_proposal_id, sign_admin,
    sign_approval, sign_break_glass, sign_proposal, sign_read,
};
use seb_broker::config::Config;
use seb_broker::http::AppState;
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::types::{Approval, ApprovalDecision, Constraint, Platform, Proposal};
use seb_store::{Revocation, Store};
use serde_json::Value;

use crate::client::http_client;
use crate::clock::now_ms;
use crate::keyfile;

/// Where admission is.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// Admission base URL (the `seb serve` that has an `[admission]` section).
    #[arg(long, env = "SEB_ADMISSION")]
    pub admission: String,
    #[command(flatten)]
    pub tls: crate::client::TlsClientArgs,
    /// Print raw JSON (for scripts) instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// The key requests are signed with (the command's own key argument sets it).
    #[arg(skip)]
    pub signer: Option<Arc<SigningKey>>,
}

/// The key a read-only command signs its requests with.
#[derive(Debug, Args)]
pub struct ReadKey {
    /// Your registered key file (agent, approver, break-glass operator or admin): admission
    /// answers according to its roles.
    #[arg(long, env = "SEB_KEY")]
    pub key: PathBuf,
}

impl Endpoint {
    /// Sign every request with `key` from now on.
    pub(crate) fn signed_by(&mut self, key: SigningKey) {
        self.signer = Some(Arc::new(key));
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/admission{path}", self.admission.trim_end_matches('/'))
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        admin_sig: Option<&str>,
    ) -> Result<(u16, Value)> {
        let url = self.url(path);
        let mut req = http_client(&self.tls)?.request(method.clone(), &url);
        if let Some(k) = &self.signer {
            let u = reqwest::Url::parse(&url).with_context(|| format!("URL `{url}`"))?;
            let pq = match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            };
            req = req.header(READ_SIGNATURE_HEADER, sign_read(k, method.as_str(), &pq, now_ms()?));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        if let Some(s) = admin_sig {
            req = req.header(ADMIN_SIGNATURE_HEADER, s);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    pub(crate) async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        admin_sig: Option<&str>,
    ) -> Result<(u16, Value)> {
        self.send(reqwest::Method::POST, path, Some(body), admin_sig).await
    }
}

fn problem_text(v: &Value) -> String {
    match (v.get("error").and_then(Value::as_str), v.get("detail").and_then(Value::as_str)) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        _ => v.to_string(),
    }
}

pub(crate) fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Refused by the server: print the problem (JSON or text) and exit 2.
pub(crate) fn refused(ep: &Endpoint, status: u16, v: &Value) -> Result<ExitCode> {
    if ep.json {
        print_json(v)?;
    } else {
        eprintln!("refused ({status}): {}", problem_text(v));
    }
    Ok(ExitCode::from(2))
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("-")
}

fn show_proposal(v: &Value) {
    println!("proposal   {}  ({})", s(v, "/proposal_id"), s(v, "/status"));
    println!("agent      {}", s(v, "/agent"));
    println!("rationale  {}", s(v, "/proposal/rationale"));
    if let Some(c) = v.get("contract").filter(|c| !c.is_null()) {
        println!(
            "contract   {} {} on {}",
            s(c, "/platform"),
            s(c, "/op"),
            c.get("target").map(Value::to_string).unwrap_or_default()
        );
        println!("params     {}", c.get("params").map(Value::to_string).unwrap_or_default());
        if let Some(cs) = c.get("constraints").and_then(Value::as_array).filter(|a| !a.is_empty()) {
            println!("constraints {}", Value::Array(cs.clone()));
        }
        println!("contract_digest  {}", s(v, "/contract_digest"));
    }
    if let Some(e) = v.get("evidence").filter(|e| !e.is_null()) {
        println!("evidence_digest  {}", s(e, "/digest"));
        println!("evidence   {}", e.get("projection").map(Value::to_string).unwrap_or_default());
    }
    if let Some(sc) = v.get("score").filter(|x| !x.is_null()) {
        let lvl = sc.get("level").and_then(Value::as_u64).unwrap_or(0);
        let f = |k: &str| sc.pointer(&format!("/factors/{k}")).and_then(Value::as_u64).unwrap_or(0);
        println!(
            "consequence L{lvl}  score {:.3} (weighted {:.3}, peak {:.3})",
            milli(sc, "/score_milli"),
            milli(sc, "/weighted_milli"),
            milli(sc, "/peak_milli")
        );
        println!(
            "  blast_radius {:.3}  privilege_expansion {:.3}  data_sensitivity {:.3}  irreversibility {:.3}  uncertainty {:.3}",
            f("blast_radius") as f64 / 1000.0,
            f("privilege_expansion") as f64 / 1000.0,
            f("data_sensitivity") as f64 / 1000.0,
            f("irreversibility") as f64 / 1000.0,
            f("uncertainty") as f64 / 1000.0
        );
        for r in sc.get("reasons").and_then(Value::as_array).into_iter().flatten() {
            println!("  - {}", r.as_str().unwrap_or_default());
        }
    }
    if let Some(p) = v.get("policy").filter(|x| !x.is_null()) {
        println!(
            "policy     epoch {}  permitted {}",
            p.get("policy_epoch").unwrap_or(&Value::Null),
            p.get("permitted").unwrap_or(&Value::Null)
        );
        for r in p.get("reasons").and_then(Value::as_array).into_iter().flatten() {
            println!("  - {}", r.as_str().unwrap_or_default());
        }
    }
    if let Some(r) = v.get("requirement").filter(|x| !x.is_null()) {
        println!(
            "path       {}: {} validator(s), {} human(s)",
            s(r, "/path"),
            r.get("validators").unwrap_or(&Value::Null),
            r.get("humans").unwrap_or(&Value::Null)
        );
    }
    for a in v.get("approvals").and_then(Value::as_array).into_iter().flatten() {
        println!(
            "approval   {} ({}) {}: {}",
            s(a, "/approver"),
            s(a, "/role"),
            s(a, "/decision"),
            s(a, "/comment")
        );
    }
    if let Some(r) = v.get("reason").and_then(Value::as_str) {
        println!("reason     {r}");
    }
    if let Some(c) = v.get("cid").and_then(Value::as_str) {
        println!("cid        {c}  path {}", s(v, "/cert_path"));
    }
}

fn milli(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0) as f64 / 1000.0
}

// ---------------------------------------------------------------- seb propose

/// Arguments of `seb propose`.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    #[command(flatten)]
    pub ep: Endpoint,
    /// The agent's registered name.
    #[arg(long, env = "SEB_AGENT")]
    pub agent: String,
    /// The agent's key file.
    #[arg(long, env = "SEB_AGENT_KEY")]
    pub agent_key: PathBuf,
    /// `kubernetes`, `aws` or `test`.
    #[arg(long)]
    pub platform: String,
    /// The operation.
    #[arg(long)]
    pub op: String,
    /// The target (JSON object).
    #[arg(long)]
    pub target: String,
    /// The params (JSON).
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Constraints (JSON array of {path, check, value}).
    #[arg(long, default_value = "[]")]
    pub constraints: String,
    /// Free text shown to approvers; never used for decisions.
    #[arg(long, default_value = "")]
    pub rationale: String,
    /// Proposal id (default: a fresh one).
    #[arg(long)]
    pub id: Option<String>,
    /// Poll until the proposal is certified or denied.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` polls, seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_s: u64,
    /// Write the certificate here when certified.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `seb propose`: exit 0 certified, 2 denied/refused/advisory, 3 still pending.
pub async fn propose(mut a: ProposeArgs) -> Result<ExitCode> {
    let key = keyfile::read(&a.agent_key)?;
    a.ep.signed_by(keyfile::read(&a.agent_key)?);
    let platform: Platform =
        serde_json::from_value(Value::String(a.platform.clone())).context("--platform")?;
    let constraints: Vec<Constraint> =
        serde_json::from_str(&a.constraints).context("--constraints")?;
    let p = Proposal {
        proposal_id: a.id.clone().unwrap_or_else(new_proposal_id),
        agent: a.agent.clone(),
        platform,
        op: a.op.clone(),
        target: serde_json::from_str(&a.target).context("--target is not JSON")?,
        params: serde_json::from_str(&a.params).context("--params is not JSON")?,
        constraints,
        rationale: a.rationale.clone(),
        at_ms: now_ms()?,
    };
    let body = json::canonical(&sign_proposal(&p, &key)?)?;
    let (status, mut v) = a.ep.post("/proposals", body, None).await?;
    if !(200..300).contains(&status) {
        return refused(&a.ep, status, &v);
    }
    let id = p.proposal_id.clone();
    if !a.ep.json {
        eprintln!("proposal {id}: {}", s(&v, "/status"));
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout_s);
    // `evaluating` and `issuing` are transient (another replica may be finishing them).
    while a.wait
        && matches!(s(&v, "/status"), "pending" | "evaluating" | "issuing")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (st, nv) = a.ep.get(&format!("/proposals/{id}")).await?;
        if !(200..300).contains(&st) {
            return refused(&a.ep, st, &nv);
        }
        v = nv;
    }
    let state = s(&v, "/status").to_owned();
    if state == "certified"
        && let Some(out) = &a.out
    {
        let (st, cert) = a.ep.get(&format!("/proposals/{id}/certificate")).await?;
        if st != 200 {
            return refused(&a.ep, st, &cert);
        }
        std::fs::write(out, serde_json::to_string_pretty(&cert)?)
            .with_context(|| format!("writing `{}`", out.display()))?;
        if !a.ep.json {
            eprintln!("certificate written to {}", out.display());
        }
    }
    if a.ep.json {
        print_json(&v)?;
    } else {
        show_proposal(&v);
    }
    Ok(match state.as_str() {
        "certified" => ExitCode::SUCCESS,
        "pending" | "evaluating" | "issuing" => ExitCode::from(3),
        _ => ExitCode::from(2),
    })
}

// ---------------------------------------------------------------- seb approve

/// Arguments of `seb approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub ep: Endpoint,
    /// The proposal id.
    pub proposal: String,
    /// The approver's registered name.
    #[arg(long, env = "SEB_APPROVER")]
    pub approver: String,
    /// The approver's key file.
    #[arg(long, env = "SEB_APPROVER_KEY")]
    pub key: PathBuf,
    /// Deny instead of approve.
    #[arg(long)]
    pub deny: bool,
    /// A comment recorded with the decision.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Do not ask for confirmation (scripts).
    #[arg(long)]
    pub yes: bool,
}

/// `seb approve`: fetch and show the proposal, then sign an approval bound to exactly the
/// contract and evidence digests shown.
pub async fn approve(mut a: ApproveArgs) -> Result<ExitCode> {
    let key = keyfile::read(&a.key)?;
    a.ep.signed_by(keyfile::read(&a.key)?);
    let (st, v) = a.ep.get(&format!("/proposals/{}", a.proposal)).await?;
    if st != 200 {
        return refused(&a.ep, st, &v);
    }
    if !a.ep.json {
        show_proposal(&v);
    }
    if s(&v, "/status") != "pending" {
        eprintln!("proposal is {}: nothing to approve", s(&v, "/status"));
        return Ok(ExitCode::from(2));
    }
    let contract_digest =
        s(&v, "/contract_digest").parse().context("proposal has no contract digest")?;
    let evidence_digest =
        s(&v, "/evidence/digest").parse().context("proposal has no evidence digest")?;
    let decision = if a.deny { ApprovalDecision::Deny } else { ApprovalDecision::Approve };
    if !a.yes {
        use std::io::Write as _;
        eprint!(
            "{} this contract and evidence as `{}`? [y/N] ",
            if a.deny { "Deny" } else { "Approve" },
            a.approver
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing signed");
            return Ok(ExitCode::from(2));
        }
    }
    let approval = Approval {
        proposal_id: a.proposal.clone(),
        contract_digest,
        evidence_digest,
        decision,
        approver: a.approver.clone(),
        comment: a.comment.clone(),
        at_ms: now_ms()?,
    };
    let body = json::canonical(&sign_approval(&approval, &key)?)?;
    let (st, v) = a.ep.post(&format!("/proposals/{}/approvals", a.proposal), body, None).await?;
    if !(200..300).contains(&st) {
        return refused(&a.ep, st, &v);
    }
    if a.ep.json {
        print_json(&v)?;
    } else {
        println!("recorded; proposal is now {}", s(&v, "/status"));
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- seb proposals

/// Arguments of `seb proposals`.
#[derive(Debug, Args)]
pub struct ProposalsArgs {
    #[command(flatten)]
    pub ep: Endpoint,
    /// Show one proposal in full instead of listing.
    pub id: Option<String>,
    /// Only this status (evaluating, pending, issuing, certified, denied, expired, advisory).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this agent.
    #[arg(long)]
    pub agent: Option<String>,
    #[command(flatten)]
    pub key: ReadKey,
}

/// `seb proposals`: a table (or JSON) of proposals, or one in full (those the key's roles
/// may see: an agent its own, approvers and admins all).
pub async fn proposals(mut a: ProposalsArgs) -> Result<ExitCode> {
    a.ep.signed_by(keyfile::read(&a.key.key)?);
    if let Some(id) = &a.id {
        let (st, v) = a.ep.get(&format!("/proposals/{id}")).await?;
        if st != 200 {
            return refused(&a.ep, st, &v);
        }
        if a.ep.json {
            print_json(&v)?;
        } else {
            show_proposal(&v);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut q = Vec::new();
    if let Some(s) = &a.status {
        q.push(format!("status={s}"));
    }
    if let Some(g) = &a.agent {
        q.push(format!("agent={g}"));
    }
    let path =
        if q.is_empty() { "/proposals".to_owned() } else { format!("/proposals?{}", q.join("&")) };
    let (st, v) = a.ep.get(&path).await?;
    if st != 200 {
        return refused(&a.ep, st, &v);
    }
    if a.ep.json {
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:<10} {:<6} {:<12} {:>5} {:<8} {:>3}",
        "PROPOSAL", "AGENT", "STATUS", "LEVEL", "OP", "SCORE", "PATH", "APR"
    );
    for p in v.get("proposals").and_then(Value::as_array).into_iter().flatten() {
        let level = p
            .get("risk_level")
            .and_then(Value::as_u64)
            .map(|l| format!("L{l}"))
            .unwrap_or_else(|| "-".into());
        let score = p
            .get("score_milli")
            .and_then(Value::as_u64)
            .map(|m| format!("{:.2}", m as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<40} {:<16} {:<10} {:<6} {:<12} {:>5} {:<8} {:>3}",
            s(p, "/proposal_id"),
            s(p, "/agent"),
            s(p, "/status"),
            level,
            s(p, "/op"),
            score,
            s(p, "/cert_path"),
            p.get("approvals").and_then(Value::as_u64).unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- admin commands

/// An admin's identity for signed commands.
#[derive(Debug, Args)]
pub struct AdminId {
    /// The admin's registered name.
    #[arg(long, env = "SEB_ADMIN")]
    pub admin: String,
    /// The admin's key file.
    #[arg(long, env = "SEB_ADMIN_KEY")]
    pub admin_key: PathBuf,
}

fn admin_request(
    id: &AdminId,
    revoke: Option<Revocation>,
    load_policy: Option<String>,
) -> Result<(Vec<u8>, String)> {
    admin_command(id, |r| {
        r.revoke = revoke;
        r.load_policy = load_policy;
    })
}

/// Sign an admin request carrying the command `set` fills in.
pub(crate) fn admin_command(
    id: &AdminId,
    set: impl FnOnce(&mut AdminRequest),
) -> Result<(Vec<u8>, String)> {
    let key = keyfile::read(&id.admin_key)?;
    let mut r = AdminRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        admin: id.admin.clone(),
        at_ms: now_ms()?,
        revoke: None,
        load_policy: None,
        invite_approver: None,
        remove_approver: None,
    };
    set(&mut r);
    Ok(sign_admin(&r, &key)?)
}

/// `seb admission …`.
#[derive(Debug, Subcommand)]
pub enum AdmissionCmd {
    /// Revoke one certificate, every certificate of an agent, or everything (signed by an admin).
    Revoke {
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        id: AdminId,
        /// Revoke one certificate by cid.
        #[arg(long, conflicts_with_all = ["agent", "all"])]
        cid: Option<String>,
        /// Revoke every certificate of an agent.
        #[arg(long, conflicts_with_all = ["cid", "all"])]
        agent: Option<String>,
        /// Revoke everything issued so far (bumps the revocation epoch).
        #[arg(long, conflicts_with_all = ["cid", "agent"])]
        all: bool,
    },
    /// Show the active epochs and revocations.
    Epochs {
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        key: ReadKey,
    },
    /// Fetch a fresh signed epoch statement (for brokers that do not share the store).
    Statement {
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Break-glass: create the draft certificate of a proposal and sign it as one operator.
    BreakGlass {
        #[command(flatten)]
        ep: Endpoint,
        /// The proposal id.
        proposal: String,
        /// The operator's key file.
        #[arg(long, env = "SEB_OPERATOR_KEY")]
        key: PathBuf,
        /// Write the certificate here once the quorum is reached.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `seb policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Load a Cedar policy file (bumps policy_epoch: outstanding certificates must be re-admitted).
    Load {
        /// The Cedar policy file.
        file: PathBuf,
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        id: AdminId,
    },
    /// Show the policy in force and its history (approvers, operators, admins).
    Show {
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        key: ReadKey,
    },
}

/// Run `seb admission …`.
pub async fn admission(cmd: AdmissionCmd) -> Result<ExitCode> {
    match cmd {
        AdmissionCmd::Revoke { ep, id, cid, agent, all } => {
            let what = match (cid, agent, all) {
                (Some(c), None, false) => Revocation::Cid(c),
                (None, Some(g), false) => Revocation::Agent(g),
                (None, None, true) => Revocation::All,
                _ => bail!("say exactly one of --cid, --agent, --all"),
            };
            let (body, sig) = admin_request(&id, Some(what), None)?;
            let (st, v) = ep.post("/revocations", body, Some(&sig)).await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            if ep.json {
                print_json(&v)?;
            } else {
                println!("revoked; signed epoch statement:");
                print_json(&statement_payload(&v))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AdmissionCmd::Epochs { mut ep, key } => {
            ep.signed_by(keyfile::read(&key.key)?);
            let (st, v) = ep.get("/epochs").await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            print_json(&v)?;
            Ok(ExitCode::SUCCESS)
        }
        AdmissionCmd::Statement { ep } => {
            let (st, v) = ep.get("/epochs/statement").await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            // Scripts get the envelope to hand to a broker; people get its signed content.
            print_json(&if ep.json { v } else { statement_payload(&v) }).map(|()| ExitCode::SUCCESS)
        }
        AdmissionCmd::BreakGlass { ep, proposal, key, out, yes } => {
            break_glass(ep, &proposal, &key, out.as_deref(), yes).await
        }
    }
}

fn statement_payload(env: &Value) -> Value {
    use base64::Engine as _;
    env.get("payload")
        .and_then(Value::as_str)
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

async fn break_glass(
    mut ep: Endpoint,
    proposal: &str,
    key: &Path,
    out: Option<&Path>,
    yes: bool,
) -> Result<ExitCode> {
    ep.signed_by(keyfile::read(key)?);
    let key = keyfile::read(key)?;
    let (st, draft) =
        ep.post(&format!("/proposals/{proposal}/break-glass"), b"{}".to_vec(), None).await?;
    if st != 200 {
        return refused(&ep, st, &draft);
    }
    if !ep.json {
        eprintln!("BREAK-GLASS certificate draft for {proposal} (flagged on every record):");
        print_json(draft.get("certificate").unwrap_or(&Value::Null))?;
    }
    if !yes {
        use std::io::Write as _;
        eprint!("Sign this break-glass certificate? [y/N] ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing signed");
            return Ok(ExitCode::from(2));
        }
    }
    let sig =
        sign_break_glass(s(&draft, "/payload"), &key).context("draft payload is not base64")?;
    let (st, v) = ep
        .post(
            &format!("/proposals/{proposal}/break-glass/signatures"),
            serde_json::to_vec(&sig)?,
            None,
        )
        .await?;
    if st != 200 {
        return refused(&ep, st, &v);
    }
    if s(&v, "/status") == "certified" {
        if let Some(out) = out {
            let (st, cert) = ep.get(&format!("/proposals/{proposal}/certificate")).await?;
            if st != 200 {
                return refused(&ep, st, &cert);
            }
            std::fs::write(out, serde_json::to_string_pretty(&cert)?)
                .with_context(|| format!("writing `{}`", out.display()))?;
        }
        println!("break-glass quorum reached: certified");
    } else {
        let signers = v.pointer("/break_glass/signers").cloned().unwrap_or(Value::Null);
        println!(
            "signed; signers so far {signers}, quorum {}",
            v.pointer("/break_glass/quorum").unwrap_or(&Value::Null)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `seb policy …`.
pub async fn policy(cmd: PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Load { file, ep, id } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading `{}`", file.display()))?;
            let (body, sig) = admin_request(&id, None, Some(text))?;
            let (st, v) = ep.post("/policy", body, Some(&sig)).await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            if ep.json {
                print_json(&v)?;
            } else {
                println!(
                    "policy loaded: policy_epoch {}",
                    v.get("policy_epoch").unwrap_or(&Value::Null)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Show { mut ep, key } => {
            ep.signed_by(keyfile::read(&key.key)?);
            let (st, v) = ep.get("/policy").await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            if ep.json {
                print_json(&v)?;
            } else {
                println!(
                    "policy_epoch {}  digest {}",
                    v.get("policy_epoch").unwrap_or(&Value::Null),
                    s(&v, "/digest")
                );
                println!("{}", s(&v, "/text"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---------------------------------------------------------------- seb serve

/// Build the admission API when the configuration has an `[admission]` section: it shares
/// the broker's store (embedded mode) and observes through its own read-only adapters.
pub async fn mount(
    cfg: &Config,
    config_path: &Path,
    store: Arc<dyn Store>,
    profiles: &[crate::platforms::ProfiledTarget],
) -> Result<Option<axum::Router<AppState>>> {
    let Some(table) = cfg.admission.clone() else { return Ok(None) };
    let base = config_path.parent().unwrap_or(Path::new("."));
    let acfg = seb_admission::AdmissionConfig::from_table(table, base)?;
    let mut platforms = seb_admission::Platforms::default();
    for (profile, target) in profiles {
        platforms.insert_parts(profile.clone(), target.clone());
    }
    let clock: Arc<dyn seb_admission::clock::Clock> =
        Arc::new(seb_admission::clock::SystemClock::default());
    let admission = seb_admission::Admission::open(&acfg, store, platforms, clock.clone()).await?;
    if let Some(n) = &acfg.notify {
        let base = acfg.public_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!("[admission.notify] needs [admission] public_url for its console links")
        })?;
        let notifier = seb_admission::notify::Notifier::start(n, base, clock.clone())?;
        admission.set_events(notifier);
        tracing::info!(url = %n.url, "admission notifications enabled");
    }
    let issuer = admission.issuer_key();
    if !cfg.trust.issuers.iter().any(|k| *k == issuer.to_base64()) {
        tracing::warn!(kid = %issuer.kid(), "the admission issuer key is not in [trust].issuers: this broker will refuse its certificates");
    }
    tracing::info!(kid = %issuer.kid(), "admission boundary mounted under /v1/admission");
    tokio::spawn(admission.clone().run_background());
    let mut router = seb_admission::http::router(admission.clone());
    match (&acfg.webauthn, acfg.console.enabled) {
        (Some(w), true) => {
            let console = seb_admission::console::Console::new(
                admission.clone(),
                Arc::new(seb_admission::console::AdmissionPasskeys(admission)),
                clock,
                seb_admission::console::Site { rp_id: w.rp_id.clone(), origins: w.origins.clone() },
                &acfg.console,
            )?;
            router = router.merge(seb_admission::console::router(console));
            tracing::info!(rp_id = %w.rp_id, "approvers' console mounted under /console");
        }
        (None, true) => {
            tracing::info!("no [admission.webauthn]: the approvers' console is not served");
        }
        (_, false) => {}
    }
    Ok(Some(router))
}
