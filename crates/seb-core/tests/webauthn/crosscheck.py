#!/usr/bin/env python3
"""Verify every case of vectors.json with py_webauthn (PyPI `webauthn`, an independent WebAuthn
relying-party library) and print {case name: "ok" | "refused: <reason>"} as JSON.

Usage: crosscheck.py VECTORS.json

The registry lookup by key id (unknown credential) and the counter are passed to py_webauthn as
a relying party would. py_webauthn 3.0.1 does not check `crossOrigin`; this script applies that
one rule (spec 5.1) on py_webauthn's own parse of clientDataJSON.
"""
import base64
import hashlib
import json
import sys

from webauthn import verify_authentication_response
from webauthn.helpers import parse_client_data_json


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def pae(t, body):
    t = t.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def check(doc, case):
    reg = {hashlib.sha256(base64.b64decode(c["public_key"])).hexdigest(): c for c in doc["registry"]}
    cred = reg.get(case["kid"])
    if cred is None:
        return "refused: unknown credential"
    a = case["assertion"]
    challenge = hashlib.sha256(pae(case["payload_type"], base64.b64decode(case["payload"]))).digest()
    cd = parse_client_data_json(unb64u(a["client_data_json"]))
    if cd.cross_origin:
        return "refused: crossOrigin true"
    verify_authentication_response(
        credential={
            "id": cred["credential_id"], "rawId": cred["credential_id"], "type": "public-key",
            "response": {"authenticatorData": a["authenticator_data"],
                         "clientDataJSON": a["client_data_json"], "signature": a["signature"]},
        },
        expected_challenge=challenge,
        expected_rp_id=cred["rp_id"],
        expected_origin=cred["origins"],
        credential_public_key=unb64u(cred["cose_key"]),
        credential_current_sign_count=case["stored_counter"],
        require_user_verification=True,
    )
    return "ok"


def main():
    doc = json.load(open(sys.argv[1]))
    out = {}
    for case in doc["cases"]:
        try:
            out[case["name"]] = check(doc, case)
        except Exception as e:  # every refusal py_webauthn raises
            out[case["name"]] = f"refused: {type(e).__name__}: {e}"
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
