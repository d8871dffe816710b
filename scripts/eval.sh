#!/usr/bin/env bash
# Re-run the SEB paper's experiments on this machine (see docs/evaluation.md).
#
#   scripts/eval.sh                 # full run into eval/latest (release build)
#   scripts/eval.sh --quick         # reduced run (CI sizes)
#   scripts/eval.sh --out DIR ...   # another output directory
#
# Writes DIR/results.json, DIR/report.md and DIR/*.svg. Needs the services seb-testinfra
# starts (kube-apiserver + etcd, moto_server, PostgreSQL); they are fetched/built on first use.
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
exec cargo run --release --locked -p seb-eval --features harness -- --out "$out" "${args[@]}"
