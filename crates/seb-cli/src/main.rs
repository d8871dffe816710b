//! `seb`: one CLI for operators, agents and auditors.

mod admission_cmd;
mod approver_cmd;
mod client;
mod clock;
mod deploy_cmd;
mod keyfile;
mod ledger_cmd;
mod platforms;
mod serve;
mod store_cmd;

/// mimalloc instead of glibc malloc: at 64 clients malloc/free were ~10 % of the broker's
/// CPU; with mimalloc the HTTP benchmark runs ~30 % more executions per second (docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sovereign Execution Broker: certificate-bound authority for AI agents.
#[derive(Debug, Parser)]
#[command(name = "seb", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate an Ed25519 key file (agent, issuer, approver, broker or break-glass key).
    Keygen {
        /// Where to write the key (base64 seed, mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key and key id of a key file.
    Pubkey {
        /// The key file.
        key: PathBuf,
    },
    /// Run the broker.
    Serve(serve::ServeArgs),
    /// Present a certificate to a broker as the agent it names.
    Execute(client::ExecuteArgs),
    /// Sign a certificate directly with an issuer key, bypassing admission. For tests and
    /// bootstrapping only: production certificates come from the admission boundary.
    InsecureIssue(client::IssueArgs),
    /// The tamper-evident ledger.
    Ledger {
        #[command(subcommand)]
        cmd: ledger_cmd::LedgerCmd,
    },
    /// Revoke a certificate, an agent, or everything, directly in the store, signed into the
    /// ledger with `--key` (prefer `seb admission revoke` when admission runs).
    Revoke(store_cmd::RevokeArgs),
    /// Show or bump the epochs in the store.
    Epoch {
        #[command(subcommand)]
        cmd: store_cmd::EpochCmd,
    },
    /// Submit a signed proposal to admission (agents); `--wait` until certified or denied.
    Propose(admission_cmd::ProposeArgs),
    /// Review a proposal and sign an approval bound to its contract and evidence (approvers).
    Approve(admission_cmd::ApproveArgs),
    /// List proposals (a table, or `--json`), or show one in full.
    Proposals(admission_cmd::ProposalsArgs),
    /// Admission administration: revocation, epochs, signed epoch statements, break-glass.
    Admission {
        #[command(subcommand)]
        cmd: admission_cmd::AdmissionCmd,
    },
    /// Passkey approvers: invite to enrol, list, remove (spec 5.1).
    Approver {
        #[command(subcommand)]
        cmd: approver_cmd::ApproverCmd,
    },
    /// Admission's Cedar policies: load (bumps policy_epoch) or show.
    Policy {
        #[command(subcommand)]
        cmd: admission_cmd::PolicyCmd,
    },
    /// Serve the Model Context Protocol for one agent (stdio): the agent host's way to SEB.
    Mcp(seb_mcp::McpArgs),
    /// The platform artefacts that make bypassing the broker impossible (Kubernetes RBAC,
    /// webhook and policy; AWS trust policy, SCP/RCP, permission boundary).
    Deploy {
        #[command(subcommand)]
        cmd: deploy_cmd::DeployCmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Keygen { out } => {
                let key = keyfile::generate()?;
                keyfile::write(&out, &key)?;
                print_pubkey(&key);
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Pubkey { key } => {
                print_pubkey(&keyfile::read(&key)?);
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Serve(a) => serve::run(a).await.map(|()| ExitCode::SUCCESS),
            Cmd::Execute(a) => client::execute(a).await,
            Cmd::InsecureIssue(a) => client::issue(a).map(|()| ExitCode::SUCCESS),
            Cmd::Ledger { cmd } => ledger_cmd::run(cmd).await,
            Cmd::Revoke(a) => store_cmd::revoke(a).await.map(|()| ExitCode::SUCCESS),
            Cmd::Epoch { cmd } => store_cmd::epoch(cmd).await.map(|()| ExitCode::SUCCESS),
            Cmd::Propose(a) => admission_cmd::propose(a).await,
            Cmd::Approve(a) => admission_cmd::approve(a).await,
            Cmd::Proposals(a) => admission_cmd::proposals(a).await,
            Cmd::Admission { cmd } => admission_cmd::admission(cmd).await,
            Cmd::Policy { cmd } => admission_cmd::policy(cmd).await,
            Cmd::Approver { cmd } => approver_cmd::run(cmd).await,
            Cmd::Deploy { cmd } => deploy_cmd::run(cmd).await,
            Cmd::Mcp(a) => {
                // stdout is the protocol: logs go to stderr only.
                let filter = tracing_subscriber::EnvFilter::try_from_env("SEB_LOG")
                    .unwrap_or_else(|_| "info".into());
                tracing_subscriber::fmt()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_env_filter(filter)
                    .init();
                seb_mcp::run(a).await.map(|()| ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn print_pubkey(key: &seb_core::keys::SigningKey) {
    let pk = key.public_key();
    println!("{}", serde_json::json!({ "public_key": pk.to_base64(), "kid": pk.kid() }));
}
