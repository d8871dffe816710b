//! moto_server with IAM enforcement, for the AWS target's live tests.
//!
//! [`MotoServer::start`] makes sure `moto[server]` 5.x is importable (installing it with pip
//! when it is not: CI machines start without it), starts the project's launcher
//! `scripts/testinfra/moto_server_sp.py` on a free loopback port under a [`Supervised`]
//! watchdog, waits until it answers, creates an administrator user while enforcement is still
//! off, and then turns IAM enforcement on. From then on every request must be SigV4-signed by
//! a known key and allowed by IAM; seeding goes through the administrator's keys
//! ([`AwsApi::call`], [`AwsApi::batch`] and the typed helpers, reached through `Deref`), so tests sharing one
//! server ([`MotoServer::shared`]) can seed concurrently as long as they use distinct names.
//!
//! The launcher adds AWS semantics that stock moto lacks: session policies are intersected
//! with the role's policies, expired session credentials are refused, `sts:TagSession` and
//! `sts:SetSourceIdentity` are required in the trust policy when tags or a source identity
//! are passed, and both are recorded on moto's `AssumedRole` model
//! ([`MotoServer::assumed_roles`]).
//!
//! Seeding runs `scripts/testinfra/moto_call.py` (boto3, which moto depends on) with a batch
//! of calls, so this crate needs no AWS SDK.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::InfraError;
use crate::process::{Supervised, free_port, wait_until};

/// moto's default account id.
pub const ACCOUNT: &str = "123456789012";
/// The region seeding uses unless a call names another.
pub const REGION: &str = "us-east-1";

/// A long-term IAM access key pair created in moto.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// One boto3 call of a seeding batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// boto3 service name (`iam`, `s3`, `ec2`, `dynamodb`, `ssm`, `autoscaling`, `sts`).
    pub service: String,
    /// boto3 method name (`create_user`, `put_object`…).
    pub method: String,
    /// Keyword arguments, as boto3 spells them.
    pub args: Value,
    /// Region, when not [`REGION`].
    pub region: Option<String>,
}

impl Call {
    /// A call in [`REGION`].
    pub fn new(service: &str, method: &str, args: Value) -> Self {
        Self { service: service.into(), method: method.into(), args, region: None }
    }
}

/// A call moto refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub code: String,
    pub message: String,
    pub status: Option<u16>,
}

/// A running moto_server with IAM enforcement on.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    endpoint: String,
    admin: AccessKeys,
    /// Seeding as the administrator.
    api: AwsApi,
    dir: PathBuf,
    pid: Option<u32>,
    process: Supervised,
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testinfra")
}

fn cmd_err(command: &str, detail: impl std::fmt::Display) -> InfraError {
    InfraError::Command { command: command.into(), detail: detail.to_string() }
}

/// Make sure `moto[server]` 5.x can be imported by `python3`, installing it when not.
pub fn ensure_moto() -> Result<String, InfraError> {
    crate::process::ensure_python_package(
        "import moto, moto.server, flask, boto3; print(moto.__version__)",
        "5.",
        "moto[server]>=5.1,<6",
    )
}

/// How an [`AwsApi`] authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsAuth {
    /// An access key pair.
    Keys(AccessKeys),
    /// A named profile of the shared AWS configuration (`~/.aws/config`, `~/.aws/credentials`).
    Profile(String),
}

/// boto3 calls (through `scripts/testinfra/moto_call.py`) to seed or clean up an account:
/// moto (an endpoint and keys) or, for the walkthrough pointed at a real account, a profile
/// with no endpoint (boto3 then honours `AWS_ENDPOINT_URL` and the profile's settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsApi {
    /// `None`: the default endpoints.
    pub endpoint: Option<String>,
    /// The region calls use unless a [`Call`] names another.
    pub region: String,
    pub auth: AwsAuth,
}

impl AwsApi {
    /// Run calls in order; one result per call.
    pub fn batch(&self, calls: &[Call]) -> Result<Vec<Result<Value, CallError>>, InfraError> {
        let mut req = serde_json::Map::new();
        req.insert("endpoint".into(), json!(self.endpoint));
        req.insert("region".into(), json!(self.region));
        req.insert(
            "calls".into(),
            calls
                .iter()
                .map(|c| {
                    json!({"service": c.service, "method": c.method, "args": c.args, "region": c.region})
                })
                .collect(),
        );
        match &self.auth {
            AwsAuth::Keys(k) => {
                req.insert("access_key_id".into(), json!(k.access_key_id));
                req.insert("secret_access_key".into(), json!(k.secret_access_key));
            }
            AwsAuth::Profile(p) => {
                req.insert("profile".into(), json!(p));
            }
        }
        let req = Value::Object(req);
        let script = scripts_dir().join("moto_call.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| cmd_err("python3 moto_call.py", e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(req.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(cmd_err("python3 moto_call.py", String::from_utf8_lossy(&out.stderr)));
        }
        let results: Vec<Value> = serde_json::from_slice(&out.stdout)
            .map_err(|e| cmd_err("python3 moto_call.py", format!("bad output: {e}")))?;
        Ok(results
            .into_iter()
            .map(|r| match r.get("ok") {
                Some(v) => Ok(v.clone()),
                None => {
                    let e = r.get("error").cloned().unwrap_or(Value::Null);
                    Err(CallError {
                        code: e.get("code").and_then(Value::as_str).unwrap_or("Unknown").into(),
                        message: e.get("message").and_then(Value::as_str).unwrap_or("").into(),
                        status: e
                            .get("status")
                            .and_then(Value::as_u64)
                            .and_then(|s| u16::try_from(s).ok()),
                    })
                }
            })
            .collect())
    }

    /// Run calls, failing on the first refused one.
    pub fn seed(&self, calls: &[Call]) -> Result<Vec<Value>, InfraError> {
        self.batch(calls)?
            .into_iter()
            .zip(calls)
            .map(|(r, c)| {
                r.map_err(|e| {
                    cmd_err(
                        &format!("{}.{}", c.service, c.method),
                        format!("{}: {}", e.code, e.message),
                    )
                })
            })
            .collect()
    }

    /// One call, failing when it is refused.
    pub fn call(&self, service: &str, method: &str, args: Value) -> Result<Value, InfraError> {
        let mut v = self.seed(&[Call::new(service, method, args)])?;
        v.pop().ok_or_else(|| cmd_err(method, "no result"))
    }

    /// An IAM user with one inline policy and an access key.
    pub fn create_user(&self, name: &str, policy: &Value) -> Result<AccessKeys, InfraError> {
        let out = self.seed(&[
            Call::new("iam", "create_user", json!({"UserName": name})),
            Call::new("iam", "put_user_policy", json!({"UserName": name, "PolicyName": "inline", "PolicyDocument": policy.to_string()})),
            Call::new("iam", "create_access_key", json!({"UserName": name})),
        ])?;
        let key = out
            .last()
            .and_then(|v| v.get("AccessKey"))
            .ok_or_else(|| cmd_err("iam.create_access_key", "no AccessKey"))?;
        let get = |f: &str| {
            key.get(f)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| cmd_err("iam.create_access_key", format!("no {f}")))
        };
        Ok(AccessKeys {
            access_key_id: get("AccessKeyId")?,
            secret_access_key: get("SecretAccessKey")?,
        })
    }

    /// An IAM role with a trust policy and one inline policy; returns its ARN.
    pub fn create_role(
        &self,
        name: &str,
        trust: &Value,
        policy: &Value,
    ) -> Result<String, InfraError> {
        let out = self.seed(&[
            Call::new("iam", "create_role", json!({"RoleName": name, "AssumeRolePolicyDocument": trust.to_string()})),
            Call::new("iam", "put_role_policy", json!({"RoleName": name, "PolicyName": "inline", "PolicyDocument": policy.to_string()})),
        ])?;
        out.first()
            .and_then(|v| v.pointer("/Role/Arn"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| cmd_err("iam.create_role", "no Role.Arn"))
    }

    /// An S3 bucket in this client's region.
    pub fn create_bucket(&self, name: &str) -> Result<(), InfraError> {
        let args = if self.region == "us-east-1" {
            json!({"Bucket": name})
        } else {
            json!({"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": self.region}})
        };
        self.call("s3", "create_bucket", args).map(|_| ())
    }

    /// An S3 object with a UTF-8 body; returns its ETag (with quotes, as S3 gives it).
    pub fn put_object(&self, bucket: &str, key: &str, body: &str) -> Result<String, InfraError> {
        let v =
            self.call("s3", "put_object", json!({"Bucket": bucket, "Key": key, "Body": body}))?;
        v.get("ETag")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| cmd_err("s3.put_object", "no ETag"))
    }

    /// A DynamoDB table with a string hash key `hash_key` (on-demand).
    pub fn create_table(
        &self,
        region: &str,
        name: &str,
        hash_key: &str,
    ) -> Result<String, InfraError> {
        let mut c = Call::new(
            "dynamodb",
            "create_table",
            json!({
                "TableName": name,
                "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": hash_key, "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            }),
        );
        c.region = Some(region.into());
        let v = self.seed(&[c])?;
        v.first()
            .and_then(|v| v.pointer("/TableDescription/TableArn"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| cmd_err("dynamodb.create_table", "no TableArn"))
    }

    /// A security group in the default VPC; returns its id.
    pub fn create_security_group(&self, region: &str, name: &str) -> Result<String, InfraError> {
        let mut c = Call::new(
            "ec2",
            "create_security_group",
            json!({"GroupName": name, "Description": "seb test"}),
        );
        c.region = Some(region.into());
        let v = self.seed(&[c])?;
        v.first()
            .and_then(|v| v.get("GroupId"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| cmd_err("ec2.create_security_group", "no GroupId"))
    }

    /// An Auto Scaling group (with its launch configuration); returns its ARN.
    pub fn create_asg(
        &self,
        region: &str,
        name: &str,
        min: i64,
        max: i64,
        desired: i64,
    ) -> Result<String, InfraError> {
        let with_region = |mut c: Call| {
            c.region = Some(region.into());
            c
        };
        let lc = format!("{name}-lc");
        let out = self.seed(&[
            with_region(Call::new(
                "autoscaling",
                "create_launch_configuration",
                json!({"LaunchConfigurationName": lc, "ImageId": "ami-12c6146b", "InstanceType": "t2.micro"}),
            )),
            with_region(Call::new(
                "autoscaling",
                "create_auto_scaling_group",
                json!({
                    "AutoScalingGroupName": name, "LaunchConfigurationName": lc,
                    "MinSize": min, "MaxSize": max, "DesiredCapacity": desired,
                    "AvailabilityZones": [format!("{region}a")],
                }),
            )),
            with_region(Call::new("autoscaling", "describe_auto_scaling_groups", json!({"AutoScalingGroupNames": [name]}))),
        ])?;
        out.last()
            .and_then(|v| v.pointer("/AutoScalingGroups/0/AutoScalingGroupARN"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                cmd_err("autoscaling.describe_auto_scaling_groups", "no AutoScalingGroupARN")
            })
    }

    /// An SSM String parameter; returns its version.
    pub fn put_parameter(
        &self,
        region: &str,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<i64, InfraError> {
        let mut c = Call::new(
            "ssm",
            "put_parameter",
            json!({"Name": name, "Value": value, "Type": "String", "Overwrite": overwrite}),
        );
        c.region = Some(region.into());
        let v = self.seed(&[c])?;
        v.first()
            .and_then(|v| v.get("Version"))
            .and_then(Value::as_i64)
            .ok_or_else(|| cmd_err("ssm.put_parameter", "no Version"))
    }
}

/// A minimal HTTP/1.0 exchange with the server on loopback: `(status, body)`.
fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(buf.get(..split).unwrap_or_default()).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line in `{head}`"))?;
    Ok((status, buf.get(split + 4..).unwrap_or_default().to_vec()))
}

impl MotoServer {
    /// Start a fresh server (its own process and state), with enforcement on and an
    /// administrator user whose keys seed everything else. About 1–2 s once moto is installed.
    pub fn start() -> Result<MotoServer, InfraError> {
        ensure_moto()?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("seb-moto-{port}"));
        std::fs::create_dir_all(&dir)?;
        let launcher = scripts_dir().join("moto_server_sp.py");
        let launcher_s = launcher.to_string_lossy().into_owned();
        let port_s = port.to_string();
        let process = Supervised::spawn(
            "moto_server",
            "python3",
            &[&launcher_s, "-H", "127.0.0.1", "-p", &port_s],
            &[("INITIAL_NO_AUTH_ACTION_COUNT", "inf"), ("PYTHONUNBUFFERED", "1")],
            &dir.join("moto.log"),
        )?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let log = dir.join("moto.log");
        wait_until("moto_server", Duration::from_secs(60), || {
            match http(port, "GET", "/moto-api/", "text/plain", b"") {
                Ok((200, _)) => Ok(()),
                Ok((s, _)) => Err(format!("HTTP {s}")),
                Err(e) => {
                    Err(format!("{e}; log: {}", std::fs::read_to_string(&log).unwrap_or_default()))
                }
            }
        })?;
        let bootstrap_keys =
            AccessKeys { access_key_id: "testing".into(), secret_access_key: "testing".into() };
        let mut server = MotoServer {
            port,
            api: AwsApi {
                endpoint: Some(endpoint.clone()),
                region: REGION.into(),
                auth: AwsAuth::Keys(bootstrap_keys.clone()),
            },
            endpoint,
            admin: bootstrap_keys,
            dir,
            pid: None,
            process,
        };
        server.pid = server.find_pid();
        server.bootstrap()?;
        Ok(server)
    }

    /// One server per test binary, started on first use and stopped by the watchdog when the
    /// test process exits. Tests sharing it must use distinct resource names.
    pub fn shared() -> Result<&'static MotoServer, InfraError> {
        static SHARED: OnceLock<Result<MotoServer, String>> = OnceLock::new();
        SHARED.get_or_init(|| MotoServer::start().map_err(|e| e.to_string())).as_ref().map_err(
            |e| InfraError::NotReady { service: "moto_server", seconds: 60, detail: e.clone() },
        )
    }

    fn find_pid(&self) -> Option<u32> {
        // The launcher's process: its command line names the script and our port.
        let port = self.port.to_string();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            let is_launcher = args.iter().any(|a| a.ends_with(b"moto_server_sp.py"));
            let on_port = args
                .windows(2)
                .any(|w| w.first() == Some(&&b"-p"[..]) && w.get(1) == Some(&port.as_bytes()));
            // Not the watchdog (bash), whose arguments name the launcher too.
            let is_python = args.first().is_some_and(|a| a.windows(6).any(|w| w == b"python"));
            (is_python && is_launcher && on_port).then_some(pid)
        })
    }

    /// Create the administrator (enforcement still off) and turn enforcement on.
    fn bootstrap(&mut self) -> Result<(), InfraError> {
        self.set_enforcement(false)?;
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let keys = self.create_user("seb-test-admin", &policy)?;
        self.api.auth = AwsAuth::Keys(keys.clone());
        self.admin = keys;
        self.set_enforcement(true)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, when it could be found (used by benchmarks to read its CPU).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Seeding calls as the administrator (also reached through `Deref`: `moto.create_user(…)`).
    pub fn api(&self) -> &AwsApi {
        &self.api
    }

    /// The administrator's keys (allowed everything).
    pub fn admin(&self) -> &AccessKeys {
        &self.admin
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("moto.log")
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Turn IAM enforcement on (`POST /moto-api/reset-auth` with body `0`) or off (`inf`).
    pub fn set_enforcement(&self, on: bool) -> Result<(), InfraError> {
        let body: &[u8] = if on { b"0" } else { b"inf" };
        match http(self.port, "POST", "/moto-api/reset-auth", "text/plain", body) {
            Ok((200, _)) => Ok(()),
            Ok((s, b)) => Err(cmd_err(
                "POST /moto-api/reset-auth",
                format!("HTTP {s}: {}", String::from_utf8_lossy(&b)),
            )),
            Err(e) => Err(cmd_err("POST /moto-api/reset-auth", e)),
        }
    }

    /// Clear all state (`POST /moto-api/reset`), then re-create the administrator and turn
    /// enforcement back on. Not for servers shared by concurrently running tests.
    pub fn reset(&mut self) -> Result<(), InfraError> {
        match http(self.port, "POST", "/moto-api/reset", "text/plain", b"") {
            Ok((200, _)) => {}
            Ok((s, b)) => {
                return Err(cmd_err(
                    "POST /moto-api/reset",
                    format!("HTTP {s}: {}", String::from_utf8_lossy(&b)),
                ));
            }
            Err(e) => return Err(cmd_err("POST /moto-api/reset", e)),
        }
        self.admin =
            AccessKeys { access_key_id: "testing".into(), secret_access_key: "testing".into() };
        self.api.auth = AwsAuth::Keys(self.admin.clone());
        self.bootstrap()
    }

    /// Run calls in order with the given keys; one result per call.
    pub fn batch_as(
        &self,
        keys: &AccessKeys,
        calls: &[Call],
    ) -> Result<Vec<Result<Value, CallError>>, InfraError> {
        AwsApi { auth: AwsAuth::Keys(keys.clone()), ..self.api.clone() }.batch(calls)
    }

    /// moto's record of every STS AssumeRole session (`GET /moto-api/data.json`,
    /// `sts.AssumedRole`): `arn`, `session_name`, `role_arn`, `policy` (the session policy
    /// as sent), `access_key_id`, and — recorded by our launcher — `source_identity`,
    /// `session_tags` and `duration_seconds`.
    pub fn assumed_roles(&self) -> Result<Vec<Value>, InfraError> {
        let (status, body) = http(self.port, "GET", "/moto-api/data.json", "text/plain", b"")
            .map_err(|e| cmd_err("GET /moto-api/data.json", e))?;
        if status != 200 {
            return Err(cmd_err("GET /moto-api/data.json", format!("HTTP {status}")));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| cmd_err("GET /moto-api/data.json", e))?;
        Ok(v.pointer("/sts/AssumedRole").and_then(Value::as_array).cloned().unwrap_or_default())
    }
}

impl std::ops::Deref for MotoServer {
    type Target = AwsApi;
    fn deref(&self) -> &AwsApi {
        &self.api
    }
}
