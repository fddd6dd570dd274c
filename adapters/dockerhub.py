"""Docker Hub (``docker-hub``): the registry at ``registry-1.docker.io`` with its token
service ``auth.docker.io/token?service=registry.docker.io&scope=...`` (the realm and
service come from the registry's challenge, so the adapter follows wherever it is told).

Naming: a one-segment name is an official image, ``alpine`` -> ``library/alpine``.
Credentials: a Docker ID and its password or personal access token (anonymous works for
public images, at a lower pull limit). Pull limits: every answer's ``ratelimit-limit`` /
``ratelimit-remaining`` (``100;w=21600``) and ``docker-ratelimit-source`` headers are kept
in :attr:`DockerHubClient.rate_limit`; :meth:`DockerHubClient.check_rate_limit` asks for
them the way Docker documents, with a HEAD of ``ratelimitpreview/test:latest`` (HEADs do
not count as pulls).

Listing repositories (option ``namespace``, a user or organisation) uses the Hub API at
``hub_url`` (``https://hub.docker.com``): ``POST /v2/auth/token`` turns the credentials
into a short-lived bearer, then ``GET /v2/repositories/<namespace>/`` pages through
``results`` by following ``next``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from . import listing
from .errors import ProtocolError, Unsupported, error_from_response
from .oci import CAPABILITIES as OCI_CAPABILITIES
from .oci import MANIFEST_ACCEPT
from .session import RateLimit

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = [
    "CAPABILITIES",
    "DEFAULT_URL",
    "HUB_URL",
    "TYPE",
    "DockerHubClient",
    "RateLimit",
    "create",
]

TYPE = "docker-hub"
CAPABILITIES = OCI_CAPABILITIES
DEFAULT_URL = "https://registry-1.docker.io"
HUB_URL = "https://hub.docker.com"
#: the repository Docker names for reading one's pull limit
RATE_LIMIT_PROBE = ("ratelimitpreview/test", "latest")
HUB_PAGE_SIZE = 100


class DockerHubClient(listing.APIListing):
    """An ``Upstream`` for Docker Hub; ``api.target`` (a namespace) enables
    ``list_repositories``, ``api.url`` is the Hub API (default ``HUB_URL``)."""

    @property
    def hub_url(self) -> str:
        return (self.api.url or HUB_URL).rstrip("/")

    @property
    def namespace(self) -> str | None:
        return self.api.target

    def remote_name(self, repo: str) -> str:
        return repo if "/" in repo else f"library/{repo}"

    async def check_rate_limit(self) -> RateLimit | None:
        """The pull limit as Docker Hub reports it now (None when it sends no headers,
        which it does for accounts without a limit)."""
        repo, tag = RATE_LIMIT_PROBE
        what = "Docker Hub pull limit"
        url = self._url(repo, "manifests", tag)
        response = await self._send("HEAD", url, repo, what, headers={"Accept": MANIFEST_ACCEPT})
        await response.aclose()
        if response.status_code != 200:
            raise error_from_response(response, b"", what)
        return self.rate_limit

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        """``<namespace>/<name>`` of every repository the Hub API lists for ``namespace``."""
        if not self.namespace:
            raise Unsupported("docker-hub: listing repositories needs the option 'namespace'")
        api = await self._hub_api()
        what = f"Docker Hub repositories of {self.namespace}"

        def page(doc: Any, response: httpx.Response) -> tuple[list[str], str | None]:
            names = listing.namespaced_names(doc, "results", what)
            following = doc.get("next")
            return names, following if isinstance(following, str) and following else None

        url = f"/v2/repositories/{self.namespace}/"
        names = await api.collect(url, what, page, {"page_size": str(HUB_PAGE_SIZE)})
        return listing.page_of(names, n, last)

    async def _hub_api(self) -> listing.ProviderAPI:
        """The Hub API, with a bearer from ``POST /v2/auth/token`` when credentials are set."""
        api = listing.ProviderAPI.of(self, self.hub_url)
        credentials = self.session.credentials
        if credentials is None:
            return api
        what = f"Docker Hub login of {credentials.username!r}"
        secret = {"identifier": credentials.username, "secret": credentials.password}
        doc, _ = await api.request("POST", "/v2/auth/token", what, json_body=secret)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{what}: answer has no access_token", status=200)
        api.headers["Authorization"] = f"Bearer {token}"
        return api


#: the options that configure listing: (API URL, API token, what to list)
API_OPTIONS = ("hub_url", None, "namespace")


def create(spec: AdapterSpec, **io: Any) -> DockerHubClient:
    """Options: ``namespace`` (for listing), ``hub_url``, ``tag_page_size``.
    ``io``: ``http``, ``clock`` (see ``adapters.registry``)."""
    return listing.create_api_client(DockerHubClient, spec, API_OPTIONS, DEFAULT_URL, **io)
