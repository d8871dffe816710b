//! `seb ledger …`: export, checkpoint, and offline verification.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use seb_core::keys::{PublicKey, TrustedKeys};
use seb_ledger::checkpoint::Checkpoint;
use seb_ledger::verify::{LedgerExport, RecordKeys, VerifyOptions, verify_ledger};

use crate::client::http_client;

/// Ledger subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCmd {
    /// Verify an exported ledger offline: signatures, Merkle root, checkpoints, consistency
    /// with an earlier trusted checkpoint, and the semantic invariants. Exits 1 on any
    /// tampering, naming what failed.
    Verify {
        /// The export (JSON, from `seb ledger export`).
        export: PathBuf,
        /// A broker public key (base64), from a trusted source; repeat for several brokers
        /// or across a key rotation. They also verify the checkpoints unless
        /// `--checkpoint-key` is given.
        #[arg(long, required = true)]
        broker_key: Vec<String>,
        /// An admission issuer public key (base64); repeat for several. Needed when the
        /// ledger holds admission's issuance and denial records (embedded mode).
        #[arg(long)]
        admission_key: Vec<String>,
        /// A key trusted to sign checkpoints (base64; repeat across a key rotation). Default:
        /// the `--broker-key`s.
        #[arg(long)]
        checkpoint_key: Vec<String>,
        /// Checkpoint key name (defaults to the export's origin).
        #[arg(long)]
        key_name: Option<String>,
        /// An earlier checkpoint (signed note file) the auditor already trusts.
        #[arg(long)]
        trusted_checkpoint: Option<PathBuf>,
        /// Clock skew allowed when checking that admits lie in their validity window, ms.
        #[arg(long, default_value_t = 30_000)]
        skew_ms: u64,
    },
    /// Download the whole ledger from a broker.
    Export {
        /// Broker base URL.
        #[arg(long, env = "SEB_BROKER")]
        broker: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        tls: crate::client::TlsClientArgs,
    },
    /// Ask a broker to publish a checkpoint now, and print it.
    Checkpoint {
        /// Broker base URL.
        #[arg(long, env = "SEB_BROKER")]
        broker: String,
        #[command(flatten)]
        tls: crate::client::TlsClientArgs,
    },
}

/// Run a ledger subcommand.
pub async fn run(cmd: LedgerCmd) -> Result<ExitCode> {
    match cmd {
        LedgerCmd::Verify {
            export,
            broker_key,
            admission_key,
            checkpoint_key,
            key_name,
            trusted_checkpoint,
            skew_ms,
        } => {
            let bytes = std::fs::read(&export)
                .with_context(|| format!("reading `{}`", export.display()))?;
            let x = LedgerExport::from_json(&bytes, usize::MAX)?;
            let parse = |flag: &str, keys: &[String]| -> Result<Vec<PublicKey>> {
                keys.iter()
                    .map(|k| PublicKey::from_base64(k).with_context(|| format!("--{flag} `{k}`")))
                    .collect()
            };
            let brokers = parse("broker-key", &broker_key)?;
            let admission = parse("admission-key", &admission_key)?;
            let note_keys = if checkpoint_key.is_empty() {
                brokers.clone()
            } else {
                parse("checkpoint-key", &checkpoint_key)?
            };
            let broker_keys: TrustedKeys = brokers.into_iter().collect();
            let admission_keys: TrustedKeys = admission.into_iter().collect();
            let keys = RecordKeys {
                broker: &broker_keys,
                admission: (!admission_key.is_empty()).then_some(&admission_keys as _),
            };
            let name = key_name.unwrap_or_else(|| x.origin.clone());
            let trusted = match trusted_checkpoint {
                Some(p) => {
                    let note = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading `{}`", p.display()))?;
                    let mut verified = None;
                    for k in &note_keys {
                        if let Ok(c) = Checkpoint::parse_and_verify(&note, &name, k) {
                            verified = Some(c);
                            break;
                        }
                    }
                    Some(verified.with_context(|| {
                        format!(
                            "trusted checkpoint `{}`: not signed by a checkpoint key",
                            p.display()
                        )
                    })?)
                }
                None => None,
            };
            let opts = VerifyOptions { skew_ms, ..VerifyOptions::default() };
            match verify_ledger(&x, &keys, &name, &note_keys, trusted.as_ref(), &opts) {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("ledger verification FAILED: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        LedgerCmd::Export { broker, out, tls } => {
            let url = format!("{}/v1/ledger/export", broker.trim_end_matches('/'));
            let resp =
                http_client(&tls)?.get(&url).send().await.with_context(|| format!("GET {url}"))?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            if !status.is_success() {
                anyhow::bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&bytes));
            }
            std::fs::write(&out, &bytes).with_context(|| format!("writing `{}`", out.display()))?;
            let x = LedgerExport::from_json(&bytes, usize::MAX)?;
            println!(
                "{}",
                serde_json::json!({ "entries": x.entries.len(), "checkpoints": x.checkpoints.len(), "out": out })
            );
            Ok(ExitCode::SUCCESS)
        }
        LedgerCmd::Checkpoint { broker, tls } => {
            let url = format!("{}/v1/ledger/checkpoint", broker.trim_end_matches('/'));
            let resp = http_client(&tls)?
                .post(&url)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let status = resp.status();
            let text = resp.text().await?;
            if !status.is_success() {
                anyhow::bail!("POST {url}: {status}: {text}");
            }
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
