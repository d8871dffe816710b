//! seb-kube against a real kube-apiserver v1.20.2 + etcd, started by seb-testinfra (built
//! from Debian's source package on first use). Never skipped: if the server cannot start,
//! every test here fails.
//!
//! The tests drive the target the way the broker pipeline does: admission observes and
//! records evidence; the broker observes again (drift, check 11), takes the resourceVersion
//! as the precondition, mints (14), mutates (15) and retires (16).

// Test harness code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, Config};
use seb_core::types::{CheckKind, Constraint, Contract, Platform, RiskLevel, Tolerance};
use seb_kube::deploy::{DeployConfig, Subject, WebhookEndpoint};
use seb_kube::model::{identity_name, service_account_username};
use seb_kube::webhook::{LiveExecutions, WebhookPolicy};
use seb_kube::{KubeTarget, KubeTargetConfig, ScopePolicy};
use seb_target::{Execution, MutationResult, MutationStatus, ObserveRequest, Reconciled, Target};
use seb_testinfra::kube::{KubeApiServer, unique_name};
use serde_json::{Value, json};

const CLUSTER: &str = "test";
const EXEC_NS: &str = "seb-exec";

// ---------------------------------------------------------------------------------------
// Harness

fn server() -> &'static KubeApiServer {
    match KubeApiServer::shared() {
        Ok(s) => s,
        Err(e) => panic!("kube-apiserver did not start: {e}"),
    }
}

fn ca_der(pem: &[u8]) -> Vec<Vec<u8>> {
    rustls_pemfile::certs(&mut &*pem).map(|c| c.unwrap().to_vec()).collect()
}

fn config(token: &str) -> Config {
    let s = server();
    let mut c = Config::new(s.url().parse().unwrap());
    c.root_cert = Some(ca_der(s.ca_pem()));
    c.auth_info.token = Some(token.to_owned().into());
    c.default_namespace = "default".into();
    c
}

fn client(token: &str) -> Client {
    seb_kube::install_crypto_provider();
    Client::try_from(config(token)).unwrap()
}

fn admin() -> Client {
    client(&server().tokens().admin)
}

/// Server-side apply as admin (what `seb deploy kubernetes --apply` does).
async fn apply_all(objs: &[Value]) -> Result<()> {
    seb_kube::deploy::apply(&admin(), objs).await.map_err(|e| anyhow!("{e}"))
}

/// A fresh protected namespace with the shipped RBAC (broker = user `broker`, agents = user
/// `agent`), and a target for it.
async fn setup(prefix: &str) -> Result<(String, KubeTarget)> {
    let ns = unique_name(prefix);
    let mut cfg = DeployConfig::new(
        vec![ns.clone()],
        String::from_utf8_lossy(server().ca_pem()).into_owned(),
    );
    cfg.broker = Subject::User("broker".into());
    cfg.exec_namespace = EXEC_NS.into();
    cfg.agents = vec![Subject::User("agent".into())];
    cfg.emit_admission_policy = false; // 1.20 has no ValidatingAdmissionPolicy
    let objs: Vec<Value> = seb_kube::deploy::objects(&cfg)
        .into_iter()
        .filter(|o| o["kind"] != "ValidatingWebhookConfiguration")
        .collect();
    apply_all(&objs).await?;
    let tcfg = KubeTargetConfig::new(CLUSTER, EXEC_NS, ScopePolicy::new([ns.clone()]));
    let target =
        KubeTarget::new(tcfg, config(&server().tokens().broker)).map_err(|e| anyhow!("{e}"))?;
    Ok((ns, target))
}

fn tref(ns: &str, api_version: &str, kind: &str, name: &str) -> Value {
    json!({"cluster": CLUSTER, "api_version": api_version, "kind": kind, "namespace": ns, "name": name})
}

fn deployment(name: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "registry.local/web:1"}]}}}})
}

/// Admission: compile with the profile, observe (default pointers unless given), build the
/// execution with the evidence.
async fn admit(
    target: &KubeTarget,
    op: &str,
    t: Value,
    params: Value,
    constraints: Vec<Constraint>,
    pointers: Option<Vec<String>>,
) -> Result<Execution> {
    use seb_target::PlatformProfile;
    let (t, params) = seb_kube::KubeProfile.compile(op, &t, &params).map_err(|e| anyhow!("{e}"))?;
    let pointers =
        pointers.unwrap_or_else(|| seb_kube::KubeProfile.default_pointers(op, &t, &params));
    let obs = target
        .observe(&ObserveRequest {
            op: op.into(),
            target: t.clone(),
            params: params.clone(),
            pointers,
        })
        .await?;
    let contract = Contract {
        platform: Platform::Kubernetes,
        op: op.into(),
        target: t.clone(),
        params: params.clone(),
        constraints,
        risk_level: RiskLevel::L2,
    };
    seb_core::pipeline::ScopeCheck::check_scope(target, &contract)
        .map_err(|e| anyhow!("scope: {e}"))?;
    Ok(Execution {
        cid: uuid::Uuid::new_v4().to_string(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        agent: "agent-a".into(),
        risk_level: RiskLevel::L2,
        platform: Platform::Kubernetes,
        op: op.into(),
        target: t,
        params,
        contract,
        evidence: obs.projection,
        observed_version: None,
        break_glass: false,
    })
}

/// The live executions the broker would serve the webhook from.
#[derive(Default)]
struct Registry(Mutex<HashMap<String, Execution>>);
impl LiveExecutions for Registry {
    fn by_identity(&self, u: &str) -> Option<Execution> {
        self.0.lock().unwrap().get(u).cloned()
    }
}

fn username(exec: &Execution) -> String {
    service_account_username(EXEC_NS, &identity_name(&exec.cid, &exec.nonce))
}

/// Broker checks 11, 14, 15, 16: drift (readmit on drift), precondition, mint, mutate, retire.
async fn execute(
    target: &KubeTarget,
    exec: &mut Execution,
    live: Option<&Registry>,
) -> Result<MutationResult> {
    let obs = target.observe(&exec.observe_request()).await?;
    seb_core::drift::compare(&exec.evidence, &BTreeMap::new(), &obs.projection)
        .map_err(|e| anyhow!("readmit: {e}"))?;
    exec.observed_version = obs.version;
    if let Some(l) = live {
        l.0.lock().unwrap().insert(username(exec), exec.clone());
    }
    let identity = target.mint(exec).await?;
    let res = target.mutate(exec, &identity).await;
    target.retire(exec, identity).await?;
    if let Some(l) = live {
        l.0.lock().unwrap().remove(&username(exec));
    }
    Ok(res?)
}

async fn get(ns: &str, api_version: &str, kind: &str, name: &str) -> Result<Option<Value>> {
    let admin = admin();
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    let (ar, _) = kube::discovery::pinned_kind(&admin, &GroupVersionKind::gvk(g, v, kind)).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(admin, ns, &ar);
    Ok(api.get_opt(name).await?.map(|o| serde_json::to_value(o).unwrap()))
}

async fn admin_create(ns: &str, obj: Value) -> Result<Value> {
    let admin = admin();
    let (g, v) = obj["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap_or(("", obj["apiVersion"].as_str().unwrap()));
    let (ar, _) = kube::discovery::pinned_kind(
        &admin,
        &GroupVersionKind::gvk(g, v, obj["kind"].as_str().unwrap()),
    )
    .await?;
    let api: Api<DynamicObject> = Api::namespaced_with(admin, ns, &ar);
    Ok(serde_json::to_value(
        api.create(&PostParams::default(), &serde_json::from_value(obj)?).await?,
    )?)
}

async fn admin_merge(
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
    patch: Value,
) -> Result<Value> {
    let admin = admin();
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    let (ar, _) = kube::discovery::pinned_kind(&admin, &GroupVersionKind::gvk(g, v, kind)).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(admin, ns, &ar);
    Ok(serde_json::to_value(api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await?)?)
}

fn status_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}

async fn identity_objects_exist(ns: &str, name: &str) -> Result<(bool, bool, bool)> {
    let admin = admin();
    let sa =
        Api::<ServiceAccount>::namespaced(admin.clone(), EXEC_NS).get_opt(name).await?.is_some();
    let role = Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), ns)
        .get_opt(name)
        .await?
        .is_some();
    let rb = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin, ns)
        .get_opt(name)
        .await?
        .is_some();
    Ok((sa, role, rb))
}

fn applied(r: &MutationResult) {
    assert_eq!(r.status, MutationStatus::Applied, "{:?}", r.error);
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_starts_in_seconds_and_has_the_test_users() -> Result<()> {
    let s = server();
    assert!(s.started_in() < Duration::from_secs(60), "start took {:?}", s.started_in());
    let v = admin().apiserver_version().await?;
    assert_eq!(v.git_version, "v1.20.2");
    let intruder = Api::<ConfigMap>::namespaced(client(&s.tokens().intruder), "default");
    assert_eq!(
        intruder.list(&Default::default()).await.map(|_| ()).map_err(|e| status_code(&e)),
        Err(403)
    );
    let bogus = Api::<ConfigMap>::namespaced(client("not-a-token"), "default");
    assert_eq!(
        bogus.list(&Default::default()).await.map(|_| ()).map_err(|e| status_code(&e)),
        Err(401)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_is_applied_visible_and_its_identity_retired() -> Result<()> {
    let (ns, target) = setup("ops").await?;
    let t = tref(&ns, "apps/v1", "Deployment", "web");

    let mut create =
        admit(&target, "create", t.clone(), deployment("web", 1), vec![], None).await?;
    assert_eq!(create.evidence[""], Value::Null, "absent before create");
    let r = execute(&target, &mut create, None).await?;
    applied(&r);
    assert_eq!(get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["spec"]["replicas"], 1);
    assert_eq!(
        identity_objects_exist(&ns, &identity_name(&create.cid, &create.nonce)).await?,
        (false, false, false),
        "retired"
    );

    let mut mp = admit(
        &target,
        "merge_patch",
        t.clone(),
        json!({"metadata": {"labels": {"tier": "front"}}}),
        vec![],
        None,
    )
    .await?;
    applied(&execute(&target, &mut mp, None).await?);
    assert_eq!(
        get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["metadata"]["labels"]["tier"],
        "front"
    );

    let mut scale =
        admit(&target, "scale", t.clone(), json!({"replicas": 3}), vec![], None).await?;
    let r = execute(&target, &mut scale, None).await?;
    applied(&r);
    assert_eq!(r.post_state.unwrap()[""]["spec"]["replicas"], 3);
    assert_eq!(get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["spec"]["replicas"], 3);

    let jp = json!([{"op": "add", "path": "/metadata/annotations", "value": {"note": "json"}}]);
    let mut json_patch = admit(&target, "json_patch", t.clone(), jp, vec![], None).await?;
    applied(&execute(&target, &mut json_patch, None).await?);
    assert_eq!(
        get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["metadata"]["annotations"]["note"],
        "json"
    );

    let mut replace =
        admit(&target, "replace", t.clone(), deployment("web", 2), vec![], None).await?;
    applied(&execute(&target, &mut replace, None).await?);
    let now = get(&ns, "apps/v1", "Deployment", "web").await?.unwrap();
    assert_eq!(now["spec"]["replicas"], 2);
    assert!(
        now["metadata"].get("annotations").is_none_or(|a| a.get("note").is_none()),
        "replace replaced"
    );

    let mut apply = admit(
        &target,
        "apply",
        t.clone(),
        json!({"metadata": {"labels": {"applied": "yes"}}}),
        vec![],
        None,
    )
    .await?;
    applied(&execute(&target, &mut apply, None).await?);
    assert_eq!(
        get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["metadata"]["labels"]["applied"],
        "yes"
    );

    let mut delete = admit(&target, "delete", t.clone(), json!({}), vec![], None).await?;
    applied(&execute(&target, &mut delete, None).await?);
    assert!(get(&ns, "apps/v1", "Deployment", "web").await?.is_none());
    for e in [&mp, &scale, &json_patch, &replace, &apply, &delete] {
        assert_eq!(
            identity_objects_exist(&ns, &identity_name(&e.cid, &e.nonce)).await?,
            (false, false, false)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_serves_any_namespaced_resource_and_refuses_the_rest() -> Result<()> {
    let (ns, target) = setup("disc").await?;
    // A kind nobody hard-coded: a NetworkPolicy.
    let np = json!({"spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}});
    let t = tref(&ns, "networking.k8s.io/v1", "NetworkPolicy", "deny-web");
    let mut create = admit(&target, "create", t.clone(), np, vec![], None).await?;
    applied(&execute(&target, &mut create, None).await?);
    let mut mp = admit(
        &target,
        "merge_patch",
        t,
        json!({"spec": {"podSelector": {"matchLabels": {"app": "api"}}}}),
        vec![],
        None,
    )
    .await?;
    applied(&execute(&target, &mut mp, None).await?);
    assert_eq!(
        get(&ns, "networking.k8s.io/v1", "NetworkPolicy", "deny-web").await?.unwrap()["spec"]["podSelector"]
            ["matchLabels"]["app"],
        "api"
    );
    // Cluster-scoped, unknown kinds, resources without scale, and other clusters are refused.
    let cr = ObserveRequest {
        op: "delete".into(),
        target: tref(&ns, "rbac.authorization.k8s.io/v1", "ClusterRole", "x"),
        params: json!({}),
        pointers: vec![],
    };
    assert!(target.observe(&cr).await.unwrap_err().to_string().contains("cluster-scoped"));
    let unknown = ObserveRequest {
        op: "delete".into(),
        target: tref(&ns, "example.com/v1", "Widget", "x"),
        params: json!({}),
        pointers: vec![],
    };
    assert!(target.observe(&unknown).await.is_err());
    let mut other = tref(&ns, "v1", "ConfigMap", "x");
    other["cluster"] = json!("elsewhere");
    assert!(
        target
            .observe(&ObserveRequest {
                op: "delete".into(),
                target: other,
                params: json!({}),
                pointers: vec![]
            })
            .await
            .is_err()
    );
    admin_create(&ns, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}})).await?;
    let mut scale_cm = admit(
        &target,
        "scale",
        tref(&ns, "v1", "ConfigMap", "cm"),
        json!({"replicas": 2}),
        vec![],
        None,
    )
    .await?;
    let err = execute(&target, &mut scale_cm, None).await.unwrap_err();
    assert!(err.to_string().contains("scale subresource"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_token_does_exactly_one_thing_and_dies_at_retire() -> Result<()> {
    let (ns, target) = setup("scope").await?;
    let (other_ns, _) = setup("scope-other").await?;
    for (n, name) in [(&ns, "cm-a"), (&ns, "cm-b"), (&other_ns, "cm-a")] {
        admin_create(n, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "0"}})).await?;
    }
    let mut exec = admit(
        &target,
        "merge_patch",
        tref(&ns, "v1", "ConfigMap", "cm-a"),
        json!({"data": {"k": "1"}}),
        vec![],
        None,
    )
    .await?;
    exec.observed_version = target.observe(&exec.observe_request()).await?.version;
    let identity = target.mint(&exec).await?;
    assert!(identity.name.starts_with("system:serviceaccount:seb-exec:seb-exec-"));
    assert!(
        !format!("{identity:?}").contains(identity.secret.as_str()),
        "the token is never printed"
    );
    let r = target.mutate(&exec, &identity).await?;
    applied(&r);
    let tok = client(&identity.secret);
    let cms = Api::<ConfigMap>::namespaced(tok.clone(), &ns);
    let code = |r: Result<(), kube::Error>| r.map_err(|e| status_code(&e));
    let patch = Patch::Merge(json!({"data": {"k": "2"}}));
    // Other verb, other object, other namespace, reads, token minting: all 403.
    assert_eq!(code(cms.delete("cm-a", &Default::default()).await.map(|_| ())), Err(403), "delete");
    assert_eq!(
        code(
            cms.replace(
                "cm-a",
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "cm-a"}}))?
            )
            .await
            .map(|_| ())
        ),
        Err(403),
        "update"
    );
    assert_eq!(
        code(cms.patch("cm-b", &PatchParams::default(), &patch).await.map(|_| ())),
        Err(403),
        "other object"
    );
    assert_eq!(
        code(
            cms.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "new"}}))?
            )
            .await
            .map(|_| ())
        ),
        Err(403),
        "create"
    );
    assert_eq!(code(cms.get("cm-a").await.map(|_| ())), Err(403), "get");
    let other = Api::<ConfigMap>::namespaced(tok.clone(), &other_ns);
    assert_eq!(
        code(other.patch("cm-a", &PatchParams::default(), &patch).await.map(|_| ())),
        Err(403),
        "other namespace"
    );
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(tok.clone(), &ns);
    assert_eq!(
        code(secrets.list(&Default::default()).await.map(|_| ())),
        Err(403),
        "other resource"
    );
    let sas = Api::<ServiceAccount>::namespaced(tok.clone(), EXEC_NS);
    let tr: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}}))?;
    let own = identity_name(&exec.cid, &exec.nonce);
    assert_eq!(
        code(sas.create_token_request(&own, &PostParams::default(), &tr).await.map(|_| ())),
        Err(403),
        "mint itself a token"
    );
    // Still allowed before retire (the grant is exactly this patch on this object)...
    assert!(cms.patch("cm-a", &PatchParams::default(), &patch).await.is_ok());
    // ...and refused on the very next call after retire.
    target.retire(&exec, identity).await?;
    assert_eq!(
        code(cms.patch("cm-a", &PatchParams::default(), &patch).await.map(|_| ())),
        Err(403),
        "after retire"
    );
    assert_eq!(identity_objects_exist(&ns, &own).await?, (false, false, false));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_before_execution_is_detected_within_tolerance_or_readmitted() -> Result<()> {
    let (ns, target) = setup("drift").await?;
    admin_create(&ns, deployment("web", 2)).await?;
    let t = tref(&ns, "apps/v1", "Deployment", "web");
    // Default projection: any change to the object is drift.
    let mut exec = admit(&target, "scale", t.clone(), json!({"replicas": 4}), vec![], None).await?;
    admin_merge(
        &ns,
        "apps/v1",
        "Deployment",
        "web",
        json!({"metadata": {"labels": {"drift": "yes"}}}),
    )
    .await?;
    let err = execute(&target, &mut exec, None).await.unwrap_err();
    assert!(err.to_string().starts_with("readmit: `` changed"), "{err}");
    assert_eq!(
        get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["spec"]["replicas"],
        2,
        "nothing was executed"
    );
    // Status and volatile metadata are not drift: the same projection, only resourceVersion moved.
    let before = target.observe(&exec.observe_request()).await?;
    let scale_api: Api<DynamicObject> = Api::namespaced_with(
        admin(),
        &ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    scale_api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 7}})),
        )
        .await?;
    let after = target.observe(&exec.observe_request()).await?;
    assert_eq!(before.projection, after.projection);
    assert_ne!(before.version, after.version);
    // Explicit pointers with a tolerance: replicas may move by one.
    let exec2 = admit(
        &target,
        "scale",
        t,
        json!({"replicas": 4}),
        vec![],
        Some(vec!["/spec/replicas".into()]),
    )
    .await?;
    assert_eq!(exec2.evidence, BTreeMap::from([("/spec/replicas".to_owned(), json!(2))]));
    admin_merge(&ns, "apps/v1", "Deployment", "web", json!({"spec": {"replicas": 3}})).await?;
    let live = target.observe(&exec2.observe_request()).await?;
    let tol = BTreeMap::from([("/spec/replicas".to_owned(), Tolerance::Abs(1.0))]);
    assert!(seb_core::drift::compare(&exec2.evidence, &tol, &live.projection).is_ok());
    assert!(seb_core::drift::compare(&exec2.evidence, &BTreeMap::new(), &live.projection).is_err());
    admin_merge(&ns, "apps/v1", "Deployment", "web", json!({"spec": {"replicas": 5}})).await?;
    let live = target.observe(&exec2.observe_request()).await?;
    assert!(seb_core::drift::compare(&exec2.evidence, &tol, &live.projection).is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_between_drift_check_and_mutation_is_a_conflict_and_nothing_changes() -> Result<()>
{
    let (ns, target) = setup("race").await?;
    let cases: Vec<(&str, Value)> = vec![
        ("replace", deployment("web", 5)),
        ("merge_patch", json!({"spec": {"replicas": 5}})),
        ("json_patch", json!([{"op": "replace", "path": "/spec/replicas", "value": 5}])),
        ("apply", json!({"spec": {"replicas": 5}})),
        ("scale", json!({"replicas": 5})),
        ("delete", json!({})),
    ];
    for (i, (op, params)) in cases.into_iter().enumerate() {
        let name = format!("web-{i}");
        admin_create(&ns, deployment(&name, 1)).await?;
        let t = tref(&ns, "apps/v1", "Deployment", &name);
        let params = if op == "replace" { deployment(&name, 5) } else { params };
        let mut exec = admit(&target, op, t, params, vec![], None).await?;
        // Broker: drift check passes and pins the resourceVersion...
        let obs = target.observe(&exec.observe_request()).await?;
        seb_core::drift::compare(&exec.evidence, &BTreeMap::new(), &obs.projection)
            .map_err(|e| anyhow!(e))?;
        exec.observed_version = obs.version;
        // ...then someone changes the object before the call.
        let racer = admin_merge(
            &ns,
            "apps/v1",
            "Deployment",
            &name,
            json!({"metadata": {"labels": {"racer": "won"}}}),
        )
        .await?;
        let identity = target.mint(&exec).await?;
        let r = target.mutate(&exec, &identity).await?;
        target.retire(&exec, identity).await?;
        assert_eq!(r.status, MutationStatus::Conflict, "{op}: {:?}", r.error);
        let now = get(&ns, "apps/v1", "Deployment", &name).await?.expect("not deleted");
        assert_eq!(
            now["metadata"]["resourceVersion"], racer["metadata"]["resourceVersion"],
            "{op}: untouched since the racer"
        );
        assert_eq!(now["spec"]["replicas"], 1, "{op}");
    }
    // create: the object appeared after the drift check.
    let t = tref(&ns, "v1", "ConfigMap", "late");
    let mut exec =
        admit(&target, "create", t, json!({"data": {"mine": "1"}}), vec![], None).await?;
    exec.observed_version = target.observe(&exec.observe_request()).await?.version;
    admin_create(&ns, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}, "data": {"theirs": "1"}})).await?;
    let identity = target.mint(&exec).await?;
    let r = target.mutate(&exec, &identity).await?;
    target.retire(&exec, identity).await?;
    assert_eq!(r.status, MutationStatus::Conflict, "{:?}", r.error);
    assert_eq!(get(&ns, "v1", "ConfigMap", "late").await?.unwrap()["data"], json!({"theirs": "1"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_the_broker_itself_cannot_mutate_a_protected_namespace() -> Result<()> {
    let (ns, _target) = setup("agent").await?;
    admin_create(&ns, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "0"}})).await?;
    let code = |r: Result<(), kube::Error>| r.map_err(|e| status_code(&e));
    for token in [&server().tokens().agent, &server().tokens().broker] {
        let cms = Api::<ConfigMap>::namespaced(client(token), &ns);
        let patch = Patch::Merge(json!({"data": {"k": "1"}}));
        assert_eq!(
            code(cms.patch("cm", &PatchParams::default(), &patch).await.map(|_| ())),
            Err(403)
        );
        assert_eq!(code(cms.delete("cm", &Default::default()).await.map(|_| ())), Err(403));
        assert_eq!(
            code(
                cms.create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": "x"}}))?
                )
                .await
                .map(|_| ())
            ),
            Err(403)
        );
        assert!(cms.get("cm").await.is_ok(), "both may read");
    }
    let agent_cms = Api::<ConfigMap>::namespaced(client(&server().tokens().agent), &ns);
    assert!(agent_cms.list(&Default::default()).await.is_ok(), "agents may list");
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        client(&server().tokens().agent),
        &ns,
    );
    assert_eq!(
        code(secrets.list(&Default::default()).await.map(|_| ())),
        Err(403),
        "agents never read secrets"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_tells_applied_from_not_applied_by_observation_only() -> Result<()> {
    let (ns, target) = setup("recon").await?;
    admin_create(&ns, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "0"}})).await?;
    let t = tref(&ns, "v1", "ConfigMap", "cm");
    // Crash after mint, before the dispatch mark: recovery does not reconcile (nothing was
    // called) but retires the orphaned identity by name.
    let mut exec =
        admit(&target, "merge_patch", t.clone(), json!({"data": {"k": "9"}}), vec![], None).await?;
    exec.observed_version = target.observe(&exec.observe_request()).await?.version;
    let orphan = target.mint(&exec).await?;
    let name = identity_name(&exec.cid, &exec.nonce);
    assert_eq!(identity_objects_exist(&ns, &name).await?, (true, true, true));
    drop(orphan);
    target.retire_orphans(&exec).await?;
    assert_eq!(identity_objects_exist(&ns, &name).await?, (false, false, false));
    target.retire_orphans(&exec).await?; // idempotent
    // Crash after admit, before the call: not applied. Reconcile only observes: the leftover
    // grant is still there until retire_orphans removes it.
    let mut exec =
        admit(&target, "merge_patch", t.clone(), json!({"data": {"k": "1"}}), vec![], None).await?;
    exec.observed_version = target.observe(&exec.observe_request()).await?.version;
    let identity = target.mint(&exec).await?;
    let name = identity_name(&exec.cid, &exec.nonce);
    assert_eq!(target.reconcile(&exec).await?, Reconciled::NotApplied);
    assert_eq!(identity_objects_exist(&ns, &name).await?, (true, true, true), "reconcile deleted");
    target.retire_orphans(&exec).await?;
    assert_eq!(identity_objects_exist(&ns, &name).await?, (false, false, false));
    drop(identity);
    // Crash after the call, before the outcome: applied, and the object is unchanged by
    // reconciling it.
    let mut exec =
        admit(&target, "merge_patch", t.clone(), json!({"data": {"k": "2"}}), vec![], None).await?;
    exec.observed_version = target.observe(&exec.observe_request()).await?.version;
    let identity = target.mint(&exec).await?;
    applied(&target.mutate(&exec, &identity).await?);
    let before = target.get_raw(&t).await?;
    assert_eq!(target.reconcile(&exec).await?, Reconciled::Applied);
    assert_eq!(target.get_raw(&t).await?, before, "reconcile changed the object");
    target.retire_orphans(&exec).await?;
    assert_eq!(
        identity_objects_exist(&ns, &identity_name(&exec.cid, &exec.nonce)).await?,
        (false, false, false)
    );
    // Someone else changed the object and our change is not visible: uncertain.
    let mut exec =
        admit(&target, "merge_patch", t.clone(), json!({"data": {"k": "3"}}), vec![], None).await?;
    exec.observed_version = target.observe(&exec.observe_request()).await?.version;
    admin_merge(&ns, "v1", "ConfigMap", "cm", json!({"data": {"k": "other"}})).await?;
    assert_eq!(target.reconcile(&exec).await?, Reconciled::Uncertain);
    // Delete: applied once the object is gone; create: not applied while absent.
    let mut del = admit(&target, "delete", t, json!({}), vec![], None).await?;
    applied(&execute(&target, &mut del, None).await?);
    assert_eq!(target.reconcile(&del).await?, Reconciled::Applied);
    let mut create = admit(
        &target,
        "create",
        tref(&ns, "v1", "ConfigMap", "new"),
        json!({"data": {"a": "b"}}),
        vec![],
        None,
    )
    .await?;
    create.observed_version = None;
    assert_eq!(target.reconcile(&create).await?, Reconciled::NotApplied);
    applied(&execute(&target, &mut create, None).await?);
    assert_eq!(target.reconcile(&create).await?, Reconciled::Applied);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The webhook, served over HTTPS as the broker will serve it.

async fn serve_webhook(
    policy: WebhookPolicy,
    live: Arc<Registry>,
    rec: Arc<support::Recorder>,
    cert_pem: String,
    key_pem: String,
) -> Result<u16> {
    let handler: support::Handler = Arc::new(move |body: &[u8]| {
        let answer = seb_kube::webhook::review_bytes(
            body,
            seb_kube::webhook::MAX_REVIEW_BYTES,
            &policy,
            live.as_ref(),
        );
        rec.record(body, &answer);
        answer
    });
    support::serve_https(handler, cert_pem, key_pem).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_denies_uncertified_mutations_and_enforces_constraints() -> Result<()> {
    let (ns, target) = setup("hook").await?;
    admin_create(&ns, deployment("web", 1)).await?;
    admin_create(&ns, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "0"}})).await?;
    // Label the namespace for this test's webhook only (other tests' namespaces stay unguarded).
    Api::<Namespace>::all(admin())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"seb-test": ns}}})),
        )
        .await?;

    let mut dcfg = DeployConfig::new(
        vec![ns.clone()],
        String::from_utf8_lossy(server().ca_pem()).into_owned(),
    );
    dcfg.broker = Subject::User("broker".into());
    dcfg.exec_namespace = EXEC_NS.into();
    let live = Arc::new(Registry::default());
    let (cert, key) = server().issue_cert("webhook")?;
    let rec = Arc::new(support::Recorder::default());
    let port = serve_webhook(dcfg.webhook_policy(), live.clone(), rec.clone(), cert, key).await?;
    dcfg.webhook = WebhookEndpoint::Url(format!(
        "https://127.0.0.1:{port}{}",
        seb_kube::deploy::ADMISSION_PATH
    ));
    let mut vwc = seb_kube::deploy::webhook_configuration(&dcfg);
    vwc["metadata"]["name"] = json!(format!("seb-broker-{ns}"));
    // Only the workloads hook, on this test's namespace: the cluster-wide hooks (protected
    // set, RBAC) are attacked in tests/protected_set.rs on a server of their own.
    vwc["webhooks"].as_array_mut().unwrap().retain(|h| h["name"] == "objects.seb.io");
    for h in vwc["webhooks"].as_array_mut().unwrap() {
        h["namespaceSelector"]["matchLabels"]["seb-test"] = json!(ns);
    }
    apply_all(&[vwc]).await?;

    // Admin (system:masters) without a live execution identity: denied, until the webhook
    // configuration is in the API server's cache (poll briefly).
    let cms = Api::<ConfigMap>::namespaced(admin(), &ns);
    let patch = Patch::Merge(json!({"data": {"k": "admin"}}));
    let mut denied = None;
    for _ in 0..50 {
        match cms.patch("cm", &PatchParams::default(), &patch).await {
            Err(kube::Error::Api(s)) if s.code == 403 => {
                denied = Some(s.message.clone());
                break;
            }
            Ok(_) => {
                // Not registered yet: put it back and retry.
                cms.patch(
                    "cm",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"k": "0"}})),
                )
                .await
                .ok();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("unexpected: {e}"),
        }
    }
    let denied = denied.context("the webhook never took effect")?;
    assert!(
        denied.contains("seb:") && denied.contains("not the identity of a live SEB execution"),
        "{denied}"
    );
    assert!(cms.delete("cm", &Default::default()).await.is_err(), "admin delete denied");
    assert_eq!(get(&ns, "v1", "ConfigMap", "cm").await?.unwrap()["data"]["k"], "0");

    // A certified execution goes through: the webhook admits the broker's exact grant and the
    // execution identity's mutation.
    let t = tref(&ns, "apps/v1", "Deployment", "web");
    let max5 = vec![Constraint {
        path: "/replicas".into(),
        check: CheckKind::Range,
        value: json!({"min": 1, "max": 5}),
    }];
    let mut ok =
        admit(&target, "scale", t.clone(), json!({"replicas": 3}), max5.clone(), None).await?;
    ok.params = json!({"replicas": 4}); // within the constraint, as the match rule allows
    applied(&execute(&target, &mut ok, Some(&live)).await?);
    assert_eq!(get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["spec"]["replicas"], 4);

    // A parameter outside the constraint is denied at admission, even with a live identity.
    let mut over = admit(&target, "scale", t.clone(), json!({"replicas": 3}), max5, None).await?;
    over.params = json!({"replicas": 9});
    let r = execute(&target, &mut over, Some(&live)).await?;
    assert_eq!(r.status, MutationStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("403") && e.contains("maximum"), "{e}");
    assert_eq!(get(&ns, "apps/v1", "Deployment", "web").await?.unwrap()["spec"]["replicas"], 4);

    // An identity whose execution is not live (registry without it) is denied too.
    let mut ghost = admit(
        &target,
        "merge_patch",
        tref(&ns, "v1", "ConfigMap", "cm"),
        json!({"data": {"k": "1"}}),
        vec![],
        None,
    )
    .await?;
    let err = execute(&target, &mut ghost, None).await.unwrap_err();
    assert!(
        err.to_string().contains("Role"),
        "the broker cannot even create a grant for it: {err}"
    );

    // create cannot be restricted by name in RBAC: the unnamed grant is held to the
    // certified name by the webhook.
    let mut create = admit(
        &target,
        "create",
        tref(&ns, "v1", "ConfigMap", "made"),
        json!({"data": {"a": "b"}}),
        vec![],
        None,
    )
    .await?;
    create.observed_version = target.observe(&create.observe_request()).await?.version;
    live.0.lock().unwrap().insert(username(&create), create.clone());
    let identity = target.mint(&create).await?;
    let sneaky = Api::<ConfigMap>::namespaced(client(&identity.secret), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "not-certified"}}))?,
        )
        .await;
    match sneaky {
        Err(kube::Error::Api(s)) => {
            assert!(s.code == 403 && s.message.contains("certified"), "{}", s.message)
        }
        other => panic!("create of another name was not denied: {other:?}"),
    }
    applied(&target.mutate(&create, &identity).await?);
    target.retire(&create, identity).await?;
    live.0.lock().unwrap().remove(&username(&create));
    assert!(get(&ns, "v1", "ConfigMap", "not-certified").await?.is_none());
    Api::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>::all(admin())
        .delete(&format!("seb-broker-{ns}"), &Default::default())
        .await?;

    // The shipped ValidatingAdmissionPolicies (cel-python) decide every review recorded here
    // as the webhook did, but where only the certificate tells (execution identities and the
    // broker's grants: the policy cannot see live executions).
    let certified = [format!("system:serviceaccount:{EXEC_NS}:seb-exec-"), "broker".to_owned()];
    let report = support::vap_crosscheck(&dcfg, &rec, admin(), &certified).await?;
    let requests = report["requests"].as_array().unwrap();
    let by = |f: &dyn Fn(&Value) -> bool| requests.iter().filter(|r| f(r)).count();
    assert!(
        by(&|r| r["certificate_only"] == true) >= 2,
        "the over-constraint scale and the sneaky create"
    );
    assert!(
        by(&|r| r["webhook_allowed"] == true
            && r["user"].as_str().unwrap().starts_with("system:serviceaccount:"))
            >= 2,
        "certified executions allowed by both"
    );
    assert!(
        by(&|r| r["user"] == "admin" && r["webhook_allowed"] == false) >= 2,
        "system:masters denied by both"
    );
    Ok(())
}

/// `seb deploy kubernetes --broker-image`: the broker's Service, volume claim and hardened
/// Deployment are accepted by a real API server as written (server-side apply refuses fields
/// its schema does not declare), and read back with the security settings intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_workload_is_accepted_by_the_api_server() -> Result<()> {
    let ns = unique_name("seb-system");
    let mut cfg = DeployConfig::new(
        vec![unique_name("guarded")],
        String::from_utf8_lossy(server().ca_pem()).into_owned(),
    );
    cfg.broker_namespace = ns.clone();
    cfg.broker = Subject::ServiceAccount { namespace: ns.clone(), name: "seb-broker".into() };
    cfg.exec_namespace = ns.clone();
    cfg.broker_workload = Some(seb_kube::deploy::BrokerWorkload::new("registry.local/seb:test"));
    let objs: Vec<Value> = seb_kube::deploy::objects(&cfg)
        .into_iter()
        .filter(|o| {
            o["metadata"]["namespace"] == ns.as_str()
                || (o["kind"] == "Namespace" && o["metadata"]["name"] == ns.as_str())
        })
        .filter(|o| !o["kind"].as_str().unwrap_or("").starts_with("Role"))
        .collect();
    let kinds: Vec<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    for k in ["Namespace", "ServiceAccount", "Service", "PersistentVolumeClaim", "Deployment"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    apply_all(&objs).await?;
    let dep = get(&ns, "apps/v1", "Deployment", "seb-broker").await?.context("no Deployment")?;
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "seb-broker");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let ctr = &pod["containers"][0];
    assert_eq!(ctr["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(ctr["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(ctr["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let svc = get(&ns, "v1", "Service", "seb-broker").await?.context("no Service")?;
    assert_eq!(svc["spec"]["ports"][0]["port"], 8443);
    assert!(get(&ns, "v1", "PersistentVolumeClaim", "seb-broker-data").await?.is_some());
    Ok(())
}
