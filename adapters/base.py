"""The ``Upstream`` protocol: what the pull-through proxy (and later replication) needs from
a registry it reads from, be it another Portmesh node or a public registry's adapter.

Repositories are passed as upstream names (``library/alpine``), references as a tag or a
digest string. Every method raises only :class:`~adapters.errors.UpstreamError` subclasses
(and ``trio.Cancelled``): NotFound, AuthFailed, RateLimited, Unavailable, ProtocolError.

Manifests are verified by the adapter (the body must hash to the digest it is known by);
blob bytes are *not*: blobs stream through, and the caller hashes them as they pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from portmesh.oci.digest import Digest

from .errors import (
    AuthFailed,
    NotFound,
    ProtocolError,
    RateLimited,
    Unavailable,
    UpstreamError,
)

__all__ = [
    "AuthFailed",
    "BlobStream",
    "FetchedManifest",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "RepositoryLister",
    "Resolved",
    "Unavailable",
    "Upstream",
    "UpstreamError",
]


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a manifest reference points to upstream, learnt without fetching the body."""

    digest: Digest
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest body whose bytes were checked against ``digest``."""

    body: bytes
    media_type: str
    digest: Digest

    @property
    def size(self) -> int:
        return len(self.body)


class BlobStream(Protocol):
    """The body of an upstream blob response, iterated once.

    ``status`` is 200 (the whole blob from byte 0) or 206 (a range was honoured).
    ``offset`` is the blob offset of the first byte yielded; ``length`` the number of bytes
    that will be yielded when the upstream said so; ``total`` the whole blob's size when
    known. Iteration yields chunks as they arrive and raises Unavailable if the stream is
    cut short; the bytes are not verified.
    """

    status: int
    offset: int
    length: int | None
    total: int | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@runtime_checkable
class Upstream(Protocol):
    """A registry to pull from. Implementations own no HTTP client they were given."""

    async def resolve(self, repo: str, reference: str) -> Resolved:
        """HEAD the manifest: its digest, media type and size. Raises NotFound etc."""
        ...

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest:
        """GET the manifest; its body is verified against the requested digest (for a
        digest reference) and the upstream's ``Docker-Content-Digest`` (ProtocolError)."""
        ...

    def open_blob(
        self, repo: str, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AbstractAsyncContextManager[BlobStream]:
        """Open the blob (from ``offset``, ``length`` bytes or to the end) for streaming.

        Errors before the body (404, auth, 5xx, refused) raise on entering the context;
        the connection is released on leaving it.
        """
        ...

    async def list_tags(
        self, repo: str, n: int | None = None, last: str | None = None
    ) -> list[str]:
        """One page of tags (``n``, ``last``), or every tag when ``n`` is None."""
        ...

    async def referrers(self, repo: str, digest: Digest, artifact_type: str | None = None) -> bytes:
        """The referrers of ``digest`` as an OCI image index body (possibly empty)."""
        ...

    async def aclose(self) -> None:
        """Release what the upstream owns (not the HTTP client passed in); idempotent."""
        ...


@runtime_checkable
class RepositoryLister(Protocol):
    """An optional capability of an ``Upstream`` (``Capability.LIST_REPOSITORIES``): the
    names of its repositories, through the ``_catalog`` or the provider's own API.
    Adapters whose registry cannot list raise ``adapters.errors.Unsupported``."""

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        """One page of repository names in order (``n`` after ``last``), or all of them
        when ``n`` is None."""
        ...
