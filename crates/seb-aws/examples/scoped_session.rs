//! What an execution's minted AWS credentials can do: exactly the certified action on the
//! certified ARN, nothing else. Run by `scripts/demo.sh` against the local emulator:
//!
//! `cargo run -p seb-aws --example scoped_session -- .seb/demo/infra/infra.json`
//!
//! It performs the broker's own steps for one `s3:PutObject` (observe, mint with the broker's
//! credentials: AssumeRole into the execution role with the exact session policy and the
//! `seb:*` session tags), then, holding the session for a moment as an attacker who stole it
//! would, tries calls outside it. Exits 1 if any out-of-scope call succeeds.

use std::process::ExitCode;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use seb_aws::{AwsTarget, AwsTargetConfig, BrokerCredentials};
use seb_core::types::{Contract, Platform, RiskLevel};
use seb_target::{Execution, ObserveRequest, Target};
use serde_json::{Value, json};
use zeroize::Zeroizing;

type Res<T> = Result<T, String>;

fn field<'a>(v: &'a Value, p: &str) -> Res<&'a str> {
    v.pointer(p).and_then(Value::as_str).ok_or_else(|| format!("`{p}` missing in infra.json"))
}

fn read_json(path: &str) -> Res<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

async fn run(info_path: &str) -> Res<bool> {
    let info = read_json(info_path)?;
    // `null` on a real account (the default endpoints).
    let endpoint = info.pointer("/aws/endpoint").and_then(Value::as_str);
    let account = field(&info, "/aws/account")?;
    let region = field(&info, "/aws/region")?;
    let bucket = field(&info, "/aws/bucket")?;
    let creds = read_json(field(&info, "/aws/broker_credentials_file")?)?;
    let mut cfg = AwsTargetConfig::new(account, field(&info, "/aws/execution_role_arn")?);
    cfg.endpoint_url = endpoint.map(str::to_owned);
    cfg.s3_force_path_style = endpoint.is_some();
    let broker = BrokerCredentials::Static {
        access_key_id: field(&creds, "/access_key_id")?.to_owned(),
        secret_access_key: Zeroizing::new(field(&creds, "/secret_access_key")?.to_owned()),
        session_token: None,
    };
    let t = AwsTarget::new(cfg, broker).await.map_err(|e| e.to_string())?;

    let key = "scope-demo.txt";
    let target = json!({"account": account, "region": region, "service": "s3",
                        "arn": format!("arn:aws:s3:::{bucket}/{key}")});
    let params = json!({"body": "certified"});
    let op = "s3:PutObject";
    let req = ObserveRequest {
        op: op.into(),
        target: target.clone(),
        params: params.clone(),
        pointers: vec![],
    };
    let obs = t.observe(&req).await.map_err(|e| e.to_string())?;
    let exec = Execution {
        cid: uuid::Uuid::new_v4().to_string(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        agent: "agent-a".into(),
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
    };
    let id = t.mint(&exec).await.map_err(|e| e.to_string())?;
    let secret: Value = serde_json::from_str(&id.secret).map_err(|e| e.to_string())?;
    let session = Credentials::new(
        field(&secret, "/access_key_id")?,
        field(&secret, "/secret_access_key")?,
        Some(field(&secret, "/session_token")?.to_owned()),
        None,
        "seb-execution",
    );
    let mut sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()));
    if let Some(e) = endpoint {
        sdk = sdk.endpoint_url(e);
    }
    let sdk = sdk
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            session,
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk).force_path_style(endpoint.is_some()).build(),
    );
    println!(
        "   minted session {} (expires in ~900 s), session policy: {op} on {bucket}/{key} only",
        id.name
    );
    let body = || aws_sdk_s3::primitives::ByteStream::from_static(b"stolen");
    fn code<T, E>(
        r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    ) -> u16 {
        match r {
            Ok(_) => 200,
            Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
        }
    }
    let attempts = [
        (
            "PutObject on another key",
            code(s3.put_object().bucket(bucket).key("flags.json").body(body()).send().await),
        ),
        (
            "DeleteObject on the certified key",
            code(s3.delete_object().bucket(bucket).key(key).send().await),
        ),
        (
            "GetObject of another key",
            code(s3.get_object().bucket(bucket).key("flags.json").send().await),
        ),
        ("ListObjectsV2 on the bucket", code(s3.list_objects_v2().bucket(bucket).send().await)),
        (
            "PutBucketPolicy on the bucket",
            code(s3.put_bucket_policy().bucket(bucket).policy("{}").send().await),
        ),
    ];
    let mut contained = true;
    for (what, status) in &attempts {
        let verdict = if *status == 403 { "refused (403)" } else { "NOT REFUSED" };
        contained &= *status == 403;
        println!("   with the minted credentials: {what:<36} {verdict}");
    }
    t.retire(&exec, id).await.map_err(|e| e.to_string())?;
    Ok(contained)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: scoped_session INFRA_JSON");
        return ExitCode::from(2);
    };
    match run(&path).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("an out-of-scope call with the minted credentials was NOT refused");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("scoped_session: {e}");
            ExitCode::from(1)
        }
    }
}
