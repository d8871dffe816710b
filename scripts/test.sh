#!/usr/bin/env bash
# Runs every gate and every test of the workspace: formatting, clippy (warnings are errors), the
# dependency policy (deny.toml), the fuzz targets' build, all tests including the live ones
# against real services (kube-apiserver + etcd, moto_server with IAM enforcement, PostgreSQL),
# which the tests start themselves through crates/seb-testinfra, schemathesis against a live
# `seb serve`, then the walkthrough (scripts/demo.sh) end to end. Prints each stage's time.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A one-shot CI build writes no incremental state (less disk, faster cold build).
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi
started=$SECONDS
stage_name=
stage_start=$SECONDS
declare -a timings=()
stage() {
  if [[ -n $stage_name ]]; then timings+=("$(printf '%4ds  %s' $((SECONDS - stage_start)) "$stage_name")"); fi
  stage_name=$*
  stage_start=$SECONDS
  printf '\n[test.sh %dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"
}
# The stage times are printed at the end, also when a stage fails.
summary() {
  local rc=$?
  if [[ -n $stage_name ]]; then timings+=("$(printf '%4ds  %s' $((SECONDS - stage_start)) "$stage_name")"); fi
  printf '\n[test.sh] stage times%s:\n' "$([[ $rc -ne 0 ]] && echo " (failed in the last one)")"
  printf '  %s\n' "${timings[@]}"
  printf '  %4ds  total\n' $((SECONDS - started))
}
trap summary EXIT

stage "cargo fmt --check"
cargo fmt --all -- --check

# Cold, this checks every dependency once more (check mode shares nothing with the test build):
# about 6 CPU-minutes, 3-4 minutes on 2 idle cores.
stage "cargo clippy --workspace --all-targets --all-features -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

# Dependency policy: licenses, banned crates (one crypto backend, one TLS stack), sources.
# Advisories are not checked: their database cannot be fetched on these machines (deny.toml).
# Installing cargo-deny compiles it (about 3 CPU-minutes, once per machine); no prebuilt binary
# can be fetched here, and the check itself takes seconds.
stage "cargo deny check licenses bans sources"
deny_version=0.20.2
if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]]; then
  cargo install --locked "cargo-deny@$deny_version"
fi
cargo deny check licenses bans sources

# The fuzz targets (their own workspace and lock file, fuzz/Cargo.lock) must keep compiling
# against seb-core; this builds them on the stable toolchain without coverage instrumentation
# (running them needs cargo-fuzz and RUSTC_BOOTSTRAP=1: docs/FUZZING.md).
stage "fuzz targets build"
cargo build --manifest-path fuzz/Cargo.toml --locked --bins

stage "cargo test --workspace --all-features"
cargo test --workspace --all-features --locked --no-fail-fast
# The README's first command, end to end, so that it cannot rot. It runs the binaries of the
# build above (same features, so this links the few not built by the tests and compiles nothing
# else) instead of building `seb` again under the product feature set.
stage "build the demo's binaries from the test build"
cargo build --workspace --all-features --locked --bins --examples

stage "schemathesis against seb serve"
bash scripts/schemathesis.sh "$PWD/target/debug/seb"

stage "scripts/demo.sh"
demo_dir=$(mktemp -d)
SEB_DEMO_PREBUILT="$PWD/target/debug" bash scripts/demo.sh "$demo_dir"
rm -rf "$demo_dir"
stage "scripts/demo.sh pointed at a cluster and an account it did not start"
SEB_DEMO_PREBUILT="$PWD/target/debug" bash scripts/demo-pointed.sh
