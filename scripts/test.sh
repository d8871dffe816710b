#!/usr/bin/env bash
# Runs every test of the workspace, including the live tests against real services
# (kube-apiserver + etcd, moto_server with IAM enforcement, PostgreSQL), which the tests start
# themselves through crates/seb-testinfra, then the walkthrough (scripts/demo.sh) end to end.
# Usage: bash scripts/test.sh
# Lints are checked separately: cargo clippy --workspace --all-targets --all-features -- -D warnings
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo test --workspace --all-features --locked --no-fail-fast
# The README's first command, end to end, so that it cannot rot.
demo_dir=$(mktemp -d)
bash scripts/demo.sh "$demo_dir"
rm -rf "$demo_dir"
