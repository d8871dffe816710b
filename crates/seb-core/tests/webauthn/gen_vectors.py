#!/usr/bin/env python3
"""Generate crates/seb-core/testdata/webauthn/vectors.json (spec 5.1 passkey approvals).

Independent of the Rust code: keys, authenticator data, clientDataJSON and signatures are built
here with Python `cryptography` (deterministic keys from fixed seeds, RFC 6979 ECDSA), the way a
browser and authenticator would. Run from the repository root:

    python3 crates/seb-core/tests/webauthn/gen_vectors.py

Each case names the signer's credential (by key id), the approval statement whose challenge the
verifier expects, the assertion, the stored signature counter, and the expected outcome: "ok" or
the code of the check that must refuse it (seb_core::webauthn::WebAuthnError::code).
"""
import base64
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

OUT = (sys.argv[1] if len(sys.argv) > 1 else
       os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "webauthn", "vectors.json"))
APPROVAL = "application/vnd.seb.approval+json;v=1"
RP_ID = "console.seb.example"
ORIGIN = "https://console.seb.example"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64(b):
    return base64.b64encode(b).decode()


def pae(t, body):
    t = t.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def canonical(obj):
    # ASCII-only strings and small integers: JSON with sorted keys and no spaces is RFC 8785.
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def approval(proposal_id):
    return canonical({
        "approver": "alice",
        "at_ms": 1796600000000,
        "comment": "ok",
        "contract_digest": "sha256:" + "11" * 32,
        "decision": "approve",
        "evidence_digest": "sha256:" + "22" * 32,
        "proposal_id": proposal_id,
    })


def cbor_bstr(b):
    assert len(b) < 256
    return (bytes([0x58, len(b)]) if len(b) >= 24 else bytes([0x40 + len(b)])) + b


class Es256:
    alg = -7

    def __init__(self, seed):
        n = int.from_bytes(hashlib.sha256(seed).digest(), "big") % (2**256 - 2**224 - 1) + 1
        self.sk = ec.derive_private_key(n, ec.SECP256R1())
        pub = self.sk.public_key()
        self.spki = pub.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        nums = pub.public_numbers()
        x, y = nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")
        # COSE_Key {1: 2 (EC2), 3: -7, -1: 1 (P-256), -2: x, -3: y}
        self.cose = bytes([0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21]) + cbor_bstr(x) + \
            bytes([0x22]) + cbor_bstr(y)

    def sign(self, msg):
        return self.sk.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


class EdDsa:
    alg = -8

    def __init__(self, seed):
        self.sk = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
        pub = self.sk.public_key()
        self.spki = pub.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        # COSE_Key {1: 1 (OKP), 3: -8, -1: 6 (Ed25519), -2: x}
        self.cose = bytes([0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21]) + cbor_bstr(raw)

    def sign(self, msg):
        return self.sk.sign(msg)


def credential(key, cred_id):
    return {
        "type": "webauthn", "alg": key.alg, "public_key": b64(key.spki),
        "credential_id": b64u(cred_id), "rp_id": RP_ID, "origins": [ORIGIN],
    }


def kid(key):
    return hashlib.sha256(key.spki).hexdigest()


def assertion(key, challenge, *, origin=ORIGIN, typ="webauthn.get", cross_origin=None,
              rp_id=RP_ID, flags=0x05, counter=1, sign_other_client_data=False):
    cd = {"type": typ, "challenge": b64u(challenge), "origin": origin}
    if cross_origin is not None:
        cd["crossOrigin"] = cross_origin
    # Chrome's extra member: verifiers must parse, not compare with a template.
    cd["other_keys_can_be_added_here"] = "do not compare clientDataJSON against a template."
    cdj = json.dumps(cd, separators=(",", ":")).encode()
    ad = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)
    signed_cdj = cdj
    if sign_other_client_data:
        other = dict(cd, origin=ORIGIN + ".evil")
        signed_cdj = json.dumps(other, separators=(",", ":")).encode()
    sig = key.sign(ad + hashlib.sha256(signed_cdj).digest())
    return {"authenticator_data": b64u(ad), "client_data_json": b64u(cdj), "signature": b64u(sig)}


def main():
    keys = {"es256": Es256(b"seb passkey vector es256"), "eddsa": EdDsa(b"seb passkey vector eddsa")}
    cred_ids = {n: hashlib.sha256(b"credential id " + n.encode()).digest()[:16] for n in keys}
    outsider = {"es256": Es256(b"seb passkey vector outsider es256"),
                "eddsa": EdDsa(b"seb passkey vector outsider eddsa")}
    registry = [dict(credential(keys[n], cred_ids[n]), cose_key=b64u(keys[n].cose)) for n in keys]

    payload = approval("7f6c1a52-0000-4000-8000-000000000001")
    other_payload = approval("7f6c1a52-0000-4000-8000-000000000002")
    chal = hashlib.sha256(pae(APPROVAL, payload)).digest()
    other_chal = hashlib.sha256(pae(APPROVAL, other_payload)).digest()

    cases = []
    for n, key in keys.items():
        def case(name, expect, a, stored=0, signer=key):
            cases.append({"name": f"{n}_{name}", "kid": kid(signer), "payload_type": APPROVAL,
                          "payload": b64(payload), "assertion": a, "stored_counter": stored,
                          "expect": expect})
        case("valid", "ok", assertion(key, chal, counter=1))
        case("valid_no_counter", "ok", assertion(key, chal, counter=0))
        case("valid_counter_increases", "ok", assertion(key, chal, counter=42), stored=41)
        case("valid_cross_origin_false", "ok", assertion(key, chal, cross_origin=False))
        case("wrong_challenge", "challenge", assertion(key, hashlib.sha256(b"random").digest()))
        case("other_proposal_challenge", "challenge", assertion(key, other_chal))
        case("wrong_origin", "origin", assertion(key, chal, origin="https://evil.example"))
        case("wrong_rp_id_hash", "rp_id_hash", assertion(key, chal, rp_id="evil.example"))
        case("up_missing", "user_present", assertion(key, chal, flags=0x04))
        case("uv_missing", "user_verified", assertion(key, chal, flags=0x01))
        case("cross_origin_true", "cross_origin", assertion(key, chal, cross_origin=True))
        case("create_type", "type", assertion(key, chal, typ="webauthn.create"))
        case("signature_over_other_data", "signature",
             assertion(key, chal, sign_other_client_data=True))
        case("unknown_credential", "unknown_credential", assertion(outsider[n], chal),
             signer=outsider[n])
        case("counter_regression", "counter", assertion(key, chal, counter=6), stored=7)
        case("counter_equal", "counter", assertion(key, chal, counter=7), stored=7)
        case("counter_reset_to_zero", "counter", assertion(key, chal, counter=0), stored=7)

    doc = {
        "description": "SEB passkey (WebAuthn) approval vectors, spec 5.1. Generated by "
                       "crates/seb-core/tests/webauthn/gen_vectors.py; checked by "
                       "crates/seb-core/tests/webauthn.rs and cross-checked with py_webauthn.",
        "registry": registry,
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
