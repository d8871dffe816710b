//! Supervised child processes.
//!
//! A [`Supervised`] child runs in its own process group under a tiny shell watchdog that
//! kills the group when either the handle is dropped or the test process that started it is
//! gone, so a crashed or killed test run never leaves services behind.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::InfraError;

/// A running service; killed (with its process group) on drop.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
}

impl Supervised {
    /// Start `program args…` with its output appended to `log`, under a watchdog tied to this
    /// process. `env` is added to the environment.
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self, InfraError> {
        let me = std::process::id().to_string();
        // setsid gives the service its own process group; the loop kills it when the test
        // process (our pid) disappears; `exec` keeps signals simple.
        let script = r#"
            parent="$1"; shift; log="$1"; shift
            setsid "$@" >>"$log" 2>&1 &
            child=$!
            trap 'kill -TERM -- -$child 2>/dev/null; sleep 0.5; kill -KILL -- -$child 2>/dev/null; exit 0' TERM INT
            while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
            kill -TERM -- -$child 2>/dev/null; sleep 0.5; kill -KILL -- -$child 2>/dev/null
        "#;
        let log_s = log.to_string_lossy().into_owned();
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).arg("watchdog").arg(&me).arg(&log_s).arg(program).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| InfraError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: e.to_string(),
        })?;
        Ok(Self { name: name.to_owned(), child })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the watchdog (and so the service) is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stop the service and wait for the watchdog to exit.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        // SIGTERM to the watchdog runs its trap, which kills the service's group.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A free TCP port on 127.0.0.1 (racy by nature; services are started right after).
pub fn free_port() -> Result<u16, InfraError> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Wait until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(
    service: &'static str,
    port: u16,
    timeout: Duration,
) -> Result<(), InfraError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(service, timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// Poll `probe` every 100 ms until it succeeds or `timeout` passes.
pub fn wait_until(
    service: &'static str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), InfraError> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(detail) if start.elapsed() >= timeout => {
                return Err(InfraError::NotReady { service, seconds: timeout.as_secs(), detail });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Run a command to completion, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, InfraError> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| {
        InfraError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: e.to_string(),
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String =
            stderr.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(InfraError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: format!("{}: {tail}", out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("bash")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `apt-get install -y` the packages, running `apt-get update` first once per process.
pub fn apt_install(packages: &[&str]) -> Result<(), InfraError> {
    static UPDATED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    UPDATED
        .get_or_init(|| run("apt-get", &["update", "-qq"]).map(|_| ()).map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| InfraError::Command { command: "apt-get update".into(), detail })?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    run("apt-get", &args).map(|_| ())
}

/// Make sure `python3` can run `probe` (which prints the installed version) with a version
/// starting with `want`, installing `spec` with pip when not (with `--break-system-packages`
/// where the system Python refuses plain installs, PEP 668). Returns the version.
pub fn ensure_python_package(probe: &str, want: &str, spec: &str) -> Result<String, InfraError> {
    if let Ok(v) = run("python3", &["-c", probe])
        && v.trim().starts_with(want)
    {
        return Ok(v.trim().to_owned());
    }
    if run("python3", &["-m", "pip", "install", "--quiet", spec]).is_err() {
        run("python3", &["-m", "pip", "install", "--quiet", "--break-system-packages", spec])?;
    }
    let v = run("python3", &["-c", probe])?;
    if !v.trim().starts_with(want) {
        return Err(InfraError::Command {
            command: format!("pip install {spec}"),
            detail: format!("installed {}, wanted {want}", v.trim()),
        });
    }
    Ok(v.trim().to_owned())
}
