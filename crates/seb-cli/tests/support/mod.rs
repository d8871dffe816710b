//! Helpers the `seb` binary's end-to-end tests share: run `seb`, write keys, start and stop
//! `seb serve`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use seb_core::keys::SigningKey;
use serde_json::Value;

pub mod kube;

/// The binary under test.
pub const SEB: &str = env!("CARGO_BIN_EXE_seb");

/// The deterministic test key `n`.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

/// Its public key (base64).
pub fn pk(n: u8) -> String {
    key(n).public_key().to_base64()
}

/// Write test key `n` as a key file.
pub fn write_key(dir: &Path, name: &str, n: u8) -> PathBuf {
    write_signing_key(dir, name, &key(n))
}

/// Write `key` as a key file (base64 of the seed).
pub fn write_signing_key(dir: &Path, name: &str, key: &SigningKey) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, base64::engine::general_purpose::STANDARD.encode(key.seed().as_ref()))
        .unwrap();
    // `seb` refuses key files other users can read.
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

/// Run `seb` with `args`: (exit code, stdout, stderr).
pub fn seb(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SEB).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Cedar: every registered agent may propose; the consequence level alone picks the path.
pub const PERMIT_PROPOSALS: &str =
    "permit(principal, action == SEB::Action::\"propose\", resource);\n";

/// The trust and admission parts of `seb.toml` the walkthroughs share, with their key files:
/// broker key 3, issuer key 1, agent `agent-a` (key 2), human approver `alice` (key 20),
/// admin `ops` (key 40); `cedar` is the policy, `admission_extra` more `[admission]` lines.
pub fn admission_config(dir: &Path, cedar: &str, admission_extra: &str) -> String {
    write_key(dir, "broker.seed", 3);
    write_key(dir, "issuer.seed", 1);
    write_key(dir, "agent.seed", 2);
    write_key(dir, "alice.seed", 20);
    write_key(dir, "ops.seed", 40);
    std::fs::write(dir.join("admission.cedar"), cedar).unwrap();
    format!(
        r#"
[trust]
issuers = ["{issuer}"]

[[approvers]]
name = "alice"
role = "human"
public_key = "{alice}"

[admission]
issuer_key_file = "issuer.seed"
policy_file = "admission.cedar"
{admission_extra}
[[admission.agents]]
name = "agent-a"
public_keys = ["{agent}"]

[[admission.approvers]]
name = "alice"
role = "human"
public_key = "{alice}"

[[admission.admins]]
name = "ops"
public_key = "{ops}"
"#,
        issuer = pk(1),
        alice = pk(20),
        agent = pk(2),
        ops = pk(40),
    )
}

/// A running `seb serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http(s)://127.0.0.1:<port>`.
    pub url: String,
    /// The directory holding its `seb.toml`.
    pub dir: PathBuf,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Wait for the process to exit (after a crash point aborted it).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGKILL it and reap it (a crash: nothing is flushed, nothing shut down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id (to read `/proc/<pid>/fd`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `seb serve --config <dir>/seb.toml`, logging to `<dir>/broker.log`; waits for `/readyz`
/// (over TLS trusting `ca` when given).
pub fn serve(dir: &Path, ca: Option<&Path>) -> Server {
    serve_crashing_at(dir, ca, None)
}

/// [`serve`], aborting at the engine's crash point `crash_at` (`SEB_CRASH_AT`; builds with
/// the `fault-injection` feature) when given.
pub fn serve_crashing_at(dir: &Path, ca: Option<&Path>, crash_at: Option<&str>) -> Server {
    let log = dir.join("broker.log");
    let mut cmd = Command::new(SEB);
    cmd.args(["serve", "--config"])
        .arg(dir.join("seb.toml"))
        .env("SEB_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    match crash_at {
        Some(c) => cmd.env("SEB_CRASH_AT", c),
        None => cmd.env_remove("SEB_CRASH_AT"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let Some(Ok(first)) = lines.next() else {
        panic!("seb serve printed nothing: {}", std::fs::read_to_string(&log).unwrap_or_default())
    };
    let v: Value = serde_json::from_str(&first).unwrap();
    let scheme = if v["tls"] == true { "https" } else { "http" };
    let url = format!("{scheme}://{}", v["listening"].as_str().unwrap());
    // Ready means crash recovery is done.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Command::new("curl");
        c.args(["-sf", &format!("{url}/readyz")]);
        if let Some(ca) = ca {
            c.arg("--cacert").arg(ca);
        }
        if c.output().is_ok_and(|o| o.status.success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server not ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, url, dir: dir.to_owned(), log }
}
