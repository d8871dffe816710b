"""An agent session driving `seb mcp` with the official Python MCP SDK (PyPI `mcp`, pinned by
the caller), over stdio or streamable HTTP. No model: the tool calls a model would make.

    python3 python_session.py <scenario.json>

The scenario names the `seb` binary, the `seb mcp` arguments, the endpoints, the namespace and
what to do. Every step is checked here (a failed check exits 1 with the step and the result)
and written to the transcript (`out`), which the Rust test reads and checks again against the
API server and the ledger. Everything printed is scanned for key material by the caller.
"""

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from mcp import Client, StdioServerParameters

CFG = json.load(open(sys.argv[1]))
TRANSCRIPT = []


def log(step, **kw):
    TRANSCRIPT.append({"step": step, **kw})
    print(json.dumps({"step": step, **kw})[:2000], flush=True)


def check(cond, step, what, result=None):
    if not cond:
        print(f"FAILED {step}: {what}\n{result}", file=sys.stderr, flush=True)
        json.dump(TRANSCRIPT, open(CFG["out"], "w"), indent=1)
        sys.exit(1)


def ledger_size():
    ctx = ssl.create_default_context(cafile=CFG["ca"]) if CFG.get("ca") else None
    req = urllib.request.Request(CFG["broker"] + "/v1/ledger/checkpoint", method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return int(r.read().decode().splitlines()[1])
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return 0
        raise


def server(args=None):
    a = args if args is not None else CFG["mcp_args"]
    if CFG.get("url"):
        return CFG["url"]
    return StdioServerParameters(command=CFG["seb"], args=["mcp", *a], env=CFG.get("env"))


def result(r):
    return {"is_error": bool(r.is_error), "structured": r.structured_content,
            "text": r.content[0].text if r.content else ""}


def target(name="web"):
    return {"cluster": "test", "api_version": "apps/v1", "kind": "Deployment",
            "namespace": CFG["ns"], "name": name}


async def call(c, name, args, **kw):
    r = result(await c.call_tool(name, args, **kw))
    log(name, args={k: v for k, v in args.items() if k != "rationale" or len(v) < 200}, **r)
    return r


async def tools_and_bad_inputs():
    async with Client(server()) as c:
        tools = (await c.list_tools()).tools
        by = {t.name: t for t in tools}
        log("list_tools", tools={t.name: {"schema": t.input_schema,
                                           "read_only": t.annotations.read_only_hint if t.annotations else None,
                                           "destructive": t.annotations.destructive_hint if t.annotations else None}
                                 for t in tools})
        check(sorted(by) == sorted(["list_operations", "observe", "propose", "proposal_status",
                                    "execute", "apply", "history"]), "list_tools", "the seven tools", by.keys())
        for t in ["list_operations", "observe", "proposal_status", "history"]:
            check(by[t].annotations.read_only_hint is True, "list_tools", f"{t} read-only")
        for t in ["execute", "apply"]:
            check(by[t].annotations.destructive_hint is True, "list_tools", f"{t} destructive")
        check(by["propose"].input_schema.get("additionalProperties") is False, "list_tools",
              "unknown fields refused by the schema", by["propose"].input_schema)
        check("platform" in by["propose"].input_schema["properties"], "list_tools", "propose schema")
        res = (await c.list_resources()).resources
        check(any(str(r.uri) == "seb://operations/aws" for r in res), "resources", "aws resource", res)
        rr = await c.read_resource("seb://operations/aws")
        aws = json.loads(rr.contents[0].text)
        log("read_resource", ops=[o["op"] for o in aws["operations"]])
        check(len(aws["operations"]) == 11, "read_resource", "11 AWS ops", aws)

        ops = await call(c, "list_operations", {})
        check(not ops["is_error"], "list_operations", "ok", ops)
        kube = [p for p in ops["structured"]["platforms"] if p["platform"] == "kubernetes"][0]
        check(any(o["op"] == "scale" for o in kube["operations"]), "list_operations", "scale", kube)
        check(ops["structured"]["levels"]["levels"]["L2"]["path"] == "policy", "list_operations",
              "levels from admission", ops["structured"]["levels"])

        obs = await call(c, "observe", {"platform": "kubernetes", "op": "scale", "target": target(),
                                        "params": {"replicas": 3}})
        check(not obs["is_error"], "observe", "ok", obs)

        before = ledger_size()
        hist_before = await call(c, "history", {})
        bad = [
            ("unknown platform", "propose", {"platform": "gcp", "op": "scale", "target": target(), "params": {"replicas": 3}}),
            ("unknown op", "propose", {"platform": "kubernetes", "op": "explode", "target": target(), "params": {}}),
            ("wrong target shape", "propose", {"platform": "kubernetes", "op": "scale",
                                               "target": {"account": "123456789012", "region": "us-east-1", "service": "s3", "arn": "arn:aws:s3:::b/k"},
                                               "params": {"replicas": 3}}),
            ("params violate the op", "propose", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": -1}}),
            ("params with an unknown key", "apply", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 3, "force": True}}),
            ("oversize arguments", "propose", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 3}, "rationale": "x" * 70000}),
            ("unknown field", "propose", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 3}, "sudo": True}),
            ("bad proposal id", "execute", {"proposal_id": "../../etc/passwd"}),
            ("wait too long", "proposal_status", {"proposal_id": "p-1", "wait_s": 100000}),
        ]
        for what, tool, args in bad:
            r = await call(c, tool, args)
            check(r["is_error"], what, "a tool error", r)
            log("bad_input", what=what, message=r["text"])
        after = ledger_size()
        hist_after = await call(c, "history", {})
        check(before == after, "bad inputs", f"ledger size unchanged {before} -> {after}")
        check(len(hist_before["structured"]["proposals"]) == len(hist_after["structured"]["proposals"]),
              "bad inputs", "no proposal reached admission")
        log("ledger_unchanged", before=before, after=after)


async def policy_apply():
    async with Client(server()) as c:
        r = await call(c, "apply", {"platform": "kubernetes", "op": "scale", "target": target(),
                                    "params": {"replicas": 3}, "rationale": "traffic", "proposal_id": "mcp-scale-3"})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "apply", "applied", r)


def approve_later(pid, delay):
    def go():
        time.sleep(delay)
        out = subprocess.run([CFG["seb"], "approve", pid, "--admission", CFG["admission"],
                              "--approver", "alice", "--key", CFG["approver_key"], "--yes",
                              *(["--ca", CFG["ca"]] if CFG.get("ca") else [])],
                             capture_output=True, text=True)
        log("seb_approve", code=out.returncode, stdout=out.stdout[-500:], stderr=out.stderr[-500:])
    t = threading.Thread(target=go)
    t.start()
    return t


async def human_path():
    pid = "mcp-scale-6"
    async with Client(server()) as c:
        r = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target(),
                                      "params": {"replicas": 6}, "rationale": "sale", "proposal_id": pid})
        check(not r["is_error"] and r["structured"]["status"] == "pending", "propose", "pending", r)
        w = r["structured"]["waiting_for"]
        check(w["humans"] == 1 and "seb approve " + pid in w["approve_with"], "propose", "who and how", w)
        t0 = time.monotonic()
        r = await call(c, "proposal_status", {"proposal_id": pid, "wait_s": 2})
        check(r["structured"]["status"] == "pending" and time.monotonic() - t0 < 10, "proposal_status",
              "a bounded wait returns pending", r)
        r = await call(c, "execute", {"proposal_id": pid})
        check(r["is_error"] and r["structured"]["sent"] is False, "execute", "pending: nothing sent", r)
    # seb mcp is gone (the host closed it); the proposal lives in admission.
    approver = approve_later(pid, 2)
    progress = []

    async def on_progress(p, total, message):
        progress.append({"progress": p, "total": total, "message": message})

    async with Client(server()) as c:
        r = await call(c, "proposal_status", {"proposal_id": pid, "wait_s": 60}, progress_callback=on_progress)
        approver.join()
        log("progress", notifications=progress)
        check(r["structured"]["status"] == "certified", "proposal_status", "certified after restart", r)
        check(len(progress) >= 1 and "human" in (progress[0]["message"] or ""), "progress",
              "progress notifications while waiting", progress)
        r = await call(c, "execute", {"proposal_id": pid})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "execute", "applied", r)
        r = await call(c, "execute", {"proposal_id": pid})
        check(r["is_error"] and r["structured"]["failed_check"] == "replay"
              and "already used" in r["structured"]["next"], "replay", "refused with remedy", r)
        h = await call(c, "history", {"proofs": True})
        ex = [e for e in h["structured"]["executions"] if e["cid"] == r["structured"]["cid"]]
        check(len(ex) >= 2 and all("inclusion_proof" in e for e in ex), "history", "records with proofs", h)


async def drift():
    """A certified change whose evidence went stale (another certified change landed first):
    readmit with a fresh observation, then re-proposed from the current state and applied."""
    async with Client(server()) as c:
        r = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target(),
                                      "params": {"replicas": 4}, "proposal_id": "mcp-drift-a"})
        check(r["structured"]["status"] == "certified", "drift", "certified", r)
        r = await call(c, "apply", {"platform": "kubernetes", "op": "scale", "target": target(),
                                    "params": {"replicas": 3}, "proposal_id": "mcp-drift-b"})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "drift", "the other change applied", r)
        r = await call(c, "execute", {"proposal_id": "mcp-drift-a"})
        st = r["structured"]
        check(r["is_error"] and st["decision"] == "readmit" and "propose again" in st["next"], "drift",
              "readmit with the next step", r)
        fresh = st["fresh_observation"]["projection"][""]["spec"]["replicas"]
        check(fresh == 3, "drift", "the fresh observation shows the current state", st["fresh_observation"])
        r = await call(c, "apply", {"platform": "kubernetes", "op": "scale", "target": target(),
                                    "params": {"replicas": 4}, "proposal_id": "mcp-drift-a2"})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "drift", "re-proposed and applied", r)


def kube_patch(replicas):
    """An administrator's direct write to the API server (out of band: no proposal, no
    certificate; the deployment exempts this emergency user from SEB's webhook)."""
    k = CFG["kube"]
    ctx = ssl.create_default_context(cafile=k["ca"])
    token = open(k["admin_token_file"]).read().strip()
    req = urllib.request.Request(
        f"{k['url']}/apis/apps/v1/namespaces/{CFG['ns']}/deployments/web",
        data=json.dumps({"spec": {"replicas": replicas}}).encode(), method="PATCH",
        headers={"content-type": "application/merge-patch+json", "authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return r.status, json.loads(r.read())["spec"]["replicas"]


async def drift_out_of_band():
    """Drift injected out of band: a certified change, then an administrator edits the object
    directly on the API server; execute → readmit (drift) with a fresh observation showing
    the administrator's value; re-proposed from it → applied."""
    async with Client(server()) as c:
        r = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target(),
                                      "params": {"replicas": 2}, "proposal_id": "mcp-oob-a"})
        check(r["structured"]["status"] == "certified", "drift_oob", "certified", r)
        status, replicas = kube_patch(1)
        log("kube_admin_patch", status=status, replicas=replicas)
        check(status == 200 and replicas == 1, "drift_oob", "the administrator's direct write", (status, replicas))
        r = await call(c, "execute", {"proposal_id": "mcp-oob-a"})
        st = r["structured"]
        check(r["is_error"] and st["decision"] == "readmit" and st["failed_check"] == "drift"
              and "propose again" in st["next"], "drift_oob", "readmit/drift with the next step", r)
        fresh = st["fresh_observation"]["projection"][""]["spec"]["replicas"]
        check(fresh == 1, "drift_oob", "the fresh observation shows the administrator's value", st["fresh_observation"])
        r = await call(c, "apply", {"platform": "kubernetes", "op": "scale", "target": target(),
                                    "params": {"replicas": 2}, "proposal_id": "mcp-oob-a2",
                                    "rationale": "re-proposed from the current state (1 replica)"})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "drift_oob", "re-proposed and applied", r)
        log("drift_out_of_band", fresh_replicas=fresh, reapplied=r["structured"]["proposal_id"])


def seb_mcp_children():
    """Pids of the `seb mcp` processes this Python process started (the SDK's stdio child)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and len(cmd) > 1 and cmd[1] == b"mcp":
            out.append(int(pid))
    return out


async def kill_during_wait():
    """`seb mcp` killed (SIGKILL) while `proposal_status` waits on a human-path proposal;
    a new `seb mcp` resumes it by id: pending, then certified once approved, then executed."""
    pid = "mcp-kill-wait"
    killed = []
    try:
        async with Client(server()) as c:
            r = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target(),
                                          "params": {"replicas": 5}, "rationale": "kill test", "proposal_id": pid})
            check(r["structured"]["status"] == "pending", "kill", "pending", r)
            waiting = asyncio.ensure_future(c.call_tool("proposal_status", {"proposal_id": pid, "wait_s": 120}))
            await asyncio.sleep(1.5)
            check(not waiting.done(), "kill", "proposal_status is waiting", None)
            children = seb_mcp_children()
            check(len(children) == 1, "kill", "one seb mcp child", children)
            os.kill(children[0], signal.SIGKILL)
            killed.append(children[0])
            try:
                res = await asyncio.wait_for(waiting, 20)
                log("kill_wait_answer", is_error=bool(getattr(res, "is_error", False)))
            except BaseException as e:  # the transport closed under the pending request
                log("kill_wait_error", error=type(e).__name__)
    except BaseException as e:  # leaving the session of a dead server may raise too
        if isinstance(e, (SystemExit, KeyboardInterrupt)):
            raise
        log("kill_session_closed", error=type(e).__name__)
    check(len(killed) == 1, "kill", "seb mcp was killed during the wait", killed)
    gone = not os.path.exists(f"/proc/{killed[0]}") or open(f"/proc/{killed[0]}/stat").read().split()[2] == "Z"
    check(gone, "kill", "the killed seb mcp is gone", killed)
    log("seb_mcp_killed", pid=killed[0])
    # A new seb mcp resumes the proposal by id.
    async with Client(server()) as c:
        r = await call(c, "proposal_status", {"proposal_id": pid})
        check(not r["is_error"] and r["structured"]["status"] == "pending", "kill", "resumed by id: pending", r)
        approver = approve_later(pid, 1)
        r = await call(c, "proposal_status", {"proposal_id": pid, "wait_s": 60})
        approver.join()
        check(r["structured"]["status"] == "certified", "kill", "certified after the restart", r)
        r = await call(c, "execute", {"proposal_id": pid})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "kill", "executed", r)


async def aws_apply():
    """A certified AWS operation through MCP against moto: s3:PutObject by the policy path."""
    a = CFG["aws"]
    tgt = {"account": a["account"], "region": a["region"], "service": "s3",
           "arn": f"arn:aws:s3:::{a['bucket']}/flags.json"}
    async with Client(server()) as c:
        ops = await call(c, "list_operations", {"platform": "aws"})
        check(any(o["op"] == "s3:PutObject" for o in ops["structured"]["platforms"][0]["operations"]),
              "aws", "s3:PutObject listed", ops)
        r = await call(c, "observe", {"platform": "aws", "op": "s3:PutObject", "target": tgt,
                                      "params": {"body": "{\"sale\":true}"}})
        check(not r["is_error"], "aws", "observe", r)
        r = await call(c, "apply", {"platform": "aws", "op": "s3:PutObject", "target": tgt,
                                    "params": {"body": "{\"sale\":true}"}, "proposal_id": "mcp-aws-put",
                                    "rationale": "turn the sale flag on"})
        check(not r["is_error"] and r["structured"]["outcome"] == "applied", "aws", "applied", r)
        r = await call(c, "execute", {"proposal_id": "mcp-aws-put"})
        check(r["is_error"] and r["structured"]["failed_check"] == "replay", "aws", "replay refused", r)
        r = await call(c, "propose", {"platform": "aws", "op": "s3:PutObject", "target": {**tgt, "arn": "arn:aws:s3:::*"},
                                      "params": {"body": "x"}})
        check(r["is_error"] and r["structured"]["error"] == "invalid_input", "aws", "wildcard ARN refused locally", r)


async def https_transport():
    """Streamable HTTP off loopback: TLS (the test CA) and a bearer token per client."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    h = CFG["https"]
    ctx = ssl.create_default_context(cafile=h["ca"])
    statuses = {
        "no token": raw_post({}, url=h["url"], ctx=ctx),
        "wrong token": raw_post({"Authorization": "Bearer " + "y" * 40}, url=h["url"], ctx=ctx),
        "foreign origin": raw_post({"Authorization": f"Bearer {h['token']}", "Origin": "https://evil.example"}, url=h["url"], ctx=ctx),
        "token": raw_post({"Authorization": f"Bearer {h['token']}"}, url=h["url"], ctx=ctx),
    }
    log("https_statuses", url=h["url"], **statuses)
    check(statuses["no token"] == 401 and statuses["wrong token"] == 401, "https", "401 without a valid token", statuses)
    check(statuses["foreign origin"] == 403, "https", "403 for a foreign Origin", statuses)
    check(statuses["token"] == 200, "https", "200 with a token", statuses)
    # Without trusting the test CA the TLS handshake fails.
    try:
        raw_post({"Authorization": f"Bearer {h['token']}"}, url=h["url"], ctx=ssl.create_default_context())
        check(False, "https", "an untrusted certificate was accepted")
    except urllib.error.URLError as e:
        log("https_untrusted", error=str(e.reason)[:200])
    for client, token in h["clients"].items():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, verify=ctx) as hc:
            async with Client(streamable_http_client(h["url"], http_client=hc)) as c:
                tools = (await c.list_tools()).tools
                check(len(tools) == 7 and all(t.output_schema for t in tools), "https", "tools with output schemas", tools)
                r = await call(c, "proposal_status", {"proposal_id": "mcp-scale-6"})
                check(not r["is_error"] and r["structured"]["status"] == "certified", "https", f"{client}: proposal over HTTPS", r)
                log("https_session", client=client, url=h["url"])


async def output_schemas():
    """Every tool declares an outputSchema; the SDK validates each successful structured
    result against it (a mismatch raises), and the schema is checked here once more."""
    import jsonschema
    async with Client(server()) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        for name, t in tools.items():
            check(t.output_schema is not None and t.output_schema.get("type") == "object",
                  "output_schemas", f"{name} has an object outputSchema", t.output_schema)
        seen = {}
        for name, args in [
            ("list_operations", {}),
            ("observe", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 3}}),
            ("proposal_status", {"proposal_id": "mcp-scale-6"}),
            ("history", {"limit": 5, "proofs": True}),
            ("propose", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 7},
                         "proposal_id": "mcp-schema-pending"}),
            ("apply", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 7},
                       "proposal_id": "mcp-schema-apply", "wait_s": 1}),
        ]:
            r = await c.call_tool(name, args)  # the SDK validates structured_content here
            check(not r.is_error, "output_schemas", f"{name} succeeded", r)
            jsonschema.validate(r.structured_content, tools[name].output_schema)
            seen[name] = sorted(r.structured_content)[:6]
        # Failures carry structured content the schemas declare too (some SDKs validate it).
        for name, args in [
            ("execute", {"proposal_id": "mcp-scale-6"}),  # replay: a broker refusal
            ("execute", {"proposal_id": "mcp-schema-pending"}),  # not certified: nothing sent
            ("propose", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": -1}}),
            ("proposal_status", {"proposal_id": "no-such-proposal"}),  # admission: not found
            ("apply", {"platform": "kubernetes", "op": "explode", "target": target(), "params": {}}),
        ]:
            r = await c.call_tool(name, args)
            check(r.is_error and r.structured_content, "output_schemas", f"{name}: a structured failure", r)
            jsonschema.validate(r.structured_content, tools[name].output_schema)
        log("output_schemas_validated", tools=seen)


async def revoked():
    async with Client(server()) as c:
        r = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target(),
                                      "params": {"replicas": 4}, "proposal_id": "mcp-scale-4"})
        check(r["structured"]["status"] == "certified", "propose", "certified", r)
        out = subprocess.run([CFG["seb"], "admission", "revoke", "--admission", CFG["admission"],
                              "--admin", "ops", "--admin-key", CFG["admin_key"], "--agent", "agent-a",
                              *(["--ca", CFG["ca"]] if CFG.get("ca") else [])], capture_output=True, text=True)
        log("seb_admission_revoke", code=out.returncode, stderr=out.stderr[-500:])
        check(out.returncode == 0, "revoke", "agent revoked", out.stderr)
        r = await call(c, "execute", {"proposal_id": "mcp-scale-4"})
        check(r["is_error"] and r["structured"]["decision"] == "fail_closed"
              and "ask a human" in r["structured"]["next"], "revoked", "fail_closed, stop", r)


async def unreachable():
    args = CFG["unreachable_args"]
    async with Client(server(args)) as c:
        r = await call(c, "observe", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 3}})
        check(r["is_error"] and r["structured"]["error"] == "unreachable", "unreachable", "tool error", r)
        r = await call(c, "list_operations", {})
        check(not r["is_error"], "unreachable", "the server keeps serving", r)


async def benchmark():
    """Tool-call overhead of seb mcp over stdio on top of the underlying HTTP call: the
    client's round trip of `proposal_status` (one signed admission read) minus the time seb mcp
    reports it waited for admission (`_meta["io.seb/http_us"]`). Printed, not asserted."""
    n = int(CFG.get("bench_calls", 300))
    rtt, http = [], []
    async with Client(server()) as c:
        for _ in range(20):
            await c.call_tool("proposal_status", {"proposal_id": "mcp-scale-6"})
        for _ in range(n):
            t0 = time.perf_counter_ns()
            r = await c.call_tool("proposal_status", {"proposal_id": "mcp-scale-6"})
            rtt.append((time.perf_counter_ns() - t0) / 1000)
            check(not r.is_error, "benchmark", "ok", r)
            http.append((r.meta or {}).get("io.seb/http_us"))
    check(all(h is not None for h in http), "benchmark", "http time reported", http[:3])
    over = sorted(a - b for a, b in zip(rtt, http))
    rtt.sort()
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]
    fig = {"calls": n, "overhead_us_p50": round(pct(over, 0.5)), "overhead_us_p99": round(pct(over, 0.99)),
           "round_trip_us_p50": round(pct(rtt, 0.5)), "round_trip_us_p99": round(pct(rtt, 0.99)),
           "http_us_p50": round(pct(sorted(http), 0.5))}
    log("benchmark", **fig)
    print(f"BENCH seb mcp over stdio, {n} proposal_status calls: overhead p50 {fig['overhead_us_p50']} us, "
          f"p99 {fig['overhead_us_p99']} us (round trip p50 {fig['round_trip_us_p50']} us, "
          f"admission read p50 {fig['http_us_p50']} us)", flush=True)


def raw_post(headers, url=None, ctx=None):
    """One JSON-RPC initialize POST to the HTTP transport: the status."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "raw", "version": "0"}}}).encode()
    req = urllib.request.Request(url or CFG["http_url"], data=body, method="POST",
                                 headers={"content-type": "application/json",
                                          "accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


async def http_transport():
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    token = CFG["http_token"]
    statuses = {
        "no token": raw_post({}),
        "wrong token": raw_post({"Authorization": "Bearer " + "x" * 40}),
        "wrong origin": raw_post({"Authorization": f"Bearer {token}", "Origin": "https://evil.example"}),
        "allowed origin": raw_post({"Authorization": f"Bearer {token}", "Origin": CFG["http_origin"]}),
    }
    log("http_statuses", **statuses)
    check(statuses["no token"] == 401 and statuses["wrong token"] == 401, "http", "401 without a valid token", statuses)
    check(statuses["wrong origin"] == 403, "http", "403 for a foreign Origin", statuses)
    check(statuses["allowed origin"] == 200, "http", "200 for an allowed Origin with a token", statuses)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as hc:
        async with Client(streamable_http_client(CFG["http_url"], http_client=hc)) as c:
            tools = (await c.list_tools()).tools
            log("http_list_tools", tools=sorted(t.name for t in tools))
            check(len(tools) == 7, "http", "seven tools over HTTP", tools)
            r = await call(c, "observe", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": 2}})
            check(not r["is_error"], "http", "observe over HTTP", r)
            r = await call(c, "proposal_status", {"proposal_id": "mcp-scale-6"})
            check(r["structured"]["status"] == "certified", "http", "the proposal over HTTP", r)
            r = await call(c, "propose", {"platform": "kubernetes", "op": "scale", "target": target(), "params": {"replicas": -5}})
            check(r["is_error"], "http", "bad input over HTTP", r)


async def main():
    for step in CFG["steps"]:
        await globals()[step]()
    json.dump(TRANSCRIPT, open(CFG["out"], "w"), indent=1)
    print("SESSION OK", flush=True)


asyncio.run(main())
