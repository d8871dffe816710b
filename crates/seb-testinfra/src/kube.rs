//! A real kube-apiserver v1.20.2 with a real etcd, on loopback.
//!
//! No package ships kube-apiserver, so [`ensure_built`] builds it once from Debian's
//! `kubernetes` source package with Debian's golang-go (`scripts/testinfra/kube-build.sh`,
//! embedded here; about 7 minutes cold on 2 cores, then cached in `/opt/kube-1.20.2` or
//! `$SEB_KUBE_BIN_DIR`). [`KubeApiServer::start`] then generates a CA, a serving certificate,
//! a ServiceAccount signing key and static tokens in a fresh directory, starts etcd and the
//! API server on free ports under [`Supervised`] watchdogs and waits for `/readyz`: a few
//! seconds.
//!
//! Users (static tokens): `admin` (system:masters), `broker`, `agent`, `intruder` (no rights
//! until a test grants some), `ops` (a day-to-day cluster administrator once a test binds it
//! to `seb-cluster-admin`) and `rbac-admin` (for a test that grants it `escalate`/`bind`). Authorization is RBAC; TokenRequest and admission webhooks are
//! on. There is no controller manager (no `default` ServiceAccounts, no garbage collection)
//! and no scheduler or kubelet (Pods stay Pending), so mutations are plain object changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::InfraError;
use crate::certs;
use crate::process::{Supervised, apt_install, free_port, have, run, wait_for_port, wait_until};

/// The build recipe (also runnable by hand).
const BUILD_SCRIPT: &str = include_str!("../../../scripts/testinfra/kube-build.sh");

/// Where the binary is cached unless `SEB_KUBE_BIN_DIR` says otherwise.
pub const DEFAULT_BIN_DIR: &str = "/opt/kube-1.20.2";

/// The static bearer tokens of the test users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTokens {
    /// `admin`, in `system:masters`.
    pub admin: String,
    /// `broker`: no rights until the test applies the broker's RBAC.
    pub broker: String,
    /// `agent`: no rights until the test applies the agents' RBAC.
    pub agent: String,
    /// `intruder`: authenticated, never granted anything.
    pub intruder: String,
    /// `ops`: no rights until a test binds it (to `seb-cluster-admin`); not `system:masters`.
    pub ops: String,
    /// `rbac-admin`: no rights until a test grants some; not `system:masters`.
    pub rbac_admin: String,
}

/// A running etcd + kube-apiserver pair; both are stopped on drop.
#[derive(Debug)]
pub struct KubeApiServer {
    url: String,
    port: u16,
    dir: PathBuf,
    ca_pem: Vec<u8>,
    tokens: KubeTokens,
    kubeconfig: PathBuf,
    started_in: Duration,
    apiserver: Option<Supervised>,
    etcd: Option<Supervised>,
}

fn bin_dir() -> PathBuf {
    std::env::var_os("SEB_KUBE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR))
}

/// Make sure kube-apiserver, etcd and openssl are installed, building the API server from
/// Debian's source package the first time (progress on stderr). Returns the binary's path.
pub fn ensure_built() -> Result<PathBuf, InfraError> {
    let bin = bin_dir().join("kube-apiserver");
    if bin.is_file() && have("etcd") && have("openssl") && have("curl") {
        return Ok(bin);
    }
    if !have("curl") {
        apt_install(&["curl"])?;
    }
    let started = Instant::now();
    eprintln!(
        "[seb-testinfra] preparing kube-apiserver in {} (a cold build takes about 7 minutes)",
        bin_dir().display()
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(BUILD_SCRIPT)
        .env("SEB_KUBE_BIN_DIR", bin_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| InfraError::Command {
            command: "kube-build.sh".into(),
            detail: e.to_string(),
        })?;
    if !status.success() || !bin.is_file() {
        return Err(InfraError::Command {
            command: "kube-build.sh".into(),
            detail: format!("{status}; see the output above"),
        });
    }
    eprintln!(
        "[seb-testinfra] kube-apiserver ready after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(bin)
}

fn random_hex(bytes: usize) -> Result<String, InfraError> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Remove run directories of test processes that are gone (a static server is never dropped).
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("seb-kube-") else { continue };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Issue a certificate for `127.0.0.1`/`localhost` signed by the CA in `dir`.
fn issue(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), InfraError> {
    certs::issue(dir, name, "IP:127.0.0.1,DNS:localhost", certs::Usage::Server)
}

static SHARED: OnceLock<Result<KubeApiServer, String>> = OnceLock::new();
static ISOLATION: Mutex<()> = Mutex::new(());
static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl KubeApiServer {
    /// Build if needed, then start etcd and kube-apiserver on free loopback ports and wait
    /// until `/readyz` answers `ok`.
    pub fn start() -> Result<Self, InfraError> {
        let bin = ensure_built()?;
        sweep_stale_dirs();
        let t0 = Instant::now();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("seb-kube-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let d = |f: &str| path_str(&dir.join(f));

        // CA, serving certificate, ServiceAccount signing key.
        certs::make_ca(&dir, "seb-test-ca")?;
        let (srv_crt, srv_key) = issue(&dir, "apiserver")?;
        run(
            "openssl",
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &d("sa.key")],
        )?;
        run("openssl", &["ec", "-in", &d("sa.key"), "-pubout", "-out", &d("sa.pub")])?;
        let tokens = KubeTokens {
            admin: random_hex(16)?,
            broker: random_hex(16)?,
            agent: random_hex(16)?,
            intruder: random_hex(16)?,
            ops: random_hex(16)?,
            rbac_admin: random_hex(16)?,
        };
        std::fs::write(
            dir.join("tokens.csv"),
            format!(
                "{},admin,uid-admin,\"system:masters\"\n{},broker,uid-broker\n{},agent,uid-agent\n{},intruder,uid-intruder\n{},ops,uid-ops\n{},rbac-admin,uid-rbac-admin\n",
                tokens.admin,
                tokens.broker,
                tokens.agent,
                tokens.intruder,
                tokens.ops,
                tokens.rbac_admin
            ),
        )?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = Supervised::spawn(
            "etcd",
            "etcd",
            &[
                "--name",
                "seb",
                "--data-dir",
                &d("etcd-data"),
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("seb={peer_url}"),
                "--unsafe-no-fsync",
                "--logger=zap",
            ],
            &[],
            &dir.join("etcd.log"),
        )?;
        wait_for_port("etcd", etcd_port, Duration::from_secs(20))?;

        let port = free_port()?;
        let apiserver = Supervised::spawn(
            "kube-apiserver",
            &path_str(&bin),
            &[
                &format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                &format!("--secure-port={port}"),
                "--insecure-port=0",
                &format!("--cert-dir={}", d("certs")),
                &format!("--tls-cert-file={}", path_str(&srv_crt)),
                &format!("--tls-private-key-file={}", path_str(&srv_key)),
                &format!("--token-auth-file={}", d("tokens.csv")),
                "--anonymous-auth=false",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                &format!("--service-account-key-file={}", d("sa.pub")),
                &format!("--service-account-signing-key-file={}", d("sa.key")),
                "--api-audiences=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,ValidatingAdmissionWebhook,MutatingAdmissionWebhook,ResourceQuota",
                "--profiling=false",
            ],
            &[],
            &dir.join("apiserver.log"),
        )?;
        let url = format!("https://127.0.0.1:{port}");
        let readyz = format!("{url}/readyz");
        let auth = format!("Authorization: Bearer {}", tokens.admin);
        let ca = d("ca.crt");
        let mut apiserver = Some(apiserver);
        let ready = wait_until("kube-apiserver", Duration::from_secs(90), || {
            if apiserver.as_mut().is_some_and(|a| !a.is_running()) {
                return Ok(()); // reported below
            }
            let out = run("curl", &["-s", "-m", "2", "--cacert", &ca, "-H", &auth, &readyz])
                .map_err(|e| e.to_string())?;
            if out.trim() == "ok" { Ok(()) } else { Err(out.chars().take(300).collect()) }
        });
        let running = apiserver.as_mut().is_some_and(Supervised::is_running);
        if let Err(e) = ready.and_then(|()| {
            if running {
                Ok(())
            } else {
                Err(InfraError::NotReady {
                    service: "kube-apiserver",
                    seconds: 0,
                    detail: "exited".into(),
                })
            }
        }) {
            let log = std::fs::read_to_string(dir.join("apiserver.log")).unwrap_or_default();
            let tail: Vec<&str> =
                log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(match e {
                InfraError::NotReady { service, seconds, detail } => InfraError::NotReady {
                    service,
                    seconds,
                    detail: format!("{detail}\n{}", tail.join("\n")),
                },
                other => other,
            });
        }
        let ca_pem = std::fs::read(dir.join("ca.crt"))?;
        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: seb-test\n  cluster: {{server: \"{url}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: admin\n  user: {{token: \"{}\"}}\ncontexts:\n- name: seb-test\n  context: {{cluster: seb-test, user: admin}}\ncurrent-context: seb-test\n",
                tokens.admin
            ),
        )?;
        let started_in = t0.elapsed();
        eprintln!(
            "[seb-testinfra] kube-apiserver v1.20.2 ready at {url} in {:.1} s ({})",
            started_in.as_secs_f64(),
            dir.display()
        );
        Ok(Self {
            url,
            port,
            dir,
            ca_pem,
            tokens,
            kubeconfig,
            started_in,
            apiserver,
            etcd: Some(etcd),
        })
    }

    /// One server for the whole test binary, started on first use. Tests isolate themselves
    /// by namespace ([`unique_name`]); tests that change cluster-wide state take [`isolated`].
    pub fn shared() -> Result<&'static KubeApiServer, InfraError> {
        SHARED.get_or_init(|| Self::start().map_err(|e| e.to_string())).as_ref().map_err(|detail| {
            InfraError::Command { command: "KubeApiServer::start".into(), detail: detail.clone() }
        })
    }

    /// A lock for tests that change cluster-scoped state (webhook configurations…).
    pub fn isolated() -> MutexGuard<'static, ()> {
        ISOLATION.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The secure port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PEM of the CA that signed the API server's certificate (and [`Self::issue_cert`]'s).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The static tokens.
    pub fn tokens(&self) -> &KubeTokens {
        &self.tokens
    }

    /// A kubeconfig for `admin`.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The run directory (certificates, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Self::start`] took once the binary existed.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// A serving certificate for `127.0.0.1` signed by the cluster's test CA, as
    /// `(certificate PEM, PKCS#8 key PEM)`: a webhook server with it is trusted by the API
    /// server with `caBundle` = [`Self::ca_pem`].
    pub fn issue_cert(&self, name: &str) -> Result<(String, String), InfraError> {
        let name: String =
            name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let (crt, key) = issue(
            &self.dir,
            &format!("{name}-{}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        )?;
        Ok((std::fs::read_to_string(crt)?, std::fs::read_to_string(key)?))
    }

    /// The API server's log so far (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("apiserver.log")).unwrap_or_default();
        let v: Vec<&str> = log.lines().collect();
        v.iter().skip(v.len().saturating_sub(lines)).copied().collect::<Vec<_>>().join("\n")
    }
}

/// A DNS-label name unique in this process: `<prefix>-<pid>-<n>` (namespaces per test).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        if let Some(a) = self.apiserver.take() {
            a.stop();
        }
        if let Some(e) = self.etcd.take() {
            e.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
