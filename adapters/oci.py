"""``OCIClient``: the generic OCI Distribution registry client every adapter builds on.

It implements :class:`adapters.base.Upstream` for any registry that speaks the OCI
Distribution API; authentication (anonymous, Basic, Bearer token service) is the
:class:`~adapters.session.RegistrySession`'s. Manifests are size-limited and verified
against the digest asked for and the upstream's ``Docker-Content-Digest``; blobs stream
unverified (the caller hashes them). ``list_repositories`` reads the ``_catalog`` (one page
or every page, following ``Link``).

Adapters for particular registries subclass it: :meth:`OCIClient.remote_name` maps the
names callers use to the registry's own (Docker Hub's ``library/``, a repository key in
the path), and ``create`` builds the generic client from an
:class:`~adapters.registry.AdapterSpec` for the types ``oci``, ``distribution`` and
``portmesh`` (another Portmesh node). The HTTP client is passed in and owned by the caller;
``aclose`` does not close it. Credentials never appear in ``repr`` or error messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from portmesh.oci import mediatypes
from portmesh.oci.digest import Digest, parse_digest

from .auth import CredentialProvider, Credentials, TokenCache
from .base import BlobStream, FetchedManifest, Resolved
from .blobstream import HTTPBlobStream
from .errors import (
    NotFound,
    ProtocolError,
    error_from_response,
)
from .options import SpecOptions
from .referrers import EMPTY_INDEX, filter_index
from .registry import Capability
from .session import RateLimit, RegistrySession

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = [
    "CAPABILITIES",
    "MANIFEST_ACCEPT",
    "MAX_MANIFEST_SIZE",
    "TYPE",
    "OCIClient",
    "RateLimit",
    "create",
]

TYPE = "oci"
CAPABILITIES = frozenset(
    {
        Capability.PULL,
        Capability.LIST_TAGS,
        Capability.LIST_REPOSITORIES,
        Capability.REFERRERS,
    }
)
#: the scope the token specification names for the catalog
CATALOG_SCOPE = "registry:catalog:*"

MANIFEST_ACCEPT = ", ".join(
    [
        mediatypes.OCI_MANIFEST,
        mediatypes.OCI_INDEX,
        mediatypes.DOCKER_MANIFEST,
        mediatypes.DOCKER_MANIFEST_LIST,
    ]
)
#: the reference registry's manifest size limit
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: never follow more tag or catalog pages than this (a guard against a Link loop)
MAX_TAG_PAGES = 10_000


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip()


class OCIClient:
    """An ``Upstream`` for any registry speaking the OCI Distribution API at ``base_url``
    (``https://registry-1.docker.io``). ``tag_page_size`` asks for tags in pages of that
    size when listing all of them."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient,
        credentials: Credentials | CredentialProvider | None = None,
        timeout: httpx.Timeout | None = None,
        tokens: TokenCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_manifest_size: int = MAX_MANIFEST_SIZE,
        tag_page_size: int | None = None,
        session: RegistrySession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.http = http
        self.timeout = timeout
        self.tokens = tokens if tokens is not None else TokenCache(clock=clock)
        self.max_manifest_size = max_manifest_size
        self.tag_page_size = tag_page_size
        self.session = session or RegistrySession(
            http=http, credentials=credentials, timeout=timeout, tokens=self.tokens
        )

    @property
    def rate_limit(self) -> RateLimit | None:
        """Docker Hub's ``ratelimit-*`` headers as last seen, or None."""
        return self.session.rate_limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, credentials={self.credentials!r})"

    def remote_name(self, repo: str) -> str:
        """The registry's name for ``repo`` (here: the same); adapters with naming rules
        override it and raise NotFound for a name the registry cannot have."""
        return repo

    # -- Upstream -------------------------------------------------------------------

    async def resolve(self, repo: str, reference: str) -> Resolved:
        what = f"manifest {repo}:{reference}"
        wanted = _reference_digest(reference)
        response = await self._send(
            "HEAD",
            self._url(repo, "manifests", reference),
            repo,
            what,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        await response.aclose()
        if response.status_code != 200:
            raise error_from_response(response, b"", what)
        header = response.headers.get("docker-content-digest")
        size = response.headers.get("content-length")
        media_type = _media_type(response.headers.get("content-type"))
        if (header is None and wanted is None) or size is None or not size.isdigit():
            fetched = await self.fetch_manifest(repo, reference)
            return Resolved(fetched.digest, fetched.media_type, fetched.size)
        digest = wanted if wanted is not None else _upstream_digest(header, what)
        if header is not None and wanted is not None:
            told = _upstream_digest(header, what)
            if told.algorithm == wanted.algorithm and told != wanted:
                raise ProtocolError(f"{what}: upstream says its digest is {told}", status=200)
        return Resolved(digest, media_type, int(size))

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest:
        what = f"manifest {repo}:{reference}"
        wanted = _reference_digest(reference)
        response = await self._send(
            "GET",
            self._url(repo, "manifests", reference),
            repo,
            what,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        try:
            if response.status_code != 200:
                raise error_from_response(response, await self.session.read_error(response), what)
            body = await self.session.read_limited(response, self.max_manifest_size, what)
        finally:
            await response.aclose()
        header = response.headers.get("docker-content-digest")
        told = _upstream_digest(header, what) if header is not None else None
        for expected in (wanted, told):
            if expected is not None and Digest.of(body, expected.algorithm) != expected:
                raise ProtocolError(
                    f"{what}: body does not hash to {expected} ({len(body)} bytes received)",
                    status=200,
                )
        digest = wanted or told or Digest.of(body)
        return FetchedManifest(body, _manifest_media_type(response, body), digest)

    @asynccontextmanager
    async def open_blob(
        self, repo: str, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[BlobStream]:
        if offset < 0 or (length is not None and length < 1):
            raise ValueError(f"bad range: offset={offset} length={length}")
        what = f"blob {repo}@{digest}"
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        response = await self._send(
            "GET", self._url(repo, "blobs", str(digest)), repo, what, headers=headers
        )
        try:
            if response.status_code not in (200, 206):
                raise error_from_response(response, await self.session.read_error(response), what)
            stream = HTTPBlobStream(response, offset, length, what)
            try:
                yield stream
            finally:
                await stream.aclose()
        finally:
            await response.aclose()

    async def list_tags(
        self, repo: str, n: int | None = None, last: str | None = None
    ) -> list[str]:
        page_size = n if n is not None else self.tag_page_size
        url = self._url(repo, "tags", "list")
        scope = self._scope(repo)
        return await self.list_names(url, scope, "tags", f"tags of {repo}", page_size, last, n)

    async def list_repositories(self, n: int | None = None, last: str | None = None) -> list[str]:
        """One page of the ``_catalog`` (``n``, ``last``), or every name when ``n`` is None;
        the token asked for has the ``registry:catalog:*`` scope."""
        page_size = n if n is not None else self.tag_page_size
        url = f"{self.base_url}/v2/_catalog"
        return await self.list_names(
            url, CATALOG_SCOPE, "repositories", "repository catalog", page_size, last, n
        )

    async def list_names(
        self,
        url: str,
        scope: str,
        key: str,
        what: str,
        page_size: int | None,
        last: str | None,
        n: int | None,
    ) -> list[str]:
        """The strings under ``key`` of a paged JSON list at ``url`` (tags, catalog):
        one page when ``n`` is given, else every page the ``Link`` headers lead to."""
        params: dict[str, str] = {}
        if page_size is not None:
            params["n"] = str(page_size)
        if last is not None:
            params["last"] = last
        url = str(httpx.URL(url, params=params))
        names: list[str] = []
        seen: set[str] = set()
        for _ in range(MAX_TAG_PAGES):
            seen.add(url)
            response = await self.session.send("GET", url, scope, what)
            try:
                if response.status_code != 200:
                    raise error_from_response(
                        response, await self.session.read_error(response), what
                    )
                body = await self.session.read_limited(response, self.max_manifest_size, what)
            finally:
                await response.aclose()
            names.extend(_names_of(body, key, what))
            next_url = response.links.get("next", {}).get("url")
            if n is not None or not next_url:
                return names
            url = str(httpx.URL(url).join(next_url))
            if url in seen:
                raise ProtocolError(f"{what}: Link header loops back to {url}")
        raise ProtocolError(f"{what}: more than {MAX_TAG_PAGES} pages")

    async def referrers(self, repo: str, digest: Digest, artifact_type: str | None = None) -> bytes:
        """The referrers API's index; where the upstream has no such API (404), the
        referrers tag schema (tag ``<alg>-<hex>``); no referrers gives an empty index.
        Filtering by ``artifact_type`` is done here when the upstream did not."""
        what = f"referrers of {repo}@{digest}"
        params = {"artifactType": artifact_type} if artifact_type else None
        url = self._url(repo, "referrers", str(digest))
        response = await self._send("GET", url, repo, what, params=params)
        try:
            if response.status_code == 404:
                body = None
            elif response.status_code != 200:
                raise error_from_response(response, await self.session.read_error(response), what)
            else:
                body = await self.session.read_limited(response, self.max_manifest_size, what)
        finally:
            await response.aclose()
        if body is not None:
            filtered = "artifactType" in response.headers.get("oci-filters-applied", "")
            return filter_index(body, None if filtered else artifact_type, what)
        try:
            fetched = await self.fetch_manifest(repo, f"{digest.algorithm}-{digest.encoded}")
        except NotFound:
            return EMPTY_INDEX
        return filter_index(fetched.body, artifact_type, what)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller. Idempotent."""

    # -- HTTP and authentication ----------------------------------------------------

    def _url(self, repo: str, kind: str, reference: str) -> str:
        return f"{self.base_url}/v2/{self.remote_name(repo)}/{kind}/{reference}"

    def _scope(self, repo: str) -> str:
        return f"repository:{self.remote_name(repo)}:pull"

    async def _send(
        self,
        method: str,
        url: str,
        repo: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.session.send(
            method, url, self._scope(repo), what, headers=headers, params=params
        )


def _reference_digest(reference: str) -> Digest | None:
    """The digest a reference names, or None for a tag (OCIError if malformed)."""
    return parse_digest(reference) if ":" in reference else None


def _upstream_digest(header: str, what: str) -> Digest:
    try:
        return parse_digest(header.strip())
    except Exception as exc:
        raise ProtocolError(f"{what}: bad Docker-Content-Digest {header[:100]!r}") from exc


def _manifest_media_type(response: httpx.Response, body: bytes) -> str:
    declared = _media_type(response.headers.get("content-type"))
    if declared and declared not in ("application/json", "application/octet-stream"):
        return declared
    try:
        doc = json.loads(body)
    except ValueError:
        return declared
    inner = doc.get("mediaType") if isinstance(doc, dict) else None
    return inner if isinstance(inner, str) and inner else declared


def _names_of(body: bytes, key: str, what: str) -> list[str]:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{what}: answer is not JSON", status=200) from exc
    names = doc.get(key) if isinstance(doc, dict) else None
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
        raise ProtocolError(f"{what}: malformed {key} list", status=200)
    return names


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> OCIClient:
    """A generic client for ``spec.url``; option ``tag_page_size`` (int). Raises
    ValueError for a missing URL or an unknown option."""
    options = SpecOptions(spec, {"tag_page_size": int})
    return OCIClient(
        **options.client_args(http, clock), tag_page_size=options.get_int("tag_page_size")
    )
