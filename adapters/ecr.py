"""Amazon ECR: registry credentials from ``GetAuthorizationToken``, signed with SigV4.

The ECR API speaks AWS JSON 1.1 (``POST /`` with ``X-Amz-Target:
AmazonEC2ContainerRegistry_V20150921.<Operation>``), signed for service ``ecr``. Its
``authorizationToken`` is base64 of ``AWS:<password>``, sent to the registry as HTTP Basic
until ``expiresAt`` (12 hours); the login is repeated shortly before then, or at once when
the registry refuses it. Repositories are listed with ``DescribeRepositories``.

Spec: ``url`` the registry (``https://<account>.dkr.ecr.<region>.amazonaws.com``; may be
empty when ``registry_id`` and ``region`` are given), ``username`` / ``password`` the
access key id and secret; options ``region`` (else read from the URL), ``endpoint`` (the
API endpoint, default ``https://api.ecr.<region>.amazonaws.com``), ``session_token``
(temporary credentials), ``registry_id`` (the account, else read from the URL).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from .auth import Credentials
from .cloudnaming import NameRule
from .credentials import ApiErrors, CloudApi, call_json
from .errors import ProtocolError
from .listing import page_of
from .oci import OCIClient
from .options import SpecOptions
from .registry import Capability
from .sigv4 import AwsCredentials, sign_headers

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "NAME_RULE", "TYPE", "ECRClient", "EcrApi", "create"]

TYPE = "ecr"
CAPABILITIES = frozenset(
    {Capability.PULL, Capability.LIST_TAGS, Capability.LIST_REPOSITORIES, Capability.REFERRERS}
)
NAME_RULE = NameRule(
    "ECR",
    r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*",
    min_length=2,
    max_length=256,
    form="lowercase [a-z0-9] runs joined by . _ - and /",
)
OPTIONS = {"region": str, "endpoint": str, "session_token": str, "registry_id": str}
#: how long a login lasts when the answer has no ``expiresAt`` (ECR's documented 12 hours)
TOKEN_LIFETIME = 12 * 3600.0
TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ERRORS = ApiErrors(
    "__type",
    "message",
    auth_codes={
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "AccessDeniedException",
        "InvalidClientTokenId",
    },
    throttle_codes={"ThrottlingException", "TooManyRequestsException"},
)
_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class EcrApi(CloudApi):
    """Signed calls to the ECR API of one region; a credential provider for the session."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        region: str,
        credentials: AwsCredentials,
        registry_id: str | None,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(http, endpoint=endpoint, clock=clock)
        self.region = region
        self.registry_id = registry_id
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"EcrApi({self.endpoint!r}, region={self.region!r}, key={self._credentials!r})"

    async def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One JSON 1.1 operation; translated errors (bad keys are AuthFailed)."""
        body = json.dumps(payload).encode()
        headers = sign_headers(
            "POST",
            self.endpoint,
            {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET_PREFIX + operation,
            },
            body,
            credentials=self._credentials,
            region=self.region,
            service="ecr",
        )
        request = self._http.build_request("POST", self.endpoint, headers=headers, content=body)
        return await call_json(self._http, request, f"ECR {operation} in {self.region}", ERRORS)

    async def __call__(self) -> tuple[Credentials, float]:
        """``GetAuthorizationToken``: the registry's Basic credentials and their expiry."""
        payload = {"registryIds": [self.registry_id]} if self.registry_id else {}
        doc = await self.call("GetAuthorizationToken", payload)
        data = doc.get("authorizationData")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise ProtocolError("ECR GetAuthorizationToken: no authorizationData in the answer")
        entry = data[0]
        try:
            decoded = base64.b64decode(str(entry.get("authorizationToken", "")), validate=True)
            username, sep, password = decoded.decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ProtocolError("ECR GetAuthorizationToken: token is not base64 text") from exc
        if not sep or not password:
            raise ProtocolError("ECR GetAuthorizationToken: token is not user:password")
        return self.lease(
            Credentials(username, password), _epoch(entry.get("expiresAt")), TOKEN_LIFETIME
        )

    async def repositories(self) -> list[str]:
        """``DescribeRepositories``, every page."""
        names: list[str] = []
        token: str | None = None
        while True:
            payload: dict[str, Any] = {"maxResults": 1000}
            if self.registry_id:
                payload["registryId"] = self.registry_id
            if token:
                payload["nextToken"] = token
            doc = await self.call("DescribeRepositories", payload)
            for repo in doc.get("repositories") or []:
                if isinstance(repo, dict) and isinstance(repo.get("repositoryName"), str):
                    names.append(repo["repositoryName"])
            token = doc.get("nextToken")
            if not isinstance(token, str) or not token:
                return names


def _epoch(value: object) -> float | None:
    """``expiresAt`` as POSIX seconds: AWS JSON sends a number; ISO text is accepted too."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class ECRClient(OCIClient):
    """An ``Upstream`` for one ECR registry; names follow ECR's rule."""

    def __init__(self, base_url: str, *, api: EcrApi, **kwargs: Any) -> None:
        super().__init__(base_url, credentials=api, **kwargs)
        self.api = api

    def remote_name(self, repo: str) -> str:
        return NAME_RULE.check(repo)

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        """``DescribeRepositories`` (every page), then the ``n``/``last`` page of it."""
        return page_of(await self.api.repositories(), n, last)


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> ECRClient:
    """See the module docstring for the spec; ValueError for a spec that cannot work."""
    url = spec.url.rstrip("/")
    match = _HOST.match(httpx.URL(url).host) if url else None
    options = spec.options
    registry_id = str(options.get("registry_id") or (match[1] if match else "")) or None
    region = str(options.get("region") or (match[2] if match else ""))
    if not region:
        raise ValueError("upstream type 'ecr': option 'region' is required for this url")
    default_url = f"https://{registry_id}.dkr.ecr.{region}.amazonaws.com" if registry_id else ""
    checked = SpecOptions(spec, OPTIONS, default_url=default_url)
    if not spec.username or not spec.password:
        raise ValueError(
            "upstream type 'ecr': username (access key id) and password (secret key) are required"
        )
    api = EcrApi(
        http,
        endpoint=checked.get_str("endpoint") or f"https://api.ecr.{region}.amazonaws.com",
        region=region,
        credentials=AwsCredentials(spec.username, spec.password, checked.get_str("session_token")),
        registry_id=registry_id,
        clock=clock,
    )
    return ECRClient(checked.url, api=api, http=http, timeout=checked.timeout, clock=clock)
