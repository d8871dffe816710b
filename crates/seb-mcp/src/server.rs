//! The MCP server: seven tools over one agent's [`AgentClient`].
//!
//! Every tool validates its input locally first (unknown fields, platform, op, target shape,
//! params against the op's profile, size): bad input is a tool error and nothing is signed or
//! sent. A refusal by admission or the broker is a tool error (`isError: true`) whose
//! structured content says what happened and what to do next; nothing is ever retried with a
//! new proof. Admission or the broker being unreachable is a tool error too; the server keeps
//! serving. No result, error or log line carries the key, a certificate or a minted token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, RequestMetaObject,
    Resource, ResourceContents, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use seb_core::envelope::Envelope;
use seb_core::types::{Constraint, Proposal};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::catalogue::{PlatformName, catalogue, target_schema, validate};
use crate::client::{AgentClient, Reply, now_ms};
use crate::results::{
    ApplyResult, ExecuteOut, ExecutionRefusal, ExecutionResult, HistoryResult, LedgerRecord, Next,
    Object, ObserveResult, OperationsResult, Out, ProposalResult, ProposalState, WaitingFor,
    output_schema,
};

/// Largest tool arguments accepted (serialised JSON), bytes.
pub const MAX_ARGUMENT_BYTES: usize = 64 * 1024;
/// Default and largest wait of `proposal_status` and `apply`, seconds.
pub const DEFAULT_WAIT_S: u64 = 30;
pub const MAX_WAIT_S: u64 = 300;
/// How often a wait polls admission.
const POLL: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------- arguments

/// `list_operations`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOperationsArgs {
    /// Only this platform.
    #[serde(default)]
    pub platform: Option<PlatformName>,
}

/// A constraint: the parameter at `path` may differ from the proposed value at execution
/// as long as it passes `check`.
#[derive(Debug, Clone, Deserialize, JsonSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintArg {
    /// RFC 6901 pointer into params.
    pub path: String,
    pub check: CheckArg,
    /// The check's argument (`range`: {"min", "max"}; `in`: an array; …).
    pub value: Value,
}

/// The constraint checks.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckArg {
    Eq,
    In,
    Range,
    Prefix,
    CidrWithin,
    MaxLen,
}

/// `observe`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveArgs {
    pub platform: PlatformName,
    /// The operation (see list_operations).
    pub op: String,
    #[schemars(schema_with = "target_schema")]
    pub target: Value,
    /// The op's params (see list_operations); `{}` when omitted.
    #[serde(default)]
    pub params: Option<Value>,
}

/// `propose`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeArgs {
    pub platform: PlatformName,
    /// The operation (see list_operations).
    pub op: String,
    #[schemars(schema_with = "target_schema")]
    pub target: Value,
    /// The op's params (see list_operations).
    pub params: Value,
    /// Optional constraints on params.
    #[serde(default)]
    pub constraints: Vec<ConstraintArg>,
    /// Why: shown to approvers, never used for decisions.
    #[serde(default)]
    pub rationale: String,
    /// A proposal id to use (1..128 of [A-Za-z0-9-_.:]); a fresh one when omitted.
    #[serde(default)]
    pub proposal_id: Option<String>,
}

/// `proposal_status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    pub proposal_id: String,
    /// Wait up to this many seconds while the proposal is pending (0..=300; default 0).
    #[serde(default)]
    pub wait_s: Option<u64>,
}

/// `execute`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// A certified proposal of this agent.
    pub proposal_id: String,
}

/// `apply`: the fields of `propose` and how long to wait for certification.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    pub platform: PlatformName,
    /// The operation (see list_operations).
    pub op: String,
    #[schemars(schema_with = "target_schema")]
    pub target: Value,
    /// The op's params (see list_operations).
    pub params: Value,
    /// Optional constraints on params.
    #[serde(default)]
    pub constraints: Vec<ConstraintArg>,
    /// Why: shown to approvers, never used for decisions.
    #[serde(default)]
    pub rationale: String,
    /// A proposal id to use; a fresh one when omitted.
    #[serde(default)]
    pub proposal_id: Option<String>,
    /// Wait up to this many seconds for certification (default 30, at most 300).
    #[serde(default)]
    pub wait_s: Option<u64>,
}

impl ApplyArgs {
    fn split(self) -> (ProposeArgs, Option<u64>) {
        (
            ProposeArgs {
                platform: self.platform,
                op: self.op,
                target: self.target,
                params: self.params,
                constraints: self.constraints,
                rationale: self.rationale,
                proposal_id: self.proposal_id,
            },
            self.wait_s,
        )
    }
}

/// `history`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// Most proposals to return, newest first (default 20, at most 200).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Include a Merkle inclusion proof for every ledger record.
    #[serde(default)]
    pub proofs: bool,
}

// ---------------------------------------------------------------- results

/// A tool failure: the text a model reads and the structured detail.
#[derive(Debug)]
struct Fail {
    summary: String,
    detail: Value,
}

impl Fail {
    fn input(msg: impl Into<String>) -> Self {
        let m = msg.into();
        Self {
            summary: format!("invalid input: {m}. Nothing was signed or sent."),
            detail: json!({"error": "invalid_input", "message": m, "sent": false,
                "next": "fix the arguments (list_operations shows every op, target shape and params schema) and call again"}),
        }
    }

    fn unreachable(e: &anyhow::Error) -> Self {
        let m = format!("{e:#}");
        Self {
            summary: format!("{m}. Nothing changed; try again later or ask an operator."),
            detail: json!({"error": "unreachable", "message": m,
                "next": "the service did not answer: try again later; nothing was retried"}),
        }
    }

    fn clock(e: &anyhow::Error) -> Self {
        let m = format!("{e:#}");
        Self {
            summary: format!(
                "this host's clock cannot be trusted ({m}). Nothing was signed or sent; ask an operator."
            ),
            detail: json!({"error": "clock", "message": m, "sent": false,
                "next": "stop and ask an operator: nothing is signed without a trusted time"}),
        }
    }

    /// Admission or the broker answered with something this server cannot read.
    fn unexpected(what: &str, e: &serde_json::Error) -> Self {
        Self {
            summary: format!(
                "{what} answered with an unexpected shape ({e}). Nothing was retried; ask an operator."
            ),
            detail: json!({"error": "unexpected_response", "message": format!("{what}: {e}"),
                "next": "stop and ask an operator: the SEB services and this server disagree on a format"}),
        }
    }

    fn admission(r: &Reply) -> Self {
        let code = r.body.get("error").and_then(Value::as_str).unwrap_or("error").to_owned();
        let detail = r.body.get("detail").and_then(Value::as_str).unwrap_or("").to_owned();
        let next = match code.as_str() {
            "parse" | "invalid" => "fix the named field and propose again",
            "unauthenticated" => {
                "this server's agent key is not registered with admission: ask an operator"
            }
            "forbidden" => "this agent may not do this: stop and ask a human",
            "not_found" => "check the proposal id (history lists this agent's proposals)",
            "conflict" => "the proposal id is taken or the proposal is not in that state",
            "stale" => "this host's clock is off: ask an operator",
            _ => "admission could not do it now: try again later or ask an operator",
        };
        Self {
            summary: format!("admission refused ({}): {code}: {detail}. Next: {next}.", r.status),
            detail: json!({"error": code, "status": r.status, "message": detail, "next": next}),
        }
    }

    fn into_result(self) -> CallToolResult {
        let mut r = CallToolResult::structured_error(self.detail);
        r.content.insert(0, ContentBlock::text(self.summary));
        r
    }
}

fn success(summary: String, value: &impl serde::Serialize) -> CallToolResult {
    // The result types serialise infallibly (strings, numbers, maps with string keys).
    let mut r = CallToolResult::structured(serde_json::to_value(value).unwrap_or_default());
    r.content.insert(0, ContentBlock::text(summary));
    r
}

fn refusal(summary: String, value: Value) -> CallToolResult {
    let mut r = CallToolResult::structured_error(value);
    r.content.insert(0, ContentBlock::text(summary));
    r
}

fn done(r: Result<CallToolResult, Fail>) -> Result<CallToolResult, McpError> {
    Ok(r.unwrap_or_else(Fail::into_result))
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------- the server

/// `seb mcp`'s server: one agent identity.
#[derive(Clone)]
pub struct SebMcp {
    client: Arc<AgentClient>,
    /// The approver console's base URL (admission's `[admission] public_url`), when any.
    console_url: Option<Arc<str>>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for SebMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SebMcp").field("client", &self.client).finish_non_exhaustive()
    }
}

#[tool_router]
impl SebMcp {
    /// A server for `client`'s agent.
    pub fn new(client: AgentClient) -> Self {
        Self { client: Arc::new(client), console_url: None, tool_router: Self::tool_router() }
    }

    /// Point pending proposals at the approver console under `base` (`<base>/console/proposals/<id>`).
    pub fn with_console_url(mut self, base: Option<&str>) -> Self {
        self.console_url = base.map(|b| Arc::from(b.trim_end_matches('/')));
        self
    }

    /// Every tool (names, schemas, annotations).
    pub fn tools(&self) -> Vec<Tool> {
        self.tool_router.list_all()
    }

    #[tool(
        description = "List the platforms and operations SEB can change, each with its target shape, params schema, constraint locations, precondition, and the risk levels and certification paths this deployment applies. Read this before proposing.",
        output_schema = output_schema::<OperationsResult>(),
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_operations(
        &self,
        Parameters(a): Parameters<ListOperationsArgs>,
    ) -> Result<CallToolResult, McpError> {
        let platforms: Vec<_> = catalogue()
            .iter()
            .filter(|p| a.platform.is_none_or(|want| want == p.platform))
            .cloned()
            .collect();
        let unavailable = |why: String| Object::from_iter([("unavailable".into(), json!(why))]);
        let levels = match self.client.admission_get("/paths", &[]).await {
            Ok(r) if r.ok() => match r.body {
                Value::Object(o) => o,
                other => unavailable(format!("admission answered {other}")),
            },
            Ok(r) => unavailable(Fail::admission(&r).summary),
            Err(e) => unavailable(Fail::unreachable(&e).summary),
        };
        let n: usize = platforms.iter().map(|p| p.operations.len()).sum();
        let summary = format!(
            "{n} operations on {} ({}); levels L0..L5 map to certification paths as in `levels` (L0 advisory, L5 never autonomous).",
            platforms.iter().map(|p| p.platform.as_str()).collect::<Vec<_>>().join(", "),
            platforms
                .iter()
                .map(|p| format!(
                    "{}: {}",
                    p.platform.as_str(),
                    p.operations.iter().map(|o| o.op.as_str()).collect::<Vec<_>>().join(" ")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        Ok(success(summary, &OperationsResult { platforms, levels }))
    }

    #[tool(
        description = "Read the live object a change would act on, exactly as admission would record it as evidence (its projection and digest), plus the risk level the change would get. Read-only: nothing is proposed or recorded.",
        output_schema = output_schema::<Out<ObserveResult>>(),
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn observe(
        &self,
        Parameters(a): Parameters<ObserveArgs>,
    ) -> Result<CallToolResult, McpError> {
        done(self.observe_inner(a).await)
    }

    #[tool(
        description = "Submit a signed proposal to admission. Returns the proposal id, the contract, the risk level with the score's reasons, the certification path, and the status: certified (call execute), pending (who must approve and how; call proposal_status later), denied (why) or advisory (L0: no certificate).",
        output_schema = output_schema::<Out<ProposalResult>>(),
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn propose(
        &self,
        Parameters(a): Parameters<ProposeArgs>,
    ) -> Result<CallToolResult, McpError> {
        done(match self.propose_inner(a).await {
            Ok(v) => self.proposal_result(&v),
            Err(f) => Err(f),
        })
    }

    #[tool(
        description = "The current state of one of this agent's proposals. With wait_s, waits while it is pending (at most 300 s; progress notifications are sent when the client asked for them). Resumable at any time by id.",
        output_schema = output_schema::<Out<ProposalResult>>(),
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn proposal_status(
        &self,
        Parameters(a): Parameters<StatusArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let wait = a.wait_s.unwrap_or(0);
        done(
            async {
                let id = check_id(&a.proposal_id)?;
                if wait > MAX_WAIT_S {
                    return Err(Fail::input(format!("wait_s must be at most {MAX_WAIT_S}")));
                }
                let v = self.wait(id, wait, &meta, &peer).await?;
                self.proposal_result(&v)
            }
            .await,
        )
    }

    #[tool(
        description = "Execute a certified proposal: presents its certificate to the broker with a fresh proof. Returns the outcome, ledger record ids and timings; a refusal says what failed and what to do next (readmit: re-propose from the fresh observation included; fail_closed: stop and ask a human; replay: the certificate was already used). Never retried automatically.",
        output_schema = output_schema::<ExecuteOut>(),
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn execute(
        &self,
        Parameters(a): Parameters<ExecuteArgs>,
    ) -> Result<CallToolResult, McpError> {
        done(
            async {
                let id = check_id(&a.proposal_id)?;
                self.execute_inner(id).await
            }
            .await,
        )
    }

    #[tool(
        description = "Propose, wait up to wait_s (default 30, at most 300) for certification, then execute. A proposal still pending after the wait is returned as pending with its id and who must approve: resume with proposal_status and execute.",
        output_schema = output_schema::<ApplyResult>(),
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn apply(
        &self,
        Parameters(a): Parameters<ApplyArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let (proposal, wait) = a.split();
        let wait = wait.unwrap_or(DEFAULT_WAIT_S);
        done(
            async {
                if wait > MAX_WAIT_S {
                    return Err(Fail::input(format!("wait_s must be at most {MAX_WAIT_S}")));
                }
                let v = self.propose_inner(proposal).await?;
                let id = s(&v, "/proposal_id").to_owned();
                let v = if matches!(s(&v, "/status"), "pending" | "evaluating" | "issuing") {
                    self.wait(&id, wait, &meta, &peer).await?
                } else {
                    v
                };
                if s(&v, "/status") != "certified" {
                    return self.proposal_result(&v);
                }
                self.execute_inner(&id).await
            }
            .await,
        )
    }

    #[tool(
        description = "This agent's recent proposals (newest first) and the broker's ledger records of their executions, with record ids and, on request, Merkle inclusion proofs.",
        output_schema = output_schema::<Out<HistoryResult>>(),
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn history(
        &self,
        Parameters(a): Parameters<HistoryArgs>,
    ) -> Result<CallToolResult, McpError> {
        done(self.history_inner(a).await)
    }
}

fn check_id(id: &str) -> Result<&str, Fail> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok { Ok(id) } else { Err(Fail::input("proposal_id must be 1..128 of [A-Za-z0-9-_.:]")) }
}

fn constraints(c: &[ConstraintArg]) -> Result<Vec<Constraint>, Fail> {
    serde_json::to_value(c)
        .and_then(serde_json::from_value)
        .map_err(|e| Fail::input(format!("constraints: {e}")))
}

impl SebMcp {
    async fn observe_remote(
        &self,
        platform: PlatformName,
        op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<Value, Fail> {
        let t = target.to_string();
        let p = params.to_string();
        let q = [("platform", platform.as_str()), ("op", op), ("target", &t), ("params", &p)];
        let r = self
            .client
            .admission_get("/observations", &q)
            .await
            .map_err(|e| Fail::unreachable(&e))?;
        if !r.ok() {
            return Err(Fail::admission(&r));
        }
        Ok(r.body)
    }

    async fn observe_inner(&self, a: ObserveArgs) -> Result<CallToolResult, Fail> {
        let params = a.params.unwrap_or_else(|| json!({}));
        let (target, params) =
            validate(a.platform, &a.op, &a.target, &params, &[]).map_err(Fail::input)?;
        let v = self.observe_remote(a.platform, &a.op, &target, &params).await?;
        let o: ObserveResult = serde_json::from_value(v)
            .map_err(|e| Fail::unexpected("admission's observation", &e))?;
        let summary = format!(
            "{} {} observed: evidence {} (level L{} if proposed); projection {}",
            a.platform.as_str(),
            a.op,
            o.digest,
            o.risk_level,
            clip(&serde_json::to_string(&o.projection).unwrap_or_default(), 400),
        );
        Ok(success(summary, &o))
    }

    /// Validate locally, sign and submit; the admission view.
    async fn propose_inner(&self, a: ProposeArgs) -> Result<Value, Fail> {
        let cs = constraints(&a.constraints)?;
        let (target, params) =
            validate(a.platform, &a.op, &a.target, &a.params, &cs).map_err(Fail::input)?;
        let id = match a.proposal_id {
            Some(id) => check_id(&id)?.to_owned(),
            None => seb_admission::client::new_proposal_id(),
        };
        if a.rationale.len() > 4096 {
            return Err(Fail::input("rationale is longer than 4096 bytes"));
        }
        let p = Proposal {
            proposal_id: id.clone(),
            agent: self.client.agent().to_owned(),
            platform: a.platform.platform(),
            op: a.op,
            target,
            params,
            constraints: cs,
            rationale: a.rationale,
            at_ms: now_ms().map_err(|e| Fail::clock(&e))?,
        };
        let r = self.client.submit(&p).await.map_err(|e| Fail::unreachable(&e))?;
        if !r.ok() {
            return Err(Fail::admission(&r));
        }
        info!(proposal_id = %id, status = %s(&r.body, "/status"), "proposal submitted");
        Ok(r.body)
    }

    async fn view(&self, id: &str) -> Result<Value, Fail> {
        let r = self
            .client
            .admission_get(&format!("/proposals/{id}"), &[])
            .await
            .map_err(|e| Fail::unreachable(&e))?;
        if !r.ok() {
            return Err(Fail::admission(&r));
        }
        if s(&r.body, "/agent") != self.client.agent() {
            return Err(Fail::input(format!("proposal `{id}` is not this agent's")));
        }
        Ok(r.body)
    }

    /// The proposal, polled while pending for at most `wait_s`, with progress notifications
    /// when the request carried a progress token.
    async fn wait(
        &self,
        id: &str,
        wait_s: u64,
        meta: &RequestMetaObject,
        peer: &Peer<RoleServer>,
    ) -> Result<Value, Fail> {
        let start = Instant::now();
        let bound = Duration::from_secs(wait_s.min(MAX_WAIT_S));
        let token = meta.get_progress_token();
        loop {
            let v = self.view(id).await?;
            let elapsed = start.elapsed();
            let waiting = matches!(s(&v, "/status"), "pending" | "evaluating" | "issuing");
            if !waiting || elapsed >= bound {
                return Ok(v);
            }
            if let Some(t) = &token {
                let (validators, humans) = missing(&v);
                let msg = format!(
                    "pending: waiting for {humans} human and {validators} validator approval(s); {}s of {}s",
                    elapsed.as_secs(),
                    bound.as_secs()
                );
                if let Err(e) = peer
                    .notify_progress(
                        ProgressNotificationParam::new(t.clone(), elapsed.as_secs_f64())
                            .with_total(bound.as_secs_f64())
                            .with_message(msg),
                    )
                    .await
                {
                    warn!(proposal_id = %id, error = %e, "progress notification not delivered");
                }
            }
            tokio::time::sleep(POLL.min(bound.saturating_sub(elapsed))).await;
        }
    }

    /// The structured result of a proposal view (certified, pending, denied, advisory).
    fn proposal_result(&self, v: &Value) -> Result<CallToolResult, Fail> {
        let obj = |k: &str| v.get(k).and_then(Value::as_object).cloned();
        let st = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = s(v, "/proposal_id").to_owned();
        let status: ProposalState =
            serde_json::from_value(v.get("status").cloned().unwrap_or_default())
                .map_err(|e| Fail::unexpected("admission's proposal status", &e))?;
        let level = v.pointer("/score/level").and_then(Value::as_u64).map(|l| format!("L{l}"));
        let lvl = level.clone().unwrap_or_else(|| "-".into());
        let mut out = ProposalResult {
            proposal_id: id.clone(),
            status,
            contract: obj("contract"),
            contract_digest: st("contract_digest"),
            level,
            score_reasons: v
                .pointer("/score/reasons")
                .and_then(|r| serde_json::from_value(r.clone()).ok()),
            policy: obj("policy"),
            path: obj("requirement"),
            approvals: v
                .get("approvals")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_object().cloned()).collect())
                .unwrap_or_default(),
            evidence: obj("evidence"),
            deadline_ms: v.get("deadline_ms").and_then(Value::as_u64),
            reason: st("reason"),
            cid: st("cid"),
            cert_path: st("cert_path"),
            validity: obj("validity"),
            record_id: st("record_id"),
            waiting_for: None,
            next: Next::Stop,
        };
        let summary = match status {
            ProposalState::Certified => {
                out.next = Next::Execute;
                format!(
                    "proposal {id} is certified ({lvl}, path {}): call execute with this proposal_id before the certificate expires",
                    s(v, "/cert_path")
                )
            }
            ProposalState::Pending => {
                let (validators, humans) = missing(v);
                let cmd = format!(
                    "seb approve {id} --admission {} --approver <NAME> --key <APPROVER KEY FILE>",
                    self.client.admission_url()
                );
                let console =
                    self.console_url.as_ref().map(|b| format!("{b}/console/proposals/{id}"));
                let (where_, how) = match &console {
                    Some(u) => (
                        "an approver opens console_url and approves with their passkey (or runs the command line in approve_with)".to_owned(),
                        format!("an approver approves it at {u} (or runs `{cmd}`)"),
                    ),
                    None => (
                        "an approver registered with admission signs an approval with the command line in approve_with".to_owned(),
                        format!("an approver runs `{cmd}`"),
                    ),
                };
                out.waiting_for = Some(WaitingFor {
                    humans,
                    validators,
                    where_,
                    console_url: console,
                    approve_with: cmd,
                });
                out.next = Next::ProposalStatus;
                format!(
                    "proposal {id} is pending ({lvl}, path {}): it needs {humans} human and {validators} validator approval(s); {how}. Call proposal_status with wait_s to wait (resumable by id), then execute.",
                    s(v, "/requirement/path")
                )
            }
            ProposalState::Denied | ProposalState::Expired => format!(
                "proposal {id} was {} ({lvl}): {}. Do not retry the same change; change the proposal or ask a human.",
                status.as_str(),
                s(v, "/reason")
            ),
            ProposalState::Evaluating | ProposalState::Issuing => {
                out.next = Next::ProposalStatus;
                format!(
                    "proposal {id} is {} ({lvl}): admission is still working on it. Call proposal_status with wait_s to wait (resumable by id).",
                    status.as_str()
                )
            }
            ProposalState::Advisory => format!(
                "proposal {id} is advisory ({lvl}): {}. No certificate is issued.",
                s(v, "/reason")
            ),
        };
        Ok(if matches!(status, ProposalState::Denied | ProposalState::Expired) {
            refusal(summary, serde_json::to_value(&out).unwrap_or_default())
        } else {
            success(summary, &out)
        })
    }

    async fn execute_inner(&self, id: &str) -> Result<CallToolResult, Fail> {
        let v = self.view(id).await?;
        if s(&v, "/status") != "certified" {
            return Err(Fail {
                summary: format!(
                    "proposal {id} is {}, not certified: nothing was sent to the broker. {}",
                    s(&v, "/status"),
                    if s(&v, "/status") == "pending" {
                        "Wait with proposal_status first."
                    } else {
                        "Propose again if the change is still wanted."
                    }
                ),
                detail: json!({"error": "not_certified", "proposal_status": s(&v, "/status"), "sent": false,
                    "message": format!("proposal {id} is {}", s(&v, "/status")),
                    "next": if s(&v, "/status") == "pending" { "wait with proposal_status, then execute" } else { "propose again if the change is still wanted" }}),
            });
        }
        let r = self
            .client
            .admission_get(&format!("/proposals/{id}/certificate"), &[])
            .await
            .map_err(|e| Fail::unreachable(&e))?;
        if !r.ok() {
            return Err(Fail::admission(&r));
        }
        let env: Envelope = serde_json::from_value(r.body)
            .map_err(|e| Fail::input(format!("admission returned no certificate: {e}")))?;
        let r = self.client.execute(env).await.map_err(|e| Fail::unreachable(&e))?;
        let cid = s(&v, "/cid").to_owned();
        if r.ok() {
            let b = &r.body;
            let status = s(b, "/outcome/status").to_owned();
            info!(proposal_id = %id, cid = %cid, outcome = %status, "executed");
            let out = ExecutionResult {
                proposal_id: id.to_owned(),
                cid: cid.clone(),
                decision: s(b, "/decision").to_owned(),
                outcome: status.clone(),
                admit_record_id: b
                    .get("admit_record_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                admit_index: b.get("admit_index").and_then(Value::as_u64),
                outcome_record_id: b
                    .pointer("/outcome/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                outcome_index: b.get("outcome_index").and_then(Value::as_u64),
                outcome_state: b.get("outcome_state").and_then(Value::as_str).map(str::to_owned),
                error: b.pointer("/outcome/error").filter(|e| !e.is_null()).cloned(),
                unpinned: b.get("unpinned").and_then(Value::as_bool),
                timings_us: b
                    .get("timings_us")
                    .and_then(|t| serde_json::from_value(t.clone()).ok()),
            };
            let summary = format!(
                "proposal {id} executed: outcome {status} (admit record {}, outcome record {})",
                s(b, "/admit_record_id"),
                s(b, "/outcome/id")
            );
            return Ok(if status == "applied" {
                success(summary, &out)
            } else {
                refusal(summary, serde_json::to_value(&out).unwrap_or_default())
            });
        }
        // A refusal: say what failed and what to do; never retry.
        let b = &r.body;
        let check = s(b, "/failed_check").to_owned();
        let decision = s(b, "/decision").to_owned();
        let reason = s(b, "/detail").to_owned();
        warn!(proposal_id = %id, cid = %cid, failed_check = %check, decision = %decision, "execution refused");
        let next = refusal_next(&decision, &check);
        let mut out = ExecutionRefusal {
            proposal_id: id.to_owned(),
            cid: cid.clone(),
            status: r.status,
            failed_check: check.clone(),
            decision: decision.clone(),
            reason: reason.clone(),
            record_id: b.get("record_id").and_then(Value::as_str).map(str::to_owned),
            fresh_observation: None,
            next: next.to_owned(),
        };
        if decision == "readmit" {
            out.fresh_observation = Some(match v.get("contract") {
                Some(c) => match serde_json::from_value::<PlatformName>(
                    c.get("platform").cloned().unwrap_or_default(),
                ) {
                    Ok(p) => self
                        .observe_remote(
                            p,
                            s(c, "/op"),
                            c.get("target").unwrap_or(&Value::Null),
                            c.get("params").unwrap_or(&Value::Null),
                        )
                        .await
                        .unwrap_or_else(|f| json!({"unavailable": f.summary})),
                    Err(_) => json!({"unavailable": "unknown platform"}),
                },
                None => json!({"unavailable": "the proposal has no contract"}),
            });
        }
        let out = serde_json::to_value(&out).unwrap_or_default();
        Ok(refusal(
            format!(
                "execution of proposal {id} refused: decision {decision}, failed_check {check}: {reason}. Next: {next}."
            ),
            out,
        ))
    }

    async fn history_inner(&self, a: HistoryArgs) -> Result<CallToolResult, Fail> {
        let limit = a.limit.unwrap_or(20);
        if limit > 200 {
            return Err(Fail::input("limit must be at most 200"));
        }
        let agent = self.client.agent().to_owned();
        let r = self
            .client
            .admission_get("/proposals", &[("agent", &agent)])
            .await
            .map_err(|e| Fail::unreachable(&e))?;
        if !r.ok() {
            return Err(Fail::admission(&r));
        }
        let mut proposals: Vec<Value> = r
            .body
            .get("proposals")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| s(p, "/agent") == agent)
            .collect();
        proposals
            .sort_by_key(|p| std::cmp::Reverse(p.get("received_at_ms").and_then(Value::as_u64)));
        proposals.truncate(limit);
        let cids: Vec<String> = proposals
            .iter()
            .filter_map(|p| p.get("cid").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let (records, size) = self.ledger_records(&cids, a.proofs).await?;
        let summary = format!(
            "{} proposal(s) of {agent}, {} ledger record(s) of their executions (ledger size {size})",
            proposals.len(),
            records.len()
        );
        let proposals = proposals
            .into_iter()
            .filter_map(|p| match p {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect();
        Ok(success(
            summary,
            &HistoryResult { agent, proposals, executions: records, ledger_size: size },
        ))
    }

    /// The broker's ledger records (decisions and outcomes) naming one of `cids`, from the
    /// newest 1000 entries, with inclusion proofs when asked.
    async fn ledger_records(
        &self,
        cids: &[String],
        proofs: bool,
    ) -> Result<(Vec<LedgerRecord>, u64), Fail> {
        let size = self.ledger_size().await?;
        if cids.is_empty() || size == 0 {
            return Ok((Vec::new(), size));
        }
        let start = size.saturating_sub(1000);
        let r = self
            .client
            .broker_get(&format!("/v1/ledger/entries?start={start}&end={size}"))
            .await
            .map_err(|e| Fail::unreachable(&e))?;
        if !r.ok() {
            return Err(Fail {
                summary: format!("the broker's ledger could not be read ({})", r.status),
                detail: json!({"error": "ledger", "status": r.status}),
            });
        }
        let first = r.body.get("start").and_then(Value::as_u64).unwrap_or(start);
        let mut out = Vec::new();
        for (i, e) in
            r.body.get("entries").and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            let Some(rec) = e.as_str().and_then(decode_entry) else { continue };
            let (payload_type, payload) = rec;
            let Some(cid) = payload.get("cid").and_then(Value::as_str) else { continue };
            if !cids.iter().any(|c| c == cid) {
                continue;
            }
            let index = first + i as u64;
            let mut item = LedgerRecord {
                index,
                type_: payload_type,
                id: payload.get("id").and_then(Value::as_str).map(str::to_owned),
                cid: cid.to_owned(),
                decision: payload.get("decision").cloned(),
                failed_check: payload.get("failed_check").cloned(),
                status: payload.get("status").cloned(),
                reason: payload.get("reason").cloned(),
                inclusion_proof: None,
            };
            if proofs {
                let p = self
                    .client
                    .broker_get(&format!("/v1/ledger/proofs/inclusion?index={index}&size={size}"))
                    .await
                    .map_err(|e| Fail::unreachable(&e))?;
                item.inclusion_proof = Some(p.body);
            }
            out.push(item);
        }
        Ok((out, size))
    }

    async fn ledger_size(&self) -> Result<u64, Fail> {
        let r = self.client.checkpoint().await.map_err(|e| Fail::unreachable(&e))?;
        if r.status == 404 {
            return Ok(0);
        }
        // C2SP checkpoint: origin, size, root hash, blank line, signatures.
        r.body
            .as_str()
            .and_then(|t| t.lines().nth(1))
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| Fail {
                summary: format!("the broker's checkpoint could not be read ({})", r.status),
                detail: json!({"error": "ledger", "status": r.status}),
            })
    }
}

/// A ledger entry (base64 of an envelope's canonical bytes) → payload type and payload.
fn decode_entry(b64: &str) -> Option<(String, Value)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let env: Value = serde_json::from_slice(&bytes).ok()?;
    let payload =
        base64::engine::general_purpose::STANDARD.decode(env.get("payload")?.as_str()?).ok()?;
    let pt = env.get("payloadType").and_then(Value::as_str).unwrap_or("").to_owned();
    Some((pt, serde_json::from_slice(&payload).ok()?))
}

/// What to do after the broker refused with `decision` / `failed_check`.
pub fn refusal_next(decision: &str, check: &str) -> &'static str {
    match (decision, check) {
        ("readmit", _) => {
            "readmit: the certified state no longer holds; look at fresh_observation and propose again from the current state (a new proposal), if the change still makes sense"
        }
        ("fail_closed", _) => {
            "fail_closed: SEB cannot decide safely (revoked, epochs, store): stop and ask a human; do not retry"
        }
        (_, "replay") => {
            "replay: this certificate was already used; if a further change is wanted, propose it anew"
        }
        (_, "parse") | (_, "match") => {
            "the request did not match the certificate: the reason names the field; propose again with the field as certified"
        }
        (_, "time") => "the certificate expired or is not yet valid: propose again",
        _ => "refused: read the reason; do not retry the same certificate",
    }
}

/// Arguments larger than [`MAX_ARGUMENT_BYTES`] are refused before anything else.
pub fn check_size(arguments: Option<&rmcp::model::JsonObject>) -> Result<(), String> {
    let size =
        arguments.map(|a| serde_json::to_vec(a).map_or(usize::MAX, |v| v.len())).unwrap_or(0);
    if size > MAX_ARGUMENT_BYTES {
        return Err(format!("arguments are {size} bytes, at most {MAX_ARGUMENT_BYTES} accepted"));
    }
    Ok(())
}

/// Approvals still missing: (validators, humans).
fn missing(v: &Value) -> (u64, u64) {
    let need =
        |k: &str| v.pointer(&format!("/requirement/{k}")).and_then(Value::as_u64).unwrap_or(0);
    let have = |role: &str| {
        v.get("approvals")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter().filter(|x| s(x, "/role") == role && s(x, "/decision") == "approve").count()
                    as u64
            })
            .unwrap_or(0)
    };
    (
        need("validators").saturating_sub(have("validator")),
        need("humans").saturating_sub(have("human")),
    )
}

fn clip(t: &str, n: usize) -> String {
    if t.chars().count() <= n {
        t.to_owned()
    } else {
        format!("{}…", t.chars().take(n).collect::<String>())
    }
}

const RESOURCE_PREFIX: &str = "seb://operations/";

impl ServerHandler for SebMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder().enable_tools().enable_resources().build(),
        );
        info.server_info = Implementation::new("seb-mcp", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(format!(
            "SEB: certificate-bound changes to production for agent `{}`. list_operations → observe → propose (or apply) → proposal_status → execute. You hold no credentials; every change is certified by admission and executed once by the broker. A refusal says what to do next; never work around it.",
            self.client.agent()
        ));
        info
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if let Err(e) = check_size(request.arguments.as_ref()) {
            return Ok(Fail::input(e).into_result().into());
        }
        let before = self.client.http_us();
        let tcc = ToolCallContext::new(self, request, context);
        let mut r = self.tool_router.call(tcc).await?;
        // How long this call waited for admission and the broker (sequential calls; the
        // benchmark subtracts it from the client's round trip).
        if let CallToolResponse::Complete(res) = &mut r {
            let mut meta = res.meta.take().unwrap_or_default();
            meta.0.insert(
                "io.seb/http_us".into(),
                json!(self.client.http_us().saturating_sub(before)),
            );
            res.meta = Some(meta);
        }
        Ok(r)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tool_router.list_all()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router.get(name).cloned()
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(
            catalogue()
                .iter()
                .map(|p| {
                    let mut r = Resource::new(
                        format!("{RESOURCE_PREFIX}{}", p.platform.as_str()),
                        format!("{} operations", p.platform.as_str()),
                    );
                    r.description = Some(format!(
                        "The {} operations SEB can change: target shape, params schema, constraints, preconditions",
                        p.platform.as_str()
                    ));
                    r.mime_type = Some("application/json".into());
                    r
                })
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let found = catalogue()
            .iter()
            .find(|p| format!("{RESOURCE_PREFIX}{}", p.platform.as_str()) == request.uri);
        match found {
            Some(p) => {
                let text = serde_json::to_string_pretty(&p)
                    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
                Ok(ReadResourceResult::new(vec![
                    ResourceContents::text(text, request.uri.clone())
                        .with_mime_type("application/json"),
                ])
                .into())
            }
            None => Err(McpError::resource_not_found(
                format!("no resource `{}`; see resources/list", request.uri),
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_core::keys::SigningKey;

    /// A server whose admission and broker are a listener that counts connections.
    async fn server() -> (SebMcp, tokio::net::TcpListener) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let http = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
        let c = AgentClient::new(http, &url, &url, "agent-a", SigningKey::from_seed(&[2; 32]));
        (SebMcp::new(c), l)
    }

    fn propose_args(v: Value) -> Result<ProposeArgs, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn target() -> Value {
        json!({"cluster": "c", "api_version": "apps/v1", "kind": "Deployment", "namespace": "ns", "name": "web"})
    }

    #[tokio::test]
    async fn bad_input_is_refused_and_nothing_is_sent() {
        let (srv, listener) = server().await;
        let cases = [
            json!({"platform": "kubernetes", "op": "explode", "target": target(), "params": {}}),
            json!({"platform": "kubernetes", "op": "scale", "target": {"account": "123456789012", "region": "us-east-1", "service": "s3", "arn": "arn:aws:s3:::b/k"}, "params": {"replicas": 1}}),
            json!({"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": "many"}}),
            json!({"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 2}, "proposal_id": "../x"}),
            json!({"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 2}, "rationale": "r".repeat(5000)}),
            json!({"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 2}, "constraints": [{"path": "/nope", "check": "range", "value": {"max": 3}}]}),
        ];
        for c in cases {
            let a = propose_args(c.clone()).unwrap();
            let f = srv.propose_inner(a).await.unwrap_err();
            assert_eq!(f.detail["error"], "invalid_input", "{c}: {}", f.summary);
            assert_eq!(f.detail["sent"], false);
            assert!(f.summary.contains("Nothing was signed or sent"), "{}", f.summary);
        }
        // Unknown fields and platforms never deserialize (rmcp turns that into a tool error).
        for c in [
            json!({"platform": "gcp", "op": "scale", "target": target(), "params": {}}),
            json!({"platform": "kubernetes", "op": "scale", "target": target(), "params": {}, "sudo": true}),
        ] {
            assert!(propose_args(c).is_err());
        }
        assert!(serde_json::from_value::<ApplyArgs>(json!({"platform": "aws", "op": "s3:PutObject", "target": {}, "params": {}, "wait": 3})).is_err());
        // Nobody connected to admission or the broker.
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a bad input reached the network");
    }

    #[test]
    fn every_failure_is_a_tool_error_as_the_output_schemas_declare() {
        let e = anyhow::anyhow!("boom");
        let bad_json = serde_json::from_str::<Value>("{").unwrap_err();
        for f in [
            Fail::input("x"),
            Fail::unreachable(&e),
            Fail::clock(&e),
            Fail::unexpected("admission", &bad_json),
            Fail::admission(&Reply {
                status: 409,
                body: json!({"error": "conflict", "detail": "taken"}),
            }),
            Fail::admission(&Reply { status: 502, body: json!("not json") }),
        ] {
            let parsed: Result<crate::results::ToolError, _> =
                serde_json::from_value(f.detail.clone());
            assert!(parsed.is_ok(), "{}: {parsed:?}", f.detail);
        }
    }

    #[tokio::test]
    async fn a_pending_proposal_names_the_console_page_when_there_is_a_console() {
        let view = json!({"proposal_id": "p-7", "agent": "agent-a", "status": "pending",
            "score": {"level": 4, "reasons": ["r"]}, "requirement": {"path": "human", "validators": 0, "humans": 1},
            "approvals": []});
        let (srv, _l) = server().await;
        let r = srv.proposal_result(&view).unwrap();
        let w = &r.structured_content.as_ref().unwrap()["waiting_for"];
        assert_eq!(w["console_url"], Value::Null);
        assert!(
            w["approve_with"].as_str().unwrap().starts_with("seb approve p-7 --admission http://")
        );
        let srv = srv.with_console_url(Some("https://seb.example/"));
        let r = srv.proposal_result(&view).unwrap();
        let w = &r.structured_content.as_ref().unwrap()["waiting_for"];
        assert_eq!(w["console_url"], "https://seb.example/console/proposals/p-7");
        assert_eq!(w["humans"], 1);
        let text = format!("{:?}", r.content[0]);
        assert!(text.contains("https://seb.example/console/proposals/p-7"), "{text}");
        // An unknown status is not passed through.
        let f = srv.proposal_result(&json!({"proposal_id": "p-8", "status": "weird"})).unwrap_err();
        assert_eq!(f.detail["error"], "unexpected_response");
    }

    #[test]
    fn oversize_arguments_are_refused() {
        let mut big = rmcp::model::JsonObject::new();
        big.insert("rationale".into(), json!("x".repeat(MAX_ARGUMENT_BYTES)));
        assert!(check_size(Some(&big)).unwrap_err().contains("at most 65536"));
        let mut small = rmcp::model::JsonObject::new();
        small.insert("proposal_id".into(), json!("p-1"));
        check_size(Some(&small)).unwrap();
        check_size(None).unwrap();
    }

    #[tokio::test]
    async fn unreachable_services_are_a_tool_error() {
        let (srv, listener) = server().await;
        drop(listener);
        let a = ObserveArgs {
            platform: PlatformName::Kubernetes,
            op: "scale".into(),
            target: target(),
            params: Some(json!({"replicas": 2})),
        };
        let f = srv.observe_inner(a).await.unwrap_err();
        assert_eq!(f.detail["error"], "unreachable", "{}", f.summary);
        assert!(f.summary.contains("admission unreachable"), "{}", f.summary);
        let r = f.into_result();
        assert_eq!(r.is_error, Some(true));
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert!(refusal_next("readmit", "drift").contains("propose again from the current state"));
        assert!(refusal_next("fail_closed", "revocation").contains("ask a human"));
        assert!(refusal_next("reject", "replay").contains("already used"));
        assert!(refusal_next("reject", "match").contains("names the field"));
        assert!(refusal_next("reject", "parse").contains("names the field"));
        let f = Fail::admission(&Reply {
            status: 403,
            body: json!({"error": "unauthenticated", "detail": "agent `x` is not registered"}),
        });
        assert!(f.summary.contains("not registered with admission"), "{}", f.summary);
        let f = Fail::admission(&Reply {
            status: 422,
            body: json!({"error": "invalid", "detail": "compile: params.replicas"}),
        });
        assert!(
            f.summary.contains("fix the named field") && f.summary.contains("replicas"),
            "{}",
            f.summary
        );
    }

    #[tokio::test]
    async fn the_tools_have_schemas_and_annotations() {
        let (srv, _l) = server().await;
        let tools = srv.tools();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "apply",
                "execute",
                "history",
                "list_operations",
                "observe",
                "proposal_status",
                "propose"
            ]
        );
        for t in &tools {
            let a = t.annotations.as_ref().unwrap();
            let ro = ["list_operations", "observe", "proposal_status", "history"]
                .contains(&t.name.as_ref());
            assert_eq!(a.read_only_hint, Some(ro), "{}", t.name);
            let destructive = ["execute", "apply"].contains(&t.name.as_ref());
            assert_eq!(a.destructive_hint, Some(destructive), "{}", t.name);
            assert_eq!(
                t.input_schema.get("additionalProperties"),
                Some(&json!(false)),
                "{}",
                t.name
            );
        }
        let propose = tools.iter().find(|t| t.name == "propose").unwrap();
        let schema = serde_json::to_string(&propose.input_schema).unwrap();
        assert!(
            schema.contains("anyOf") && schema.contains("api_version") && schema.contains("arn"),
            "{schema}"
        );
        assert!(schema.contains("\"kubernetes\"") && schema.contains("\"aws\""), "{schema}");
    }
}
