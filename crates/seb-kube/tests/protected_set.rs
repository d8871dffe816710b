//! The protected set cannot be changed from inside the cluster (spec section 9, last bullet;
//! issue 15 part 1), against a real kube-apiserver v1.20.2 of this test binary's own (the
//! hooks installed here are cluster-wide).
//!
//! Each test installs everything `seb deploy kubernetes --apply` installs (namespaces, RBAC,
//! `seb-cluster-admin` bound to the user `ops`, the webhook configuration with its four hooks)
//! with the webhook served over HTTPS by this process (the pure `seb_kube::webhook`, as
//! `seb serve` serves it), then attacks as `ops` (a cluster administrator who is not
//! `system:masters`) and as the `agent`. After every attempt a Deployment patch in the
//! protected namespace must still be refused. The operator path (`system:masters`) can still
//! uninstall. The last test evaluates the shipped ValidatingAdmissionPolicies with an
//! independent CEL implementation (cel-python) over the AdmissionReviews the webhook received
//! and asserts the same decision on every one.

// Test harness code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// `KubeApiServer::isolated()` serialises the tests of this binary (the hooks are cluster-wide);
// each test runs on its own runtime, so holding it across `.await` blocks nothing else.
#![allow(clippy::await_holding_lock)]

mod support;

use support::Recorder;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, Config};
use seb_kube::deploy::{DeployConfig, Subject, WebhookEndpoint};
use seb_kube::webhook::{LiveExecutions, WebhookPolicy};
use seb_target::Execution;
use seb_testinfra::kube::{KubeApiServer, unique_name};
use serde_json::{Value, json};

fn server() -> &'static KubeApiServer {
    match KubeApiServer::shared() {
        Ok(s) => s,
        Err(e) => panic!("kube-apiserver did not start: {e}"),
    }
}

fn config(token: &str) -> Config {
    let s = server();
    let mut c = Config::new(s.url().parse().unwrap());
    c.root_cert = Some(
        rustls_pemfile::certs(&mut s.ca_pem()).map(|c| c.unwrap().to_vec()).collect::<Vec<_>>(),
    );
    c.auth_info.token = Some(token.to_owned().into());
    c
}

fn client(token: &str) -> Client {
    seb_kube::install_crypto_provider();
    Client::try_from(config(token)).unwrap()
}

fn admin() -> Client {
    client(&server().tokens().admin)
}

/// The users that attack: a cluster administrator bound to `seb-cluster-admin`, the agent.
fn attackers() -> [(&'static str, String); 2] {
    let t = server().tokens();
    [("ops", t.ops.clone()), ("agent", t.agent.clone())]
}

/// A dynamic API for `api_version`/`kind`, namespaced when `ns` is given.
async fn api(c: &Client, api_version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    let (ar, _): (ApiResource, _) =
        kube::discovery::pinned_kind(c, &GroupVersionKind::gvk(g, v, kind)).await.unwrap();
    match ns {
        Some(ns) => Api::namespaced_with(c.clone(), ns, &ar),
        None => Api::all_with(c.clone(), &ar),
    }
}

/// The HTTP status of a kube call (200 when it succeeded) and the API server's message.
fn outcome<T>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Ok(_) => (200, String::new()),
        Err(kube::Error::Api(s)) => (s.code, s.message.clone()),
        Err(e) => (0, e.to_string()),
    }
}

/// This suite never runs executions: no identity is live.
struct NoExecutions;
impl LiveExecutions for NoExecutions {
    fn by_identity(&self, _: &str) -> Option<Execution> {
        None
    }
}

/// Serve the webhook over HTTPS as the broker does (the pure decision, the 7 MiB limit),
/// recording each review and its answer (test code; the product binary records nothing).
async fn serve_webhook(policy: WebhookPolicy, rec: Arc<Recorder>) -> Result<u16> {
    let handler: support::Handler = Arc::new(move |body: &[u8]| {
        let answer = seb_kube::webhook::review_bytes(
            body,
            seb_kube::webhook::MAX_REVIEW_BYTES,
            &policy,
            &NoExecutions,
        );
        rec.record(body, &answer);
        answer
    });
    let (cert_pem, key_pem) = server().issue_cert("webhook")?;
    support::serve_https(handler, cert_pem, key_pem).await
}

/// One installation: a protected namespace with Deployment `web` (1 replica), SEB's objects
/// in namespaces of its own, and the webhook configuration pointing at this process.
struct Install {
    ns: String,
    cfg: DeployConfig,
    objects: Vec<Value>,
    rec: Arc<Recorder>,
}

const VWC: &str = "seb-broker";

async fn install(prefix: &str) -> Result<Install> {
    let admin = admin();
    // A configuration left by a failed test would point at a webhook that is gone (and with
    // failurePolicy Fail refuse every RBAC write): remove it first. The API server never
    // sends webhook configurations to webhooks, so this always works for the operator.
    let vwcs =
        api(&admin, "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None)
            .await;
    let _ = vwcs.delete(VWC, &DeleteParams::default()).await;

    let ns = unique_name(prefix);
    let mut cfg = DeployConfig::new(
        vec![ns.clone()],
        String::from_utf8_lossy(server().ca_pem()).into_owned(),
    );
    cfg.broker = Subject::User("broker".into());
    cfg.broker_namespace = format!("{ns}-sys");
    cfg.exec_namespace = format!("{ns}-exec");
    cfg.agents = vec![Subject::User("agent".into())];
    cfg.cluster_admins = vec![Subject::User("ops".into())];
    cfg.emit_admission_policy = false; // 1.20 has no ValidatingAdmissionPolicy
    cfg.cluster_admin_api_groups = seb_kube::deploy::served_api_groups(&admin).await?;
    let rec = Arc::new(Recorder::default());
    let port = serve_webhook(cfg.webhook_policy(), rec.clone()).await?;
    cfg.webhook = WebhookEndpoint::Url(format!(
        "https://127.0.0.1:{port}{}",
        seb_kube::deploy::ADMISSION_PATH
    ));
    let objects = seb_kube::deploy::objects(&cfg);
    let (hook, rest): (Vec<Value>, Vec<Value>) =
        objects.iter().cloned().partition(|o| o["kind"] == "ValidatingWebhookConfiguration");
    seb_kube::deploy::apply(&admin, &rest).await?;
    api(&admin, "apps/v1", "Deployment", Some(&ns))
        .await
        .create(&PostParams::default(), &serde_json::from_value(deployment())?)
        .await?;
    seb_kube::deploy::apply(&admin, &hook).await?;
    let inst = Install { ns, cfg, objects, rec };
    // The API server picks the configuration up asynchronously: wait until it guards.
    for _ in 0..100 {
        let (code, msg) = patch_replicas(&inst, &server().tokens().ops, 1).await;
        if code == 403 && msg.contains("seb:") {
            return Ok(inst);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the webhook never took effect")
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "registry.local/web:1"}]}}}})
}

async fn patch_replicas(inst: &Install, token: &str, replicas: u32) -> (u16, String) {
    let deps = api(&client(token), "apps/v1", "Deployment", Some(&inst.ns)).await;
    outcome(
        deps.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await,
    )
}

/// The namespace is still guarded: `ops` (who holds `patch` on Deployments through
/// `seb-cluster-admin`) is refused by the webhook, and nothing changed.
async fn assert_still_guarded(inst: &Install, after: &str) {
    let (code, msg) = patch_replicas(inst, &server().tokens().ops, 50).await;
    assert_eq!(code, 403, "after {after}: the Deployment patch was not refused: {msg}");
    assert!(msg.contains("not the identity of a live SEB execution"), "after {after}: {msg}");
    let dep =
        api(&admin(), "apps/v1", "Deployment", Some(&inst.ns)).await.get("web").await.unwrap();
    assert_eq!(dep.data["spec"]["replicas"], 1, "after {after}");
    let ns = Api::<Namespace>::all(admin()).get(&inst.ns).await.unwrap();
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("seb.io/protected").map(String::as_str), Some("true"), "after {after}");
    assert!(ns.metadata.deletion_timestamp.is_none(), "after {after}: namespace terminating");
}

async fn uninstall_hook() {
    let vwcs =
        api(&admin(), "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None)
            .await;
    vwcs.delete(VWC, &DeleteParams::default()).await.unwrap();
}

/// Relabel, unlabel (merge and JSON patch) and delete the protected namespace.
async fn namespace_attacks(inst: &Install, who: &str, token: &str) {
    let nss = Api::<Namespace>::all(client(token));
    let attempts: Vec<(&str, Result<(), kube::Error>)> = vec![
        (
            "relabel seb.io/protected=false",
            nss.patch(
                &inst.ns,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"seb.io/protected": "false"}}})),
            )
            .await
            .map(|_| ()),
        ),
        (
            "remove the label (merge patch)",
            nss.patch(
                &inst.ns,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"seb.io/protected": null}}})),
            )
            .await
            .map(|_| ()),
        ),
        (
            "remove the label (JSON patch)",
            nss.patch(
                &inst.ns,
                &PatchParams::default(),
                &Patch::Json::<()>(
                    serde_json::from_value(
                        json!([{"op": "remove", "path": "/metadata/labels/seb.io~1protected"}]),
                    )
                    .unwrap(),
                ),
            )
            .await
            .map(|_| ()),
        ),
        ("delete the namespace", nss.delete(&inst.ns, &DeleteParams::default()).await.map(|_| ())),
    ];
    for (what, r) in attempts {
        let (code, msg) = outcome(r);
        assert_eq!(code, 403, "{who}: {what} was not refused: {msg}");
        if who == "ops" {
            assert!(msg.contains("seb:") && msg.contains("operator path"), "{who}: {what}: {msg}");
        }
        assert_still_guarded(inst, &format!("{who}: {what}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabelling_unlabelling_or_deleting_a_protected_namespace_is_refused() -> Result<()> {
    let _iso = KubeApiServer::isolated();
    let inst = install("relabel").await?;
    for (who, token) in attackers() {
        namespace_attacks(&inst, who, &token).await;
    }
    // Any other change is the operator's too: `ops` cannot even annotate it...
    let annotate = Patch::Merge(json!({"metadata": {"annotations": {"team": "x"}}}));
    let (code, _) = outcome(
        Api::<Namespace>::all(client(&server().tokens().ops))
            .patch(&inst.ns, &PatchParams::default(), &annotate)
            .await,
    );
    assert_eq!(code, 403);
    // ...while the operator path can.
    Api::<Namespace>::all(admin()).patch(&inst.ns, &PatchParams::default(), &annotate).await?;
    assert_still_guarded(&inst, "the operator's annotation").await;
    uninstall_hook().await;
    Ok(())
}

/// Edit or delete SEB's webhook configuration and SEB's RBAC.
async fn seb_object_attacks(inst: &Install, who: &str, token: &str) {
    let c = client(token);
    let vwcs =
        api(&c, "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None).await;
    let croles = api(&c, "rbac.authorization.k8s.io/v1", "ClusterRole", None).await;
    let crbs = api(&c, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None).await;
    let rbs = api(&c, "rbac.authorization.k8s.io/v1", "RoleBinding", Some(&inst.ns)).await;
    let exec_roles =
        api(&c, "rbac.authorization.k8s.io/v1", "Role", Some(&inst.cfg.exec_namespace)).await;
    let nss = Api::<Namespace>::all(c.clone());
    let pp = PatchParams::default();
    let dp = DeleteParams::default();
    let unlabel = Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/name": null}}}));
    let attempts: Vec<(&str, Result<(), kube::Error>)> = vec![
        (
            "set the webhook's failurePolicy to Ignore",
            vwcs.patch(
                VWC,
                &pp,
                &Patch::Json::<()>(
                    serde_json::from_value(json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]))
                        .unwrap(),
                ),
            )
            .await
            .map(|_| ()),
        ),
        ("delete the webhook configuration", vwcs.delete(VWC, &dp).await.map(|_| ())),
        (
            "give seb-cluster-admin write on webhooks",
            croles
                .patch(
                    "seb-cluster-admin",
                    &pp,
                    &Patch::Merge(json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})),
                )
                .await
                .map(|_| ()),
        ),
        ("unlabel seb-broker-grants", croles.patch("seb-broker-grants", &pp, &unlabel).await.map(|_| ())),
        ("delete seb-agent-read", croles.delete("seb-agent-read", &dp).await.map(|_| ())),
        ("delete the seb-cluster-admin binding", crbs.delete("seb-cluster-admin", &dp).await.map(|_| ())),
        (
            "add a subject to the seb-cluster-admin binding",
            crbs.patch(
                "seb-cluster-admin",
                &pp,
                &Patch::Merge(json!({"subjects": [{"kind": "User", "name": "ops"}, {"kind": "User", "name": "intruder"}]})),
            )
            .await
            .map(|_| ()),
        ),
        ("delete the broker's grants binding", rbs.delete("seb-broker-grants", &dp).await.map(|_| ())),
        ("delete seb-broker-identities", exec_roles.delete("seb-broker-identities", &dp).await.map(|_| ())),
        ("delete the execution namespace", nss.delete(&inst.cfg.exec_namespace, &dp).await.map(|_| ())),
    ];
    for (what, r) in attempts {
        let (code, msg) = outcome(r);
        assert_eq!(code, 403, "{who}: {what} was not refused: {msg}");
        assert_still_guarded(inst, &format!("{who}: {what}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seb_webhook_configuration_and_rbac_cannot_be_edited_or_deleted() -> Result<()> {
    let _iso = KubeApiServer::isolated();
    let inst = install("sebobj").await?;
    for (who, token) in attackers() {
        seb_object_attacks(&inst, who, &token).await;
    }
    uninstall_hook().await;
    Ok(())
}

fn cluster_admin_binding(name: &str, role: &str, user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

/// Grant cluster-admin or webhook write to oneself, directly or by impersonation.
async fn escalation_attacks(inst: &Install, who: &str, token: &str) {
    let c = client(token);
    let croles = api(&c, "rbac.authorization.k8s.io/v1", "ClusterRole", None).await;
    let crbs = api(&c, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None).await;
    let pp = PostParams::default();
    let obj = |v: Value| serde_json::from_value::<DynamicObject>(v).unwrap();
    let webhook_writer = cluster_role(
        &format!("{who}-webhooks"),
        json!([{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["*"], "verbs": ["*"]}]),
    );
    let attempts: Vec<(&str, Result<(), kube::Error>)> = vec![
        (
            "bind cluster-admin to itself",
            crbs.create(&pp, &obj(cluster_admin_binding(&format!("{who}-root"), "cluster-admin", who)))
                .await
                .map(|_| ()),
        ),
        ("create a role writing webhooks", croles.create(&pp, &obj(webhook_writer)).await.map(|_| ())),
        (
            "create a role with escalate",
            croles
                .create(&pp, &obj(cluster_role(&format!("{who}-esc"), json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate"]}]))))
                .await
                .map(|_| ()),
        ),
    ];
    for (what, r) in attempts {
        let (code, msg) = outcome(r);
        assert_eq!(code, 403, "{who}: {what} was not refused: {msg}");
        assert_still_guarded(inst, &format!("{who}: {what}")).await;
    }
    // Impersonating the operator path.
    let mut cfg = config(token);
    cfg.auth_info.impersonate = Some("admin".into());
    cfg.auth_info.impersonate_groups = Some(vec!["system:masters".into()]);
    let as_admin = Client::try_from(cfg).unwrap();
    let nss = Api::<Namespace>::all(as_admin);
    let (code, msg) = outcome(
        nss.patch(
            &inst.ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"seb.io/protected": "false"}}})),
        )
        .await,
    );
    assert_eq!(code, 403, "{who}: impersonating system:masters was not refused: {msg}");
    assert_still_guarded(inst, &format!("{who}: impersonation")).await;
}

/// `rbac-admin` holds `escalate` and `bind` (granted by the operator): RBAC would let it write
/// any role and bind any role; the webhook refuses what hands out the operator path.
async fn escalate_and_bind_holder_attacks(inst: &Install) -> Result<()> {
    let admin = admin();
    let holder = "rbac-admin";
    let grant = cluster_role(
        "test-rbac-writer",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings"], "verbs": ["create", "update", "patch", "delete", "escalate", "bind"]}]),
    );
    let croles_admin = api(&admin, "rbac.authorization.k8s.io/v1", "ClusterRole", None).await;
    let crbs_admin = api(&admin, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None).await;
    for (a, o) in [
        (&croles_admin, grant),
        (&crbs_admin, cluster_admin_binding("test-rbac-writer", "test-rbac-writer", holder)),
    ] {
        let o: DynamicObject = serde_json::from_value(o)?;
        let name = o.metadata.name.clone().unwrap();
        let _ = a.delete(&name, &DeleteParams::default()).await;
        a.create(&PostParams::default(), &o).await?;
    }
    let c = client(&server().tokens().rbac_admin);
    let croles = api(&c, "rbac.authorization.k8s.io/v1", "ClusterRole", None).await;
    let crbs = api(&c, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None).await;
    let pp = PostParams::default();
    let obj = |v: Value| serde_json::from_value::<DynamicObject>(v).unwrap();
    let mut aggregated = cluster_role("rbac-admin-agg", json!([]));
    aggregated["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]});
    let attempts: Vec<(&str, Result<(), kube::Error>)> = vec![
        (
            "bind cluster-admin to itself",
            crbs.create(&pp, &obj(cluster_admin_binding("rbac-admin-root", "cluster-admin", holder))).await.map(|_| ()),
        ),
        (
            "bind a system: role to itself",
            crbs.create(&pp, &obj(cluster_admin_binding("rbac-admin-sys", "system:controller:clusterrole-aggregation-controller", holder)))
                .await
                .map(|_| ()),
        ),
        (
            "bind seb-cluster-admin to itself",
            crbs.create(&pp, &obj(cluster_admin_binding("rbac-admin-seb", "seb-cluster-admin", holder))).await.map(|_| ()),
        ),
        (
            "create a role writing webhooks",
            croles
                .create(&pp, &obj(cluster_role("rbac-admin-hooks", json!([{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"], "verbs": ["delete"]}]))))
                .await
                .map(|_| ()),
        ),
        (
            "create a role impersonating groups",
            croles
                .create(&pp, &obj(cluster_role("rbac-admin-imp", json!([{"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"]}]))))
                .await
                .map(|_| ()),
        ),
        ("create a role aggregating the bootstrap roles", croles.create(&pp, &obj(aggregated)).await.map(|_| ())),
    ];
    for (what, r) in attempts {
        let (code, msg) = outcome(r);
        assert_eq!(code, 403, "{holder}: {what} was not refused: {msg}");
        assert!(msg.contains("seb:") && msg.contains("operator path"), "{holder}: {what}: {msg}");
        assert_still_guarded(inst, &format!("{holder}: {what}")).await;
    }
    // A harmless role is still allowed: the webhook is not a blanket refusal.
    let harmless = cluster_role(
        "rbac-admin-harmless",
        json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]),
    );
    croles.create(&pp, &obj(harmless)).await.context("a harmless role")?;
    for name in ["rbac-admin-harmless", "test-rbac-writer"] {
        croles_admin.delete(name, &DeleteParams::default()).await?;
    }
    crbs_admin.delete("test-rbac-writer", &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_but_the_operator_can_hand_out_cluster_admin_or_webhook_write() -> Result<()> {
    let _iso = KubeApiServer::isolated();
    let inst = install("escal").await?;
    for (who, token) in attackers() {
        escalation_attacks(&inst, who, &token).await;
    }
    escalate_and_bind_holder_attacks(&inst).await?;
    uninstall_hook().await;
    Ok(())
}

/// What `seb deploy kubernetes --delete` does, as `system:masters`: webhook configuration
/// first, then everything else; afterwards the namespace is no longer guarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_path_can_still_uninstall() -> Result<()> {
    let _iso = KubeApiServer::isolated();
    let inst = install("uninst").await?;
    seb_kube::deploy::delete(&admin(), &inst.objects).await?;
    let vwcs =
        api(&admin(), "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None)
            .await;
    assert!(vwcs.get_opt(VWC).await?.is_none(), "the webhook configuration is gone");
    let croles = api(&admin(), "rbac.authorization.k8s.io/v1", "ClusterRole", None).await;
    assert!(croles.get_opt("seb-cluster-admin").await?.is_none());
    // Without SEB the administrator's patch goes through (RBAC for `ops` is gone too, so as
    // admin): the refusals above were SEB's.
    let (code, msg) = patch_replicas(&inst, &server().tokens().admin, 2).await;
    assert_eq!(code, 200, "{msg}");
    Ok(())
}

/// Issue 16 part 2: the ValidatingAdmissionPolicies `seb deploy kubernetes` ships for ≥ 1.30
/// decide every AdmissionReview the webhook received here as the webhook did (cel-python).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_policies_decide_every_recorded_review_as_the_webhook_does() -> Result<()> {
    let _iso = KubeApiServer::isolated();
    let inst = install("cel").await?;
    for (who, token) in attackers() {
        namespace_attacks(&inst, who, &token).await;
        seb_object_attacks(&inst, who, &token).await;
    }
    escalate_and_bind_holder_attacks(&inst).await?;
    // Allowed requests too: the operator annotates the namespace and relabels a SEB role.
    let admin = admin();
    let annotate = Patch::Merge(json!({"metadata": {"annotations": {"reviewed": "yes"}}}));
    Api::<Namespace>::all(admin.clone())
        .patch(&inst.ns, &PatchParams::default(), &annotate)
        .await?;
    api(&admin, "rbac.authorization.k8s.io/v1", "ClusterRole", None)
        .await
        .patch("seb-agent-read", &PatchParams::default(), &annotate)
        .await?;
    uninstall_hook().await;

    let result = support::vap_crosscheck(&inst.cfg, &inst.rec, admin.clone(), &[]).await?;
    let requests = result["requests"].as_array().unwrap();
    let (allowed, denied): (Vec<&Value>, Vec<&Value>) =
        requests.iter().partition(|r| r["webhook_allowed"] == true);
    // The comparison covered the relabel attempts, each hook, and both outcomes.
    let relabels = requests
        .iter()
        .filter(|r| {
            r["resource"] == "namespaces" && r["operation"] == "UPDATE" && r["user"] == "ops"
        })
        .count();
    assert!(relabels >= 3, "relabel attempts: {relabels}");
    for p in [
        "seb-protected-namespaces",
        "seb-protected-namespace-objects",
        "seb-owned-objects",
        "seb-rbac-escalation",
    ] {
        assert!(
            requests.iter().any(|r| r["policies"].as_array().unwrap().contains(&json!(p))),
            "no recorded request for {p}"
        );
    }
    assert!(
        allowed.len() >= 3 && denied.len() >= 10,
        "{} allowed, {} denied",
        allowed.len(),
        denied.len()
    );
    Ok(())
}
