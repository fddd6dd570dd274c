"""GitHub Container Registry (``ghcr``) at ``https://ghcr.io``.

Credentials: a personal access token (classic, ``read:packages``) or a workflow's
``GITHUB_TOKEN`` as the password; GitHub ignores the username, so any (or none) will do.
Tokens come from ``https://ghcr.io/token`` through the Docker token flow; public images
pull anonymously. Names are ``<owner>/<image>[/...]``.

GHCR has no ``_catalog`` (``list_repositories`` raises
:class:`~adapters.errors.Unsupported`) and refuses manifest DELETE through the registry
API, so neither capability is declared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from .errors import Unsupported
from .naming import require_owner
from .oci import OCIClient
from .options import SpecOptions
from .registry import Capability

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "DEFAULT_URL", "TYPE", "GHCRClient", "create"]

TYPE = "ghcr"
CAPABILITIES = frozenset({Capability.PULL, Capability.LIST_TAGS, Capability.REFERRERS})
DEFAULT_URL = "https://ghcr.io"
#: the username sent with a token when none is configured (GitHub does not check it)
TOKEN_USERNAME = "token"


class GHCRClient(OCIClient):
    """An ``Upstream`` for ghcr.io."""

    def remote_name(self, repo: str) -> str:
        return require_owner(repo, "ghcr.io", "<owner>/<image>")

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        raise Unsupported(
            "ghcr.io has no repository catalog; list an owner's packages with GitHub's"
            " packages API instead"
        )


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> GHCRClient:
    """Options: ``tag_page_size``. The password is the token; the username is optional."""
    options = SpecOptions(spec, {"tag_page_size": int}, default_url=DEFAULT_URL)
    return GHCRClient(
        **options.client_args(http, clock, default_username=TOKEN_USERNAME),
        tag_page_size=options.get_int("tag_page_size"),
    )
