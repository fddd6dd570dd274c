"""Alibaba Cloud ACR as the adapter meets it: the CR API (RPC style, ``GET /?Action=...``
with signature version 1.0, checked here by recomputing it as the documentation
describes), its ``GetAuthorizationToken`` / ``ListRepository`` answers and error bodies,
and the registry's token service (``/auth``) taking the temporary or the fixed login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime

from fronts.common import TokenFlow
from support.authfront import FrontRequest, FrontResponse

REGION = "cn-hangzhou"
INSTANCE = "cri-portmeshtest01"
AK, SK = "LTAI5tPortmeshTestKey", "portmesh-test-access-key-secret"
USER, PASSWORD = "dev@1234567890", "fixed-registry-password"
TEMP_USER = "cr_temp_user"
TEMP_LIFETIME = 3600


def documented_signature(query: dict[str, str], secret: str) -> str:
    """Signature 1.0 as the RPC signing document spells it out, written independently."""
    pairs = sorted((k, v) for k, v in query.items() if k != "Signature")
    canonical = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe="~")
    to_sign = "GET&%2F&" + urllib.parse.quote(canonical, safe="~")
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


class Alibaba(TokenFlow):
    token_path = "/auth"
    service = f"registry.aliyuncs.com:{REGION}:26842"

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__({USER: PASSWORD}, clock=clock)
        self.temp_tokens: dict[str, float] = {}
        self.repositories: list[tuple[str, str]] = []

    def accepts(self, user: str, secret: str) -> bool:
        if user == TEMP_USER:
            return self.clock() < self.temp_tokens.get(secret, 0.0)
        return super().accepts(user, secret)

    def _error(self, status: int, code: str, message: str) -> FrontResponse:
        body = {"RequestId": secrets.token_hex(8), "HostId": "cr.aliyuncs.com", "Code": code}
        return FrontResponse.json({**body, "Message": message}, status)

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        if req.path != "/" or req.method != "GET":
            return None
        query = {k: v[0] for k, v in req.query.items()}
        if query.get("AccessKeyId") != AK:
            return self._error(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        if query.get("Signature") != documented_signature(query, SK):
            return self._error(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        stamp = datetime.strptime(query.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        if abs(stamp.replace(tzinfo=UTC).timestamp() - time.time()) > 900:
            return self._error(400, "InvalidTimeStamp.Expired", "Specified time stamp is expired.")
        if query.get("Version") != "2018-12-01" or query.get("InstanceId") != INSTANCE:
            return self._error(404, "INSTANCE_NOT_EXIST", "instance does not exist")
        base = {"RequestId": secrets.token_hex(8), "Code": "success", "IsSuccess": True}
        if query.get("Action") == "GetAuthorizationToken":
            token = secrets.token_urlsafe(18)
            self.temp_tokens[token] = self.clock() + TEMP_LIFETIME
            expire_ms = int((time.time() + TEMP_LIFETIME) * 1000)
            return FrontResponse.json(
                {
                    **base,
                    "TempUsername": TEMP_USER,
                    "AuthorizationToken": token,
                    "ExpireTime": expire_ms,
                }
            )
        if query.get("Action") == "ListRepository":
            page, size = int(query["PageNo"]), min(int(query["PageSize"]), 2)
            chunk = self.repositories[(page - 1) * size : page * size]
            repos = [{"RepoNamespaceName": ns, "RepoName": name} for ns, name in chunk]
            return FrontResponse.json(
                {**base, "Repositories": repos, "TotalCount": str(len(self.repositories))}
            )
        return self._error(400, "InvalidAction.NotFound", "Specified api is not found.")
