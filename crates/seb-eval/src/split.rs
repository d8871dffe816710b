//! Attack class "split proposal" (spec 5.2): for every operation with a numeric or
//! additive parameter, seeded random sequences of small changes whose sum would escalate as
//! ONE change, submitted through the real admission service (real Kubernetes and AWS
//! profiles, the real Cedar engine and net-effect accounting on a SQLite store; the live
//! state served from memory and moved as each certified step "executes").
//!
//! - A sequence **escapes** when every step was certified on a requirement weaker than the
//!   single change's (the agent reached the end state without ever meeting the single
//!   change's requirement). A step that waits on a weaker requirement is approved by the
//!   approvers it asks for (the attacker is assumed to get weak approvals); a step that
//!   waits on a requirement at least the single change's catches the sequence.
//! - **False escalation**: every single-step change (the sequence's single change and
//!   each of its steps, each on a fresh object, empty window) is submitted with net effect
//!   `enforce` and `shadow` (the proposal scored alone, as before net-effect scoring); a
//!   change whose enforced requirement is stronger is a false escalation.
//!
//! The policy is written per field, never per op (`docs/admission.md`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use seb_admission::clock::ManualClock;
use seb_admission::paths::Requirement;
use seb_admission::service::{ProposalStatus, ProposalView};
use seb_admission::{Admission, AdmissionConfig, Platforms};
use seb_aws::AwsPlatform;
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Approval, ApprovalDecision, Contract, Platform, Proposal};
use seb_kube::profile::KubeProfile;
use seb_store::sqlite::SqliteStore;
use seb_target::{
    Execution, Identity, MutationResult, ObserveRequest, OpProfile, Reconciled, Target,
    TargetError, TargetFuture,
};
use serde_json::{Value, json};

use crate::results::{AttackClass, FalseEscalation};
use crate::rng::Rng;

/// The per-field policy of the evaluation.
pub const POLICY: &str = r#"
@id("registered-agents-may-propose")
permit(principal, action == SEB::Action::"propose", resource);
@id("replicas-grow-by-at-most-4")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context has change && context.change has replicas && context.change.replicas.delta > 4 };
@id("desired-capacity-grows-by-at-most-4")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context has change && context.change has desired_capacity && context.change.desired_capacity.delta > 4 };
@id("max-size-grows-by-at-most-8")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context has change && context.change has max_size && context.change.max_size.delta > 8 };
@id("at-most-3-ingress-rules-at-once")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context has change && context.change has ingress && context.change.ingress.added > 3 };
"#;

/// The operations with a numeric or additive parameter that the class covers.
pub const OPS: [&str; 7] = [
    "kubernetes scale (replicas)",
    "kubernetes merge_patch (spec.replicas)",
    "kubernetes json_patch (/spec/replicas)",
    "kubernetes merge_patch (NetworkPolicy spec.ingress)",
    "aws ec2:AuthorizeSecurityGroupIngress (ingress)",
    "aws autoscaling:SetDesiredCapacity (desired_capacity)",
    "aws autoscaling:UpdateAutoScalingGroup (max_size)",
];

/// Live state in memory: target key → object; projections at the requested pointers.
#[derive(Default)]
struct Live {
    objects: Mutex<BTreeMap<String, Value>>,
    platform: Option<Platform>,
}

fn key_of(target: &Value) -> String {
    target.get("arn").or_else(|| target.get("name")).map(Value::to_string).unwrap_or_default()
}

impl Live {
    fn kube() -> Self {
        Self { platform: Some(Platform::Kubernetes), ..Self::default() }
    }
    fn aws() -> Self {
        Self { platform: Some(Platform::Aws), ..Self::default() }
    }
    fn put(&self, target: &Value, v: Value) {
        if let Ok(mut m) = self.objects.lock() {
            m.insert(key_of(target), v);
        }
    }
    fn get(&self, target: &Value) -> Value {
        self.objects
            .lock()
            .ok()
            .and_then(|m| m.get(&key_of(target)).cloned())
            .unwrap_or(Value::Null)
    }
}

impl ScopeCheck for Live {
    fn check_scope(&self, _c: &Contract) -> Result<(), String> {
        Ok(())
    }
}

impl Target for Live {
    fn platform(&self) -> Platform {
        self.platform.unwrap_or(Platform::Test)
    }
    fn profile(&self, _op: &str) -> Result<OpProfile, TargetError> {
        Ok(OpProfile { precondition: None, irreversible: false })
    }
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        let obj = self.get(&req.target);
        Box::pin(async move {
            let projection = req
                .pointers
                .iter()
                .map(|p| (p.clone(), obj.pointer(p).cloned().unwrap_or(Value::Null)))
                .collect();
            Ok(Observation { projection, version: Some("1".into()) })
        })
    }
    fn mint<'a>(&'a self, _e: &'a Execution) -> TargetFuture<'a, Identity> {
        Box::pin(async { Err(TargetError::refused("observe-only")) })
    }
    fn mutate<'a>(
        &'a self,
        _e: &'a Execution,
        _i: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        Box::pin(async { Err(TargetError::refused("observe-only")) })
    }
    fn retire<'a>(&'a self, _e: &'a Execution, _i: Identity) -> TargetFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn reconcile<'a>(&'a self, _e: &'a Execution) -> TargetFuture<'a, Reconciled> {
        Box::pin(async { Ok(Reconciled::Uncertain) })
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

struct World {
    admission: Arc<Admission>,
    kube: Arc<Live>,
    aws: Arc<Live>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

const NOW_MS: u64 = 1_800_000_000_000;

async fn world(mode: &str) -> Result<World> {
    let dir = tempfile::tempdir()?;
    write_key(dir.path(), "issuer.seed", &key(1))?;
    std::fs::write(dir.path().join("policy.cedar"), POLICY)?;
    let mut t = format!(
        "[admission]\nissuer_key_file = \"issuer.seed\"\npolicy_file = \"policy.cedar\"\nnet_effect = \"{mode}\"\n\
         [[admission.agents]]\nname = \"agent\"\npublic_keys = [\"{}\"]\n",
        key(2).public_key().to_base64()
    );
    for (name, role, k) in [
        ("validator-0", "validator", key(10)),
        ("validator-1", "validator", key(11)),
        ("human-0", "human", key(20)),
    ] {
        t += &format!(
            "[[admission.approvers]]\nname = \"{name}\"\nrole = \"{role}\"\npublic_key = \"{}\"\n",
            k.public_key().to_base64()
        );
    }
    let cfg = AdmissionConfig::from_toml_str(&t, dir.path()).map_err(|e| anyhow!("{e}"))?;
    let store = Arc::new(SqliteStore::open_in_memory().map_err(|e| anyhow!("{e}"))?);
    let kube = Arc::new(Live::kube());
    let aws = Arc::new(Live::aws());
    let mut platforms = Platforms::default();
    platforms.insert_parts(Arc::new(KubeProfile), kube.clone());
    platforms.insert_parts(Arc::new(AwsPlatform), aws.clone());
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let admission =
        Admission::open(&cfg, store, platforms, clock.clone()).await.map_err(|e| anyhow!("{e}"))?;
    Ok(World { admission, kube, aws, clock, _dir: dir })
}

fn write_key(dir: &Path, name: &str, k: &SigningKey) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, base64::engine::general_purpose::STANDARD.encode(k.seed().as_ref()))?;
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// One step: an op, its params, and how the live object looks after it.
#[derive(Clone)]
struct Step {
    op: String,
    params: Value,
    after: Value,
}

/// A generated case: the target, its initial state, the single change and its split.
struct Case {
    platform: Platform,
    target: Value,
    initial: Value,
    single: Step,
    steps: Vec<Step>,
    variant: String,
}

/// Split `total` into parts of 1..=`max` (random composition).
fn parts(rng: &mut Rng, total: i64, max: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let p =
            (1 + i64::try_from(rng.below(u64::try_from(max).unwrap_or(1))).unwrap_or(0)).min(left);
        out.push(p);
        left -= p;
    }
    out
}

fn kube_target(kind: &str, api: &str, name: &str) -> Value {
    json!({"cluster": "eval", "api_version": api, "kind": kind, "namespace": "prod", "name": name})
}

fn deployment(replicas: i64) -> Value {
    json!({"metadata": {"name": "web", "namespace": "prod"}, "spec": {"replicas": replicas}})
}

fn sg_target(i: usize, salt: u64) -> Value {
    json!({"account": "123456789012", "region": "us-east-1", "service": "ec2",
           "arn": format!("arn:aws:ec2:us-east-1:123456789012:security-group/sg-{:x}{:x}", i + 1, salt & 0xffff)})
}

fn asg_target(i: usize, salt: u64) -> Value {
    json!({"account": "123456789012", "region": "us-east-1", "service": "autoscaling",
           "arn": format!("arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0d2f1a2b-1111-2222-3333-444455556666:autoScalingGroupName/asg-{i}-{salt}")})
}

fn rule(cidr: &str, from: i64, to: i64) -> Value {
    json!({"protocol": "tcp", "from_port": from, "to_port": to, "cidr": cidr})
}

/// Generate case `i` of op `op`.
#[allow(clippy::too_many_lines)]
fn generate(op: usize, rng: &mut Rng, i: usize) -> Case {
    let salt = rng.below(1 << 30);
    let name = format!("obj-{op}-{i}-{salt}");
    match op {
        // Replicas by scale, merge_patch or json_patch: +5..=40 as steps of at most +4.
        0..=2 => {
            let start = i64::try_from(rng.below(20)).unwrap_or(0) + 1;
            let total = 5 + i64::try_from(rng.below(36)).unwrap_or(0);
            let kind_op =
                ["scale", "merge_patch", "json_patch"].get(op).copied().unwrap_or("scale");
            let params = |r: i64| match kind_op {
                "scale" => json!({"replicas": r}),
                "merge_patch" => json!({"spec": {"replicas": r}}),
                _ => json!([{"op": "replace", "path": "/spec/replicas", "value": r}]),
            };
            let mut cur = start;
            let mut steps = Vec::new();
            for p in parts(rng, total, 4) {
                cur += p;
                steps.push(Step {
                    op: kind_op.into(),
                    params: params(cur),
                    after: deployment(cur),
                });
            }
            Case {
                platform: Platform::Kubernetes,
                target: kube_target("Deployment", "apps/v1", &name),
                initial: deployment(start),
                single: Step {
                    op: kind_op.into(),
                    params: params(start + total),
                    after: deployment(start + total),
                },
                variant: format!("{kind_op} +{total} in {} steps", steps.len()),
                steps,
            }
        }
        // NetworkPolicy ingress rules by merge_patch (the full list each time): 4..=12 new
        // rules, at most 3 per step.
        3 => {
            let n = 4 + rng.below(9);
            let rules: Vec<Value> = (0..n)
                .map(|k| json!({"from": [{"ipBlock": {"cidr": format!("10.{}.{}.0/24", k, salt % 200)}}], "ports": [{"port": 8000 + k}]}))
                .collect();
            let obj = |r: &[Value]| json!({"spec": {"podSelector": {}, "ingress": r}});
            let mut steps = Vec::new();
            let mut have: Vec<Value> = Vec::new();
            for p in parts(rng, i64::try_from(n).unwrap_or(4), 3) {
                for _ in 0..p {
                    if let Some(r) = rules.get(have.len()) {
                        have.push(r.clone());
                    }
                }
                steps.push(Step {
                    op: "merge_patch".into(),
                    params: json!({"spec": {"ingress": have}}),
                    after: obj(&have),
                });
            }
            Case {
                platform: Platform::Kubernetes,
                target: kube_target("NetworkPolicy", "networking.k8s.io/v1", &name),
                initial: obj(&[]),
                single: Step {
                    op: "merge_patch".into(),
                    params: json!({"spec": {"ingress": rules}}),
                    after: obj(&rules),
                },
                variant: format!("{n} ingress rules in {} steps", steps.len()),
                steps,
            }
        }
        // Security-group ingress: the world split in CIDR halves/quarters/…, all ports split
        // in port ranges, or 4..=12 narrow rules at most 3 per step.
        4 => {
            let target = sg_target(i, salt);
            let obj = |r: &[Value]| json!({"ingress": r});
            let op_name = "ec2:AuthorizeSecurityGroupIngress";
            let (single_rules, pieces, variant): (Vec<Value>, Vec<Vec<Value>>, String) = match rng
                .below(3)
            {
                0 => {
                    let m = 1 + rng.below(3); // 2, 4 or 8 pieces
                    let port = i64::try_from(1 + rng.below(65000)).unwrap_or(443);
                    let n = 1u32 << m;
                    let size = 256 / n;
                    let pieces = (0..n)
                        .map(|k| vec![rule(&format!("{}.0.0.0/{}", k * size, m), port, port)])
                        .collect();
                    (vec![rule("0.0.0.0/0", port, port)], pieces, format!("0.0.0.0/0 as {n} CIDRs"))
                }
                1 => {
                    let n = 2 + rng.below(4);
                    let width = 65536 / i64::try_from(n).unwrap_or(2);
                    let cidr = format!("10.{}.0.0/16", salt % 250);
                    let pieces = (0..n)
                        .map(|k| {
                            let k = i64::try_from(k).unwrap_or(0);
                            let to = if k == i64::try_from(n).unwrap_or(2) - 1 {
                                65535
                            } else {
                                (k + 1) * width - 1
                            };
                            vec![rule(&cidr, k * width, to)]
                        })
                        .collect();
                    (vec![rule(&cidr, 0, 65535)], pieces, format!("all ports as {n} ranges"))
                }
                _ => {
                    let n = 4 + rng.below(9);
                    let all: Vec<Value> = (0..n)
                        .map(|k| {
                            rule(
                                &format!("10.{}.{}.{}/32", salt % 250, k, k),
                                8000 + i64::try_from(k).unwrap_or(0),
                                8000 + i64::try_from(k).unwrap_or(0),
                            )
                        })
                        .collect();
                    let mut pieces = Vec::new();
                    let mut at = 0usize;
                    for p in parts(rng, i64::try_from(n).unwrap_or(4), 3) {
                        let p = usize::try_from(p).unwrap_or(1);
                        pieces.push(all.get(at..at + p).map(<[Value]>::to_vec).unwrap_or_default());
                        at += p;
                    }
                    (all, pieces, format!("{n} narrow rules"))
                }
            };
            let mut have: Vec<Value> = Vec::new();
            let mut steps = Vec::new();
            for p in &pieces {
                have.extend(p.iter().cloned());
                steps.push(Step {
                    op: op_name.into(),
                    params: json!({"rules": p}),
                    after: obj(&have),
                });
            }
            Case {
                platform: Platform::Aws,
                target,
                initial: obj(&[]),
                single: Step {
                    op: op_name.into(),
                    params: json!({"rules": single_rules}),
                    after: obj(&single_rules),
                },
                variant: format!("{variant} in {} steps", steps.len()),
                steps,
            }
        }
        // Auto Scaling: desired capacity +5..=40 by +4 at most, or max size +9..=60 by +8.
        _ => {
            let update = op == 6;
            let (field, bound) = if update { ("max_size", 8) } else { ("desired_capacity", 4) };
            let op_name = if update {
                "autoscaling:UpdateAutoScalingGroup"
            } else {
                "autoscaling:SetDesiredCapacity"
            };
            let start = i64::try_from(rng.below(10)).unwrap_or(0) + 1;
            let total = bound + 1 + i64::try_from(rng.below(36)).unwrap_or(0);
            let obj = |v: i64| {
                if update {
                    json!({"desired_capacity": start, "min_size": 0, "max_size": v})
                } else {
                    json!({"desired_capacity": v, "min_size": 0, "max_size": 1000})
                }
            };
            let mut cur = start;
            let mut steps = Vec::new();
            for p in parts(rng, total, bound) {
                cur += p;
                steps.push(Step {
                    op: op_name.into(),
                    params: json!({field: cur}),
                    after: obj(cur),
                });
            }
            Case {
                platform: Platform::Aws,
                target: asg_target(i, salt),
                initial: obj(start),
                single: Step {
                    op: op_name.into(),
                    params: json!({field: start + total}),
                    after: obj(start + total),
                },
                variant: format!("{field} +{total} in {} steps", steps.len()),
                steps,
            }
        }
    }
}

impl World {
    fn live(&self, p: Platform) -> &Live {
        if p == Platform::Aws { &self.aws } else { &self.kube }
    }

    async fn submit(
        &self,
        id: &str,
        platform: Platform,
        target: &Value,
        s: &Step,
    ) -> Result<ProposalView> {
        let p = Proposal {
            proposal_id: id.into(),
            agent: "agent".into(),
            platform,
            op: s.op.clone(),
            target: target.clone(),
            params: s.params.clone(),
            constraints: vec![],
            rationale: "eval".into(),
            at_ms: seb_admission::clock::Clock::now_ms(self.clock.as_ref())
                .map_err(|e| anyhow!("{e}"))?,
        };
        let env = seb_admission::client::sign_proposal(&p, &key(2)).map_err(|e| anyhow!("{e}"))?;
        self.clock.advance(10);
        self.admission
            .submit(&json::canonical(&env).map_err(|e| anyhow!("{e}"))?)
            .await
            .map_err(|e| anyhow!("submit {id}: {e}"))
    }

    async fn approve(&self, v: &ProposalView) -> Result<ProposalView> {
        let mut last = v.clone();
        for (name, k) in [("validator-0", key(10)), ("validator-1", key(11)), ("human-0", key(20))]
        {
            if last.status != ProposalStatus::Pending {
                break;
            }
            let a = Approval {
                proposal_id: v.proposal_id.clone(),
                contract_digest: last.contract_digest.ok_or_else(|| anyhow!("no contract"))?,
                evidence_digest: last
                    .evidence
                    .as_ref()
                    .ok_or_else(|| anyhow!("no evidence"))?
                    .digest,
                decision: ApprovalDecision::Approve,
                approver: name.into(),
                comment: String::new(),
                at_ms: seb_admission::clock::Clock::now_ms(self.clock.as_ref())
                    .map_err(|e| anyhow!("{e}"))?,
            };
            let env = seb_admission::client::sign_approval(&a, &k).map_err(|e| anyhow!("{e}"))?;
            last = self
                .admission
                .approve(&v.proposal_id, &json::canonical(&env).map_err(|e| anyhow!("{e}"))?)
                .await
                .map_err(|e| anyhow!("approve: {e}"))?;
        }
        Ok(last)
    }
}

fn at_least(a: Requirement, b: Requirement) -> bool {
    a.path >= b.path && a.validators >= b.validators && a.humans >= b.humans
}

/// Run `n` sequences of op `op` (index into [`OPS`]) against net-effect `enforce`.
pub async fn run_op(op: usize, n: usize, seed: u64) -> Result<AttackClass> {
    run_op_with(op, n, seed, "enforce").await
}

/// [`run_op`] with the split sequences submitted under net-effect `mode` (`shadow` shows
/// the escapes the class detects when nothing enforces: the class is not vacuous).
pub async fn run_op_with(op: usize, n: usize, seed: u64, mode: &str) -> Result<AttackClass> {
    let name = OPS.get(op).ok_or_else(|| anyhow!("no split op {op}"))?;
    let enforce = world("enforce").await?;
    let shadow = world("shadow").await?;
    let splits = world(mode).await?;
    let mut rng = Rng::new(seed);
    let mut out = AttackClass {
        class: format!("split proposal: {name}"),
        from_paper: false,
        ..AttackClass::default()
    };
    let mut fe = FalseEscalation::default();
    for i in 0..n {
        let c = generate(op, &mut rng, i);
        // The single change, alone on a fresh object: its requirement (enforce) must be
        // stronger than the policy path, and equal to shadow's (no false escalation).
        let mut singles = vec![c.single.clone()];
        singles.extend(c.steps.iter().cloned());
        let mut single_req = None;
        for (k, s) in singles.iter().enumerate() {
            let target = fresh_target(&c.target, &format!("{i}-{k}"));
            for w in [&enforce, &shadow] {
                w.live(c.platform).put(&target, c.initial.clone());
            }
            let e = enforce.submit(&format!("single-{op}-{i}-{k}"), c.platform, &target, s).await?;
            let sh = shadow.submit(&format!("single-{op}-{i}-{k}"), c.platform, &target, s).await?;
            let (Some(re), Some(rs)) = (e.requirement, sh.requirement) else {
                bail!(
                    "case {i}: a single change was not evaluated: {:?} / {:?}",
                    e.reason,
                    sh.reason
                );
            };
            fe.singles += 1;
            if !at_least(rs, re) {
                fe.escalated += 1;
            }
            if k == 0 {
                single_req = Some(re);
            }
        }
        let single_req = single_req.ok_or_else(|| anyhow!("no single requirement"))?;
        if single_req.path == seb_core::types::CertPath::Policy {
            bail!("case {i} ({}): the single change is not escalated: generator bug", c.variant);
        }
        // The split sequence on its own object.
        let live = splits.live(c.platform);
        live.put(&c.target, c.initial.clone());
        let mut caught = None;
        for (k, s) in c.steps.iter().enumerate() {
            let v = splits.submit(&format!("split-{op}-{i}-{k}"), c.platform, &c.target, s).await?;
            let req =
                v.requirement.ok_or_else(|| anyhow!("step {k} not evaluated: {:?}", v.reason))?;
            if at_least(req, single_req) {
                caught = Some(format!("caught at step {} of {}", k + 1, c.steps.len()));
                break;
            }
            let v = if v.status == ProposalStatus::Pending { splits.approve(&v).await? } else { v };
            if v.status != ProposalStatus::Certified {
                caught = Some(format!("step {} denied: {:?}", k + 1, v.reason));
                break;
            }
            live.put(&c.target, s.after.clone());
        }
        out.cases += 1;
        *out.variants.entry(variant_kind(&c.variant)).or_default() += 1;
        match caught {
            Some(how) => {
                out.rejected += 1;
                let key = if how.starts_with("caught") {
                    "net effect: single change's path"
                } else {
                    "denied"
                };
                *out.failed_checks.entry(key.into()).or_default() += 1;
            }
            None => {
                out.escaped += 1;
                if out.escapes.len() < 20 {
                    out.escapes.push(format!(
                        "case {i} ({}): every step certified below {:?}",
                        c.variant, single_req
                    ));
                }
            }
        }
    }
    // The baseline: a lone small step is certified on the policy path (the class does not
    // reject everything).
    let c = generate(op, &mut rng, n + 1);
    let target = fresh_target(&c.target, "baseline");
    enforce.live(c.platform).put(&target, c.initial.clone());
    let first = c.steps.first().ok_or_else(|| anyhow!("empty split"))?;
    let v = enforce.submit(&format!("baseline-{op}"), c.platform, &target, first).await?;
    out.baseline_admitted =
        v.status == ProposalStatus::Certified || v.status == ProposalStatus::Pending;
    fe.rate = if fe.singles == 0 { 0.0 } else { fe.escalated as f64 / fe.singles as f64 };
    out.false_escalation = Some(fe);
    Ok(out)
}

/// The same target with another object name (a fresh window).
fn fresh_target(t: &Value, suffix: &str) -> Value {
    let mut t = t.clone();
    if let Some(a) = t.get("arn").and_then(Value::as_str).map(str::to_owned) {
        let new = if a.contains("security-group/sg-") {
            // sg ids are hex: append hex digits of a hash of the suffix.
            let h = suffix.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            format!("{a}{h:x}")
        } else {
            format!("{a}-{suffix}")
        };
        if let Some(o) = t.as_object_mut() {
            o.insert("arn".into(), json!(new));
        }
    } else if let Some(n) = t.get("name").and_then(Value::as_str).map(str::to_owned)
        && let Some(o) = t.as_object_mut()
    {
        o.insert("name".into(), json!(format!("{n}-{suffix}")));
    }
    t
}

/// A case's variant without its numbers (`scale +17 in 5 steps` → `scale +N`).
fn variant_kind(v: &str) -> String {
    v.split(" in ")
        .next()
        .unwrap_or("")
        .split(' ')
        .map(|w| {
            let digits = w.trim_start_matches('+');
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                if w.starts_with('+') { "+N" } else { "N" }
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
