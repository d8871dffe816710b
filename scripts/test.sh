#!/usr/bin/env bash
# Runs every test of the workspace, including the live tests against real services, and the
# reduced evaluation. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Formatting and lints are part of the test run: a red lint is a red build.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --all-features --locked --no-fail-fast
