//! A throwaway PostgreSQL 15 cluster on loopback, for the PostgreSQL store's tests and
//! benchmarks.
//!
//! [`Postgres::start`] makes sure Debian's `postgresql` package is installed (installing it
//! with apt when `/usr/lib/postgresql/15/bin/postgres` is missing: CI may run on a fresh
//! machine), runs `initdb` into a temporary directory (as the `postgres` user through
//! `runuser` when the test runs as root: PostgreSQL refuses to run as root), creates a
//! throwaway CA and a server certificate for `127.0.0.1` with `openssl` so both plain TCP and TLS work, and
//! starts `postgres` on a free loopback port under a [`Supervised`] watchdog. It returns once
//! the server accepts connections.
//!
//! Durability is NOT weakened: `fsync` and `synchronous_commit` keep their defaults, so
//! what the tests and benchmarks measure is what a real deployment pays per commit.
//!
//! One server per test binary ([`Postgres::shared`]) and a fresh database per test
//! ([`Postgres::fresh_database`]): tests never see each other's tables.
//!
//! Data directories are named after the test process (`seb-pg-<pid>-<port>`); a later start
//! removes those whose process is gone (the shared server's directory cannot be removed by
//! its own process, which exits without running destructors).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::InfraError;
use crate::process::{Supervised, apt_install, free_port, run, wait_until};

/// Where Debian's PostgreSQL 15 server binaries live.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// A running PostgreSQL cluster (superuser `postgres`, `trust` authentication on loopback).
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    process: Option<Supervised>,
}

fn bin(name: &str) -> String {
    format!("{BIN_DIR}/{name}")
}

fn cmd_err(command: &str, detail: impl std::fmt::Display) -> InfraError {
    InfraError::Command { command: command.into(), detail: detail.to_string() }
}

fn is_root() -> bool {
    run("id", &["-u"]).map(|s| s.trim() == "0").unwrap_or(false)
}

/// Run a PostgreSQL binary, as the `postgres` user when we are root.
fn run_pg(program: &str, args: &[&str]) -> Result<String, InfraError> {
    if is_root() {
        let mut a = vec!["-u", "postgres", "--", program];
        a.extend_from_slice(args);
        run("runuser", &a)
    } else {
        run(program, args)
    }
}

/// Make sure the PostgreSQL 15 server binaries (and `openssl`) are installed.
pub fn ensure_postgres() -> Result<(), InfraError> {
    if !crate::process::have("openssl") {
        // The test certificates are made with it.
        apt_install(&["openssl"])?;
    }
    if Path::new(&bin("postgres")).exists() && Path::new(&bin("initdb")).exists() {
        return Ok(());
    }
    apt_install(&["postgresql", "postgresql-client"])?;
    if Path::new(&bin("postgres")).exists() {
        Ok(())
    } else {
        Err(cmd_err("apt-get install postgresql", format!("{} still missing", bin("postgres"))))
    }
}

/// Remove data directories left by test processes that are gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("seb-pg-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Postgres {
    /// Start a fresh cluster (about 2 s once the package is installed).
    pub fn start() -> Result<Postgres, InfraError> {
        ensure_postgres()?;
        remove_stale_dirs();
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("seb-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let data = dir.join("data");
        let dir_s = dir.to_string_lossy().into_owned();
        let data_s = data.to_string_lossy().into_owned();
        // A throwaway CA and a server certificate for 127.0.0.1 signed by it (TLS tests pass
        // the CA; rustls refuses a CA certificate used as the server's own).
        crate::certs::make_ca(&dir, "seb test CA")?;
        let (_, key) = crate::certs::issue(
            &dir,
            "server",
            "IP:127.0.0.1,DNS:localhost",
            crate::certs::Usage::Server,
        )?;
        if is_root() {
            run("chown", &["-R", "postgres:postgres", &dir_s])?;
        }
        run("chmod", &["0600", &key.to_string_lossy()])?;
        run_pg(
            &bin("initdb"),
            &["-D", &data_s, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        )?;
        let mut server = Postgres { port, dir, process: None };
        server.process = Some(server.spawn_server()?);
        let log = server.log_path();
        wait_until("postgres", Duration::from_secs(60), || {
            server.psql("postgres", "SELECT 1").map(|_| ()).map_err(|e| {
                format!("{e}; log: {}", std::fs::read_to_string(&log).unwrap_or_default())
            })
        })?;
        Ok(server)
    }

    /// Start `postgres` on this cluster's port and data directory under a watchdog.
    fn spawn_server(&self) -> Result<Supervised, InfraError> {
        let port_s = self.port.to_string();
        let data_s = self.data_dir().to_string_lossy().into_owned();
        let dir_s = self.dir.to_string_lossy().into_owned();
        let ssl_cert = format!("ssl_cert_file={}", self.dir.join("server.crt").to_string_lossy());
        let ssl_key = format!("ssl_key_file={}", self.dir.join("server.key").to_string_lossy());
        let postgres = bin("postgres");
        let root = is_root();
        let mut args: Vec<&str> = Vec::new();
        if root {
            args.extend_from_slice(&["-u", "postgres", "--", &postgres]);
        }
        args.extend_from_slice(&[
            "-D",
            &data_s,
            "-p",
            &port_s,
            "-k",
            &dir_s,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
            "-c",
            "ssl=on",
            "-c",
            &ssl_cert,
            "-c",
            &ssl_key,
            // Segments in the data directory, so a killed server leaves nothing in /dev/shm.
            "-c",
            "dynamic_shared_memory_type=mmap",
            "-c",
            "log_min_messages=warning",
        ]);
        let program = if root { "runuser" } else { postgres.as_str() };
        Supervised::spawn("postgres", program, &args, &[], &self.log_path())
    }

    /// One cluster per test binary, started on first use and stopped by the watchdog when
    /// the test process exits. Tests sharing it take a database each
    /// ([`Postgres::fresh_database`]).
    pub fn shared() -> Result<&'static Postgres, InfraError> {
        static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
        SHARED.get_or_init(|| Postgres::start().map_err(|e| e.to_string())).as_ref().map_err(|e| {
            InfraError::NotReady { service: "postgres", seconds: 60, detail: e.clone() }
        })
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/<database>` (plain TCP).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The CA that signed the server's certificate (PEM), for TLS connections.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's process id (first line of `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Run SQL with `psql` as the superuser against `database`; returns the unaligned,
    /// tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, InfraError> {
        let port = self.port.to_string();
        let out = Command::new(bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(&port)
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| cmd_err("psql", e))?;
        if !out.status.success() {
            return Err(cmd_err(
                &format!("psql -c {sql}"),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Create a new, empty database with a unique name and return its URL.
    pub fn fresh_database(&self) -> Result<String, InfraError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("seb_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Stop the server now (a fast shutdown), e.g. to test what clients do when the
    /// database goes away. Restart with [`Postgres::restart`].
    pub fn stop_server(&mut self) -> Result<(), InfraError> {
        let data = self.data_dir().to_string_lossy().into_owned();
        run_pg(&bin("pg_ctl"), &["stop", "-D", &data, "-m", "fast", "-w", "-t", "30"])?;
        if let Some(p) = self.process.take() {
            p.stop();
        }
        Ok(())
    }

    /// Start the server again on the same port and data directory after
    /// [`Postgres::stop_server`].
    pub fn restart(&mut self) -> Result<(), InfraError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.process = Some(self.spawn_server()?);
        wait_until("postgres", Duration::from_secs(60), || {
            self.psql("postgres", "SELECT 1").map(|_| ()).map_err(|e| e.to_string())
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.process.is_some() {
            // A fast shutdown closes sessions and exits cleanly; the watchdog then has
            // nothing left to kill.
            let data = self.data_dir().to_string_lossy().into_owned();
            let _ =
                run_pg(&bin("pg_ctl"), &["stop", "-D", &data, "-m", "immediate", "-w", "-t", "10"]);
        }
        self.process.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
