"""Run a batch of boto3 calls against a local moto_server (or, for the walkthrough pointed at
a real account, AWS itself); used by seb-testinfra's moto module to seed state.

stdin:  {"endpoint": "http://127.0.0.1:PORT" or null, "region": "us-east-1",
         "access_key_id": "...", "secret_access_key": "..."  (or "profile": "NAME"),
         "calls": [{"service": "iam", "method": "create_user", "args": {...}}, ...]}
stdout: a JSON array with one entry per call: {"ok": <response>} or
        {"error": {"code": ..., "message": ..., "status": ...}}.
Calls run in order; an error does not stop the batch (the caller decides).
"""
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

req = json.load(sys.stdin)
emulator = req.get("endpoint") is not None
if emulator:
    cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}, parameter_validation=False)
else:
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"})
if req.get("profile"):
    session = boto3.Session(profile_name=req["profile"])
else:
    session = boto3.Session(aws_access_key_id=req["access_key_id"], aws_secret_access_key=req["secret_access_key"])
clients = {}


def client(service, region):
    key = (service, region)
    if key not in clients:
        clients[key] = session.client(service, endpoint_url=req.get("endpoint"), region_name=region, config=cfg)
    return clients[key]


out = []
for call in req["calls"]:
    args = dict(call.get("args") or {})
    # JSON cannot carry bytes: a `Body` given as a string is sent as UTF-8.
    if isinstance(args.get("Body"), str):
        args["Body"] = args["Body"].encode()
    try:
        resp = getattr(client(call["service"], call.get("region") or req["region"]), call["method"])(**args)
        resp.pop("ResponseMetadata", None)
        if hasattr(resp.get("Body"), "read"):
            resp["Body"] = resp["Body"].read().decode("utf-8", "replace")
        out.append({"ok": resp})
    except ClientError as e:
        err = e.response.get("Error", {})
        out.append({"error": {"code": err.get("Code"), "message": err.get("Message"),
                              "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")}})
    except Exception as e:  # noqa: BLE001 - reported to the caller as data
        out.append({"error": {"code": type(e).__name__, "message": str(e), "status": None}})
json.dump(out, sys.stdout, default=str)
