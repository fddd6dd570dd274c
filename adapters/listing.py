"""Listing repositories through a provider's own management API (Docker Hub, Quay, GitLab,
Harbor, Artifactory), for registries whose ``_catalog`` is missing or partial.

:class:`ProviderAPI` sends JSON requests with the provider's authentication headers and
translates failures into the :mod:`adapters.errors` tree (401/403 AuthFailed with the
provider's message, 429 RateLimited with its ``Retry-After``, 5xx Unavailable ...);
:meth:`ProviderAPI.collect` follows the provider's pagination (a next-page URL in the body
or a ``Link`` header) with a loop guard. :func:`page_of` turns a whole listing into the
``n``/``last`` page the ``_catalog`` contract promises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .errors import ProtocolError, error_from_response
from .oci import OCIClient
from .options import SpecOptions
from .session import RegistrySession

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = [
    "MAX_API_PAGES",
    "APIListing",
    "APISettings",
    "NextPage",
    "ProviderAPI",
    "array_pages",
    "create_api_client",
    "expect_list",
    "field_of",
    "link_next",
    "namespaced_names",
    "page_of",
]

#: never follow more pages than this
MAX_API_PAGES = 10_000
#: the size limit of one page of a management API's answer
MAX_API_BODY = 16 * 1024 * 1024

#: (names on this page, URL of the next page or None) from (JSON document, response)
NextPage = Callable[[Any, httpx.Response], tuple[list[str], str | None]]


def page_of(names: Iterable[str], n: int | None, last: str | None) -> list[str]:
    """The names sorted, those after ``last``, at most ``n`` of them (``_catalog`` paging)."""
    ordered = sorted(set(names))
    if last is not None:
        ordered = [name for name in ordered if name > last]
    return ordered if n is None else ordered[:n]


def link_next(response: httpx.Response) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    url = response.links.get("next", {}).get("url")
    return str(url) if url else None


class ProviderAPI:
    """JSON requests to one provider API at ``base_url`` with fixed ``headers``
    (``Authorization``, ``PRIVATE-TOKEN`` ...), sent through ``session`` (its HTTP client,
    timeout, error translation and bounded body readers). ``repr`` shows no header values."""

    def __init__(
        self,
        base_url: str,
        *,
        session: RegistrySession,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self._session = session

    def __repr__(self) -> str:
        return f"ProviderAPI({self.base_url!r}, headers={sorted(self.headers)})"

    @classmethod
    def of(
        cls, client: OCIClient, base_url: str, headers: Mapping[str, str] | None = None
    ) -> ProviderAPI:
        """An API at ``base_url`` sent through ``client``'s session."""
        return cls(base_url, session=client.session, headers=headers)

    async def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> tuple[Any, httpx.Response]:
        """The decoded JSON answer (2xx) and its response; errors per the module doc."""
        target = httpx.URL(self.base_url).join(url) if not url.startswith("http") else url
        response = await self._session.exchange(
            method,
            target,
            what,
            headers={"Accept": "application/json", **self.headers},
            # (an empty mapping would drop the query already in the URL)
            params=dict(params) if params else None,
            json_body=json_body,
        )
        try:
            if not 200 <= response.status_code < 300:
                body = await self._session.read_error(response)
                raise error_from_response(response, body, what)
            body = await self._session.read_limited(response, MAX_API_BODY, what)
        finally:
            await response.aclose()
        try:
            return json.loads(body), response
        except ValueError as exc:
            raise ProtocolError(f"{what}: answer is not JSON", status=response.status_code) from exc

    async def collect(
        self, url: str, what: str, pages: NextPage, params: Mapping[str, str] | None = None
    ) -> list[str]:
        """Every name of a paged listing starting at ``url``; ``pages`` reads one page."""
        names: list[str] = []
        seen: set[str] = set()
        next_url: str | None = str(
            httpx.URL(self.base_url).join(url).copy_merge_params(params or {})
        )
        for _ in range(MAX_API_PAGES):
            if next_url is None:
                return names
            seen.add(next_url)
            doc, response = await self.request("GET", next_url, what)
            found, following = pages(doc, response)
            names.extend(found)
            next_url = str(httpx.URL(next_url).join(following)) if following else None
            if next_url is not None and next_url in seen:
                raise ProtocolError(f"{what}: the next page loops back to {next_url}")
        raise ProtocolError(f"{what}: more than {MAX_API_PAGES} pages")


def expect_list(doc: Any, what: str) -> list[Any]:
    """``doc`` when it is a JSON array, else ProtocolError."""
    if not isinstance(doc, list):
        raise ProtocolError(f"{what}: expected a JSON array", status=200)
    return doc


def field_of(item: Any, key: str, what: str) -> str:
    """``item[key]`` as a non-empty string, else ProtocolError."""
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{what}: an entry has no {key!r}", status=200)
    return value


def array_pages(key: str, what: str) -> NextPage:
    """The pages of a listing that answers a JSON array of objects named by ``key`` and
    links the next page in a ``Link`` header (GitLab, Harbor)."""

    def page(doc: Any, response: httpx.Response) -> tuple[list[str], str | None]:
        return [field_of(item, key, what) for item in expect_list(doc, what)], link_next(response)

    return page


def namespaced_names(doc: Any, key: str, what: str) -> list[str]:
    """``<namespace>/<name>`` of every entry of the array ``doc[key]`` (Hub, Quay)."""
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what}: answer is not an object", status=200)
    return [
        f"{field_of(item, 'namespace', what)}/{field_of(item, 'name', what)}"
        for item in expect_list(doc.get(key, []), what)
    ]


@dataclass(frozen=True)
class APISettings:
    """A provider's management API: its ``url`` (None: the adapter's default), the
    ``token`` it takes (never in ``repr``), and the ``target`` to list (a namespace, a
    project ...; None: the adapter's default or nothing)."""

    url: str | None = None
    token: str | None = field(default=None, repr=False)
    target: str | None = None


class APIListing(OCIClient):
    """An ``OCIClient`` that lists repositories through its provider's API (``api``)."""

    def __init__(self, *args: Any, api: APISettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = api or APISettings()


C = TypeVar("C", bound=APIListing)


def create_api_client(
    cls: type[C],
    spec: AdapterSpec,
    api_options: tuple[str | None, str | None, str | None],
    default_url: str = "",
    *,
    http: httpx.AsyncClient,
    clock: Callable[[], float] = time.monotonic,
) -> C:
    """``cls`` built from ``spec``: the option names ``api_options`` (API URL, API token,
    target; None where the adapter has none) fill its :class:`APISettings`; the option
    ``tag_page_size`` is accepted too. ValueError for a bad spec."""
    allowed: dict[str, type] = {name: str for name in api_options if name}
    allowed["tag_page_size"] = int
    options = SpecOptions(spec, allowed, default_url=default_url)
    url, token, target = (options.get_str(name) if name else None for name in api_options)
    return cls(
        **options.client_args(http, clock),
        tag_page_size=options.get_int("tag_page_size"),
        api=APISettings(url, token, target),
    )
