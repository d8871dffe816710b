#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: builds `seb`, starts a real kube-apiserver +
# etcd and an IAM-enforcing AWS emulator (moto_server) on loopback (building/installing them
# on first use), installs SEB's platform artefacts with `seb deploy`, starts admission and the
# broker on the embedded SQLite store, and plays a story with an agent key:
#   1. a low-risk change certified by policy and executed (Kubernetes scale),
#   2. a high-risk change waiting for a human approval given from the CLI,
#   3. a replay refused,
#   4. drift injected and caught (AWS S3), then the re-proposed change applied,
#   5. a revocation stopping a certificate,
#   6. the agent bypassing the broker with its own credentials, refused by the platforms
#      (and a cluster admin refused by SEB's admission webhook), and an execution's minted
#      AWS session used outside its certificate, refused,
#   7. the ledger verified offline.
# It ends with a summary table and leaves the ledger and a report on disk.
#
# Usage: bash scripts/demo.sh [options] [workdir]   (default workdir: ./.seb/demo)
#   --kubeconfig FILE     use this cluster instead of a local API server (an administrator's
#                         kubeconfig for a cluster you may change; see README)
#   --webhook-host HOST   with --kubeconfig: an address of this machine the cluster's API
#                         server can reach; the broker listens there and serves the webhook
#   --aws-profile NAME    use this AWS profile (IAM administrator of a sandbox account)
#                         instead of the local emulator; honours AWS_ENDPOINT_URL
#   --aws-region REGION   with --aws-profile (default: AWS_REGION, else us-east-1)
# What the walkthrough creates on a cluster or account it was pointed at is named seb-demo*
# and is deleted when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
declare -a infra_args=()
work=
while [ $# -gt 0 ]; do
  case $1 in
    --kubeconfig|--webhook-host|--aws-profile|--aws-region)
      [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
      infra_args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) work=$1; shift ;;
  esac
done
work=${work:-$root/.seb/demo}
if [[ " ${infra_args[*]} " == *" --kubeconfig "* && " ${infra_args[*]} " != *" --webhook-host "* ]]; then
  echo "--kubeconfig needs --webhook-host: an address of this machine the cluster's API server can reach (SEB's webhook runs in the broker)" >&2
  exit 2
fi
rm -rf "$work"; mkdir -p "$work"
work=$(cd "$work" && pwd)
bold=$'\033[1m'; off=$'\033[0m'
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
note() { printf '   %s\n' "$*"; }
die() { printf '\nDEMO FAILED: %s\n' "$*" >&2; for f in "$work/broker.log" "$work/infra.log"; do [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -20 "$f" >&2; }; done; exit 1; }
declare -a rows
row() { rows+=("$1|$2|$3"); }
js() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$@"; }

bin_dir="$root/target/debug"
if [[ -n "${SEB_DEMO_PREBUILT:-}" ]]; then
  # scripts/test.sh has just built these with the test build's features: reuse them rather
  # than rebuild the SDK crates under a second feature set.
  bin_dir=$SEB_DEMO_PREBUILT
  say "Using the binaries already built in $bin_dir"
else
  say "Building seb and the local platform launcher (the first build takes several minutes)"
  cargo build -q -p seb-cli --bin seb -p seb-testinfra --bin seb-localinfra
  cargo build -q -p seb-aws --example scoped_session
fi
seb="$bin_dir/seb"
localinfra="$bin_dir/seb-localinfra"
scoped_session="$bin_dir/examples/scoped_session"
for b in "$seb" "$localinfra" "$scoped_session"; do [[ -x "$b" ]] || die "missing binary $b"; done

say "Keys: broker, admission issuer, agent, a human approver, an operator"
for k in broker issuer agent alice ops; do "$seb" keygen --out "$work/$k.seed" > "$work/$k.pub"; done
pub() { js "$work/$1.pub" 'd["public_key"]'; }
note "broker kid $(js "$work/broker.pub" 'd["kid"]'), issuer kid $(js "$work/issuer.pub" 'd["kid"]')"

aws_profile=; real_kube=
for ((i = 0; i < ${#infra_args[@]}; i += 2)); do
  case ${infra_args[i]} in --aws-profile) aws_profile=${infra_args[i+1]} ;; --kubeconfig) real_kube=1 ;; esac
done
if [ -n "$aws_profile" ]; then
  region_args=(); for ((i = 0; i < ${#infra_args[@]}; i += 2)); do [ "${infra_args[i]}" = --aws-region ] && region_args=(--aws-region "${infra_args[i+1]}"); done
  account=$("$localinfra" aws-account --aws-profile "$aws_profile" "${region_args[@]}") || die "AWS profile $aws_profile: no account"
else
  account=123456789012 # moto's
fi
say "AWS artefacts: seb deploy aws (trust policy, SCP/RCP, permission boundary, broker policy)"
"$seb" deploy aws --broker-principal-arn "arn:aws:iam::$account:user/seb-demo-broker" --account "$account" \
  --execution-role-name seb-demo-execution --admin-principal-arn-pattern "arn:aws:iam::$account:user/seb-admin" \
  --out-dir "$work/aws" > /dev/null
note "wrote $(ls "$work/aws" | tr '\n' ' ')"

if [ ${#infra_args[@]} -eq 0 ]; then
  say "Local platforms: kube-apiserver + etcd and moto_server with IAM enforcement"
else
  if [ -n "$real_kube" ]; then k_what="the given cluster"; else k_what="a local kube-apiserver"; fi
  if [ -n "$aws_profile" ]; then a_what="AWS profile $aws_profile"; else a_what="moto_server"; fi
  say "Platforms: $k_what and $a_what; the walkthrough's identities on them"
fi
"$localinfra" --out "$work/infra" --aws-artefacts "$work/aws" "${infra_args[@]}" 2> "$work/infra.log" &
infra_pid=$!
broker_pid=; deployed=
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null
  if [ -f "$work/infra/infra.json" ] && { [ -n "$real_kube" ] || [ -n "$aws_profile" ]; }; then
    echo "   removing what the walkthrough made on the cluster/account it was pointed at…" >&2
    [ -n "$deployed" ] && { "$seb" "${deploy_kube[@]}" --delete --kubeconfig "$work/infra/admin.kubeconfig" > /dev/null || echo "   seb deploy kubernetes --delete failed" >&2; }
    "$localinfra" release "$work/infra/infra.json" || echo "   seb-localinfra release failed: remove seb-demo* by hand" >&2
  fi
  kill "$infra_pid" 2>/dev/null; wait 2>/dev/null || true
}
trap cleanup EXIT
shown=0
for _ in $(seq 2400); do
  [ -f "$work/infra/infra.json" ] && break
  kill -0 "$infra_pid" 2>/dev/null || die "the local platforms did not start"
  n=$(wc -l < "$work/infra.log"); if [ "$n" -gt "$shown" ]; then tail -n +"$((shown + 1))" "$work/infra.log" | sed 's/^/   /'; shown=$n; fi
  sleep 0.5
done
[ -f "$work/infra/infra.json" ] || die "the local platforms did not start in 20 minutes"
tail -n +"$((shown + 1))" "$work/infra.log" | sed 's/^/   /'
info="$work/infra/infra.json"
ca=$(js "$info" 'd["broker_tls"]["ca"]')     # the CA of the broker's serving certificate
host=$(js "$info" 'd["broker_tls"]["host"]')
bucket=$(js "$info" 'd["aws"]["bucket"]')
if [ -n "$real_kube" ]; then ns=seb-demo-shop; else ns=shop; fi
# kube METHOD PATH USER [CONTENT-TYPE BODY] -> prints the HTTP status; body in $work/kube.out
kube() {
  "$localinfra" kube "$info" "$3" "$1" "$2" "${@:4}" > "$work/kube.raw" || die "kube request failed"
  tail -n +2 "$work/kube.raw" > "$work/kube.out"; head -1 "$work/kube.raw"
}
replicas() { kube GET "/apis/apps/v1/namespaces/$ns/deployments/web" admin > /dev/null; js "$work/kube.out" 'd["spec"]["replicas"]'; }
# aws_as WHO SERVICE METHOD ARGS-JSON -> prints "ok" or the error code (waits out IAM's
# eventual consistency for new keys on a real account)
aws_as() {
  python3 - "$info" "$@" <<'PY'
import json, subprocess, sys, time
info = json.load(open(sys.argv[1]))["aws"]; who, service, method, args = sys.argv[2:6]
req = {"endpoint": info["endpoint"], "region": info["region"], **info[who],
       "calls": [{"service": service, "method": method, "args": json.loads(args)}]}
for attempt in range(20):
    out = subprocess.run([sys.executable, "scripts/testinfra/moto_call.py"], input=json.dumps(req), capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)[0]
    code = "ok" if "ok" in r else r["error"]["code"]
    if code not in ("InvalidAccessKeyId", "InvalidClientTokenId"):
        break
    time.sleep(3)
print(code)
PY
}

say "Kubernetes: a workload, then SEB's artefacts (seb deploy kubernetes --apply)"
[ "$(kube POST /api/v1/namespaces admin application/json "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\"}}")" = 201 ] || die "namespace: $(cat "$work/kube.out")"
[ "$(kube POST "/apis/apps/v1/namespaces/$ns/deployments" admin application/json '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"app":"web"}},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.local/web:1"}]}}}}')" = 201 ] || die "deployment: $(cat "$work/kube.out")"
note "namespace $ns, Deployment web with 2 replicas"
port=$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$host")
deploy_kube=(deploy kubernetes --protected-namespace "$ns" --exec-namespace seb-demo-exec
  --broker-user "$(js "$info" 'd["kube"]["users"]["broker"]')" --agent-user "$(js "$info" 'd["kube"]["users"]["agent"]')"
  --webhook-url "https://$host:$port/v1/kubernetes/admission-review" --ca-file "$ca" --no-admission-policy)
deployed=1
"$seb" "${deploy_kube[@]}" --apply --kubeconfig "$work/infra/admin.kubeconfig" > "$work/deploy-kube.json"
note "applied: broker RBAC (grants only through per-execution identities), agents read-only, webhook (failurePolicy Fail) on namespace $ns"

cat > "$work/admission.cedar" <<'CEDAR'
@id("registered-agents-may-propose")
permit(principal, action == SEB::Action::"propose", resource);

@id("big-scale-needs-a-human")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context.op == "scale" && context.params.replicas > 4 };
CEDAR
cat > "$work/seb.toml" <<TOML
[broker]
listen = "$host:$port"
key_file = "broker.seed"
store = "sqlite:seb.db"
checkpoint_interval_s = 5
tls_cert = "$(js "$info" 'd["broker_tls"]["cert"]')"
tls_key = "$(js "$info" 'd["broker_tls"]["key"]')"

[trust]
issuers = ["$(pub issuer)"]

[[approvers]]
name = "alice"
role = "human"
public_key = "$(pub alice)"

[targets.kubernetes]
cluster = "local"
kubeconfig = "$(js "$info" 'd["kube"]["broker_kubeconfig"]')"
observer_kubeconfig = "$(js "$info" 'd["kube"]["agent_kubeconfig"]')"   # admission reads with a read-only identity (here the agents' read-only user)
exec_namespace = "seb-demo-exec"
protected_namespaces = ["$ns"]
webhook = true
broker_username = "$(js "$info" 'd["kube"]["users"]["broker"]')"

[targets.aws]
$(js "$info" '"endpoint_url = \"%s\"\ns3_force_path_style = true" % d["aws"]["endpoint"] if d["aws"]["endpoint"] else "# default AWS endpoints"')
broker_credentials_file = "$(js "$info" 'd["aws"]["broker_credentials_file"]')"
observer_credentials_file = "$(js "$info" 'd["aws"]["agent_credentials_file"]')"
[targets.aws.accounts.$account]
execution_role_arn = "$(js "$info" 'd["aws"]["execution_role_arn"]')"

[admission]
issuer_key_file = "issuer.seed"
policy_file = "admission.cedar"

[[admission.agents]]
name = "agent-a"
public_keys = ["$(pub agent)"]

[[admission.approvers]]
name = "alice"
role = "human"
public_key = "$(pub alice)"

[[admission.admins]]
name = "ops"
public_key = "$(pub ops)"
TOML

say "Starting admission + broker (seb serve: embedded SQLite store, TLS, both platforms)"
"$seb" serve --config "$work/seb.toml" --log-format pretty > "$work/broker.out" 2> "$work/broker.log" &
broker_pid=$!
url="https://$host:$port"
for _ in $(seq 300); do curl -sf --cacert "$ca" "$url/readyz" > /dev/null 2>&1 && break; kill -0 "$broker_pid" 2>/dev/null || die "seb serve exited"; sleep 0.1; done
curl -sf --cacert "$ca" "$url/readyz" > /dev/null || die "broker not ready"
note "broker and admission at $url"
export SEB_CA="$ca"

kt="{\"cluster\":\"local\",\"api_version\":\"apps/v1\",\"kind\":\"Deployment\",\"namespace\":\"$ns\",\"name\":\"web\"}"
st="{\"account\":\"$account\",\"region\":\"$(js "$info" 'd["aws"]["region"]')\",\"service\":\"s3\",\"arn\":\"arn:aws:s3:::$bucket/flags.json\"}"
propose() { # id platform op target params [extra args] -> certificate in $work/<id>.cert.json
  local id=$1 platform=$2 op=$3 target=$4 params=$5; shift 5
  "$seb" propose --admission "$url" --agent agent-a --agent-key "$work/agent.seed" --platform "$platform" \
    --op "$op" --target "$target" --params "$params" --id "$id" --wait --timeout-s 120 \
    --out "$work/$id.cert.json" --json "$@" > "$work/$id.proposal.json" 2> "$work/$id.proposal.err"
}
execute() { "$seb" execute --broker "$url" --certificate "$work/$1.cert.json" --agent-key "$work/agent.seed" > "$work/$2.out" 2>&1; }
out() { js "$work/$1.out" "$2"; }
lvl() { js "$work/$1.proposal.json" '"L%d" % d["score"]["level"]'; }
cid_of() { python3 -c 'import json,sys,base64; print(json.loads(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))["cid"])' "$work/$1.cert.json"; }

say "1. Low-risk change: scale $ns/web from 2 to 3 replicas"
propose scale3 kubernetes scale "$kt" '{"replicas":3}' || die "proposal: $(cat "$work/scale3.proposal.err")"
note "admission: $(lvl scale3) (score $(js "$work/scale3.proposal.json" 'd["score"]["score_milli"]')/1000), path $(js "$work/scale3.proposal.json" 'd.get("cert_path")') — certified, no human needed"
execute scale3 scale3 || die "execution: $(cat "$work/scale3.out")"
note "broker: admitted, $(out scale3 'd["outcome"]["status"]') with a one-off ServiceAccount token; live replicas now $(replicas)"
row "low-risk change (policy)" "applied" "certified by Cedar policy at $(lvl scale3); replicas 2→$(replicas)"

say "2. High-risk change: scale to 6 replicas — policy escalates it to a human"
propose scale6 kubernetes scale "$kt" '{"replicas":6}' --rationale "Black Friday traffic" &
waiter=$!
for _ in $(seq 100); do "$seb" proposals --admission "$url" --key "$work/alice.seed" --status pending --json 2>/dev/null | grep -q '"scale6"' && break; sleep 0.2; done
note "the proposal waits for an approval:"
"$seb" proposals --admission "$url" --key "$work/alice.seed" --status pending | sed 's/^/     /'
note "alice reviews the contract, evidence and consequence, and approves from the CLI:"
"$seb" approve scale6 --admission "$url" --approver alice --key "$work/alice.seed" --yes --comment "ok for the sale" > "$work/approve.txt" 2>&1 || die "approve: $(cat "$work/approve.txt")"
grep -E "consequence|evidence_digest|certified" "$work/approve.txt" | sed 's/^/     /' || true
wait "$waiter" || die "the waiting proposal was not certified: $(cat "$work/scale6.proposal.err")"
execute scale6 scale6 || die "execution: $(cat "$work/scale6.out")"
note "broker: $(out scale6 'd["outcome"]["status"]'); live replicas now $(replicas)"
row "high-risk change (human)" "applied after approval" "escalated by policy big-scale-needs-a-human; approved by alice; replicas→$(replicas)"

say "3. Replay: the agent presents the first certificate again"
if execute scale3 replay; then die "a replay was admitted"; fi
note "refused: failed_check=$(out replay 'd["failed_check"]'), decision=$(out replay 'd["decision"]') — a certificate's nonce is single use; replicas still $(replicas)"
row "replay" "refused" "failed_check $(out replay 'd["failed_check"]')"

say "4. Drift: S3 object changes after admission looked at it"
propose flags1 aws s3:PutObject "$st" '{"body":"{\"sale\":true}"}' || die "proposal: $(cat "$work/flags1.proposal.err")"
note "certified by policy ($(lvl flags1)); evidence: the object does not exist yet"
[ "$(aws_as admin s3 put_object "{\"Bucket\":\"$bucket\",\"Key\":\"flags.json\",\"Body\":\"{\\\"sale\\\":false,\\\"hotfix\\\":1}\"}")" = ok ] || die "out-of-band write failed"
note "meanwhile an operator writes flags.json out of band"
if execute flags1 drift; then die "drifted change admitted"; fi
note "refused: failed_check=$(out drift 'd["failed_check"]'), decision=$(out drift 'd["decision"]') — the live object is not what was certified; the agent must re-propose"
row "drift" "$(out drift 'd["decision"]')" "failed_check $(out drift 'd["failed_check"]'): S3 ETag differs from the evidence"
propose flags2 aws s3:PutObject "$st" '{"body":"{\"sale\":true}"}' || die "proposal: $(cat "$work/flags2.proposal.err")"
execute flags2 flags2 || die "execution: $(cat "$work/flags2.out")"
note "re-proposed on fresh evidence: $(out flags2 'd["outcome"]["status"]') with a 900 s STS session scoped to exactly s3:PutObject on that key (If-Match pins the ETag)"
row "re-proposed AWS change" "applied" "STS session policy: one action, one ARN; tags seb:cid/seb:nonce"

say "5. Revocation: a certified change is revoked before it runs"
propose scale4 kubernetes scale "$kt" '{"replicas":4}' || die "proposal: $(cat "$work/scale4.proposal.err")"
cid=$(cid_of scale4)
"$seb" admission revoke --admission "$url" --admin ops --admin-key "$work/ops.seed" --cid "$cid" > /dev/null || die "revoke failed"
note "ops revoked certificate $cid"
if execute scale4 revoked; then die "revoked certificate admitted"; fi
note "refused: failed_check=$(out revoked 'd["failed_check"]'), decision=$(out revoked 'd["decision"]'); replicas still $(replicas)"
row "revoked certificate" "$(out revoked 'd["decision"]')" "failed_check $(out revoked 'd["failed_check"]')"

say "6. Bypass: the agent goes around the broker"
s=$(kube PATCH "/apis/apps/v1/namespaces/$ns/deployments/web" agent application/merge-patch+json '{"spec":{"replicas":50}}')
note "agent's own Kubernetes token patches web: HTTP $s ($(js "$work/kube.out" 'd.get("reason")'))"
[ "$s" = 403 ] || die "the agent's patch was not refused"
row "agent's own kube token" "refused (HTTP $s)" "RBAC: agents are read-only"
s=$(kube PATCH "/apis/apps/v1/namespaces/$ns/deployments/web" admin application/merge-patch+json '{"spec":{"replicas":50}}')
msg=$(js "$work/kube.out" 'd.get("message","")')
note "even a cluster admin: HTTP $s — ${msg:0:110}…"
[ "$s" -ge 400 ] && [[ "$msg" == *"not the identity of a live SEB execution"* ]] || die "the admin's patch was not refused by the webhook"
row "cluster admin, no certificate" "refused (HTTP $s)" "SEB admission webhook (failurePolicy Fail)"
r=$(aws_as agent s3 put_object "{\"Bucket\":\"$bucket\",\"Key\":\"flags.json\",\"Body\":\"{\\\"sale\\\":\\\"free\\\"}\"}")
note "agent's own AWS keys write flags.json: $r"
[ "$r" = AccessDenied ] || die "the agent's S3 write was not refused: $r"
row "agent's own AWS keys" "refused ($r)" "IAM permission boundary (the SCP denies it too in an organisation)"
note "live replicas still $(replicas)"
note "and a stolen execution session? The broker's mint for one s3:PutObject, tried outside its certificate:"
"$scoped_session" "$info" || die "a minted session reached beyond its certificate"
row "stolen minted AWS session" "refused (403) x5" "session policy = the certified action on the certified ARN"

say "7. An agent over MCP: seb mcp holds the agent's key; the model only calls tools"
python3 -c 'import importlib.metadata as m; assert m.version("mcp") == "2.3.0"' 2> /dev/null \
  || python3 -m pip install --quiet mcp==2.3.0 2> /dev/null \
  || python3 -m pip install --quiet --break-system-packages mcp==2.3.0 \
  || die "cannot install the Python MCP SDK (mcp==2.3.0)"
python3 "$root/scripts/mcp_agent.py" "$seb" "$url" "$work/agent.seed" "$ca" "$ns" > "$work/mcp-agent.txt" 2>&1 \
  || die "MCP agent session: $(tail -20 "$work/mcp-agent.txt")"
sed -n '1,40p' "$work/mcp-agent.txt"
note "live replicas now $(replicas)"
row "agent over MCP (seb mcp)" "applied; replay refused" "list_operations, observe, bad input refused locally, apply (policy path), execute again → replay"

say "8. Audit: export the ledger and verify it offline"
"$seb" ledger checkpoint --broker "$url" > /dev/null
"$seb" ledger export --broker "$url" --out "$work/ledger.json" > /dev/null
"$seb" ledger verify "$work/ledger.json" --broker-key "$(pub broker)" --admission-key "$(pub issuer)" > "$work/verify.json" || die "ledger verification failed"
note "$(js "$work/verify.json" '"%d entries: %d issued, %d admits, %d outcomes, %d rejects, %d readmits, %d fail_closed, %d epoch statements; root %s…: VERIFIED" % (d["size"], d["issued"], d["admits"], d["outcomes"], d["rejects"], d["readmits"], d["fail_closed"], d["epochs"], d["root"][:16])')"
row "offline ledger verification" "verified" "$(js "$work/verify.json" 'str(d["size"]) + " entries, signatures + Merkle root + checkpoints + invariants"')"

say "Summary"
{
  echo "# SEB walkthrough report"
  echo
  if [ -n "$real_kube" ]; then k_what="the cluster"; else k_what="kube-apiserver"; fi
  if [ -n "$aws_profile" ]; then a_what="AWS profile $aws_profile (account $account)"; else a_what="moto_server $(js "$info" 'd["aws"]["endpoint"]')"; fi
  echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) in \`$work\` against $k_what $(js "$info" 'd["kube"]["url"]') and $a_what."
  echo
  echo "| step | result | why |"
  echo "|---|---|---|"
  for r in "${rows[@]}"; do IFS='|' read -r a b c <<< "$r"; echo "| $a | $b | $c |"; done
  echo
  echo "Ledger: \`ledger.json\` (verify: \`seb ledger verify ledger.json --broker-key $(pub broker) --admission-key $(pub issuer)\`)."
  echo
  echo '```json'; cat "$work/verify.json"; echo '```'
} > "$work/report.md"
printf '   %-30s %-26s %s\n' "step" "result" "why"
for r in "${rows[@]}"; do IFS='|' read -r a b c <<< "$r"; printf '   %-30s %-26s %s\n' "$a" "$b" "$c"; done
note ""
note "report: $work/report.md   ledger: $work/ledger.json   broker log: $work/broker.log"
