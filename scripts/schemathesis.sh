#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI, pinned below) generates requests from
# /openapi.json and sends them to a running `seb serve` (test-double target, admission mounted,
# TLS on), and fails on any 5xx, any status, content type or response body the document does
# not describe. Installs schemathesis into target/schemathesis-venv on first use.
# Usage: bash scripts/schemathesis.sh [path/to/seb]   (default: target/debug/seb, built with
# the test-double feature, as scripts/test.sh builds it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seb=${1:-$root/target/debug/seb}
version=4.32.5
venv=$root/target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for k in broker issuer agent ops; do "$seb" keygen --out "$work/$k.seed" > "$work/$k.pub"; done
pub() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$work/$1.pub"; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=seb-schemathesis \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
echo '{"value": 0}' > "$work/target.json"
printf 'permit(principal, action == SEB::Action::"propose", resource);\n' > "$work/admission.cedar"
cat > "$work/seb.toml" <<TOML
[broker]
listen = "127.0.0.1:0"
tls_cert = "tls.crt"
tls_key = "tls.key"
key_file = "broker.seed"
store = "sqlite:seb.db"
checkpoint_interval_s = 0

[trust]
issuers = ["$(pub issuer)"]

[targets.test]
state_file = "target.json"

[admission]
issuer_key_file = "issuer.seed"
policy_file = "admission.cedar"

[[admission.agents]]
name = "agent-a"
public_keys = ["$(pub agent)"]

[[admission.admins]]
name = "ops"
public_key = "$(pub ops)"
TOML
"$seb" serve --config "$work/seb.toml" > "$work/stdout" 2> "$work/broker.log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/stdout" 2>/dev/null && break; sleep 0.1; done
addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' "$work/stdout") \
  || { cat "$work/broker.log" >&2; exit 1; }
url="https://$addr"
for _ in $(seq 100); do curl -sf --cacert "$work/tls.crt" "$url/readyz" > /dev/null && break; sleep 0.1; done
# Fixed seed and a bounded number of cases per operation: the same run every time (about
# 2,000 requests, 30-40 s). The checks: no 5xx, and every response (status, content type, body) as documented.
# The Kubernetes webhook is left out: it is mounted only with a Kubernetes target (its live
# tests run against a real kube-apiserver in crates/seb-kube and crates/seb-cli).
# From the scratch directory: schemathesis keeps a cache (.schemathesis/) in its working directory.
(cd "$work" && "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$url/openapi.json" \
  --exclude-path /v1/kubernetes/admission-review --tls-verify "$work/tls.crt" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" --seed 1 \
  --workers 1 --request-timeout 20 --suppress-health-check all --no-color --warnings off) \
  || { echo "--- tail of the broker's log" >&2; tail -20 "$work/broker.log" >&2; exit 1; }
