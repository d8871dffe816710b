//! `seb approver invite|list|remove`: passkey approvers (spec 5.1).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use seb_admission::client::InviteApprover;
use serde_json::Value;

use crate::admission_cmd::{AdminId, Endpoint, ReadKey, admin_command, print_json, refused};
use crate::keyfile;

/// Approver subcommands.
#[derive(Debug, Subcommand)]
pub enum ApproverCmd {
    /// Invite an approver to enrol a passkey (admin-signed; single use, valid 15 minutes).
    /// Prints the console link to give to the approver (it is the enrolment's only secret).
    Invite {
        /// The approver's name.
        name: String,
        /// The role (passkeys enrol human approvers).
        #[arg(long, default_value = "human")]
        role: String,
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        id: AdminId,
    },
    /// List configured and enrolled approvers (signed with any registered key).
    List {
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        key: ReadKey,
    },
    /// Remove an enrolled approver (admin-signed; recorded in the ledger).
    Remove {
        /// The approver's name.
        name: String,
        #[command(flatten)]
        ep: Endpoint,
        #[command(flatten)]
        id: AdminId,
    },
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("-")
}

/// Run an approver subcommand.
pub async fn run(cmd: ApproverCmd) -> Result<ExitCode> {
    match cmd {
        ApproverCmd::Invite { name, role, ep, id } => {
            let (body, sig) = admin_command(&id, |r| {
                r.invite_approver = Some(InviteApprover { name, role });
            })?;
            let (st, v) = ep.post("/approvers/invitations", body, Some(&sig)).await?;
            if st != 201 {
                return refused(&ep, st, &v);
            }
            if ep.json {
                print_json(&v)?;
            } else {
                println!("invitation for `{}` ({}):", s(&v, "/name"), s(&v, "/role"));
                println!("  {}", s(&v, "/url"));
                println!(
                    "single use, expires at {} ms; give the link only to the approver",
                    v.get("expires_at_ms").and_then(Value::as_u64).unwrap_or(0)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApproverCmd::List { mut ep, key } => {
            ep.signed_by(keyfile::read(&key.key)?);
            let (st, v) = ep.get("/approvers").await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            if ep.json {
                return print_json(&v).map(|()| ExitCode::SUCCESS);
            }
            println!("{:<24} {:<10} {:<9} {:<6} KID", "NAME", "ROLE", "SOURCE", "KEY");
            for a in v.get("approvers").and_then(Value::as_array).into_iter().flatten() {
                let kind = match a.pointer("/credential/alg").and_then(Value::as_i64) {
                    Some(-7) => "ES256",
                    Some(-8) => "EdDSA",
                    _ => "Ed25519",
                };
                println!(
                    "{:<24} {:<10} {:<9} {:<6} {}",
                    s(a, "/name"),
                    s(a, "/role"),
                    s(a, "/source"),
                    kind,
                    s(a, "/kid")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApproverCmd::Remove { name, ep, id } => {
            let (body, sig) = admin_command(&id, |r| r.remove_approver = Some(name.clone()))?;
            let (st, v) = ep
                .send(
                    reqwest::Method::DELETE,
                    &format!("/approvers/{name}"),
                    Some(body),
                    Some(&sig),
                )
                .await?;
            if st != 200 {
                return refused(&ep, st, &v);
            }
            if ep.json {
                print_json(&v)?;
            } else {
                println!("removed `{name}`; the signed record is in the ledger");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
