//! `cargo xtask <task>`: project automation in Rust rather than shell.
//!
//! Tasks:
//! - `vectors`: regenerate the golden vectors under `crates/seb-core/testdata/`.
//! - `vectors --check`: fail if the stored vectors differ from what the generator produces.
//! - `fuzz-seeds`: write the seed corpus of every fuzz target (`fuzz/corpus/<target>/`) from
//!   the golden vectors (see `docs/FUZZING.md`).
//!
//! The generator lives in `crates/seb-core/tests/support/vectors_gen.rs` so that the test
//! `crates/seb-core/tests/vectors.rs` runs exactly the same code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "../../seb-core/tests/support/vectors_gen.rs"]
mod vectors_gen;

const USAGE: &str = "usage: cargo xtask vectors [--check] | cargo xtask fuzz-seeds";

fn testdata_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seb-core/testdata");
    dir.canonicalize().unwrap_or(dir)
}

/// Files under the generator-owned locations of `dir` that exist on disk.
fn owned_files_on_disk(dir: &Path) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    for sub in vectors_gen::OWNED_DIRS {
        let d = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let e = e.map_err(|e| format!("reading `{}`: {e}", d.display()))?;
            if e.file_type().map_err(|e| e.to_string())?.is_file() {
                found.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    for f in vectors_gen::OWNED_TOP_FILES {
        if dir.join(f).is_file() {
            found.insert((*f).to_owned());
        }
    }
    Ok(found)
}

fn vectors(check: bool) -> Result<(), String> {
    let dir = testdata_dir();
    let files = vectors_gen::generate().map_err(|e| format!("generator: {e}"))?;
    let generated: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    let stale: Vec<String> = owned_files_on_disk(&dir)?.difference(&generated).cloned().collect();
    let mut changed = Vec::new();
    for f in &files {
        let path = dir.join(&f.path);
        if std::fs::read(&path).ok().as_deref() == Some(f.bytes.as_slice()) {
            continue;
        }
        changed.push(f.path.clone());
        if !check {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("creating `{}`: {e}", parent.display()))?;
            }
            std::fs::write(&path, &f.bytes)
                .map_err(|e| format!("writing `{}`: {e}", path.display()))?;
        }
    }
    if !check {
        for s in &stale {
            std::fs::remove_file(dir.join(s)).map_err(|e| format!("removing `{s}`: {e}"))?;
        }
    }
    let cases = files.iter().filter(|f| f.path.ends_with(".presentation.json")).count();
    println!(
        "{} files ({cases} pipeline cases) in {}: {} {}, {} stale {}",
        files.len(),
        dir.display(),
        changed.len(),
        if check { "differ" } else { "written" },
        stale.len(),
        if check { "present" } else { "removed" },
    );
    if check && (!changed.is_empty() || !stale.is_empty()) {
        for c in changed {
            eprintln!("differs: {c}");
        }
        for s in stale {
            eprintln!("stale: {s}");
        }
        return Err("stored vectors are out of date: run `cargo xtask vectors`".into());
    }
    Ok(())
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating `{}`: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| format!("writing `{}`: {e}", path.display()))
}

/// Seeds for the four fuzz targets, derived from the generated vectors.
fn fuzz_seeds() -> Result<(), String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use seb_core::types::Presentation;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let corpus = root.canonicalize().unwrap_or(root).join("corpus");
    let files = vectors_gen::generate().map_err(|e| format!("generator: {e}"))?;
    let mut n = 0;
    for f in &files {
        let name = f.path.replace('/', "_");
        if f.path.ends_with(".presentation.json") {
            write_seed(&corpus.join("presentation_parse"), &name, &f.bytes)?;
            write_seed(&corpus.join("pipeline_authenticate"), &name, &f.bytes)?;
            n += 2;
            let Ok(p) = seb_core::json::parse::<Presentation>(&f.bytes, usize::MAX) else {
                continue;
            };
            let env = serde_json::to_vec(&p.certificate).map_err(|e| e.to_string())?;
            write_seed(&corpus.join("envelope_parse"), &name, &env)?;
            // proof_verify input: 64-byte signature ‖ request JSON.
            let mut proof = STANDARD.decode(&p.proof.sig).unwrap_or_default();
            proof.resize(64, 0);
            proof.extend(serde_json::to_vec(&p.request).map_err(|e| e.to_string())?);
            write_seed(&corpus.join("proof_verify"), &name, &proof)?;
            n += 2;
        } else if f.path == "envelopes.json" {
            let doc: serde_json::Value =
                serde_json::from_slice(&f.bytes).map_err(|e| e.to_string())?;
            let envelopes = doc.get("envelopes").and_then(|e| e.as_array());
            for (i, e) in envelopes.into_iter().flatten().enumerate() {
                let env = e.get("envelope").ok_or("envelope case without `envelope`")?;
                let bytes = serde_json::to_vec(env).map_err(|e| e.to_string())?;
                write_seed(&corpus.join("envelope_parse"), &format!("envelopes_{i}.json"), &bytes)?;
                n += 1;
            }
        }
    }
    println!("wrote {n} seeds under {}", corpus.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["vectors"] => vectors(false),
        ["vectors", "--check"] => vectors(true),
        ["fuzz-seeds"] => fuzz_seeds(),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
