"""Huawei Cloud SoftWare Repository for Container (``swr``), logged in with an AK/SK pair.

SWR's long-term login, as Huawei documents it for ``docker login``: the username is
``<region>@<AK>`` and the password the hex HMAC-SHA256 of the AK keyed with the SK
(``printf AK | openssl dgst -binary -sha256 -hmac SK | od -An -vtx1``). The registry's
token flow takes these as Basic credentials. The SK itself never leaves the process.

Spec: ``url`` the registry (``https://swr.<region>.myhuaweicloud.com``), ``username`` the
AK, ``password`` the SK; option ``region`` (else read from the URL). Names are
``<organization>/<repository>``. Listing needs SWR's API with Huawei's request signing,
which this adapter does not do, so the capability is not declared.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from .auth import Credentials
from .cloudnaming import NameRule
from .errors import Unsupported
from .oci import OCIClient
from .options import SpecOptions
from .registry import Capability

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["CAPABILITIES", "NAME_RULE", "TYPE", "SWRClient", "create", "login_credentials"]

TYPE = "swr"
CAPABILITIES = frozenset({Capability.PULL, Capability.LIST_TAGS, Capability.REFERRERS})
NAME_RULE = NameRule(
    "SWR",
    r"[a-z][a-z0-9._-]{0,63}(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+",
    min_segments=2,
    form="<organization>/<repository>, lowercase",
)
_HOST = re.compile(r"^swr\.([a-z0-9-]+)\.myhuaweicloud\.(?:com|eu|cn)$")


def login_credentials(region: str, access_key: str, secret_key: str) -> Credentials:
    """The long-term ``docker login`` credentials of an AK/SK pair in ``region``."""
    key = hmac.new(secret_key.encode(), access_key.encode(), hashlib.sha256).hexdigest()
    return Credentials(f"{region}@{access_key}", key)


class SWRClient(OCIClient):
    """An ``Upstream`` for one SWR region; names are ``<organization>/<repository>``."""

    def remote_name(self, repo: str) -> str:
        return NAME_RULE.check(repo)

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        raise Unsupported("SWR lists repositories only through its signed management API")


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> SWRClient:
    """See the module docstring; ValueError for a spec that cannot work."""
    options = SpecOptions(spec, {"region": str})
    match = _HOST.match(httpx.URL(options.url).host)
    region = options.get_str("region") or (match[1] if match else None)
    if not region:
        raise ValueError("upstream type 'swr': option 'region' is required for this url")
    if not spec.username or not spec.password:
        raise ValueError("upstream type 'swr': username (AK) and password (SK) are required")
    return SWRClient(
        options.url,
        http=http,
        credentials=login_credentials(region, spec.username, spec.password),
        timeout=options.timeout,
        clock=clock,
    )
