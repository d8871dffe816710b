"""Evaluate SEB's ValidatingAdmissionPolicies with cel-python over recorded AdmissionReviews.

Usage: python3 vap_crosscheck.py POLICIES.json REVIEWS.jsonl NAMESPACE_LABELS.json [USER...]

POLICIES.json: the objects `seb_kube::deploy::admission_policy` generates (policies and
bindings). REVIEWS.jsonl: one {"review": <AdmissionReview sent by the API server>,
"response": <the webhook's AdmissionReview answer>} per line. NAMESPACE_LABELS.json: name ->
labels of every namespace (namespaceSelector input).

For each request (reviews of one request share its uid; the API server sends one per matching
webhook) it decides as the API server would with the policies: every policy whose
matchConstraints match the request is evaluated; a validation that is false or raises
(CELEvalError, e.g. a missing field) denies. The webhook's decision is the conjunction of its
answers. Prints one JSON object: {"requests": [...], "mismatches": [...]}.

USER...: identities whose requests the webhook also checks against a live execution's
certificate (execution ServiceAccounts by prefix ending in `-`, the broker by name), which no
policy can see. For them "webhook denies, policy allows" is recorded as `certificate_only`,
not a mismatch; the policy denying what the webhook allows is always a mismatch.

The CEL implementation is cel-python (https://pypi.org/project/cel-python/), independent of
SEB and of Kubernetes' cel-go; the matching of rules and selectors is the documented
Kubernetes semantics, restricted to what SEB's policies use (resourceRules, matchLabels).
"""

import json
import sys

import celpy


def rule_matches(rule, req):
    def has(lst, v):
        return "*" in lst or v in lst

    if not has(rule.get("operations", []), req["operation"]):
        return False
    if not has(rule.get("apiGroups", []), req["resource"]["group"]):
        return False
    if not has(rule.get("apiVersions", []), req["resource"]["version"]):
        return False
    res, sub = req["resource"]["resource"], req.get("subResource", "")
    ok = False
    for r in rule.get("resources", []):
        if r == "*/*" or (r == "*" and not sub):
            ok = True
        elif r.startswith("*/") and sub == r[2:]:
            ok = True
        elif r.endswith("/*") and sub and res == r[:-2]:
            ok = True
        elif r == (res + "/" + sub if sub else res):
            ok = True
    if not ok:
        return False
    namespaced = bool(req.get("namespace")) and not (req["resource"]["group"] == "" and res == "namespaces")
    scope = rule.get("scope", "*")
    return scope == "*" or (scope == "Namespaced") == namespaced


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def obj_labels(o):
    if not isinstance(o, dict):
        return {}
    return (o.get("metadata") or {}).get("labels") or {}


def constraints_match(mc, req, ns_labels):
    if not any(rule_matches(r, req) for r in mc.get("resourceRules", [])):
        return False
    if "namespaceSelector" in mc:
        res = req["resource"]
        if req.get("namespace") and not (res["group"] == "" and res["resource"] == "namespaces"):
            if not labels_match(mc["namespaceSelector"], ns_labels.get(req["namespace"], {})):
                return False
    if "objectSelector" in mc:
        sel = mc["objectSelector"]
        if not (labels_match(sel, obj_labels(req.get("object"))) or labels_match(sel, obj_labels(req.get("oldObject")))):
            return False
    return True


def main():
    policies_doc, reviews_path, ns_path = sys.argv[1:4]
    certified = sys.argv[4:]
    objs = json.load(open(policies_doc))
    ns_labels = json.load(open(ns_path))
    env = celpy.Environment()
    bound = {o["spec"]["policyName"] for o in objs if o["kind"] == "ValidatingAdmissionPolicyBinding"}
    policies = []
    for o in objs:
        if o["kind"] != "ValidatingAdmissionPolicy":
            continue
        if o["metadata"]["name"] not in bound:
            raise SystemExit("policy without binding: " + o["metadata"]["name"])
        progs = [env.program(env.compile(v["expression"])) for v in o["spec"]["validations"]]
        policies.append((o["metadata"]["name"], o["spec"]["matchConstraints"], progs))

    by_uid = {}
    for line in open(reviews_path):
        if not line.strip():
            continue
        rec = json.loads(line)
        req = rec["review"]["request"]
        entry = by_uid.setdefault(req["uid"], {"request": req, "webhook": True, "answers": 0})
        entry["answers"] += 1
        entry["webhook"] = entry["webhook"] and rec["response"]["response"]["allowed"] is True

    out, mismatches = [], []
    for uid, e in by_uid.items():
        req = e["request"]
        act = {
            "request": celpy.json_to_cel(req),
            "object": celpy.json_to_cel(req.get("object")),
            "oldObject": celpy.json_to_cel(req.get("oldObject")),
        }
        matched, allowed, why = [], True, []
        for name, mc, progs in policies:
            if not constraints_match(mc, req, ns_labels):
                continue
            matched.append(name)
            for p in progs:
                try:
                    v = p.evaluate(act)
                    if isinstance(v, celpy.CELEvalError):
                        raise v
                    ok = isinstance(v, celpy.celtypes.BoolType) and bool(v)
                except celpy.CELEvalError as err:
                    ok = False
                    why.append(name + ": CELEvalError " + str(err))
                if not ok:
                    allowed = False
                    why.append(name + ": denied")
        row = {
            "uid": uid,
            "user": req["userInfo"]["username"],
            "operation": req["operation"],
            "resource": req["resource"]["resource"] + ("/" + req["subResource"] if req.get("subResource") else ""),
            "namespace": req.get("namespace", ""),
            "name": req.get("name", ""),
            "webhook_allowed": e["webhook"],
            "policy_allowed": allowed,
            "policies": matched,
            "why": why,
        }
        user = row["user"]
        cert_user = any(user.startswith(u) if u.endswith("-") else user == u for u in certified)
        row["certificate_only"] = cert_user and allowed and not e["webhook"]
        out.append(row)
        if row["webhook_allowed"] != row["policy_allowed"] and not row["certificate_only"]:
            mismatches.append(row)
    print(json.dumps({"requests": out, "mismatches": mismatches}))


if __name__ == "__main__":
    main()
