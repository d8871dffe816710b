//! Admin commands on the store (SQLite or PostgreSQL): `seb revoke`, `seb epoch`.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use seb_store::Revocation;

use crate::clock::now_ms;
use crate::serve::open_store;

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
    /// Required: the key that signs the change as an epoch statement appended to the ledger
    /// in the same transaction, so an auditor sees every revocation. The admission issuer
    /// key (auditors pass it to `seb ledger verify --admission-key`), or the broker's key
    /// when admission does not run (verifies with `--broker-key` alone). Prefer `seb
    /// admission revoke` when admission runs.
    #[arg(long, env = "SEB_EPOCH_KEY")]
    pub key: Option<std::path::PathBuf>,
}

/// How long a statement written by these commands is valid for brokers that poll (ms).
const STATEMENT_TTL_MS: u64 = 10_000;

/// The key that signs an epoch change. There is no unrecorded change: without a key nothing
/// changes.
fn epoch_key(key: Option<&std::path::Path>) -> Result<seb_core::keys::SigningKey> {
    let Some(path) = key else {
        bail!(
            "refusing to change the epochs without a signed ledger record: pass --key (or SEB_EPOCH_KEY) with the admission issuer key, or the broker's key when admission does not run"
        );
    };
    crate::keyfile::read(path)
}

/// The signed ledger record of an epoch change.
async fn epoch_record(
    store: &dyn seb_store::Store,
    key: &seb_core::keys::SigningKey,
    change: &seb_admission::service::EpochChange,
    now: u64,
) -> Result<Vec<u8>> {
    let epochs = store.epochs().await?;
    let revoked = store.revocations().await?;
    let statement =
        seb_admission::service::statement_after(&epochs, revoked, change, now, STATEMENT_TTL_MS);
    Ok(seb_admission::records::sign_statement(&statement, key)?.entry)
}

/// `seb revoke`.
pub async fn revoke(a: RevokeArgs) -> Result<()> {
    let what = match (a.cid, a.agent, a.all) {
        (Some(c), None, false) => Revocation::Cid(c),
        (None, Some(g), false) => Revocation::Agent(g),
        (None, None, true) => Revocation::All,
        _ => bail!("say exactly one of --cid, --agent, --all"),
    };
    let key = epoch_key(a.key.as_deref())?;
    let store = open_store(&a.store).await?;
    let now = now_ms()?;
    let change = seb_admission::service::EpochChange::Revoke(what.clone());
    let record = epoch_record(store.as_ref(), &key, &change, now).await?;
    let epochs = store.revoke(what.clone(), now, Some(record)).await?;
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
        /// Required: the key that signs the change into the ledger (see `seb revoke --key`).
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
            let key = epoch_key(key.as_deref())?;
            let s = open_store(&store).await?;
            let now = now_ms()?;
            let change = seb_admission::service::EpochChange::Policy;
            let record = epoch_record(s.as_ref(), &key, &change, now).await?;
            let e = s.bump_policy_epoch(now, Some(record)).await?;
            println!("{}", serde_json::json!({ "epochs": e }));
        }
    }
    Ok(())
}
