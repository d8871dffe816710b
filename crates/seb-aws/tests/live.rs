//! The AWS target against moto_server with IAM enforcement ON (started by the harness, never
//! skipped). The target is driven as the broker drives it: observe → (drift check) → mint →
//! mutate → retire, and reconcile.
//!
//! Fixture (created once per test binary, through the administrator; see `fixture`):
//! - `seb-broker` (IAM user): its inline policy is the `broker_role_policy` artefact
//!   (assume the execution role; read-only calls; the protected actions denied);
//! - `seb-execution` (role): its trust policy is the `execution_role_trust_policy` artefact
//!   (only `seb-broker`, with `sts:TagSession` and `sts:SetSourceIdentity`); its own policy is
//!   deliberately broad (`s3:*`, `ec2:*`, …) so the tests show the *session policy* scoping;
//! - `seb-agent` (IAM user): its inline policy is the `agent_permission_boundary` artefact
//!   (moto does not evaluate permission boundaries, so the boundary's statements are attached
//!   as an inline policy to check their effect).
//!
//! Every test uses its own bucket, table, group, parameter or ASG names.

// A test binary: helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use seb_aws::{AwsTarget, AwsTargetConfig, BrokerCredentials, DeployConfig, artefacts, session};
use seb_core::types::{Contract, Platform, RiskLevel};
use seb_target::{
    Execution, Identity, MutationResult, MutationStatus, ObserveRequest, Reconciled, Target,
};
use seb_testinfra::moto::{ACCOUNT, AccessKeys, Call, MotoServer, REGION};
use serde_json::{Value, json};
use zeroize::Zeroizing;

const EXEC_ROLE: &str = "seb-execution";
const AGENT: &str = "agent-7";

struct Fixture {
    moto: &'static MotoServer,
    broker: AccessKeys,
    agent: AccessKeys,
    exec_role_arn: String,
}

fn deploy_config() -> DeployConfig {
    DeployConfig {
        partition: "aws".into(),
        broker_principal_arn: format!("arn:aws:iam::{ACCOUNT}:user/seb-broker"),
        execution_role_name: EXEC_ROLE.into(),
        accounts: vec![ACCOUNT.into()],
        admin_principal_arn_pattern: format!("arn:aws:iam::{ACCOUNT}:user/seb-test-admin"),
        external_id: None,
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let t0 = std::time::Instant::now();
        let moto = MotoServer::shared().expect("moto_server must start (the harness installs moto when missing)");
        eprintln!("moto_server up on {} in {:?}", moto.endpoint(), t0.elapsed());
        let a = artefacts(&deploy_config());
        let broker = moto.create_user("seb-broker", &a.broker_role_policy).unwrap();
        let agent = moto.create_user("seb-agent", &a.agent_permission_boundary).unwrap();
        let broad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["s3:*", "ec2:*", "dynamodb:*", "ssm:*", "autoscaling:*"], "Resource": "*"}]});
        let exec_role_arn = moto.create_role(EXEC_ROLE, &a.execution_role_trust_policy, &broad).unwrap();
        eprintln!("fixture ready in {:?}", t0.elapsed());
        Fixture { moto, broker, agent, exec_role_arn }
    })
}

fn config(f: &Fixture) -> AwsTargetConfig {
    let mut c = AwsTargetConfig::new(ACCOUNT, &f.exec_role_arn);
    c.endpoint_url = Some(f.moto.endpoint().to_owned());
    c.s3_force_path_style = true;
    // moto matches only `Resource: "*"` outside S3/IAM/STS: for these services the session
    // policy is scoped by action only in the tests (S3 keeps the exact ARN).
    c.insecure_wildcard_resource_services =
        ["ec2", "dynamodb", "ssm", "autoscaling"].into_iter().map(String::from).collect();
    c
}

async fn target_with(f: &Fixture, cfg: AwsTargetConfig) -> AwsTarget {
    let creds = BrokerCredentials::Static {
        access_key_id: f.broker.access_key_id.clone(),
        secret_access_key: Zeroizing::new(f.broker.secret_access_key.clone()),
        session_token: None,
    };
    AwsTarget::new(cfg, creds).await.unwrap()
}

async fn target() -> (&'static Fixture, AwsTarget) {
    let f = fixture();
    let t = target_with(f, config(f)).await;
    (f, t)
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn tref(service: &str, arn: &str) -> Value {
    json!({"account": ACCOUNT, "region": REGION, "service": service, "arn": arn})
}

fn s3_obj(bucket: &str, key: &str) -> Value {
    tref("s3", &format!("arn:aws:s3:::{bucket}/{key}"))
}

/// Observe as admission would, and build the execution the broker would run.
async fn admit(t: &AwsTarget, op: &str, target: Value, params: Value) -> Execution {
    let req = ObserveRequest {
        op: op.into(),
        target: target.clone(),
        params: params.clone(),
        pointers: vec![],
    };
    let obs = t.observe(&req).await.unwrap();
    let cid = uuid::Uuid::new_v4().to_string();
    Execution {
        cid: cid.clone(),
        nonce: format!("n-{}", uuid::Uuid::new_v4().simple()),
        agent: AGENT.into(),
        risk_level: RiskLevel::L2,
        platform: Platform::Aws,
        op: op.into(),
        target: target.clone(),
        params: params.clone(),
        contract: Contract {
            platform: Platform::Aws,
            op: op.into(),
            target,
            params,
            constraints: vec![],
            risk_level: RiskLevel::L2,
        },
        evidence: obs.projection,
        observed_version: obs.version,
        break_glass: false,
    }
}

/// Check 11 as the broker does: re-observe and compare with the evidence; then pin the
/// version seen now.
async fn drift_check(t: &AwsTarget, exec: &mut Execution) -> Result<(), String> {
    let live = t.observe(&exec.observe_request()).await.map_err(|e| e.to_string())?;
    seb_core::drift::compare(&exec.evidence, &BTreeMap::new(), &live.projection)?;
    exec.observed_version = live.version;
    Ok(())
}

/// Steps 11, 14, 15, 16.
async fn execute(t: &AwsTarget, exec: &mut Execution) -> MutationResult {
    drift_check(t, exec).await.unwrap();
    let id = t.mint(exec).await.unwrap();
    let r = t.mutate(exec, &id).await.unwrap();
    t.retire(exec, id).await.unwrap();
    r
}

fn session_sdk(f: &Fixture, id: &Identity) -> SdkConfig {
    let s: Value = serde_json::from_str(&id.secret).unwrap();
    let creds = Credentials::new(
        s["access_key_id"].as_str().unwrap(),
        s["secret_access_key"].as_str().unwrap(),
        Some(s["session_token"].as_str().unwrap().to_owned()),
        None,
        "test",
    );
    keys_sdk(f, creds)
}

fn keys_sdk(f: &Fixture, creds: Credentials) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(f.moto.endpoint())
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

fn user_sdk(f: &Fixture, k: &AccessKeys) -> SdkConfig {
    keys_sdk(f, Credentials::new(&k.access_key_id, &k.secret_access_key, None, None, "test"))
}

fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build(),
    )
}

/// The HTTP status of an SDK result (moto's auth errors are not always parseable: assert on
/// the status).
fn status<T, E>(
    r: &Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
    }
}

fn get_object(f: &Fixture, bucket: &str, key: &str) -> Option<String> {
    let r = f
        .moto
        .batch(&[Call::new("s3", "get_object", json!({"Bucket": bucket, "Key": key}))])
        .unwrap();
    r.into_iter().next().unwrap().ok().map(|v| v["Body"].as_str().unwrap().to_owned())
}

fn assert_applied(r: &MutationResult) {
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Every profile succeeds with the minted session and is visible.

#[tokio::test]
async fn s3_put_object_creates_then_overwrites_pinned_by_etag() {
    let (f, t) = target().await;
    let bucket = uniq("put");
    f.moto.create_bucket(&bucket).unwrap();
    // Create: the object is absent, pinned with If-None-Match: *.
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "cfg.txt"), json!({"body": "v1"})).await;
    assert_eq!(e.observed_version, None);
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(get_object(f, &bucket, "cfg.txt").as_deref(), Some("v1"));
    let post = r.post_state.unwrap();
    assert!(post["/etag"].is_string());
    // Overwrite: pinned with If-Match: <observed ETag>.
    let mut e = admit(
        &t,
        "s3:PutObject",
        s3_obj(&bucket, "cfg.txt"),
        json!({"body": "v2", "content_type": "text/plain"}),
    )
    .await;
    assert!(e.observed_version.is_some());
    assert_applied(&execute(&t, &mut e).await);
    assert_eq!(get_object(f, &bucket, "cfg.txt").as_deref(), Some("v2"));
}

#[tokio::test]
async fn s3_delete_object_applies() {
    let (f, t) = target().await;
    let bucket = uniq("del");
    f.moto.create_bucket(&bucket).unwrap();
    f.moto.put_object(&bucket, "old.log", "bye").unwrap();
    let mut e = admit(&t, "s3:DeleteObject", s3_obj(&bucket, "old.log"), json!({})).await;
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.post_state.unwrap()["/etag"], Value::Null);
    assert_eq!(get_object(f, &bucket, "old.log"), None);
    // Deleting an object that was absent at the drift check is refused (S3 cannot pin absence).
    let mut e = admit(&t, "s3:DeleteObject", s3_obj(&bucket, "never.log"), json!({})).await;
    assert_eq!(execute(&t, &mut e).await.status, MutationStatus::Failed);
}

#[tokio::test]
async fn s3_put_bucket_policy_applies() {
    let (f, t) = target().await;
    let bucket = uniq("pol");
    f.moto.create_bucket(&bucket).unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "ReadOnly", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/*")}]});
    let mut e = admit(
        &t,
        "s3:PutBucketPolicy",
        tref("s3", &format!("arn:aws:s3:::{bucket}")),
        json!({"policy": policy}),
    )
    .await;
    assert_eq!(e.evidence["/policy"], Value::Null);
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.post_state.unwrap()["/policy"], policy);
    let got = f.moto.call("s3", "get_bucket_policy", json!({"Bucket": bucket})).unwrap();
    assert_eq!(serde_json::from_str::<Value>(got["Policy"].as_str().unwrap()).unwrap(), policy);
}

#[tokio::test]
async fn dynamodb_put_update_delete_apply() {
    let (f, t) = target().await;
    let table = uniq("orders");
    let arn = f.moto.create_table(REGION, &table, "pk").unwrap();
    let tgt = tref("dynamodb", &arn);
    let key = json!({"pk": {"S": "o-1"}});
    // PutItem on an absent item: attribute_not_exists(pk).
    let mut e = admit(
        &t,
        "dynamodb:PutItem",
        tgt.clone(),
        json!({"key": key, "item": {"pk": {"S": "o-1"}, "qty": {"N": "1"}, "note": {"S": "x"}}}),
    )
    .await;
    assert_eq!(e.evidence[""], Value::Null);
    assert_applied(&execute(&t, &mut e).await);
    // UpdateItem pinned to every observed attribute.
    let mut e = admit(
        &t,
        "dynamodb:UpdateItem",
        tgt.clone(),
        json!({"key": key, "set": {"qty": {"N": "5"}}, "remove": ["note"]}),
    )
    .await;
    assert_eq!(e.evidence[""], json!({"note": {"S": "x"}, "pk": {"S": "o-1"}, "qty": {"N": "1"}}));
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.post_state.unwrap()[""], json!({"pk": {"S": "o-1"}, "qty": {"N": "5"}}));
    let got = f.moto.call("dynamodb", "get_item", json!({"TableName": table, "Key": key})).unwrap();
    assert_eq!(got["Item"], json!({"pk": {"S": "o-1"}, "qty": {"N": "5"}}));
    // DeleteItem.
    let mut e = admit(&t, "dynamodb:DeleteItem", tgt, json!({"key": key})).await;
    assert_applied(&execute(&t, &mut e).await);
    let got = f.moto.call("dynamodb", "get_item", json!({"TableName": table, "Key": key})).unwrap();
    assert!(got.get("Item").is_none());
}

#[tokio::test]
async fn ssm_put_parameter_creates_and_overwrites() {
    let (f, t) = target().await;
    let name = format!("/seb/{}", uniq("flag"));
    let tgt = tref("ssm", &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"));
    let mut e = admit(&t, "ssm:PutParameter", tgt.clone(), json!({"value": "on"})).await;
    assert_eq!(e.observed_version, None);
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.result.unwrap()["version"], 1);
    let mut e = admit(&t, "ssm:PutParameter", tgt, json!({"value": "off"})).await;
    assert_eq!(e.observed_version.as_deref(), Some("1"));
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.error, None, "no interleaved write");
    let got = f.moto.call("ssm", "get_parameter", json!({"Name": name})).unwrap();
    assert_eq!(got["Parameter"]["Value"], "off");
    assert_eq!(got["Parameter"]["Version"], 2);
}

#[tokio::test]
async fn ec2_authorize_then_revoke_ingress() {
    let (f, t) = target().await;
    let sg = f.moto.create_security_group(REGION, &uniq("web")).unwrap();
    let tgt = tref("ec2", &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{sg}"));
    let rules = json!({"rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "10.20.0.0/16", "description": "lb"}]});
    let mut e = admit(&t, "ec2:AuthorizeSecurityGroupIngress", tgt.clone(), rules.clone()).await;
    assert_eq!(e.evidence["/ingress"], json!([]));
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.post_state.unwrap()["/ingress"], rules["rules"]);
    let got = f.moto.call("ec2", "describe_security_groups", json!({"GroupIds": [sg]})).unwrap();
    assert_eq!(
        got["SecurityGroups"][0]["IpPermissions"][0]["IpRanges"][0]["CidrIp"],
        "10.20.0.0/16"
    );
    let mut e = admit(&t, "ec2:RevokeSecurityGroupIngress", tgt, rules).await;
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.post_state.unwrap()["/ingress"], json!([]));
}

#[tokio::test]
async fn autoscaling_set_desired_and_update_group() {
    let (f, t) = target().await;
    let name = uniq("asg");
    let arn = f.moto.create_asg(REGION, &name, 1, 4, 2).unwrap();
    let tgt = tref("autoscaling", &arn);
    let mut e =
        admit(&t, "autoscaling:SetDesiredCapacity", tgt.clone(), json!({"desired_capacity": 3}))
            .await;
    assert_eq!(e.evidence["/desired_capacity"], 2);
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    assert_eq!(r.post_state.unwrap()["/desired_capacity"], 3);
    // Above the observed MaxSize: refused by the broker (moto would accept it).
    let mut e =
        admit(&t, "autoscaling:SetDesiredCapacity", tgt.clone(), json!({"desired_capacity": 9}))
            .await;
    assert_eq!(execute(&t, &mut e).await.status, MutationStatus::Failed);
    let mut e = admit(
        &t,
        "autoscaling:UpdateAutoScalingGroup",
        tgt,
        json!({"min_size": 2, "max_size": 6, "desired_capacity": 5}),
    )
    .await;
    let r = execute(&t, &mut e).await;
    assert_applied(&r);
    let got = f
        .moto
        .call(
            "autoscaling",
            "describe_auto_scaling_groups",
            json!({"AutoScalingGroupNames": [name]}),
        )
        .unwrap();
    let g = &got["AutoScalingGroups"][0];
    assert_eq!(
        (g["MinSize"].as_i64(), g["MaxSize"].as_i64(), g["DesiredCapacity"].as_i64()),
        (Some(2), Some(6), Some(5))
    );
}

// ---------------------------------------------------------------------------------------
// The session can do nothing outside its session policy, and expires.

#[tokio::test]
async fn session_cannot_act_outside_its_policy() {
    let (f, t) = target().await;
    let (a, b) = (uniq("scope-a"), uniq("scope-b"));
    f.moto.create_bucket(&a).unwrap();
    f.moto.create_bucket(&b).unwrap();
    f.moto.put_object(&a, "other.txt", "keep").unwrap();
    let mut e = admit(&t, "s3:PutObject", s3_obj(&a, "k.txt"), json!({"body": "1"})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    let c = s3(&session_sdk(f, &id));
    let body = || aws_sdk_s3::primitives::ByteStream::from_static(b"x");
    // Exactly the certified action on the certified ARN works.
    assert_eq!(status(&c.put_object().bucket(&a).key("k.txt").body(body()).send().await), 200);
    // Another bucket, another key, another action: 403.
    assert_eq!(status(&c.put_object().bucket(&b).key("k.txt").body(body()).send().await), 403);
    assert_eq!(status(&c.put_object().bucket(&a).key("other.txt").body(body()).send().await), 403);
    assert_eq!(status(&c.delete_object().bucket(&a).key("k.txt").send().await), 403);
    assert_eq!(status(&c.get_object().bucket(&a).key("other.txt").send().await), 403);
    assert_eq!(status(&c.list_objects_v2().bucket(&a).send().await), 403);
    assert_eq!(status(&c.put_bucket_policy().bucket(&a).policy("{}").send().await), 403);
    // Another service: 403 (the execution role itself allows all of these).
    let ec2 = aws_sdk_ec2::Client::new(&session_sdk(f, &id));
    let r = ec2.describe_security_groups().send().await;
    assert_eq!(
        r.as_ref().err().and_then(|e| e.raw_response()).map(|r| r.status().as_u16()),
        Some(403)
    );
    assert_eq!(get_object(f, &a, "other.txt").as_deref(), Some("keep"));
    t.retire(&e, id).await.unwrap();

    // Services moto scopes by action only: another action on the same table is still 403.
    let table = uniq("scope-t");
    let arn = f.moto.create_table(REGION, &table, "pk").unwrap();
    let key = json!({"pk": {"S": "a"}});
    let mut e = admit(
        &t,
        "dynamodb:PutItem",
        tref("dynamodb", &arn),
        json!({"key": key, "item": {"pk": {"S": "a"}}}),
    )
    .await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&session_sdk(f, &id));
    let k = aws_sdk_dynamodb::types::AttributeValue::S("a".into());
    let r = ddb.delete_item().table_name(&table).key("pk", k.clone()).send().await;
    assert_eq!(
        r.as_ref().err().and_then(|e| e.raw_response()).map(|r| r.status().as_u16()),
        Some(403)
    );
    let r = ddb.get_item().table_name(&table).key("pk", k).send().await;
    assert_eq!(
        r.as_ref().err().and_then(|e| e.raw_response()).map(|r| r.status().as_u16()),
        Some(403)
    );
    let ssm = aws_sdk_ssm::Client::new(&session_sdk(f, &id));
    let r = ssm.put_parameter().name("/x").value("y").overwrite(true).send().await;
    assert_eq!(
        r.as_ref().err().and_then(|e| e.raw_response()).map(|r| r.status().as_u16()),
        Some(403)
    );
}

#[tokio::test]
async fn session_credentials_expire() {
    let f = fixture();
    // AWS refuses DurationSeconds < 900; moto accepts it, and our launcher refuses expired
    // sessions. A dedicated test configuration makes the session last 4 s.
    let mut cfg = config(f);
    cfg.session_duration_secs = 4;
    cfg.insecure_allow_short_sessions = true;
    let t = target_with(f, cfg).await;
    let bucket = uniq("exp");
    f.moto.create_bucket(&bucket).unwrap();
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "k"), json!({"body": "late"})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    let c = s3(&session_sdk(f, &id));
    let ok = c
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"early"))
        .send()
        .await;
    assert_eq!(status(&ok), 200, "valid before expiry");
    // Wait until moto's recorded expiry (same clock) has passed.
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    assert!(
        id.expires_at_ms > now_ms && id.expires_at_ms <= now_ms + 5_000,
        "expiry reported by STS"
    );
    tokio::time::sleep(Duration::from_millis(id.expires_at_ms - now_ms + 1_500)).await;
    e.observed_version = None; // irrelevant: the request is refused before S3 looks at it
    let r = t.mutate(&e, &id).await.unwrap();
    assert_eq!(r.status, MutationStatus::Failed, "{r:?}");
    assert!(r.error.as_deref().unwrap_or_default().contains("403"), "{r:?}");
    let late = c
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"late"))
        .send()
        .await;
    assert_eq!(status(&late), 403);
    assert_eq!(get_object(f, &bucket, "k").as_deref(), Some("early"));
    // (The default configuration's 900 s is asserted in the session-identity test.)
}

#[tokio::test]
async fn agent_and_broker_credentials_cannot_mutate() {
    let (f, _t) = target().await;
    let bucket = uniq("agent");
    f.moto.create_bucket(&bucket).unwrap();
    let table = uniq("agent-t");
    f.moto.create_table(REGION, &table, "pk").unwrap();
    let sg = f.moto.create_security_group(REGION, &uniq("agent-sg")).unwrap();
    let asg = uniq("agent-asg");
    f.moto.create_asg(REGION, &asg, 1, 3, 1).unwrap();
    for (who, keys) in [("agent", &f.agent), ("broker", &f.broker)] {
        let sdk = user_sdk(f, keys);
        let st = |r: Option<u16>| r.unwrap_or(0);
        let c = s3(&sdk);
        let body = aws_sdk_s3::primitives::ByteStream::from_static(b"x");
        assert_eq!(
            status(&c.put_object().bucket(&bucket).key("k").body(body).send().await),
            403,
            "{who} s3:PutObject"
        );
        assert_eq!(
            status(&c.put_bucket_policy().bucket(&bucket).policy("{}").send().await),
            403,
            "{who} s3:PutBucketPolicy"
        );
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let r = ddb
            .put_item()
            .table_name(&table)
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
            .send()
            .await;
        assert_eq!(
            st(r.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16()))),
            403,
            "{who} dynamodb:PutItem"
        );
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let r = ssm.put_parameter().name(format!("/{bucket}")).value("v").send().await;
        assert_eq!(
            st(r.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16()))),
            403,
            "{who} ssm:PutParameter"
        );
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let perm = aws_sdk_ec2::types::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let r =
            ec2.authorize_security_group_ingress().group_id(&sg).ip_permissions(perm).send().await;
        assert_eq!(
            st(r.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16()))),
            403,
            "{who} ec2:Authorize"
        );
        let asc = aws_sdk_autoscaling::Client::new(&sdk);
        let r = asc
            .set_desired_capacity()
            .auto_scaling_group_name(&asg)
            .desired_capacity(3)
            .send()
            .await;
        assert_eq!(
            st(r.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16()))),
            403,
            "{who} autoscaling"
        );
    }
    // The agent cannot assume the execution role either (trust policy + boundary).
    let sts = aws_sdk_sts::Client::new(&user_sdk(f, &f.agent));
    let r = sts.assume_role().role_arn(&f.exec_role_arn).role_session_name("sneaky").send().await;
    assert_eq!(r.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16())), Some(403));
    // Nothing changed.
    assert_eq!(get_object(f, &bucket, "k"), None);
}

// ---------------------------------------------------------------------------------------
// Drift and races.

#[tokio::test]
async fn drift_before_execution_means_readmit() {
    let (f, t) = target().await;
    let bucket = uniq("drift");
    f.moto.create_bucket(&bucket).unwrap();
    f.moto.put_object(&bucket, "k", "admitted").unwrap();
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "k"), json!({"body": "new"})).await;
    f.moto.put_object(&bucket, "k", "changed behind our back").unwrap();
    let err = drift_check(&t, &mut e).await.unwrap_err();
    assert!(err.contains("/etag"), "{err}");

    let name = uniq("drift-asg");
    let arn = f.moto.create_asg(REGION, &name, 1, 5, 2).unwrap();
    let mut e = admit(
        &t,
        "autoscaling:SetDesiredCapacity",
        tref("autoscaling", &arn),
        json!({"desired_capacity": 4}),
    )
    .await;
    f.moto
        .call(
            "autoscaling",
            "set_desired_capacity",
            json!({"AutoScalingGroupName": name, "DesiredCapacity": 3}),
        )
        .unwrap();
    assert!(drift_check(&t, &mut e).await.unwrap_err().contains("/desired_capacity"));

    let pname = format!("/seb/{}", uniq("drift-p"));
    f.moto.put_parameter(REGION, &pname, "a", false).unwrap();
    let ptgt = tref("ssm", &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{pname}"));
    let mut e = admit(&t, "ssm:PutParameter", ptgt, json!({"value": "b"})).await;
    f.moto.put_parameter(REGION, &pname, "z", true).unwrap();
    assert!(drift_check(&t, &mut e).await.is_err());
}

#[tokio::test]
async fn racing_writes_conflict_with_nothing_changed() {
    let (f, t) = target().await;
    // S3: a write lands between the drift check and the mutation → 412 → conflict.
    let bucket = uniq("race");
    f.moto.create_bucket(&bucket).unwrap();
    f.moto.put_object(&bucket, "k", "v1").unwrap();
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "k"), json!({"body": "ours"})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto.put_object(&bucket, "k", "racer").unwrap();
    let r = t.mutate(&e, &id).await.unwrap();
    assert_eq!(r.status, MutationStatus::Conflict, "{r:?}");
    assert_eq!(get_object(f, &bucket, "k").as_deref(), Some("racer"));
    // S3 create (If-None-Match: *) racing a creator.
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "fresh"), json!({"body": "ours"})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto.put_object(&bucket, "fresh", "racer").unwrap();
    assert_eq!(t.mutate(&e, &id).await.unwrap().status, MutationStatus::Conflict);
    assert_eq!(get_object(f, &bucket, "fresh").as_deref(), Some("racer"));
    // S3 delete racing an overwrite.
    let mut e = admit(&t, "s3:DeleteObject", s3_obj(&bucket, "k"), json!({})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto.put_object(&bucket, "k", "racer2").unwrap();
    assert_eq!(t.mutate(&e, &id).await.unwrap().status, MutationStatus::Conflict);
    assert_eq!(get_object(f, &bucket, "k").as_deref(), Some("racer2"));

    // DynamoDB: the condition expression pins every observed attribute.
    let table = uniq("race-t");
    let arn = f.moto.create_table(REGION, &table, "pk").unwrap();
    let key = json!({"pk": {"S": "a"}});
    f.moto
        .call(
            "dynamodb",
            "put_item",
            json!({"TableName": table, "Item": {"pk": {"S": "a"}, "n": {"N": "1"}}}),
        )
        .unwrap();
    let mut e = admit(
        &t,
        "dynamodb:UpdateItem",
        tref("dynamodb", &arn),
        json!({"key": key, "set": {"n": {"N": "2"}}}),
    )
    .await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto
        .call(
            "dynamodb",
            "put_item",
            json!({"TableName": table, "Item": {"pk": {"S": "a"}, "n": {"N": "7"}}}),
        )
        .unwrap();
    let r = t.mutate(&e, &id).await.unwrap();
    assert_eq!(r.status, MutationStatus::Conflict, "{r:?}");
    let got = f.moto.call("dynamodb", "get_item", json!({"TableName": table, "Key": key})).unwrap();
    assert_eq!(got["Item"]["n"], json!({"N": "7"}));
    // DynamoDB PutItem on an absent item racing a creator.
    let key_b = json!({"pk": {"S": "b"}});
    let mut e = admit(
        &t,
        "dynamodb:PutItem",
        tref("dynamodb", &arn),
        json!({"key": key_b, "item": {"pk": {"S": "b"}, "n": {"N": "1"}}}),
    )
    .await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto
        .call(
            "dynamodb",
            "put_item",
            json!({"TableName": table, "Item": {"pk": {"S": "b"}, "n": {"N": "9"}}}),
        )
        .unwrap();
    assert_eq!(t.mutate(&e, &id).await.unwrap().status, MutationStatus::Conflict);

    // SSM: creating (Overwrite=false) racing a creator → conflict, theirs kept.
    let pname = format!("/seb/{}", uniq("race-p"));
    let ptgt = tref("ssm", &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{pname}"));
    let mut e = admit(&t, "ssm:PutParameter", ptgt.clone(), json!({"value": "ours"})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto.put_parameter(REGION, &pname, "racer", false).unwrap();
    assert_eq!(t.mutate(&e, &id).await.unwrap().status, MutationStatus::Conflict);
    let got = f.moto.call("ssm", "get_parameter", json!({"Name": pname})).unwrap();
    assert_eq!(got["Parameter"]["Value"], "racer");
    // SSM overwrite: no compare-and-swap exists; the version check detects the interleaved
    // write after the fact (applied, with the error recorded).
    let mut e = admit(&t, "ssm:PutParameter", ptgt, json!({"value": "ours"})).await;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    f.moto.put_parameter(REGION, &pname, "racer2", true).unwrap();
    let r = t.mutate(&e, &id).await.unwrap();
    assert_eq!(r.status, MutationStatus::Applied);
    assert!(r.error.as_deref().unwrap_or_default().contains("interleaved"), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Session identity: tags, source identity, name, exact policy.

#[tokio::test]
async fn session_carries_tags_source_identity_and_exact_policy() {
    let (f, t) = target().await;
    let bucket = uniq("tags");
    f.moto.create_bucket(&bucket).unwrap();
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "k"), json!({"body": "1"})).await;
    e.risk_level = RiskLevel::L3;
    drift_check(&t, &mut e).await.unwrap();
    let id = t.mint(&e).await.unwrap();
    let session_name = session::session_name(&e.cid);
    assert_eq!(id.name, format!("arn:aws:sts::{ACCOUNT}:assumed-role/{EXEC_ROLE}/{session_name}"));
    assert_eq!(id.handle["source_identity"], AGENT, "SourceIdentity returned by AssumeRole");
    // What moto recorded for the session (moto's own model, via /moto-api/data.json).
    let akid = id.handle["access_key_id"].as_str().unwrap();
    let roles = f.moto.assumed_roles().unwrap();
    let rec = roles.iter().find(|r| r["access_key_id"] == akid).expect("session recorded by moto");
    assert_eq!(rec["session_name"], session_name);
    assert_eq!(rec["role_arn"], f.exec_role_arn);
    assert_eq!(rec["source_identity"], AGENT);
    assert_eq!(
        rec["session_tags"],
        json!({"seb:cid": e.cid, "seb:nonce": e.nonce, "seb:risk": "L3"})
    );
    assert_eq!(rec["duration_seconds"], 900);
    let sent: Value = serde_json::from_str(rec["policy"].as_str().unwrap()).unwrap();
    assert_eq!(sent, session::session_policy("s3:PutObject", &format!("arn:aws:s3:::{bucket}/k")));
    // GetCallerIdentity with the session: the assumed-role ARN carries the session name.
    let who =
        aws_sdk_sts::Client::new(&session_sdk(f, &id)).get_caller_identity().send().await.unwrap();
    assert_eq!(who.arn(), Some(id.name.as_str()));
    assert_eq!(who.account(), Some(ACCOUNT));
    // An identity minted for another execution is refused.
    let mut other = e.clone();
    other.cid = uuid::Uuid::new_v4().to_string();
    assert!(t.mutate(&other, &id).await.is_err());
    let r = t.mutate(&e, &id).await.unwrap();
    assert_applied(&r);
    assert!(r.target_request_id.is_some());
}

#[tokio::test]
async fn trust_policy_without_tag_session_refuses_the_broker() {
    let f = fixture();
    // A role whose trust policy lacks sts:TagSession / sts:SetSourceIdentity: AWS (and the
    // launcher) refuse an AssumeRole carrying tags and a source identity.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/seb-broker")}, "Action": "sts:AssumeRole"}]});
    let role = uniq("untagged");
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    let arn = f.moto.create_role(&role, &trust, &policy).unwrap();
    // The broker's own policy allows assuming this role: only the trust policy can refuse.
    let allow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "Resource": arn}]});
    f.moto
        .call("iam", "put_user_policy", json!({"UserName": "seb-broker", "PolicyName": role, "PolicyDocument": allow.to_string()}))
        .unwrap();
    let mut cfg = config(f);
    cfg.accounts.insert(
        ACCOUNT.into(),
        seb_aws::AccountConfig { execution_role_arn: arn.clone(), external_id: None },
    );
    let t = target_with(f, cfg).await;
    let bucket = uniq("untagged");
    f.moto.create_bucket(&bucket).unwrap();
    let e = admit(&t, "s3:PutObject", s3_obj(&bucket, "k"), json!({"body": "1"})).await;
    let err = t.mint(&e).await.unwrap_err();
    assert!(matches!(err, seb_target::TargetError::Refused { .. }), "{err:?}");
    // Control: the same role with the shipped trust policy admits the broker.
    let shipped = artefacts(&deploy_config()).execution_role_trust_policy;
    f.moto
        .call(
            "iam",
            "update_assume_role_policy",
            json!({"RoleName": role, "PolicyDocument": shipped.to_string()}),
        )
        .unwrap();
    let id = t.mint(&e).await.unwrap();
    assert!(id.name.contains(&role));
}

// ---------------------------------------------------------------------------------------
// Reconciliation after a crash.

#[tokio::test]
async fn reconcile_reports_applied_not_applied_uncertain() {
    let (f, t) = target().await;
    let bucket = uniq("rec");
    f.moto.create_bucket(&bucket).unwrap();
    f.moto.put_object(&bucket, "k", "before").unwrap();
    let mut e = admit(&t, "s3:PutObject", s3_obj(&bucket, "k"), json!({"body": "after"})).await;
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::NotApplied);
    assert_applied(&execute(&t, &mut e).await);
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::Applied);
    f.moto.put_object(&bucket, "k", "someone else").unwrap();
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::Uncertain);

    let table = uniq("rec-t");
    let arn = f.moto.create_table(REGION, &table, "pk").unwrap();
    let key = json!({"pk": {"S": "a"}});
    let mut e = admit(
        &t,
        "dynamodb:PutItem",
        tref("dynamodb", &arn),
        json!({"key": key, "item": {"pk": {"S": "a"}, "v": {"N": "1"}}}),
    )
    .await;
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::NotApplied);
    assert_applied(&execute(&t, &mut e).await);
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::Applied);

    let name = uniq("rec-asg");
    let asg = f.moto.create_asg(REGION, &name, 0, 5, 1).unwrap();
    let mut e = admit(
        &t,
        "autoscaling:SetDesiredCapacity",
        tref("autoscaling", &asg),
        json!({"desired_capacity": 2}),
    )
    .await;
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::NotApplied);
    assert_applied(&execute(&t, &mut e).await);
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::Applied);

    let sg = f.moto.create_security_group(REGION, &uniq("rec-sg")).unwrap();
    let tgt = tref("ec2", &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{sg}"));
    let rules = json!({"rules": [{"protocol": "tcp", "from_port": 8080, "to_port": 8080, "cidr": "10.0.0.0/24"}]});
    let mut e = admit(&t, "ec2:AuthorizeSecurityGroupIngress", tgt, rules).await;
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::NotApplied);
    assert_applied(&execute(&t, &mut e).await);
    assert_eq!(t.reconcile(&e).await.unwrap(), Reconciled::Applied);
}

// ---------------------------------------------------------------------------------------
// SSM values are digests; an existing parameter's type cannot change; a target that can never
// be valid is refused before anything is observed. Through admission and the broker (the
// section 7 pipeline over this target, on a SQLite store).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use seb_aws::AwsPlatform;
use seb_aws::profiles::value_digest;
use seb_core::certificate::encode_nonce;
use seb_core::digest::Digest;
use seb_core::envelope::Envelope;
use seb_core::keys::SigningKey;
use seb_core::pipeline::{Observation, ScopeCheck, sign_request};
use seb_core::types::{
    CertPath, CertificatePayload, Decision, Evidence, ExecRequest, FailedCheck, Issuer,
    OutcomeStatus, Presentation, Proposal, Subject, Validity,
};
use seb_target::{OpProfile, TargetError, TargetFuture};

/// The AWS target, counting the calls that read or act on AWS.
struct Counted {
    inner: AwsTarget,
    observes: AtomicUsize,
    mints: AtomicUsize,
}

impl Counted {
    fn calls(&self) -> (usize, usize) {
        (self.observes.load(Ordering::SeqCst), self.mints.load(Ordering::SeqCst))
    }
}

impl ScopeCheck for Counted {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        self.inner.check_scope(contract)
    }
    fn check_evidence(&self, contract: &Contract, evidence: &Evidence) -> Result<(), String> {
        self.inner.check_evidence(contract, evidence)
    }
}

impl Target for Counted {
    fn platform(&self) -> Platform {
        self.inner.platform()
    }
    fn profile(&self, op: &str) -> Result<OpProfile, TargetError> {
        self.inner.profile(op)
    }
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        self.observes.fetch_add(1, Ordering::SeqCst);
        self.inner.observe(req)
    }
    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity> {
        self.mints.fetch_add(1, Ordering::SeqCst);
        self.inner.mint(exec)
    }
    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        self.inner.mutate(exec, identity)
    }
    fn retire<'a>(&'a self, exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()> {
        self.inner.retire(exec, identity)
    }
    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        self.inner.reconcile(exec)
    }
}

fn issuer_key() -> SigningKey {
    SigningKey::from_seed(&[71; 32])
}
fn agent_key() -> SigningKey {
    SigningKey::from_seed(&[72; 32])
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
    )
    .unwrap()
}

/// Admission and a broker sharing one SQLite store, both over one counted AWS target.
struct Pipeline {
    target: Arc<Counted>,
    admission: Arc<seb_admission::Admission>,
    broker: seb_broker::engine::Broker,
    store: Arc<seb_store::sqlite::SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn pipeline() -> (&'static Fixture, Pipeline) {
    let (f, t) = target().await;
    let target =
        Arc::new(Counted { inner: t, observes: AtomicUsize::new(0), mints: AtomicUsize::new(0) });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("issuer.seed"),
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            issuer_key().seed().as_slice(),
        ),
    )
    .unwrap();
    // Key files must be private to their owner (seb_store::keyfile refuses anything else).
    std::fs::set_permissions(
        dir.path().join("issuer.seed"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let store = Arc::new(
        seb_store::sqlite::SqliteStore::open(&dir.path().join("seb.db"), Default::default())
            .unwrap(),
    );
    let cfg = seb_admission::AdmissionConfig::from_toml_str(
        &format!(
            "[admission]\nissuer_key_file = \"issuer.seed\"\nissuer_name = \"aws-admission\"\n\
             [[admission.agents]]\nname = \"{AGENT}\"\npublic_keys = [\"{}\"]\n",
            agent_key().public_key().to_base64()
        ),
        dir.path(),
    )
    .unwrap();
    let mut platforms = seb_admission::Platforms::default();
    platforms.insert_parts(Arc::new(AwsPlatform), target.clone());
    let admission = seb_admission::Admission::open(
        &cfg,
        store.clone(),
        platforms,
        Arc::new(seb_admission::clock::SystemClock::default()),
    )
    .await
    .unwrap();
    let broker = seb_broker::engine::Broker::new(
        store.clone(),
        vec![target.clone()],
        seb_broker::records::RecordSigner::new(SigningKey::from_seed(&[73; 32])),
        seb_broker::engine::TrustRoots {
            issuers: [issuer_key().public_key()].into_iter().collect(),
            ..Default::default()
        },
        seb_broker::engine::EngineSettings::default(),
        Arc::new(seb_broker::clock::SystemClock::default()),
    );
    (f, Pipeline { target, admission, broker, store, _dir: dir })
}

impl Pipeline {
    /// A proposal from the agent, through admission.
    async fn propose(
        &self,
        op: &str,
        target: Value,
        params: Value,
    ) -> seb_admission::service::ProposalView {
        let p = Proposal {
            proposal_id: uuid::Uuid::new_v4().to_string(),
            agent: AGENT.into(),
            platform: Platform::Aws,
            op: op.into(),
            target,
            params,
            constraints: vec![],
            rationale: "test".into(),
            at_ms: now_ms(),
        };
        let env = seb_admission::client::sign_proposal(&p, &agent_key()).unwrap();
        self.admission.submit(&seb_core::json::canonical(&env).unwrap()).await.unwrap()
    }

    /// A certificate signed by the broker's trusted issuer over `contract` and `projection`
    /// (as an issuer that skipped admission's rules, or predates them, would sign it).
    async fn certificate(
        &self,
        contract: Contract,
        projection: BTreeMap<String, Value>,
    ) -> Envelope {
        use seb_store::Store as _;
        let epochs = self.store.epoch_check("", AGENT).await.unwrap().epochs;
        let now = now_ms();
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        nonce[16..].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
        let payload = CertificatePayload {
            version: 1,
            cid: uuid::Uuid::new_v4().to_string(),
            nonce: encode_nonce(&nonce),
            issuer: Issuer { name: "aws-admission".into(), kid: issuer_key().kid() },
            subject: Subject { agent: AGENT.into(), public_key: agent_key().public_key() },
            contract_digest: contract.digest().unwrap(),
            contract,
            evidence: Evidence {
                digest: Digest::of_json(&projection).unwrap(),
                projection,
                observed_at_ms: now,
                tolerance: BTreeMap::new(),
            },
            validity: Validity { not_before: now / 1000 - 5, not_after: now / 1000 + 120 },
            policy_epoch: epochs.policy_epoch,
            revocation_epoch: epochs.revocation_epoch,
            cert_path: CertPath::Policy,
            attestations: vec![],
            issued_at_ms: now,
        };
        payload.sign(&issuer_key()).unwrap()
    }

    /// Present a certificate as its agent, with the contract's own request.
    async fn execute(&self, cert: &Envelope) -> seb_broker::engine::ExecResult {
        let p: CertificatePayload =
            serde_json::from_slice(&cert.insecure_payload_bytes().unwrap()).unwrap();
        let request = ExecRequest {
            cid: p.cid.clone(),
            nonce: p.nonce.clone(),
            op: p.contract.op.clone(),
            target: p.contract.target.clone(),
            params: p.contract.params.clone(),
            caller: AGENT.into(),
            t_exec_ms: now_ms(),
        };
        let proof = sign_request(&request, &agent_key()).unwrap();
        let body =
            seb_core::json::canonical(&Presentation { certificate: cert.clone(), request, proof })
                .unwrap();
        self.broker.execute(&body, "127.0.0.1").await
    }

    /// Every ledger entry as (payloadType, payload).
    async fn ledger(&self) -> Vec<(String, Value)> {
        use seb_store::Store as _;
        let n = self.store.ledger_size().await.unwrap();
        self.store
            .entries(0, n)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                let env: Envelope = seb_core::json::parse(e, usize::MAX).unwrap();
                let payload: Value =
                    serde_json::from_slice(&env.insecure_payload_bytes().unwrap()).unwrap();
                (env.payload_type.to_string(), payload)
            })
            .collect()
    }

    /// The refusal, checked against its decision record (the last ledger entry).
    async fn refused(&self, r: &seb_broker::engine::ExecResult) -> (FailedCheck, Decision, u16) {
        let f = match r {
            Ok(e) => panic!("expected a refusal, got {:?}", e.outcome.status),
            Err(f) => f,
        };
        let l = self.ledger().await;
        let (ty, rec) = l.last().expect("a decision record");
        assert!(ty.contains("decision"), "{ty}");
        assert_eq!(rec["id"], json!(f.record_id));
        assert_eq!(rec["failed_check"], json!(f.failed_check));
        assert_eq!(rec["decision"], json!(f.decision));
        (f.failed_check, f.decision, f.http_status())
    }
}

fn ssm_target(name: &str) -> Value {
    tref("ssm", &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"))
}

fn ssm_contract(target: Value, params: Value) -> Contract {
    Contract {
        platform: Platform::Aws,
        op: "ssm:PutParameter".into(),
        target,
        params,
        constraints: vec![],
        risk_level: RiskLevel::L2,
    }
}

fn put_secure_string(f: &Fixture, name: &str, plaintext: &str) {
    f.moto
        .call(
            "ssm",
            "put_parameter",
            json!({"Name": name, "Value": plaintext, "Type": "SecureString"}),
        )
        .unwrap();
}

/// The parameter as moto holds it (value as stored, undecrypted), for before/after checks.
fn stored_parameter(f: &Fixture, name: &str) -> Value {
    f.moto
        .call("ssm", "get_parameter", json!({"Name": name, "WithDecryption": false}))
        .unwrap()["Parameter"]
        .clone()
}

#[tokio::test]
async fn ssm_evidence_holds_a_digest_not_the_value_and_still_sees_a_changed_value() {
    let (f, t) = target().await;
    let name = format!("/seb/{}", uniq("secret"));
    let plaintext = "hunter2-plaintext-value";
    put_secure_string(f, &name, plaintext);
    let stored = stored_parameter(f, &name);
    let ciphertext = stored["Value"].as_str().unwrap().to_owned();
    assert_eq!(stored["Type"], "SecureString");
    let req = ObserveRequest {
        op: "ssm:PutParameter".into(),
        target: ssm_target(&name),
        params: json!({"value": "x"}),
        pointers: vec![],
    };
    let obs = t.observe(&req).await.unwrap();
    let text = serde_json::to_string(&obs.projection).unwrap();
    assert!(!text.contains(plaintext) && !text.contains(&ciphertext), "{text}");
    let keys: Vec<&str> = obs.projection.keys().map(String::as_str).collect();
    assert_eq!(keys, ["/type", "/value_digest", "/version"]);
    assert_eq!(obs.projection["/type"], "SecureString");
    assert_eq!(obs.projection["/value_digest"], json!(value_digest(&ciphertext)));
    // Asking for the value itself yields nothing: the live model has no clear value.
    let asked = ObserveRequest { pointers: vec!["/value".into()], ..req.clone() };
    assert_eq!(t.observe(&asked).await.unwrap().projection["/value"], Value::Null);

    // A changed value is still drift, even with only the digest pinned (no version).
    let pname = format!("/seb/{}", uniq("digest"));
    f.moto.put_parameter(REGION, &pname, "blue", false).unwrap();
    let only_digest = ObserveRequest {
        op: "ssm:PutParameter".into(),
        target: ssm_target(&pname),
        params: json!({"value": "x"}),
        pointers: vec!["/value_digest".into()],
    };
    let before = t.observe(&only_digest).await.unwrap().projection;
    assert_eq!(before["/value_digest"], json!(value_digest("blue")));
    f.moto.put_parameter(REGION, &pname, "blue", true).unwrap();
    let same = t.observe(&only_digest).await.unwrap().projection;
    assert!(seb_core::drift::compare(&before, &BTreeMap::new(), &same).is_ok());
    f.moto.put_parameter(REGION, &pname, "green", true).unwrap();
    let changed = t.observe(&only_digest).await.unwrap().projection;
    let err = seb_core::drift::compare(&before, &BTreeMap::new(), &changed).unwrap_err();
    assert!(err.contains("/value_digest"), "{err}");
}

#[tokio::test]
async fn a_secure_string_cannot_be_downgraded_at_admission_or_at_the_broker() {
    let (f, p) = pipeline().await;
    let name = format!("/seb/{}", uniq("secure"));
    let plaintext = "db-password-plaintext";
    put_secure_string(f, &name, plaintext);
    let before = stored_parameter(f, &name);
    let params = json!({"value": "now-in-clear", "type": "String"});

    // Admission: observes (the evidence says SecureString) and denies at scope.
    let v = p.propose("ssm:PutParameter", ssm_target(&name), params.clone()).await;
    assert_eq!(v.status, seb_admission::service::ProposalStatus::Denied, "{v:?}");
    let reason = v.reason.clone().unwrap();
    assert!(reason.starts_with("scope: ") && reason.contains("SecureString"), "{reason}");
    assert!(v.cid.is_none() && v.certificate_digest.is_none());
    assert_eq!(p.target.calls(), (1, 0), "admission observed once, minted nothing");

    // The broker, presented a certificate over the same contract and evidence from an issuer
    // that did not apply the rule: check 9 refuses it before anything is observed.
    let obs = p
        .target
        .observe(&ObserveRequest {
            op: "ssm:PutParameter".into(),
            target: ssm_target(&name),
            params: params.clone(),
            pointers: vec![],
        })
        .await
        .unwrap();
    assert_eq!(obs.projection["/type"], "SecureString");
    let cert = p.certificate(ssm_contract(ssm_target(&name), params), obs.projection).await;
    let r = p.execute(&cert).await;
    assert_eq!(p.refused(&r).await, (FailedCheck::Scope, Decision::Reject, 403));
    assert!(r.unwrap_err().reason.contains("SecureString"));
    assert_eq!(p.target.calls(), (2, 0), "the broker observed nothing and minted nothing");
    let after = stored_parameter(f, &name);
    assert_eq!(after, before, "the parameter is unchanged");
    assert_eq!(after["Type"], "SecureString");

    // Evidence without `/type` pins nothing: refused too.
    let mut unpinned = p
        .target
        .observe(&ObserveRequest {
            op: "ssm:PutParameter".into(),
            target: ssm_target(&name),
            params: json!({"value": "x"}),
            pointers: vec!["/version".into()],
        })
        .await
        .unwrap()
        .projection;
    unpinned.remove("/type");
    let cert = p
        .certificate(
            ssm_contract(ssm_target(&name), json!({"value": "x", "type": "String"})),
            unpinned,
        )
        .await;
    let r = p.execute(&cert).await;
    assert_eq!(p.refused(&r).await, (FailedCheck::Scope, Decision::Reject, 403));
    assert_eq!(stored_parameter(f, &name), before);

    // Nothing secret reached the ledger.
    let ledger = serde_json::to_string(&p.ledger().await).unwrap();
    assert!(!ledger.contains(plaintext) && !ledger.contains(before["Value"].as_str().unwrap()));
}

#[tokio::test]
async fn a_certified_ssm_write_keeps_its_type_and_records_no_value() {
    let (f, p) = pipeline().await;
    let name = format!("/seb/{}", uniq("plain"));
    f.moto.put_parameter(REGION, &name, "old-value-in-clear", false).unwrap();
    let params = json!({"value": "new-value", "type": "String"});
    let obs = p
        .target
        .observe(&ObserveRequest {
            op: "ssm:PutParameter".into(),
            target: ssm_target(&name),
            params: params.clone(),
            pointers: vec![],
        })
        .await
        .unwrap();
    let cert = p.certificate(ssm_contract(ssm_target(&name), params.clone()), obs.projection).await;
    let done = p.execute(&cert).await.expect("admitted");
    assert_eq!(done.outcome.status, OutcomeStatus::Applied, "{done:?}");
    let got = stored_parameter(f, &name);
    assert_eq!((got["Value"].as_str(), got["Type"].as_str()), (Some("new-value"), Some("String")));

    // A value changed after certification is drift (readmit), and nothing is written.
    let name2 = format!("/seb/{}", uniq("plain"));
    f.moto.put_parameter(REGION, &name2, "a", false).unwrap();
    let obs = p
        .target
        .observe(&ObserveRequest {
            op: "ssm:PutParameter".into(),
            target: ssm_target(&name2),
            params: params.clone(),
            pointers: vec![],
        })
        .await
        .unwrap();
    let cert = p.certificate(ssm_contract(ssm_target(&name2), params), obs.projection).await;
    f.moto.put_parameter(REGION, &name2, "b", true).unwrap();
    let r = p.execute(&cert).await;
    assert_eq!(p.refused(&r).await, (FailedCheck::Drift, Decision::Readmit, 409));
    let reason = r.unwrap_err().reason;
    assert!(reason.contains("/value_digest") || reason.contains("/version"), "{reason}");
    assert_eq!(stored_parameter(f, &name2)["Value"], "b");

    let ledger = serde_json::to_string(&p.ledger().await).unwrap();
    assert!(!ledger.contains("old-value-in-clear"), "no observed value in any record");
}

#[tokio::test]
async fn a_target_that_can_never_be_valid_is_refused_before_anything_is_observed() {
    let (f, p) = pipeline().await;
    let bucket = uniq("wild");
    f.moto.create_bucket(&bucket).unwrap();
    f.moto.put_object(&bucket, "k", "untouched").unwrap();
    let wildcard = s3_obj(&bucket, "*");
    let params = json!({"body": "everything"});

    // Admission: refused when the proposal is compiled, nothing observed.
    let v = p.propose("s3:PutObject", wildcard.clone(), params.clone()).await;
    assert_eq!(v.status, seb_admission::service::ProposalStatus::Denied, "{v:?}");
    assert!(v.reason.as_deref().unwrap().contains("wildcard"), "{:?}", v.reason);
    assert!(v.evidence.is_none());
    assert_eq!(p.target.calls(), (0, 0));

    // The broker: a certificate naming a wildcard ARN (or an ARN of another region, or a
    // bucket ARN for an object op) is refused at scope (403, reject), not `fail_closed` at
    // the observe step; nothing is observed or minted.
    let other_region = tref("ssm", &format!("arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/seb/x"));
    for (op, target, params) in [
        ("s3:PutObject", wildcard.clone(), params.clone()),
        ("s3:PutObject", s3_obj(&format!("{bucket}*"), "k"), params.clone()),
        ("s3:PutObject", tref("s3", &format!("arn:aws:s3:::{bucket}")), params.clone()),
        ("s3:DeleteObject", s3_obj(&bucket, "?"), json!({})),
        ("ssm:PutParameter", other_region, json!({"value": "v", "type": "String"})),
    ] {
        let contract = Contract {
            platform: Platform::Aws,
            op: op.into(),
            target: target.clone(),
            params,
            constraints: vec![],
            risk_level: RiskLevel::L2,
        };
        let r = p.execute(&p.certificate(contract, BTreeMap::new()).await).await;
        assert_eq!(p.refused(&r).await, (FailedCheck::Scope, Decision::Reject, 403), "{target}");
        assert!(r.unwrap_err().reason.starts_with("target: "), "{target}");
    }
    assert_eq!(p.target.calls(), (0, 0), "nothing observed, nothing minted");
    assert_eq!(get_object(f, &bucket, "k").as_deref(), Some("untouched"));
}
