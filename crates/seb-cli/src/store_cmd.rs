//! Admin commands on the store (SQLite or PostgreSQL): `seb revoke`, `seb epoch`.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use seb_store::Revocation;

use crate::serve::open_store;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Arguments of `seb revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The store (`sqlite:<path>` or `postgres://…`), as in the broker's configuration.
    #[arg(long, env = "SEB_STORE")]
    pub store: String,
    /// Revoke one certificate by cid.
    #[arg(long, conflicts_with_all = ["agent", "all"])]
    pub cid: Option<String>,
    /// Revoke every certificate of an agent.
    #[arg(long, conflicts_with_all = ["cid", "all"])]
    pub agent: Option<String>,
    /// Revoke everything issued so far (bumps the revocation epoch).
    #[arg(long, conflicts_with_all = ["cid", "agent"])]
    pub all: bool,
    /// Sign the change as an epoch statement appended to the ledger in the same transaction
    /// (the admission issuer key, which auditors pass to `seb ledger verify
    /// --admission-key`). Without it the revocation takes effect but the ledger does not
    /// show it. Prefer `seb admission revoke` when admission runs.
    #[arg(long, env = "SEB_EPOCH_KEY")]
    pub key: Option<std::path::PathBuf>,
}

/// How long a statement written by these commands is valid for brokers that poll (ms).
const STATEMENT_TTL_MS: u64 = 10_000;

/// The signed ledger record of an epoch change, when a key is given.
async fn epoch_record(
    store: &dyn seb_store::Store,
    key: Option<&std::path::Path>,
    change: &seb_admission::service::EpochChange,
    now: u64,
) -> Result<Option<Vec<u8>>> {
    let Some(path) = key else {
        eprintln!("warning: no --key: the change takes effect but the ledger will not record it");
        return Ok(None);
    };
    let key = crate::keyfile::read(path)?;
    let epochs = store.epochs().await?;
    let revoked = store.revocations().await?;
    let statement =
        seb_admission::service::statement_after(&epochs, revoked, change, now, STATEMENT_TTL_MS);
    Ok(Some(seb_admission::records::sign_statement(&statement, &key)?.entry))
}

/// `seb revoke`.
pub async fn revoke(a: RevokeArgs) -> Result<()> {
    let what = match (a.cid, a.agent, a.all) {
        (Some(c), None, false) => Revocation::Cid(c),
        (None, Some(g), false) => Revocation::Agent(g),
        (None, None, true) => Revocation::All,
        _ => bail!("say exactly one of --cid, --agent, --all"),
    };
    let store = open_store(&a.store).await?;
    let now = now_ms();
    let change = seb_admission::service::EpochChange::Revoke(what.clone());
    let record = epoch_record(store.as_ref(), a.key.as_deref(), &change, now).await?;
    let epochs = store.revoke(what.clone(), now, record).await?;
    println!("{}", serde_json::json!({ "revoked": what, "epochs": epochs }));
    Ok(())
}

/// `seb epoch …`.
#[derive(Debug, Subcommand)]
pub enum EpochCmd {
    /// Print the active epochs and revocations.
    Show {
        /// The store (`sqlite:<path>` or `postgres://…`).
        #[arg(long, env = "SEB_STORE")]
        store: String,
    },
    /// Bump the policy epoch: every outstanding certificate must be re-admitted.
    BumpPolicy {
        /// The store (`sqlite:<path>` or `postgres://…`).
        #[arg(long, env = "SEB_STORE")]
        store: String,
        /// Sign the change into the ledger (see `seb revoke --key`).
        #[arg(long, env = "SEB_EPOCH_KEY")]
        key: Option<std::path::PathBuf>,
    },
}

/// Run an epoch subcommand.
pub async fn epoch(cmd: EpochCmd) -> Result<()> {
    match cmd {
        EpochCmd::Show { store } => {
            let s = open_store(&store).await?;
            let e = s.epochs().await?;
            let (cids, agents) = s.revocations().await?;
            println!(
                "{}",
                serde_json::json!({ "epochs": e, "revoked_cids": cids, "revoked_agents": agents })
            );
        }
        EpochCmd::BumpPolicy { store, key } => {
            let s = open_store(&store).await?;
            let now = now_ms();
            let change = seb_admission::service::EpochChange::Policy;
            let record = epoch_record(s.as_ref(), key.as_deref(), &change, now).await?;
            let e = s.bump_policy_epoch(now, record).await?;
            println!("{}", serde_json::json!({ "epochs": e }));
        }
    }
    Ok(())
}
