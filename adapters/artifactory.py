"""JFrog Artifactory (``artifactory``) Docker repositories, "repository path" method.

In that method the registry serves ``<url>/v2/<repository_key>/<image>/...``: the option
``repository_key`` (the Artifactory repository, ``docker-remote``) is put in front of
every name, so callers use the image name alone (``library/alpine``).

Credentials: a username with its password, API key or identity token (Basic, through the
registry's token flow at ``<url>/artifactory/api/docker/<key>/v2/token``), or an access
token alone (option ``access_token``, or a password with no username), sent as
``Authorization: Bearer`` on every request.

Listing repositories uses Artifactory's REST API at ``api_url`` (default
``<url>/artifactory``): ``GET /api/docker/<key>/v2/_catalog``, the repository's catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from .auth import TokenCache
from .errors import AuthFailed, error_from_response
from .listing import ProviderAPI, link_next, page_of
from .oci import CAPABILITIES as OCI_CAPABILITIES
from .oci import OCIClient
from .options import SpecOptions
from .session import RegistrySession

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "TYPE", "AccessTokenSession", "ArtifactoryClient", "create"]

TYPE = "artifactory"
CAPABILITIES = OCI_CAPABILITIES


class AccessTokenSession(RegistrySession):
    """A session that sends one access token as ``Bearer`` on every request; a 401 is
    the token being refused (AuthFailed), there is no token dance."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        access_token: str,
        timeout: httpx.Timeout | None,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(
            http=http, credentials=None, timeout=timeout, tokens=TokenCache(clock=clock)
        )
        self.authorization = f"Bearer {access_token}"

    def __repr__(self) -> str:
        return "AccessTokenSession(access_token=***)"

    async def send(
        self, method: str, url: str, scope: str, what: str, **request: Any
    ) -> httpx.Response:
        """One request with the access token; ``request`` holds ``headers``, ``params``."""
        headers: dict[str, str] | None = request.get("headers")
        params: dict[str, str] | None = request.get("params")
        request_headers = {**(headers or {}), "Authorization": self.authorization}
        response = await self.exchange(method, url, what, headers=request_headers, params=params)
        if response.status_code != 401:
            return response
        body = await self.read_error(response)
        await response.aclose()
        refused = error_from_response(response, body, what)
        raise AuthFailed(
            f"{refused}; the access token was refused", status=401, errors=refused.errors
        )


class ArtifactoryClient(OCIClient):
    """An ``Upstream`` for one Artifactory Docker repository (``repository_key``)."""

    def __init__(
        self, *args: Any, repository_key: str, api_url: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.repository_key = repository_key
        self.api_url = (api_url or f"{self.base_url}/artifactory").rstrip("/")

    def remote_name(self, repo: str) -> str:
        return f"{self.repository_key}/{repo}"

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        """The image names of the repository's catalog (without the repository key)."""
        if isinstance(self.session, AccessTokenSession):
            headers = {"Authorization": self.session.authorization}
        elif self.session.credentials is not None:
            headers = {"Authorization": self.session.credentials.basic_header()}
        else:
            headers = {}
        api = ProviderAPI.of(self, self.api_url, headers)
        what = f"Artifactory catalog of {self.repository_key}"

        def page(doc: Any, response: httpx.Response) -> tuple[list[str], str | None]:
            names = doc.get("repositories") if isinstance(doc, dict) else None
            if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                names = []
            return names, link_next(response)

        url = f"/api/docker/{quote(self.repository_key, safe='')}/v2/_catalog"
        return page_of(await api.collect(api.base_url + url, what, page), n, last)


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> ArtifactoryClient:
    """Options: ``repository_key`` (required), ``access_token``, ``api_url``,
    ``tag_page_size``."""
    allowed = {"repository_key": str, "access_token": str, "api_url": str, "tag_page_size": int}
    options = SpecOptions(spec, allowed)
    key = options.get_str("repository_key")
    if not key or "/" in key:
        raise ValueError(
            "upstream type 'artifactory': option 'repository_key' is required"
            " (one path segment, the Docker repository's key)"
        )
    access_token = options.get_str("access_token")
    if access_token is None and spec.password and not spec.username:
        access_token = spec.password
    args = (
        options.client_args(http, clock)
        if access_token is None
        else {
            "base_url": options.url,
            "http": http,
            "timeout": options.timeout,
            "clock": clock,
            "session": AccessTokenSession(
                http=http, access_token=access_token, timeout=options.timeout, clock=clock
            ),
        }
    )
    return ArtifactoryClient(
        **args,
        tag_page_size=options.get_int("tag_page_size"),
        repository_key=key,
        api_url=options.get_str("api_url"),
    )
