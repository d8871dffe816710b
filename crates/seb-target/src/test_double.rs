//! A file-backed, in-process TEST DOUBLE of a platform, for the broker's own tests and
//! benchmarks. It is compiled only with the `test-double` feature and is never a product
//! target.
//!
//! State lives in one JSON file so that a test can kill the broker process, restart it, and
//! see exactly which mutations happened (the `mutations` log counts every applied call, so a
//! duplicate execution is visible). Objects are `{"value": <json>, "version": <n>}` keyed by
//! `target.name`. Operations: `set` (replace the object's value with `params.value`, pinned
//! by the observed version) and `delete`. Minted identities are random tokens scoped to one
//! (op, name); `mutate` refuses any other use, and `retire` removes the token. As a profile
//! it marks `params.value.secret` (and `secret` in the evidence) sensitive, and a `delete` of
//! an absent object inapplicable, so admission's handling of both can be tested.
//!
//! Tests steer it through [`TestTarget::insecure_direct_write`] (a concurrent out-of-band
//! change) and the `SEB_TEST_TARGET_FAIL=observe|mint|mutate` environment variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{CheckKind, Contract, Platform};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    ConsequenceFactors, Execution, Identity, MutationResult, MutationStatus, ObserveRequest,
    OpProfile, PlatformProfile, Reconciled, Sensitive, Target, TargetError, TargetFuture,
};

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    objects: BTreeMap<String, Object>,
    tokens: BTreeMap<String, Scope>,
    mutations: Vec<MutationLog>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Object {
    value: Value,
    version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scope {
    op: String,
    name: String,
    /// The execution it was minted for (to retire orphans after a crash).
    #[serde(default)]
    cid: String,
    #[serde(default)]
    nonce: String,
}

/// One applied mutation, as logged by the double.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutationLog {
    pub cid: String,
    pub nonce: String,
    pub op: String,
    pub name: String,
}

/// The test double. Cheap to clone the path; all state is in the file.
#[derive(Debug)]
pub struct TestTarget {
    /// `None`: state kept in memory only (benchmarks).
    path: Option<PathBuf>,
    lock: Mutex<()>,
    memory: Mutex<State>,
    fail: Mutex<Vec<String>>,
}

impl TestTarget {
    /// Use (or create) the state file at `path`.
    pub fn open(path: &Path) -> Result<Self, TargetError> {
        let t = Self {
            path: Some(path.to_owned()),
            lock: Mutex::new(()),
            memory: Mutex::new(State::default()),
            fail: Mutex::new(Vec::new()),
        };
        if !path.exists() {
            t.save(&State::default())?;
        }
        Ok(t)
    }

    /// A double whose state lives in memory only (for benchmarks).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            lock: Mutex::new(()),
            memory: Mutex::new(State::default()),
            fail: Mutex::new(Vec::new()),
        }
    }

    /// Make the named steps (`observe`, `mint`, `mutate`, `retire`, `retire_orphans`) fail
    /// from now on (in addition to those named in `SEB_TEST_TARGET_FAIL`).
    pub fn set_fail(&self, steps: &[&str]) {
        if let Ok(mut f) = self.fail.lock() {
            *f = steps.iter().map(|s| (*s).to_owned()).collect();
        }
    }

    fn fail_point(&self, step: &str) -> bool {
        let env = std::env::var("SEB_TEST_TARGET_FAIL")
            .map(|v| v.split(',').any(|s| s == step))
            .unwrap_or(false);
        env || self.fail.lock().map(|f| f.iter().any(|s| s == step)).unwrap_or(true)
    }

    fn load(&self) -> Result<State, TargetError> {
        let Some(path) = &self.path else {
            return Err(TargetError::unavailable("in-memory double has no file"));
        };
        let bytes = std::fs::read(path)
            .map_err(|e| TargetError::unavailable_from("reading the state file", e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TargetError::unavailable_from("decoding the state file", e))
    }

    fn save(&self, s: &State) -> Result<(), TargetError> {
        let Some(path) = &self.path else {
            return Err(TargetError::unavailable("in-memory double has no file"));
        };
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(s)
            .map_err(|e| TargetError::unavailable_from("encoding the state", e))?;
        std::fs::write(&tmp, bytes)
            .map_err(|e| TargetError::unavailable_from("writing the state file", e))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| TargetError::unavailable_from("replacing the state file", e))
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, TargetError> {
        if self.path.is_none() {
            let m = self.memory.lock().map_err(|_| TargetError::unavailable("lock poisoned"))?;
            return Ok(f(&m));
        }
        Ok(f(&self.load()?))
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, TargetError>,
    ) -> Result<T, TargetError> {
        if self.path.is_none() {
            let mut m =
                self.memory.lock().map_err(|_| TargetError::unavailable("lock poisoned"))?;
            return f(&mut m);
        }
        let _g = self.lock.lock().map_err(|_| TargetError::unavailable("lock poisoned"))?;
        let mut s = self.load()?;
        let out = f(&mut s)?;
        self.save(&s)?;
        Ok(out)
    }

    /// Out-of-band write that bypasses the broker (simulates drift or a racing change).
    pub fn insecure_direct_write(&self, name: &str, value: Value) -> Result<(), TargetError> {
        self.with_state(|s| {
            let version = s.objects.get(name).map_or(1, |o| o.version + 1);
            s.objects.insert(name.to_owned(), Object { value, version });
            Ok(())
        })
    }

    /// The current value of an object.
    pub fn get(&self, name: &str) -> Result<Option<Value>, TargetError> {
        self.read(|s| s.objects.get(name).map(|o| o.value.clone()))
    }

    /// Every applied mutation so far.
    pub fn mutations(&self) -> Result<Vec<MutationLog>, TargetError> {
        self.read(|s| s.mutations.clone())
    }

    /// Tokens still live (not retired).
    pub fn live_tokens(&self) -> Result<usize, TargetError> {
        self.read(|s| s.tokens.len())
    }
}

fn name_of(target: &Value) -> Result<String, TargetError> {
    target
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TargetError::invalid("target has no string `name`"))
}

fn project(value: Option<&Value>, pointers: &[String]) -> BTreeMap<String, Value> {
    pointers
        .iter()
        .filter_map(|p| value.and_then(|v| v.pointer(p)).map(|v| (p.clone(), v.clone())))
        .collect()
}

impl ScopeCheck for TestTarget {
    /// Every constraint is enforceable except `cidr_within`, which the double has no
    /// enforcement point for (so the `scope` check has something to refuse).
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        match contract.constraints.iter().find(|c| c.check == CheckKind::CidrWithin) {
            Some(c) => Err(format!("no enforcement point for `cidr_within` on `{}`", c.path)),
            None => Ok(()),
        }
    }
}

impl Target for TestTarget {
    fn platform(&self) -> Platform {
        Platform::Test
    }

    fn profile(&self, op: &str) -> Result<OpProfile, TargetError> {
        match op {
            "set" => Ok(OpProfile { precondition: Some("version"), irreversible: false }),
            "delete" => Ok(OpProfile { precondition: Some("version"), irreversible: true }),
            _ => Err(TargetError::invalid(format!("unknown op `{op}`"))),
        }
    }

    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        Box::pin(async move {
            if self.fail_point("observe") {
                return Err(TargetError::unavailable("injected observe failure"));
            }
            let name = name_of(&req.target)?;
            self.read(|s| {
                let obj = s.objects.get(&name);
                Observation {
                    projection: project(obj.map(|o| &o.value), &req.pointers),
                    version: obj.map(|o| o.version.to_string()),
                }
            })
        })
    }

    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity> {
        Box::pin(async move {
            if self.fail_point("mint") {
                return Err(TargetError::unavailable("injected mint failure"));
            }
            let name = name_of(&exec.target)?;
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw)
                .map_err(|e| TargetError::unavailable(format!("getrandom: {e}")))?;
            let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let id = format!("test-exec-{}", token.get(..8).unwrap_or_default());
            self.with_state(|s| {
                s.tokens.insert(
                    token.clone(),
                    Scope {
                        op: exec.op.clone(),
                        name: name.clone(),
                        cid: exec.cid.clone(),
                        nonce: exec.nonce.clone(),
                    },
                );
                Ok(())
            })?;
            Ok(Identity {
                name: id,
                secret: zeroize::Zeroizing::new(token.clone()),
                expires_at_ms: u64::MAX,
                handle: json!({ "token_id": token.get(..8).unwrap_or_default() }),
            })
        })
    }

    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        Box::pin(async move {
            if self.fail_point("mutate") {
                return Err(TargetError::unavailable("injected mutate failure"));
            }
            let name = name_of(&exec.target)?;
            self.with_state(|s| {
                let refuse = |why: &str| MutationResult {
                    status: MutationStatus::Failed,
                    target_request_id: None,
                    result: None,
                    post_state: None,
                    error: Some(why.to_owned()),
                };
                match s.tokens.get(identity.secret.as_str()) {
                    Some(scope) if scope.op == exec.op && scope.name == name => {}
                    Some(_) => return Ok(refuse("403: token not scoped to this operation")),
                    None => return Ok(refuse("401: unknown or retired token")),
                }
                let current = s.objects.get(&name).map(|o| o.version.to_string());
                if current != exec.observed_version {
                    return Ok(MutationResult {
                        status: MutationStatus::Conflict,
                        target_request_id: None,
                        result: None,
                        post_state: None,
                        error: Some("409: version changed since the drift check".into()),
                    });
                }
                let next = s.objects.get(&name).map_or(1, |o| o.version + 1);
                match exec.op.as_str() {
                    "set" => {
                        let value = exec.params.get("value").cloned().unwrap_or(Value::Null);
                        s.objects.insert(name.clone(), Object { value, version: next });
                    }
                    "delete" => {
                        s.objects.remove(&name);
                    }
                    other => return Ok(refuse(&format!("400: unknown op `{other}`"))),
                }
                s.mutations.push(MutationLog {
                    cid: exec.cid.clone(),
                    nonce: exec.nonce.clone(),
                    op: exec.op.clone(),
                    name: name.clone(),
                });
                let post = s.objects.get(&name).map(|o| o.value.clone());
                let pointers: Vec<String> = exec.evidence.keys().cloned().collect();
                Ok(MutationResult {
                    status: MutationStatus::Applied,
                    target_request_id: Some(format!("test-{}", s.mutations.len())),
                    result: Some(json!({ "version": next })),
                    post_state: Some(project(post.as_ref(), &pointers)),
                    error: None,
                })
            })
        })
    }

    fn retire<'a>(&'a self, _exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()> {
        Box::pin(async move {
            if self.fail_point("retire") {
                return Err(TargetError::unavailable("injected retire failure"));
            }
            self.with_state(|s| {
                s.tokens.remove(identity.secret.as_str());
                Ok(())
            })
        })
    }

    fn retire_orphans<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, ()> {
        Box::pin(async move {
            if self.fail_point("retire_orphans") {
                return Err(TargetError::unavailable("injected retire_orphans failure"));
            }
            self.with_state(|s| {
                s.tokens.retain(|_, scope| scope.cid != exec.cid || scope.nonce != exec.nonce);
                Ok(())
            })
        })
    }

    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        Box::pin(async move {
            let name = name_of(&exec.target)?;
            let obj = self.read(|s| s.objects.get(&name).cloned())?;
            let obj = obj.as_ref();
            let expected_applied = match exec.op.as_str() {
                "set" => obj.map(|o| &o.value) == exec.params.get("value"),
                "delete" => obj.is_none(),
                _ => false,
            };
            let pointers: Vec<String> = exec.evidence.keys().cloned().collect();
            let unchanged = project(obj.map(|o| &o.value), &pointers) == exec.evidence
                && obj.map(|o| o.version.to_string()) == exec.observed_version;
            Ok(if expected_applied && !unchanged {
                Reconciled::Applied
            } else if unchanged && !expected_applied {
                Reconciled::NotApplied
            } else {
                Reconciled::Uncertain
            })
        })
    }
}

impl PlatformProfile for TestTarget {
    fn platform(&self) -> Platform {
        Platform::Test
    }

    fn compile(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<(Value, Value), TargetError> {
        self.profile(op)?;
        let name = name_of(target)?;
        if op == "set" && params.get("value").is_none() {
            return Err(TargetError::invalid("`set` needs params.value"));
        }
        Ok((json!({ "name": name }), params.clone()))
    }

    fn default_pointers(&self, _op: &str, _target: &Value, _params: &Value) -> Vec<String> {
        vec![String::new()]
    }

    fn consequence(&self, op: &str, _target: &Value, params: &Value) -> ConsequenceFactors {
        let risk = params.get("risk").and_then(Value::as_f64).unwrap_or(0.1).clamp(0.0, 1.0);
        ConsequenceFactors {
            blast_radius: risk,
            privilege_expansion: 0.0,
            data_sensitivity: risk,
            irreversibility: if op == "delete" { 1.0 } else { 0.0 },
            uncertainty: 0.0,
            reasons: vec![format!("test double: params.risk = {risk}")],
        }
    }

    fn sensitive(&self, op: &str, _target: &Value) -> Sensitive {
        match op {
            "set" => Sensitive { params: &["/value/secret"], evidence: &[("", "/secret")] },
            _ => Sensitive::NONE,
        }
    }

    /// `set` creates or replaces; `delete` needs the object.
    fn applicable(&self, op: &str, observed: &Observation) -> Result<(), String> {
        if op == "delete" && observed.version.is_none() {
            return Err("`delete` needs an object that observation found absent".into());
        }
        Ok(())
    }

    /// Projected field `value`: numeric when the value is an integer, additive when it is
    /// an array; `delete` deletes (the value goes to absent).
    fn change(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
        evidence: &BTreeMap<String, Value>,
    ) -> crate::Change {
        let mut c = crate::Change::of(crate::net_effect::object_key(target));
        let before = evidence.get("").filter(|v| !v.is_null());
        match op {
            "delete" => {
                c.deletes = 1;
                if let Some(b) = before.and_then(Value::as_i64) {
                    c.fields.insert("value".into(), crate::FieldChange::numeric(Some(b), None));
                }
            }
            _ => {
                if before.is_none() {
                    c.creates = 1;
                }
                match params.get("value") {
                    Some(Value::Number(n)) if n.is_i64() => {
                        let b = before.and_then(Value::as_i64);
                        c.fields.insert("value".into(), crate::FieldChange::numeric(b, n.as_i64()));
                    }
                    Some(Value::Array(after)) => {
                        let b = before.and_then(Value::as_array).cloned().unwrap_or_default();
                        c.fields.insert("value".into(), crate::FieldChange::additive(&b, after));
                    }
                    _ => {}
                }
            }
        }
        c
    }

    /// A window holding a delete scores as a delete.
    fn net_consequence(&self, target: &Value, net: &crate::Change) -> Option<ConsequenceFactors> {
        (net.deletes > 0).then(|| self.consequence("delete", target, &json!({})))
    }
}
