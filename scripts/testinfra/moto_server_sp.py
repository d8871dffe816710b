"""moto_server for SEB's live AWS tests, with AWS semantics stock moto 5.x lacks.

Adapted from the team's testinfra recipe (moto_server_sp.py). On top of `moto_server`:

 1. STS session policies (AssumeRole Policy=...) are intersected with the role's policies:
    an action must also be PERMITTED by the session policy.
 2. Assumed-role credentials past their Expiration are refused (403 ExpiredToken).
 3. AssumeRole with session Tags requires `sts:TagSession`, and with SourceIdentity requires
    `sts:SetSourceIdentity`, in the role's trust policy for the caller (as AWS does).
 4. The SourceIdentity and session tags of an AssumeRole call are recorded on moto's
    AssumedRole model (visible in GET /moto-api/data.json as `source_identity` and
    `session_tags`), and SourceIdentity is returned in the AssumeRole response as AWS does.
    Stock moto drops both fields.

Not emulated (moto limits, see docs/aws.md): resource ARNs outside S3/IAM/STS/SQS (moto
passes "*"), IAM Condition blocks other than StringEquals on sts:ExternalId, permission
boundaries, SCPs/RCPs, the 900 s minimum of DurationSeconds.

Usage: python3 moto_server_sp.py -H 127.0.0.1 -p PORT   (same flags as moto_server)
Start with INITIAL_NO_AUTH_ACTION_COUNT=inf and turn enforcement on with
POST /moto-api/reset-auth, Content-Type text/plain, body `0`.
"""
import datetime

from moto.core.exceptions import _RESTError as RESTError
from moto.iam import access_control as ac
from moto.iam.utils import format_incoming_conditional_values
from moto.sts.models import sts_backends
from moto.sts.responses import TokenResponse


class ExpiredTokenError(RESTError):
    code = 403

    def __init__(self):
        super().__init__("ExpiredToken", "The security token included in the request is expired")


_orig_check = ac.IAMRequestBase.check_action_permitted


def _assumed_role(ak):
    for r in sts_backends[ak.account_id][ak.partition].assumed_roles:
        if r.access_key_id == ak._access_key_id:
            return r
    return None


def _trust_permits(self, action, role_arn):
    role = self.backend.get_role_by_arn(role_arn)
    policy = ac.IAMPolicy(role.assume_role_policy_document)
    got = policy.is_action_permitted(
        action, role_arn, self._access_key.arn, format_incoming_conditional_values(self._data)
    )
    return got == ac.PermissionResult.PERMITTED


def check_action_permitted(self, resource):
    ak = self._access_key
    r = _assumed_role(ak) if isinstance(ak, ac.AssumedRoleAccessKey) else None
    if r is not None and r.expiration.replace(tzinfo=None) < datetime.datetime.utcnow():
        raise ExpiredTokenError()
    _orig_check(self, resource)
    if self._action == "sts:AssumeRole" and self._is_assuming_role_operation(resource):
        keys = list(self._data.keys())
        if any(k.startswith("Tags.member.") for k in keys) and not _trust_permits(
            self, "sts:TagSession", resource
        ):
            self._raise_access_denied()
        if "SourceIdentity" in keys and not _trust_permits(self, "sts:SetSourceIdentity", resource):
            self._raise_access_denied()
    if self._action == "sts:GetCallerIdentity" or r is None or not r.policy:
        return
    if ac.IAMPolicy(r.policy).is_action_permitted(self._action, resource) != ac.PermissionResult.PERMITTED:
        self._raise_access_denied()


ac.IAMRequestBase.check_action_permitted = check_action_permitted

_orig_assume_role = TokenResponse.assume_role


def _session_tags(querystring):
    tags = {}
    i = 1
    while f"Tags.member.{i}.Key" in querystring:
        key = querystring[f"Tags.member.{i}.Key"][0]
        value = (querystring.get(f"Tags.member.{i}.Value") or [""])[0]
        tags[key] = value
        i += 1
    return tags


def assume_role(self):
    out = _orig_assume_role(self)
    role = out.result["Credentials"]
    source_identity = (self.querystring.get("SourceIdentity") or [None])[0]
    role.source_identity = source_identity
    role.session_tags = _session_tags(self.querystring)
    role.duration_seconds = int((self.querystring.get("DurationSeconds") or ["3600"])[0])
    if source_identity is not None:
        out.result["SourceIdentity"] = source_identity
    return out


TokenResponse.assume_role = assume_role

if __name__ == "__main__":
    from moto.server import main

    main()
