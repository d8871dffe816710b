#!/usr/bin/env bash
# The walkthrough pointed at a cluster and an account it did not start, as a user points it at
# theirs: `scripts/demo.sh --kubeconfig … --webhook-host … --aws-profile …`. Here the "real"
# platforms are a kube-apiserver + etcd and an IAM-enforcing moto_server started separately by
# `seb-localinfra`, reached only through an administrator's kubeconfig and an AWS profile (plus
# AWS_ENDPOINT_URL). Afterwards it checks that the walkthrough removed what it made there.
# Usage: bash scripts/demo-pointed.sh   (scripts/test.sh runs it; needs the binaries built)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SEB_DEMO_PREBUILT:-$PWD/target/debug}
outer=$(mktemp -d)
infra_pid=
cleanup() { [ -n "$infra_pid" ] && kill "$infra_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$outer"; }
trap cleanup EXIT
fail() { echo "demo-pointed: $*" >&2; [ -f "$outer/infra.log" ] && tail -20 "$outer/infra.log" >&2; exit 1; }

# The platforms (their own identities are irrelevant here; the walkthrough makes its own).
"$bin/seb" deploy aws --broker-principal-arn arn:aws:iam::123456789012:user/seb-demo-broker \
  --account 123456789012 --execution-role-name seb-demo-execution \
  --admin-principal-arn-pattern "arn:aws:iam::123456789012:user/seb-admin" --out-dir "$outer/aws" > /dev/null
"$bin/seb-localinfra" --out "$outer/infra" --aws-artefacts "$outer/aws" 2> "$outer/infra.log" &
infra_pid=$!
for _ in $(seq 1200); do
  [ -f "$outer/infra/infra.json" ] && break
  kill -0 "$infra_pid" 2>/dev/null || fail "the platforms did not start"
  sleep 0.5
done
[ -f "$outer/infra/infra.json" ] || fail "the platforms did not start in 10 minutes"
info="$outer/infra/infra.json"
js() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

# An AWS profile for the emulator's administrator, as a user would have one for a sandbox.
export AWS_CONFIG_FILE="$outer/aws-config" AWS_SHARED_CREDENTIALS_FILE="$outer/aws-credentials"
export AWS_ENDPOINT_URL; AWS_ENDPOINT_URL=$(js "$info" 'd["aws"]["endpoint"]')
printf '[profile sandbox]\nregion = us-east-1\n' > "$AWS_CONFIG_FILE"
printf '[sandbox]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
  "$(js "$info" 'd["aws"]["admin"]["access_key_id"]')" "$(js "$info" 'd["aws"]["admin"]["secret_access_key"]')" > "$AWS_SHARED_CREDENTIALS_FILE"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE

SEB_DEMO_PREBUILT="$bin" bash scripts/demo.sh --kubeconfig "$outer/infra/bootstrap-admin.kubeconfig" \
  --webhook-host 127.0.0.1 --aws-profile sandbox --aws-region us-east-1 "$outer/demo" \
  || fail "the walkthrough pointed at the platforms failed"
grep -q "against the cluster" "$outer/demo/report.md" || fail "the report does not name the given cluster"
grep -q "AWS profile sandbox" "$outer/demo/report.md" || fail "the report does not name the given profile"

# What the walkthrough made there is gone (namespaces end as Terminating: this API server runs
# without a controller manager). Checked as the API server's own bootstrap administrator.
python3 - "$info" "$outer/check.json" <<'PY'
import json, re, sys
info = json.load(open(sys.argv[1]))
token = re.search(r"token: (\S+)", open(info["kube"]["source_kubeconfig"]).read()).group(1)
json.dump({"kube": {"url": info["kube"]["url"], "ca": info["kube"]["ca"], "tokens": {"root": token}}}, open(sys.argv[2], "w"))
PY
gone_or_terminating() {
  out=$("$bin/seb-localinfra" kube "$outer/check.json" root GET "$1")
  code=$(head -1 <<< "$out")
  [ "$code" = 404 ] || { [ "$code" = 200 ] && tail -n +2 <<< "$out" | grep -q '"Terminating"'; } \
    || fail "$1 still there after the walkthrough (HTTP $code)"
}
for ns in seb-demo seb-demo-shop seb-demo-exec; do gone_or_terminating "/api/v1/namespaces/$ns"; done
code=$("$bin/seb-localinfra" kube "$outer/check.json" root GET /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations | tail -n +2 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$code" = 0 ] || fail "$code webhook configurations left"
for user in seb-demo-broker seb-demo-agent; do
  r=$(python3 scripts/testinfra/moto_call.py <<< "{\"endpoint\":\"$AWS_ENDPOINT_URL\",\"region\":\"us-east-1\",\"profile\":\"sandbox\",\"calls\":[{\"service\":\"iam\",\"method\":\"get_user\",\"args\":{\"UserName\":\"$user\"}}]}")
  [[ "$r" == *NoSuchEntity* ]] || fail "IAM user $user left: $r"
done
r=$(python3 scripts/testinfra/moto_call.py <<< "{\"endpoint\":\"$AWS_ENDPOINT_URL\",\"region\":\"us-east-1\",\"profile\":\"sandbox\",\"calls\":[{\"service\":\"s3\",\"method\":\"list_buckets\",\"args\":{}}]}")
[[ "$r" == *'"ok"'* && "$r" != *seb-demo-123456789012-* ]] || fail "the walkthrough's bucket was left: $r"
echo "demo-pointed: the walkthrough ran on the given cluster and account and removed what it made there"
