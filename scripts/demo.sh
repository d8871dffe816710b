#!/usr/bin/env bash
# The main job, end to end: builds `seb`, starts a broker on the embedded store, and plays a
# short story with an agent key — a certified change executed, a replay refused, drift
# caught, a revocation stopping a certificate — then verifies the ledger offline.
# Usage: bash scripts/demo.sh [workdir]   (default: ./.seb/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-$root/.seb/demo}
rm -rf "$work"; mkdir -p "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

say "Building seb (first build takes a few minutes)"
cargo build -q -p seb-cli --features test-double
seb="$root/target/debug/seb"

say "Keys: broker, issuer (admission), agent"
for k in broker issuer agent; do "$seb" keygen --out "$work/$k.seed" > "$work/$k.pub"; done
pub() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$work/$1.pub"; }
note "broker kid $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kid"])' "$work/broker.pub")"

cat > "$work/seb.toml" <<TOML
[broker]
listen = "127.0.0.1:0"
key_file = "broker.seed"
store = "sqlite:seb.db"
checkpoint_interval_s = 1

[trust]
issuers = ["$(pub issuer)"]

[targets.test]
state_file = "target.json"
TOML
python3 - "$work/target.json" <<'PY'
import json,sys
json.dump({"objects":{"web":{"value":{"replicas":3,"image":"nginx:1.25"},"version":1}},"tokens":{},"mutations":[]},open(sys.argv[1],"w"))
PY

say "Starting the broker (embedded SQLite store, test-double platform)"
"$seb" serve --config "$work/seb.toml" --log-format pretty > "$work/broker.out" 2> "$work/broker.log" &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$work/broker.out" 2>/dev/null && break; sleep 0.1; done
url="http://$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' "$work/broker.out")"
note "broker at $url"

issue() { # name params-json evidence-json
  "$seb" insecure-issue --issuer-key "$work/issuer.seed" --agent agent-a --agent-public-key "$(pub agent)" \
    --platform test --op set --target '{"name":"web"}' --params "$2" --evidence "$3" --out "$work/$1.cert.json"
}
execute() { "$seb" execute --broker "$url" --certificate "$work/$1.cert.json" --agent-key "$work/agent.seed" > "$work/$1.out" 2>&1; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$work/$1.out" "$2"; }
declare -a rows

say "1. A certified change: scale web from 3 to 5 replicas"
issue scale '{"value":{"replicas":5,"image":"nginx:1.25"}}' '{"/replicas":3}'
if execute scale; then
  note "admitted and $(field scale 'd["outcome"]["status"]') (admit record #$(field scale 'd["admit_index"]'), outcome #$(field scale 'd["outcome_index"]'))"
  rows+=("certified change|applied")
else echo "unexpected: $(cat "$work/scale.out")"; exit 1; fi

say "2. The same certificate again: a replay"
if execute scale; then echo "unexpected: replay admitted"; exit 1; fi
note "refused: failed_check=$(field scale 'd["failed_check"]') decision=$(field scale 'd["decision"]') — a nonce is single use"
rows+=("replay|refused ($(field scale 'd["failed_check"]'))")

say "3. Drift: the live object changed after admission"
issue drift '{"value":{"replicas":4,"image":"nginx:1.25"}}' '{"/replicas":3}'
if execute drift; then echo "unexpected: drift admitted"; exit 1; fi
note "refused: failed_check=$(field drift 'd["failed_check"]') decision=$(field drift 'd["decision"]') — the evidence said 3 replicas, the target has 5"
rows+=("drift|$(field drift 'd["decision"]') ($(field drift 'd["failed_check"]'))")

say "4. Revocation: the agent is revoked before it executes"
issue revoked '{"value":{"replicas":6,"image":"nginx:1.25"}}' '{"/replicas":5}'
"$seb" revoke --store "sqlite:$work/seb.db" --agent agent-a > /dev/null
if execute revoked; then echo "unexpected: revoked agent admitted"; exit 1; fi
note "refused: failed_check=$(field revoked 'd["failed_check"]') decision=$(field revoked 'd["decision"]')"
rows+=("revoked agent|$(field revoked 'd["decision"]') ($(field revoked 'd["failed_check"]'))")

say "5. The ledger, verified offline"
"$seb" ledger export --broker "$url" --out "$work/ledger.json" > /dev/null
"$seb" ledger verify "$work/ledger.json" --broker-key "$(pub broker)" > "$work/verify.json"
note "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%d entries, %d admit, %d outcome, %d decisions, root %s...: VERIFIED" % (r["size"], r["admits"], r["outcomes"], r["decisions"], r["root"][:16]))' "$work/verify.json")"
rows+=("ledger verification|ok")

say "Summary"
printf '   %-22s %s\n' "step" "result"
for r in "${rows[@]}"; do printf '   %-22s %s\n' "${r%%|*}" "${r#*|}"; done
note "ledger: $work/ledger.json, report: $work/verify.json, broker log: $work/broker.log"
