#!/usr/bin/env bash
# Re-run the SEB paper's experiments on this machine (see docs/evaluation.md).
#
#   scripts/eval.sh                 # full run into eval/latest (release build)
#   scripts/eval.sh --quick         # reduced run (CI sizes)
#   scripts/eval.sh --out DIR ...   # another output directory
#
# Writes DIR/results.json, DIR/report.md and DIR/*.svg; a full run also DIR/replicas-postgres-*.txt
# (several brokers on one PostgreSQL). Needs the services seb-testinfra starts (kube-apiserver +
# etcd, moto_server, PostgreSQL); they are fetched/built on first use.
# Exit status 2 means the run found an attack escape or a crash duplicate.
set -euo pipefail
cd "$(dirname "$0")/.."
out="eval/latest"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
quick=false
for a in "${args[@]+"${args[@]}"}"; do [ "$a" = --quick ] && quick=true; done
cargo run --release --locked -p seb-eval --features harness -- --out "$out" "${args[@]+"${args[@]}"}"
# A full run also measures several brokers on one PostgreSQL (issue 17): over HTTP with the
# test double, and `seb serve` replicas against the real kube-apiserver (1 and 3 replicas).
if [ "$quick" = false ]; then
  SEB_BENCH_STORE=postgres cargo bench --locked -p seb-broker --features test-double --bench http \
    | tee "$out/replicas-postgres-http.txt"
  cargo bench --locked -p seb-cli --bench replicas_kube | tee "$out/replicas-postgres-kube.txt"
fi
