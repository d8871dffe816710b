//! `seb-eval --out DIR [--quick]`: run the evaluation. `seb-eval crash-child --dir DIR` is
//! the hidden child of the crash-injection experiment.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "seb-eval", about = "Re-run the SEB paper's experiments on this machine")]
struct Cli {
    /// Output directory (results.json, report.md, SVG figures).
    #[arg(long, default_value = "eval/latest")]
    out: PathBuf,
    /// Small N everywhere (CI).
    #[arg(long)]
    quick: bool,
    /// Override the seed of the randomised experiments.
    #[arg(long)]
    seed: Option<u64>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one execution in DIR (crash injection child).
    #[command(hide = true)]
    CrashChild {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(Cmd::CrashChild { dir }) = cli.cmd {
        return rt.block_on(seb_eval::crash::child(&dir));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let mut plan = if cli.quick { seb_eval::Plan::quick(exe) } else { seb_eval::Plan::full(exe) };
    if let Some(s) = cli.seed {
        plan.seed = s;
    }
    let r = rt.block_on(seb_eval::run_all(&plan, &cli.out))?;
    let escapes: usize = r.attacks.iter().map(|a| a.escaped).sum();
    let dups: usize = r.crashes.iter().map(|c| c.duplicates + c.unrecorded_outcomes).sum();
    println!(
        "seb-eval: wrote {}/report.md, results.json and {} figures",
        cli.out.display(),
        seb_eval::report::FIGURES.len()
    );
    println!(
        "seb-eval: {escapes} attack escapes, {dups} crash duplicates/unrecorded outcomes, {} parts failed to run",
        r.errors.len()
    );
    if escapes > 0 || dups > 0 {
        eprintln!("seb-eval: FINDINGS — see the report");
        std::process::exit(2);
    }
    Ok(())
}
