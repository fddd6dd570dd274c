"""GitLab container registry (``gitlab``), default ``https://registry.gitlab.com``.

Credentials: a username with a personal, project or group access token, or a deploy
token's username and token (``read_registry``); a CI job may use ``gitlab-ci-token`` and
``$CI_JOB_TOKEN``. The registry's challenge sends them to GitLab's token endpoint,
``<gitlab>/jwt/auth?service=container_registry&scope=...`` (Basic there, a short-lived
JWT back). Names are ``<group>[/<subgroup>...]/<project>[/<image>]``.

Listing repositories needs a project (option ``project``: its numeric id or its path) and
uses the REST API at ``gitlab_url`` (default: the registry host without ``registry.``):
``GET /api/v4/projects/:id/registry/repositories``, paged by ``Link``, authenticated with
``PRIVATE-TOKEN`` (option ``api_token``, default the password; deploy tokens cannot call
the API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from . import listing
from .errors import Unsupported
from .naming import require_owner
from .oci import CAPABILITIES as OCI_CAPABILITIES

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "DEFAULT_URL", "TYPE", "GitLabClient", "create", "gitlab_api_url"]

TYPE = "gitlab"
CAPABILITIES = OCI_CAPABILITIES
DEFAULT_URL = "https://registry.gitlab.com"
PAGE_SIZE = 100


def gitlab_api_url(registry_url: str) -> str:
    """GitLab's own URL for its registry's URL (``registry.gitlab.com`` -> ``gitlab.com``)."""
    url = httpx.URL(registry_url)
    host = url.host
    if host.startswith("registry."):
        url = url.copy_with(host=host[len("registry.") :])
    return str(url).rstrip("/")


class GitLabClient(listing.APIListing):
    """An ``Upstream`` for a GitLab registry; ``api.target`` (a project) enables
    ``list_repositories``, ``api.url`` is GitLab itself, ``api.token`` its API token."""

    @property
    def gitlab_url(self) -> str:
        return (self.api.url or gitlab_api_url(self.base_url)).rstrip("/")

    def remote_name(self, repo: str) -> str:
        return require_owner(repo, "GitLab", "<group>/<project>[/<image>]")

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        project = self.api.target
        if not project:
            raise Unsupported("gitlab: listing repositories needs the option 'project'")
        credentials = self.session.credentials
        token = self.api.token or (credentials.password if credentials else None)
        api = listing.ProviderAPI.of(
            self, self.gitlab_url, {"PRIVATE-TOKEN": token} if token else None
        )
        what = f"GitLab registry repositories of project {project}"
        url = f"/api/v4/projects/{quote(project, safe='')}/registry/repositories"
        pages = listing.array_pages("path", what)
        return listing.page_of(
            await api.collect(url, what, pages, {"per_page": str(PAGE_SIZE)}), n, last
        )


#: the options that configure listing: (API URL, API token, what to list)
API_OPTIONS = ("gitlab_url", "api_token", "project")


def create(spec: AdapterSpec, **io: Any) -> GitLabClient:
    """Options: ``project``, ``gitlab_url``, ``api_token``, ``tag_page_size``.
    ``io``: ``http``, ``clock`` (see ``adapters.registry``)."""
    return listing.create_api_client(GitLabClient, spec, API_OPTIONS, DEFAULT_URL, **io)
