"""Alibaba Cloud Container Registry (``alibaba-acr``): a fixed password, or temporary
credentials from the CR API.

- ``password`` (default): the registry login password set in the console, with the
  account name as the username, as Basic credentials of the registry's token flow.
- ``access_key``: ``username`` / ``password`` are an AccessKey ID and secret (option
  ``security_token`` for STS). The CR API's ``GetAuthorizationToken`` (version 2018-12-01,
  ``InstanceId``) returns ``TempUsername`` / ``AuthorizationToken`` valid until
  ``ExpireTime`` (milliseconds; an hour, or the STS token's life); they are fetched again
  shortly before then, or at once when refused. The API is Alibaba's RPC style: a GET
  with the common parameters, signed with signature version 1.0 (HMAC-SHA1 over
  ``GET&%2F&<percent-encoded sorted query>`` keyed with ``<secret>&``). Repositories are
  listed with ``ListRepository``.

Options: ``auth``, ``instance_id``, ``region`` (else read from the URL), ``endpoint``
(default ``https://cr.<region>.aliyuncs.com``), ``security_token``. Names are
``<namespace>/<repository>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from .auth import Credentials
from .cloudnaming import NameRule
from .credentials import ApiErrors, CloudApi, auth_mode, call_json
from .errors import ProtocolError, Unsupported
from .listing import page_of
from .oci import OCIClient
from .options import SpecOptions
from .registry import Capability

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = [
    "CAPABILITIES",
    "NAME_RULE",
    "TYPE",
    "AlibabaClient",
    "CrApi",
    "create",
    "rpc_signature",
]

TYPE = "alibaba-acr"
CAPABILITIES = frozenset(
    {Capability.PULL, Capability.LIST_TAGS, Capability.LIST_REPOSITORIES, Capability.REFERRERS}
)
API_VERSION = "2018-12-01"
#: how long a login lasts when the answer has no ``ExpireTime``
TOKEN_LIFETIME = 3600.0
OPTIONS = {
    "auth": str,
    "instance_id": str,
    "region": str,
    "endpoint": str,
    "security_token": str,
}
NAME_RULE = NameRule(
    "Alibaba Cloud ACR",
    r"[a-z0-9][a-z0-9_-]{1,63}/[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?(?:/[a-z0-9][a-z0-9._-]*)*",
    min_segments=2,
    form="<namespace>/<repository>, lowercase",
)
ERRORS = ApiErrors(
    "Code",
    "Message",
    auth_codes={
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
        "NoPermission",
        "NoPrivilege",
        "Forbidden.RAM",
    },
    throttle_codes={"Throttling", "Throttling.User", "Throttling.Api"},
)
_HOST = re.compile(
    r"(?:^|[.-])(?:registry(?:-vpc)?\.)?([a-z]{2}-[a-z]+(?:-\d+)?)\.(?:cr\.)?aliyuncs\.com$"
)


def _percent(text: str) -> str:
    """Alibaba's percent-encoding: RFC 3986 unreserved characters stay, the rest %XX."""
    return quote(text, safe="-_.~")


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Signature version 1.0 of an RPC request's parameters (``Signature`` excluded)."""
    query = "&".join(f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()))
    text = f"{method}&{_percent('/')}&{_percent(query)}"
    digest = hmac.new(f"{secret}&".encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class CrApi(CloudApi):
    """Signed calls to the CR API of one instance; a credential provider for the session."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        instance_id: str,
        access_key: str,
        secret: str,
        security_token: str | None,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(http, endpoint=endpoint, clock=clock)
        self.instance_id = instance_id
        self.access_key = access_key
        self._secret = secret
        self._security_token = security_token

    def __repr__(self) -> str:
        return f"CrApi({self.endpoint!r}, instance={self.instance_id!r}, key={self.access_key!r})"

    async def call(self, action: str, **extra: str) -> dict[str, Any]:
        """One RPC action with the common parameters, signed; errors translated."""
        params = {
            "Action": action,
            "Version": API_VERSION,
            "Format": "JSON",
            "AccessKeyId": self.access_key,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": secrets.token_hex(16),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "InstanceId": self.instance_id,
            **extra,
        }
        if self._security_token:
            params["SecurityToken"] = self._security_token
        params["Signature"] = rpc_signature("GET", params, self._secret)
        request = self._http.build_request("GET", self.endpoint, params=params)
        doc = await call_json(self._http, request, f"Alibaba CR {action}", ERRORS)
        if doc.get("IsSuccess") is False or str(doc.get("Code", "success")).lower() != "success":
            raise ProtocolError(f"Alibaba CR {action}: the answer says {doc.get('Code')!r}")
        return doc

    async def __call__(self) -> tuple[Credentials, float]:
        """``GetAuthorizationToken``: the temporary login and when it expires."""
        doc = await self.call("GetAuthorizationToken")
        user, token, expire = (
            doc.get("TempUsername"),
            doc.get("AuthorizationToken"),
            doc.get("ExpireTime"),
        )
        if not isinstance(user, str) or not isinstance(token, str) or not user or not token:
            raise ProtocolError(
                "Alibaba CR GetAuthorizationToken: no TempUsername/AuthorizationToken"
            )
        expires = float(expire) / 1000 if isinstance(expire, (int, float)) else None
        return self.lease(Credentials(user, token), expires, TOKEN_LIFETIME)

    async def repositories(self) -> list[str]:
        """``ListRepository``, every page, as ``<namespace>/<name>``."""
        names: list[str] = []
        for page in range(1, 10_000):
            doc = await self.call(
                "ListRepository", PageNo=str(page), PageSize="100", RepoStatus="ALL"
            )
            items = doc.get("Repositories") or []
            for repo in items:
                if isinstance(repo, dict):
                    names.append(f"{repo.get('RepoNamespaceName')}/{repo.get('RepoName')}")
            total = int(str(doc.get("TotalCount") or 0))
            if not items or len(names) >= total:
                return names
        raise ProtocolError("Alibaba CR ListRepository: too many pages")


class AlibabaClient(OCIClient):
    """An ``Upstream`` for one Alibaba Cloud registry (``api`` set with access keys)."""

    def __init__(self, base_url: str, *, api: CrApi | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.api = api

    def remote_name(self, repo: str) -> str:
        return NAME_RULE.check(repo)

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        if self.api is None:
            raise Unsupported(
                "Alibaba Cloud ACR lists repositories through its API: use auth access_key"
            )
        return page_of(await self.api.repositories(), n, last)


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> AlibabaClient:
    """See the module docstring; ValueError for a spec that cannot work."""
    options = SpecOptions(spec, OPTIONS)
    if auth_mode(TYPE, options.get_str("auth"), ("password", "access_key")) == "password":
        return AlibabaClient(**options.client_args(http, clock))
    match = _HOST.search(httpx.URL(options.url).host)
    region = options.get_str("region") or (match[1] if match else None)
    instance = options.get_str("instance_id")
    if not instance or not (region or options.get_str("endpoint")):
        raise ValueError(
            "upstream type 'alibaba-acr': auth access_key needs instance_id and region"
        )
    if not spec.username or not spec.password:
        raise ValueError(
            "upstream type 'alibaba-acr': username and password must be an AccessKey pair"
        )
    api = CrApi(
        http,
        endpoint=options.get_str("endpoint") or f"https://cr.{region}.aliyuncs.com",
        instance_id=instance,
        access_key=spec.username,
        secret=spec.password,
        security_token=options.get_str("security_token"),
        clock=clock,
    )
    return AlibabaClient(
        options.url, api=api, http=http, credentials=api, timeout=options.timeout, clock=clock
    )
