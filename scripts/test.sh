#!/usr/bin/env bash
# Runs every test of the workspace, including the live tests against real services
# (kube-apiserver + etcd, moto_server with IAM enforcement, PostgreSQL), which the tests start
# themselves through crates/seb-testinfra, then the walkthrough (scripts/demo.sh) end to end.
# Usage: bash scripts/test.sh
# Lints are checked separately: cargo clippy --workspace --all-targets --all-features -- -D warnings
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A one-shot CI build writes no incremental state (less disk, faster cold build).
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi
started=$SECONDS
stage() { printf '\n[test.sh %dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }
stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo test --workspace --all-features"
cargo test --workspace --all-features --locked --no-fail-fast
# The README's first command, end to end, so that it cannot rot. It runs the binaries of the
# build above (same features, so this links the few not built by the tests and compiles nothing
# else) instead of building `seb` again under the product feature set.
stage "build the demo's binaries from the test build"
cargo build --workspace --all-features --locked --bins --examples
stage "scripts/demo.sh"
demo_dir=$(mktemp -d)
SEB_DEMO_PREBUILT="$PWD/target/debug" bash scripts/demo.sh "$demo_dir"
rm -rf "$demo_dir"
stage "scripts/demo.sh pointed at a cluster and an account it did not start"
SEB_DEMO_PREBUILT="$PWD/target/debug" bash scripts/demo-pointed.sh
stage "done"
