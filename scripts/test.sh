#!/usr/bin/env bash
# Runs every test of the workspace, including the live tests against real services
# (kube-apiserver + etcd, moto_server with IAM enforcement, PostgreSQL), which the tests start
# themselves through crates/seb-testinfra. Usage: bash scripts/test.sh
# Lints are checked separately: cargo clippy --workspace --all-targets --all-features -- -D warnings
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo test --workspace --all-features --locked --no-fail-fast
