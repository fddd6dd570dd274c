"""Harbor (``harbor``): a Harbor v2 registry at its URL (no default).

Credentials: a user and password (or CLI secret), or a robot account, whose name starts
with ``robot$`` (``robot$ci``; Harbor 2.2+: ``robot$<project>+<name>``) and whose secret is
the password. The registry's challenge sends them to Harbor's token service,
``<harbor>/service/token?service=harbor-registry&scope=...``. Names are
``<project>/<repo>``; a proxy-cache project works the same way.

Listing repositories uses Harbor's API v2.0 with Basic authentication:
``GET /api/v2.0/projects/{project}/repositories`` for the option ``project``, or, without
it, every project the account sees (``GET /api/v2.0/projects``) and each one's
repositories; pages follow the ``Link`` header. Harbor returns full names
(``<project>/<repo>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import listing
from .naming import require_owner
from .oci import CAPABILITIES as OCI_CAPABILITIES

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "TYPE", "HarborClient", "create"]

TYPE = "harbor"
CAPABILITIES = OCI_CAPABILITIES
PAGE_SIZE = 100


class HarborClient(listing.APIListing):
    """An ``Upstream`` for Harbor; ``api.target`` (a project) narrows ``list_repositories``."""

    def remote_name(self, repo: str) -> str:
        return require_owner(repo, "Harbor", "<project>/<repo>")

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        credentials = self.session.credentials
        headers = {"Authorization": credentials.basic_header()} if credentials else None
        api = listing.ProviderAPI.of(self, self.base_url, headers)
        projects = [self.api.target] if self.api.target else await self._projects(api)
        names: list[str] = []
        for project in projects:
            names += await self._names(
                api,
                f"/api/v2.0/projects/{quote(project, safe='')}/repositories",
                f"Harbor repositories of {project}",
            )
        return listing.page_of(names, n, last)

    async def _projects(self, api: listing.ProviderAPI) -> list[str]:
        return await self._names(api, "/api/v2.0/projects", "Harbor projects")

    @staticmethod
    async def _names(api: listing.ProviderAPI, url: str, what: str) -> list[str]:
        pages = listing.array_pages("name", what)
        return await api.collect(url, what, pages, {"page_size": str(PAGE_SIZE)})


#: the options that configure listing: (API URL, API token, what to list)
API_OPTIONS = (None, None, "project")


def create(spec: AdapterSpec, **io: Any) -> HarborClient:
    """Options: ``project`` (for listing), ``tag_page_size``.
    ``io``: ``http``, ``clock`` (see ``adapters.registry``)."""
    return listing.create_api_client(HarborClient, spec, API_OPTIONS, "", **io)
