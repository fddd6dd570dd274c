"""The adapter factory: one entry per upstream type, each a module with a ``create`` function.

An adapter module defines::

    TYPE = "ecr"                                   # the key in ADAPTERS
    CAPABILITIES = frozenset({Capability.PULL, ...})
    def create(spec: AdapterSpec, *, http: httpx.AsyncClient,
               clock: Callable[[], float] = time.monotonic) -> Upstream: ...

Modules are imported on first use, so a node that proxies only Docker Hub never imports the
ECR signer. The HTTP client is passed in and owned by the caller. ``create`` checks the
whole spec and makes no request (no I/O at all): :func:`validate_spec` relies on that to
check a configuration before any client is opened.
"""

from __future__ import annotations

import enum
import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx

from .base import Upstream

__all__ = [
    "ADAPTERS",
    "AdapterSpec",
    "Capability",
    "capabilities",
    "create_upstream",
    "validate_spec",
]


class Capability(enum.StrEnum):
    """What an adapter can do against its upstream (replication and the portal offer these)."""

    LIST_REPOSITORIES = "list_repositories"
    LIST_TAGS = "list_tags"
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    REFERRERS = "referrers"


@dataclass(frozen=True)
class AdapterSpec:
    """How to reach one upstream: ``type`` picks the adapter, ``url`` its endpoint,
    ``username``/``password`` its credential (access key and secret, token, JSON key ...),
    ``options`` the provider-specific settings (``region``, ``tenant``, ...)."""

    type: str
    url: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    timeout: float = 2.0


#: adapter type -> module implementing it
ADAPTERS: Mapping[str, str] = MappingProxyType(
    {
        "oci": "adapters.oci",
        "distribution": "adapters.oci",
        "portmesh": "adapters.oci",
        "docker-hub": "adapters.dockerhub",
        "ghcr": "adapters.ghcr",
        "quay": "adapters.quay",
        "gitlab": "adapters.gitlab",
        "harbor": "adapters.harbor",
        "artifactory": "adapters.artifactory",
        "ecr": "adapters.ecr",
        "gcr": "adapters.gcr",
        "acr": "adapters.acr",
        "swr": "adapters.swr",
        "alibaba-acr": "adapters.alibaba",
    }
)


def _module(kind: str) -> Any:
    try:
        name = ADAPTERS[kind]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown upstream type {kind!r} (known: {known})") from None
    return importlib.import_module(name)


def capabilities(kind: str) -> frozenset[Capability]:
    """The capabilities the adapter for ``kind`` declares."""
    return frozenset(_module(kind).CAPABILITIES)


def create_upstream(
    spec: AdapterSpec,
    *,
    http: httpx.AsyncClient,
    clock: Callable[[], float] = time.monotonic,
) -> Upstream:
    """A client for ``spec.type``; raises ``ValueError`` for an unknown type or bad spec."""
    upstream: Upstream = _module(spec.type).create(spec, http=http, clock=clock)
    return upstream


class _Unsendable(httpx.AsyncBaseTransport):
    """A transport that refuses every request: adapters built on it can only be looked at."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("this client is for checking a spec; it sends nothing")


def validate_spec(spec: AdapterSpec) -> None:
    """Check ``spec`` exactly as :func:`create_upstream` would, opening nothing and
    sending nothing: ``ValueError`` naming the upstream type and the offending option."""
    _module(spec.type).create(spec, http=httpx.AsyncClient(transport=_Unsendable()))
