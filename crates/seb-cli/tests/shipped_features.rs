#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! The product binary carries no test code: neither the file-backed test double
//! (`test-double`) nor crash fault injection (`fault-injection`: `SEB_CRASH_AT` aborts the
//! process) is compiled into a `seb` that a user or the container build produces.
//!
//! Cargo unifies features across the packages one command builds, so a test-only crate that
//! enabled them on a shared dependency would put them into `seb` on a plain
//! `cargo build --workspace`. These tests ask cargo itself which features such a build
//! resolves (`cargo tree --workspace -e normal,build,features`: every member at once, dev
//! dependencies excluded as in a non-test build). Any narrower build (`cargo build -p
//! seb-cli`, the container build) selects a subset of those packages, so it resolves a subset
//! of those features. A second test checks the rule behind it in the manifests themselves.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TEST_FEATURES: [&str; 2] = ["test-double", "fault-injection"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo).current_dir(root()).args(args).output().unwrap();
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The test-feature nodes `cargo tree` resolves for the whole workspace over `edges`.
fn resolved_test_features(edges: &str) -> Vec<String> {
    let tree =
        cargo(&["tree", "--workspace", "--locked", "--offline", "-e", edges, "--prefix", "none"]);
    assert!(tree.contains("seb-broker v"), "cargo tree printed no seb-broker:\n{tree}");
    let mut found: Vec<String> = tree
        .lines()
        .filter(|l| TEST_FEATURES.iter().any(|f| l.contains(&format!("feature \"{f}\""))))
        .map(|l| l.trim_end_matches(" (*)").trim().to_owned())
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn a_plain_workspace_build_does_not_unify_test_features_into_seb() {
    assert_eq!(resolved_test_features("normal,build,features"), Vec::<String>::new());
    // The same check sees them where they are meant to be (tests: dev dependencies), so it
    // cannot pass by seeing nothing.
    let tests = resolved_test_features("normal,build,dev,features");
    assert!(tests.iter().any(|l| l == "seb-target feature \"test-double\""), "{tests:?}");
    assert!(tests.iter().any(|l| l == "seb-broker feature \"test-double\""), "{tests:?}");
}

#[test]
fn the_container_build_has_no_test_features() {
    // The container build's exact command: one package, no feature flags. Its resolution is
    // a subset of the workspace build's, checked above.
    let containerfile = std::fs::read_to_string(root().join("deploy/Containerfile")).unwrap();
    let builds: Vec<&str> = containerfile.lines().filter(|l| l.contains("cargo build")).collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let build = builds[0];
    assert!(build.contains("-p seb-cli --bin seb"), "{build}");
    assert!(!build.contains("--features") && !build.contains("--all-features"), "{build}");
    assert!(!build.contains(" -F"), "{build}");
}

/// The manifest rule that keeps them out: no member enables a test feature on another
/// through a normal or build dependency, or through its default features, except from a
/// feature of its own (off by default).
#[test]
fn no_manifest_enables_test_features_outside_tests() {
    let meta: Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--locked",
        "--offline",
    ]))
    .unwrap();
    let packages = meta["packages"].as_array().unwrap();
    assert!(packages.len() >= 10, "workspace members: {}", packages.len());
    let mut violations = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap();
        for d in p["dependencies"].as_array().unwrap() {
            if d["kind"].as_str() == Some("dev") {
                continue;
            }
            for f in d["features"].as_array().unwrap() {
                let f = f.as_str().unwrap();
                if TEST_FEATURES.contains(&f) {
                    violations.push(format!("{name} -> {} feature {f}", d["name"]));
                }
            }
        }
        let defaults = p["features"]["default"].as_array().cloned().unwrap_or_default();
        for f in defaults {
            let f = f.as_str().unwrap();
            if TEST_FEATURES.iter().any(|t| f == *t || f.ends_with(&format!("/{t}"))) {
                violations.push(format!("{name} default feature {f}"));
            }
        }
    }
    assert!(violations.is_empty(), "test features reachable from a product build: {violations:?}");
    // seb-eval, which needs both, has them only behind its own `harness` feature.
    let eval = packages.iter().find(|p| p["name"] == "seb-eval").unwrap();
    let harness: Vec<&str> = eval["features"]["harness"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(harness.contains(&"seb-broker/fault-injection"), "{harness:?}");
    assert!(harness.contains(&"seb-broker/test-double"), "{harness:?}");
}
