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
    let epochs = store.revoke(what.clone(), now_ms(), None).await?;
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
        EpochCmd::BumpPolicy { store } => {
            let s = open_store(&store).await?;
            let e = s.bump_policy_epoch(now_ms(), None).await?;
            println!("{}", serde_json::json!({ "epochs": e }));
        }
    }
    Ok(())
}
