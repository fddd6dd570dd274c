"""``ProviderAPI`` sends through its client's ``RegistrySession.exchange`` (httpx.MockTransport
in place of the network): the session's timeout and rate-limit bookkeeping apply, and
failures come out as the one UpstreamError tree."""

from __future__ import annotations

import httpx
import pytest

from adapters.errors import AuthFailed, ProtocolError, RateLimited, Unavailable
from adapters.listing import ProviderAPI, array_pages
from adapters.oci import OCIClient

URL = "https://registry.example"


def api_for(handler: httpx.MockTransport) -> tuple[ProviderAPI, OCIClient]:
    http = httpx.AsyncClient(transport=handler)
    client = OCIClient(URL, http=http, timeout=httpx.Timeout(7.0, connect=1.5))
    return ProviderAPI.of(client, URL + "/api", {"PRIVATE-TOKEN": "glpat-secret"}), client


async def test_requests_carry_headers_timeout_and_note_rate_limits() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params.get("page", "1"))
        headers = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "98;w=21600"}
        if page == 1:
            headers["link"] = f'<{URL}/api/items?page=2>; rel="next"'
        return httpx.Response(200, json=[{"name": f"n{page}"}], headers=headers)

    api, client = api_for(httpx.MockTransport(handle))
    names = await api.collect("items", "items", array_pages("name", "items"), {"page": "1"})
    assert names == ["n1", "n2"]
    assert [r.headers["private-token"] for r in seen] == ["glpat-secret"] * 2
    assert all(r.headers["accept"] == "application/json" for r in seen)
    assert seen[0].extensions["timeout"] == {"connect": 1.5, "read": 7.0, "write": 7.0, "pool": 7.0}
    limit = client.rate_limit
    assert limit is not None and (limit.limit, limit.remaining, limit.window) == (100, 98, 21600)
    assert "glpat-secret" not in repr(api)


async def test_failures_are_upstream_errors() -> None:
    answers = iter(
        [
            httpx.Response(401, json={"message": "401 Unauthorized"}),
            httpx.Response(429, headers={"retry-after": "9"}, text="slow down"),
            httpx.Response(200, text="<html>not json</html>"),
        ]
    )

    def handle(request: httpx.Request) -> httpx.Response:
        return next(answers)

    api, _ = api_for(httpx.MockTransport(handle))
    with pytest.raises(AuthFailed, match="401 Unauthorized"):
        await api.request("GET", "items", "items")
    with pytest.raises(RateLimited) as limited:
        await api.request("GET", "items", "items")
    assert limited.value.retry_after == 9
    with pytest.raises(ProtocolError, match="not JSON"):
        await api.request("GET", "items", "items")


async def test_a_refused_connection_is_unavailable() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api, _ = api_for(httpx.MockTransport(handle))
    with pytest.raises(Unavailable, match="items: connection refused"):
        await api.request("POST", "items", "items", json_body={"q": 1})
