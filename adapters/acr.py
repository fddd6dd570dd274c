"""Azure Container Registry (``acr``): the admin user, or a Microsoft Entra (AAD) identity.

- ``admin`` (default): the registry's admin user and password as Basic credentials of the
  Docker token flow (``GET /oauth2/token``).
- ``aad_token``: the password is an AAD access token for the registry. It is exchanged
  for an ACR refresh token (``POST /oauth2/exchange`` with ``grant_type=access_token``,
  ``service``, ``tenant``, ``access_token``), which is then traded for an access token
  per scope (``POST /oauth2/token`` with ``grant_type=refresh_token``, ``service``,
  ``scope``, ``refresh_token``). In the Docker flow the refresh token is the password of
  the user ``00000000-0000-0000-0000-000000000000``.
- ``aad_client``: as ``aad_token``, but the AAD token comes from a client credential:
  ``username`` the application (client) id, ``password`` its secret, posted to
  ``<aad_endpoint>/<tenant>/oauth2/v2.0/token`` (``grant_type=client_credentials``,
  scope ``https://containerregistry.azure.net/.default``); done again when it expires.

Access tokens from ``/oauth2/token`` come without ``expires_in``: they are cached until
their JWT ``exp`` claim (see :mod:`adapters.session`). Refresh tokens are used until
their ``exp`` claim (3 hours when it cannot be read), then
the exchange is repeated; a refused one is replaced at once. Repositories are listed with
``/v2/_catalog``. Options: ``auth``, ``tenant``, ``aad_endpoint`` (default
``https://login.microsoftonline.com``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from .auth import Credentials, jwt_expiry
from .cloudnaming import NameRule
from .credentials import ApiErrors, CloudApi, auth_mode, call_json, deadline_in
from .errors import ProtocolError, UpstreamError
from .oci import OCIClient
from .options import SpecOptions
from .registry import Capability

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "NAME_RULE", "REFRESH_USER", "TYPE", "ACRClient", "AadLogin", "create"]

TYPE = "acr"
CAPABILITIES = frozenset(
    {Capability.PULL, Capability.LIST_TAGS, Capability.LIST_REPOSITORIES, Capability.REFERRERS}
)
REFRESH_USER = "00000000-0000-0000-0000-000000000000"
AAD_ENDPOINT = "https://login.microsoftonline.com"
ACR_SCOPE = "https://containerregistry.azure.net/.default"
REFRESH_LIFETIME = 3 * 3600
OPTIONS = {"auth": str, "tenant": str, "aad_endpoint": str}
NAME_RULE = NameRule(
    "Azure Container Registry",
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*",
    max_length=256,
    form="lowercase letters, digits, . - _ and /",
)
AAD_ERRORS = ApiErrors(
    "error",
    "error_description",
    auth_codes={"invalid_client", "invalid_grant", "unauthorized_client", "invalid_request"},
    throttle_codes={"temporarily_unavailable"},
)
EXCHANGE_ERRORS = ApiErrors("error", "error_description", auth_codes={"invalid_grant"})


class AadLogin(CloudApi):
    """The AAD token -> ACR refresh token exchange; a credential provider for the session.

    ``aad_token`` is a fixed AAD access token, or None to get one with the client
    credential ``client_id`` / ``client_secret`` of ``tenant``. Its endpoint is the
    registry's (``/oauth2/exchange``)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        registry_url: str,
        tenant: str,
        clock: Callable[[], float],
        aad_token: str | None = None,
        client_id: str = "",
        client_secret: str = "",
        aad_endpoint: str = AAD_ENDPOINT,
    ) -> None:
        super().__init__(http, endpoint=registry_url, clock=clock)
        self.service = httpx.URL(self.endpoint).host
        self.tenant = tenant
        self.client_id = client_id
        self._aad_token = aad_token
        self._client_secret = client_secret
        self._aad_url = f"{aad_endpoint.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        self._cached: tuple[str, float] | None = None

    def __repr__(self) -> str:
        who = f"client {self.client_id!r}" if self._aad_token is None else "a fixed AAD token"
        return f"AadLogin({self.service!r}, tenant={self.tenant!r}, {who})"

    async def aad_access_token(self) -> str:
        """The fixed AAD token, or one from the client credential (reused until expiry)."""
        if self._aad_token is not None:
            return self._aad_token
        if self._cached is not None and self._clock() < self._cached[1]:
            return self._cached[0]
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "scope": ACR_SCOPE,
        }
        request = self._http.build_request("POST", self._aad_url, data=form)
        what = f"AAD token for client {self.client_id!r} of tenant {self.tenant!r}"
        doc = await call_json(self._http, request, what, AAD_ERRORS)
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{what}: the answer has no access_token")
        lifetime = doc.get("expires_in")
        seconds = float(str(lifetime)) if str(lifetime).isdigit() else 3600.0
        self._cached = (token, deadline_in(self._clock, seconds - 60))
        return token

    async def __call__(self) -> tuple[Credentials, float]:
        """``/oauth2/exchange``: the ACR refresh token and when it expires."""
        form = {
            "grant_type": "access_token",
            "service": self.service,
            "tenant": self.tenant,
            "access_token": await self.aad_access_token(),
        }
        request = self._http.build_request("POST", f"{self.endpoint}oauth2/exchange", data=form)
        what = f"ACR refresh token from {self.service}"
        try:
            doc = await call_json(self._http, request, what, EXCHANGE_ERRORS)
        except UpstreamError:
            self._cached = None  # the AAD token may be what was refused
            raise
        refresh = doc.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise ProtocolError(f"{what}: the answer has no refresh_token")
        return self.lease(Credentials(REFRESH_USER, refresh), jwt_expiry(refresh), REFRESH_LIFETIME)


class ACRClient(OCIClient):
    """An ``Upstream`` for one Azure container registry; names follow ACR's rule."""

    def remote_name(self, repo: str) -> str:
        return NAME_RULE.check(repo)


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> ACRClient:
    """See the module docstring; ValueError for a spec that cannot work."""
    options = SpecOptions(spec, OPTIONS)
    mode = auth_mode(TYPE, options.get_str("auth"), ("admin", "aad_token", "aad_client"))
    if mode == "admin":
        return ACRClient(**options.client_args(http, clock))
    tenant = options.get_str("tenant")
    if not tenant or not spec.password:
        raise ValueError(f"upstream type 'acr': auth {mode} needs option tenant and a password")
    if mode == "aad_client" and not spec.username:
        raise ValueError("upstream type 'acr': auth aad_client needs username (the client id)")
    login = AadLogin(
        http=http,
        registry_url=options.url,
        tenant=tenant,
        clock=clock,
        aad_token=spec.password if mode == "aad_token" else None,
        client_id=spec.username or "",
        client_secret=spec.password if mode == "aad_client" else "",
        aad_endpoint=options.get_str("aad_endpoint") or AAD_ENDPOINT,
    )
    client = ACRClient(
        options.url, http=http, credentials=login, timeout=options.timeout, clock=clock
    )
    client.session.token_grant = "refresh_token"
    return client
