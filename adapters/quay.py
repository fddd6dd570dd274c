"""Quay (``quay``): quay.io or a Red Hat Quay installation (default ``https://quay.io``).

Credentials: a user and password, or a robot account, whose name is ``<org>+<robot>`` and
whose token is the password; both go through the Docker token flow (realm
``<quay>/v2/auth``, service ``quay.io`` or the installation's host). Names are
``<namespace>/<repo>``.

Listing repositories uses Quay's API, ``GET /api/v1/repository?namespace=<ns>``, paged
with ``next_page``; it authenticates with an OAuth application token (option
``api_token``, sent as ``Authorization: Bearer``); without one it sees public repositories
only. The namespace is the option ``namespace``, or the organisation of a robot account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from . import listing
from .errors import Unsupported
from .naming import require_owner
from .oci import CAPABILITIES as OCI_CAPABILITIES

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "DEFAULT_URL", "TYPE", "QuayClient", "create", "robot_namespace"]

TYPE = "quay"
CAPABILITIES = OCI_CAPABILITIES
DEFAULT_URL = "https://quay.io"


def robot_namespace(username: str | None) -> str | None:
    """The organisation of a robot account name (``myorg+ci`` -> ``myorg``), else None."""
    if username and "+" in username:
        return username.split("+", 1)[0] or None
    return None


class QuayClient(listing.APIListing):
    """An ``Upstream`` for Quay; ``api`` (URL, OAuth token, namespace) drives
    ``list_repositories``."""

    @property
    def namespace(self) -> str | None:
        """The namespace listed: ``api.target``, or the organisation of a robot account."""
        credentials = self.session.credentials
        return self.api.target or robot_namespace(credentials.username if credentials else None)

    def remote_name(self, repo: str) -> str:
        return require_owner(repo, "Quay", "<namespace>/<repo>")

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        if not self.namespace:
            raise Unsupported("quay: listing repositories needs the option 'namespace'")
        headers = {"Authorization": f"Bearer {self.api.token}"} if self.api.token else None
        api = listing.ProviderAPI.of(self, self.api.url or self.base_url, headers)
        what = f"Quay repositories of {self.namespace}"
        first = httpx.URL(
            f"{api.base_url}/api/v1/repository",
            params={"namespace": self.namespace, "public": "true"},
        )

        def page(doc: Any, response: httpx.Response) -> tuple[list[str], str | None]:
            names = listing.namespaced_names(doc, "repositories", what)
            token = doc.get("next_page")
            if not isinstance(token, str) or not token:
                return names, None
            return names, str(first.copy_merge_params({"next_page": token}))

        return listing.page_of(await api.collect(str(first), what, page), n, last)


#: the options that configure listing: (API URL, API token, what to list)
API_OPTIONS = ("api_url", "api_token", "namespace")


def create(spec: AdapterSpec, **io: Any) -> QuayClient:
    """Options: ``namespace``, ``api_token``, ``api_url`` (default: the URL), ``tag_page_size``.
    ``io``: ``http``, ``clock`` (see ``adapters.registry``)."""
    return listing.create_api_client(QuayClient, spec, API_OPTIONS, DEFAULT_URL, **io)
